// A call between two RTCPeerConnections in one page, with the real E2EE
// layer from the static directory on both ends. The tests and the CPU
// benchmark drive it through window.loopback.

import { E2EE } from "/static/call/e2ee.js";

const SIDES = ["impolite", "polite"];

/** @type {{pcs: RTCPeerConnection[], e2ees: (E2EE | null)[]}} */
const call = { pcs: [], e2ees: [] };

/**
 * Start the call.
 * @param {{encrypt?: boolean, rotationSeconds?: number,
 *   wrongKeyOn?: "impolite" | "polite" | null,
 *   plainOn?: "impolite" | "polite" | null}} [options] plainOn leaves one
 *   side without E2EE; encrypt: false leaves both
 */
async function start(options = {}) {
  const { encrypt = true, rotationSeconds = 600 } = options;
  const { wrongKeyOn = null, plainOn = null } = options;
  const media = await navigator.mediaDevices.getUserMedia({
    audio: true,
    video: { width: 320, height: 240, frameRate: 30 },
  });
  const pcs = SIDES.map(() => new RTCPeerConnection());
  call.pcs = pcs;

  // senders up front, before E2EE starts: the offerer's transceivers, and
  // the answerer's addTrack ones, which the offer's m-lines then reuse
  for (const track of media.getTracks()) {
    pcs[0].addTransceiver(track.clone(), { direction: "sendrecv", streams: [media] });
    pcs[1].addTrack(track.clone(), media);
  }
  call.e2ees = pcs.map((pc, i) =>
    encrypt && plainOn !== SIDES[i]
      ? new E2EE(pc, { polite: i === 1, rotationSeconds, testHooks: true })
      : null,
  );
  call.e2ees.forEach((e2ee, i) => {
    e2ee?.start();
    if (wrongKeyOn === SIDES[i]) e2ee?.test?.useWrongReceiveKey();
  });

  pcs.forEach((pc, i) => {
    const other = pcs[1 - i];
    pc.onicecandidate = (e) => {
      if (e.candidate) other.addIceCandidate(e.candidate);
    };
    const remote = new MediaStream();
    pc.ontrack = (e) => {
      remote.addTrack(e.track);
      const video = /** @type {HTMLVideoElement} */ (document.getElementById(SIDES[i]));
      const audio = /** @type {HTMLAudioElement} */ (
        document.getElementById(`${SIDES[i]}-audio`)
      );
      video.srcObject = remote;
      audio.srcObject = remote;
    };
  });

  await pcs[0].setLocalDescription();
  await pcs[1].setRemoteDescription(/** @type {any} */ (pcs[0].localDescription));
  await pcs[1].setLocalDescription();
  await pcs[0].setRemoteDescription(/** @type {any} */ (pcs[1].localDescription));
}

/** Media and E2EE counters of both sides, as plain data. */
async function stats() {
  return Promise.all(
    call.pcs.map(async (pc, i) => {
      const out = {
        side: SIDES[i],
        e2ee: call.e2ees[i]?.state ?? null,
        framesDecoded: 0,
        framesReceived: 0,
        framesDropped: 0,
        framesEncoded: 0,
        audioSamples: 0,
        concealedSamples: 0,
        audioEnergy: 0,
      };
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type === "outbound-rtp" && s.kind === "video") {
          out.framesEncoded += s.framesEncoded || 0;
        }
        if (s.type !== "inbound-rtp") return;
        if (s.kind === "video") {
          out.framesDecoded += s.framesDecoded || 0;
          out.framesReceived += s.framesReceived || 0;
          out.framesDropped += s.framesDropped || 0;
        }
        if (s.kind === "audio") {
          out.audioSamples += s.totalSamplesReceived || 0;
          out.concealedSamples += s.concealedSamples || 0;
          out.audioEnergy += s.totalAudioEnergy || 0;
        }
      });
      return out;
    }),
  );
}

/**
 * Stats of both sides every intervalMs for durationMs, taken in the page
 * so that the windows are even.
 * @param {number} durationMs
 * @param {number} intervalMs
 */
async function sample(durationMs, intervalMs) {
  const samples = [await stats()];
  const end = performance.now() + durationMs;
  while (performance.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    samples.push(await stats());
  }
  return samples;
}

/**
 * Bytes before and after one side's sender transform, as number arrays.
 * @param {"impolite" | "polite"} side
 * @param {number} count
 */
async function capture(side, count) {
  const e2ee = call.e2ees[SIDES.indexOf(side)];
  const got = await e2ee?.test?.captureSenderBytes(count);
  if (!got) return null;
  return {
    kinds: got.kinds,
    before: got.before.map((b) => Array.from(b)),
    after: got.after.map((b) => Array.from(b)),
  };
}

/**
 * One side's key channel messages (JSON text), from the E2EE test hook.
 * @param {"impolite" | "polite"} side
 */
function channelMessages(side) {
  return call.e2ees[SIDES.indexOf(side)]?.test?.channelMessages() ?? [];
}

/**
 * Call restart() or markCompared() on one side's E2EE.
 * @param {"impolite" | "polite"} side
 * @param {"restart" | "markCompared"} method
 */
function act(side, method) {
  call.e2ees[SIDES.indexOf(side)]?.[method]();
}

function stop() {
  for (const e2ee of call.e2ees) e2ee?.close();
  for (const pc of call.pcs) pc.close();
}

// @ts-ignore: the test's entry point
window.loopback = { start, stats, sample, capture, channelMessages, act, stop };
