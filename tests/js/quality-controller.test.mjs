// Unit tests of the quality controller (static/call/quality.js) and the
// stats reader (quality-stats.js) against a stand-in peer connection that
// records what the controller asks of it.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  CHANNEL,
  QualityController,
  parseAdvice,
} from "../../src/sprechzimmer/static/call/quality.js";
import { PROFILE_VIDEO } from "../../src/sprechzimmer/static/call/quality-policy.js";
import {
  makeSample,
  readStats,
  selectedPair,
} from "../../src/sprechzimmer/static/call/quality-stats.js";

/** The keys of a sample; the server forbids any other. */
const SAMPLE_KEYS = [
  "send_kbps",
  "recv_kbps",
  "loss_pct",
  "rtt_ms",
  "jitter_ms",
  "fps",
  "width",
  "height",
  "candidate",
  "path",
  "profile",
  "decrypt_failures",
  "errors",
].sort();

/**
 * A getStats report of a call `t` seconds in, sending at `kbps`.
 * @param {number} t
 * @param {{availableKbps?: number, candidateType?: string, lost?: number,
 *   fractionLost?: number}} [o]
 */
function report(t, o = {}) {
  const ts = 1_700_000_000_000 + t * 1000;
  const bytes = (/** @type {number} */ kbps) => Math.round((kbps * 1000 * t) / 8);
  const stats = [
    { id: "T01", type: "transport", timestamp: ts, selectedCandidatePairId: "CP1" },
    {
      id: "CP1",
      type: "candidate-pair",
      timestamp: ts,
      nominated: true,
      state: "succeeded",
      availableOutgoingBitrate: (o.availableKbps ?? 3000) * 1000,
      currentRoundTripTime: 0.03,
      localCandidateId: "L1",
      remoteCandidateId: "R1",
      bytesSent: bytes(900),
    },
    {
      id: "L1",
      type: "local-candidate",
      candidateType: o.candidateType ?? "host",
      // Addresses are in real reports; nothing of them may reach a sample.
      address: "192.0.2.10",
      port: 50000,
    },
    {
      id: "R1",
      type: "remote-candidate",
      candidateType: "srflx",
      address: "198.51.100.7",
    },
    {
      id: "OA",
      type: "outbound-rtp",
      kind: "audio",
      ssrc: 1,
      timestamp: ts,
      bytesSent: bytes(40),
    },
    {
      id: "OV",
      type: "outbound-rtp",
      kind: "video",
      ssrc: 2,
      timestamp: ts,
      bytesSent: bytes(800),
      framesPerSecond: 30,
      frameWidth: 1280,
      frameHeight: 720,
      qualityLimitationReason: "none",
    },
    {
      id: "RV",
      type: "remote-inbound-rtp",
      kind: "video",
      ssrc: 2,
      timestamp: ts,
      fractionLost: o.fractionLost ?? 0,
      roundTripTime: 0.03,
    },
    {
      id: "IA",
      type: "inbound-rtp",
      kind: "audio",
      ssrc: 3,
      timestamp: ts,
      bytesReceived: bytes(40),
      packetsReceived: 50 * t,
      packetsLost: o.lost ?? 0,
      jitter: 0.004,
    },
    {
      id: "IV",
      type: "inbound-rtp",
      kind: "video",
      ssrc: 4,
      timestamp: ts,
      bytesReceived: bytes(600),
      packetsReceived: 100 * t,
      packetsLost: 0,
      framesPerSecond: 24,
      frameWidth: 640,
      frameHeight: 360,
      framesDecoded: 24 * t,
      framesReceived: 24 * t,
      framesDropped: 0,
      totalDecodeTime: 0.004 * 24 * t,
    },
  ];
  return stats;
}

/** A peer's limits message without limits. */
const LIMITS = { type: "limits", v: 1, maxKbps: null, maxProfile: null };

/** A sender that keeps the parameters it was given. */
class FakeSender {
  /** @param {string} kind */
  constructor(kind) {
    this.track = { kind };
    this.params = { encodings: [{ active: true }] };
    /** @type {any[]} */
    this.applied = [];
  }
  getParameters() {
    return structuredClone(this.params);
  }
  async setParameters(/** @type {any} */ params) {
    this.params = structuredClone(params);
    this.applied.push(structuredClone(params.encodings[0]));
  }
}

/** A peer connection with scripted getStats reports. */
class FakePeerConnection {
  constructor() {
    this.connectionState = "connected";
    /** @type {any[][]} */
    this.reports = [];
    this.audio = new FakeSender("audio");
    this.video = new FakeSender("video");
    /** @type {any[]} */
    this.channels = [];
  }
  createDataChannel(/** @type {string} */ label, /** @type {any} */ init) {
    const channel = {
      label,
      init,
      readyState: "open",
      /** @type {string[]} */
      sent: [],
      /** @type {((e: {data: unknown}) => void) | null} */
      onmessage: null,
      send(/** @type {string} */ text) {
        this.sent.push(text);
      },
      close() {
        this.readyState = "closed";
      },
    };
    this.channels.push(channel);
    return channel;
  }
  getTransceivers() {
    return [this.audio, this.video].map((sender) => ({
      sender,
      receiver: { track: { kind: sender.track.kind } },
      stopped: false,
    }));
  }
  async getStats() {
    const stats = this.reports.shift() ?? [];
    return new Map(stats.map((s) => [s.id, s]));
  }
}

/** A controller over a fake connection fed with the given reports. */
function setup(/** @type {any[][]} */ reports, options = {}) {
  const pc = new FakePeerConnection();
  pc.reports.push(...reports);
  /** @type {any[]} */
  const samples = [];
  /** @type {any[]} */
  const states = [];
  const q = new QualityController(/** @type {any} */ (pc), {
    sampleSeconds: 3600,
    intervalSeconds: 3600,
    onsample: (s) => samples.push(s),
    onchange: (s) => states.push(s),
    ...options,
  });
  return { pc, q, samples, states };
}

test("start creates the negotiated quality channel with id 1", () => {
  const { pc, q } = setup([]);
  q.start();
  q.stop();
  assert.equal(pc.channels.length, 1);
  assert.equal(pc.channels[0].label, CHANNEL.label);
  assert.deepEqual(pc.channels[0].init, { negotiated: true, id: 1 });
});

test("a fast path sends high video and marks audio as high priority", async () => {
  const { pc, q, states } = setup([report(2), report(4), report(6)]);
  q.start();
  for (let i = 0; i < 3; i += 1) await q.tick();
  q.stop();
  const video = pc.video.params.encodings[0];
  assert.equal(video.active, true);
  assert.equal(video.maxBitrate, PROFILE_VIDEO.high.videoKbps * 1000);
  assert.equal(video.scaleResolutionDownBy, 1);
  assert.equal(pc.audio.params.encodings[0].networkPriority, "high");
  assert.equal(pc.audio.params.encodings[0].priority, "high");
  assert.equal(pc.video.applied.length, 1, "unchanged parameters are not reapplied");
  assert.deepEqual(states.at(-1), {
    profile: "high",
    sendQuality: "good",
    recvQuality: "good",
    videoPausedForAudio: false,
    peerVideoPaused: false,
    path: "direct",
  });
});

test("a collapse pauses the video to keep the audio", async () => {
  const reports = [report(2), report(4), report(6)];
  for (let t = 8; t <= 14; t += 2) {
    reports.push(report(t, { availableKbps: 50, fractionLost: 0.2 }));
  }
  const { pc, q } = setup(reports);
  q.start();
  for (let i = 0; i < reports.length; i += 1) await q.tick();
  q.stop();
  assert.equal(q.state.profile, "audio-only");
  assert.equal(q.state.videoPausedForAudio, true);
  assert.equal(q.state.sendQuality, "poor");
  assert.equal(pc.video.params.encodings[0].active, false);
  assert.equal(pc.audio.params.encodings[0].active, true);
});

test("the peer's advertised limit lowers what we send", async () => {
  const reports = [report(2), report(4), report(6), report(8), report(10)];
  const { pc, q } = setup(reports);
  q.start();
  await q.tick();
  await q.tick();
  await q.tick();
  const limits = { ...LIMITS, maxKbps: 200, profile: "high" };
  pc.channels[0].onmessage?.({ data: JSON.stringify(limits) });
  await q.tick();
  q.stop();
  assert.equal(q.state.profile, "low");
  const cap = pc.video.params.encodings[0].maxBitrate;
  assert.equal(cap, PROFILE_VIDEO.low.videoKbps * 1000);
  assert.equal(pc.video.params.encodings[0].scaleResolutionDownBy, 4);
});

test("we tell the peer what we take, and its paused video", async () => {
  const { pc, q } = setup([report(2), report(4)]);
  q.start();
  pc.channels[0].onmessage?.({
    data: JSON.stringify({ ...LIMITS, profile: "audio-only" }),
  });
  await q.tick();
  await q.tick();
  q.stop();
  const sent = pc.channels[0].sent.map((text) => JSON.parse(text));
  assert.equal(sent.length, 1, "unchanged advice is not repeated at once");
  assert.deepEqual(sent[0], {
    type: "limits",
    v: 1,
    maxKbps: null,
    maxProfile: null,
    profile: "high",
  });
  assert.equal(q.state.peerVideoPaused, true);
});

test("malformed peer messages are dropped", () => {
  assert.equal(parseAdvice("not json"), null);
  assert.equal(parseAdvice(JSON.stringify({ type: "other", v: 1 })), null);
  assert.equal(parseAdvice(JSON.stringify({ type: "limits", v: 2 })), null);
  assert.equal(parseAdvice(new ArrayBuffer(4)), null);
  assert.equal(parseAdvice(`{"type":"limits","v":1,"pad":"${"x".repeat(600)}"}`), null);
  assert.deepEqual(
    parseAdvice(
      JSON.stringify({ ...LIMITS, maxKbps: 10, maxProfile: "ultra", profile: 3 }),
    ),
    { maxKbps: null, maxProfile: null, profile: null },
  );
  assert.deepEqual(
    parseAdvice(JSON.stringify({ ...LIMITS, maxKbps: 500, maxProfile: "low" })),
    { maxKbps: 500, maxProfile: "low", profile: null },
  );
});

test("a sample carries numbers and types only, never an address", async () => {
  const reports = [report(2), report(4, { lost: 5 }), report(6, { lost: 10 })];
  let failures = 3;
  const { q, samples } = setup(reports, {
    counters: () => ({ decryptFailures: failures, errors: 1 }),
  });
  q.start();
  for (let i = 0; i < 3; i += 1) await q.tick();
  q.flushSample();
  failures = 5;
  q.stop(); // nothing read since the last sample: no second one
  assert.equal(samples.length, 1);
  const sample = samples[0];
  assert.deepEqual(Object.keys(sample).sort(), SAMPLE_KEYS);
  assert.equal(sample.candidate, "host");
  assert.equal(sample.path, "direct");
  assert.equal(sample.profile, "high");
  assert.equal(sample.decrypt_failures, 3);
  assert.equal(sample.errors, 1);
  assert.equal(sample.width, 640);
  assert.equal(sample.height, 360);
  assert.ok(sample.send_kbps > 700 && sample.send_kbps < 1000, `${sample.send_kbps}`);
  assert.ok(sample.loss_pct > 0 && sample.loss_pct < 5, `${sample.loss_pct}`);
  const text = JSON.stringify(sample);
  assert.doesNotMatch(text, /192\.0\.2|198\.51\.100|CP1|"L1"|"R1"/);
});

test("a later sample counts only new decrypt failures", () => {
  const reading = readStats(report(4), report(2));
  assert.equal(reading.path, "direct");
  const extra = { profile: "low", decryptFailures: 2, errors: 0 };
  const first = makeSample([reading], /** @type {any} */ (extra));
  assert.equal(first.decrypt_failures, 2);
  assert.equal(first.profile, "low");
});

test("a relay candidate at either end makes the path a relay", () => {
  const local = readStats(report(4, { candidateType: "relay" }), report(2));
  assert.equal(local.path, "relay");
  assert.equal(local.candidate, "relay");
  const remote = report(4);
  remote.find((s) => s.id === "R1").candidateType = "relay";
  assert.equal(readStats(remote, null).path, "relay");
});

test("the stats reader falls back to the selected pair (Firefox)", () => {
  const stats = report(2).filter((s) => s.type !== "transport");
  stats.find((s) => s.id === "CP1").selected = true;
  assert.equal(selectedPair(stats)?.id, "CP1");
  assert.equal(readStats([], null).path, null);
});

test("the stats reader turns counters into rates and fractions", () => {
  const now = report(4, { lost: 25, fractionLost: 0.05 });
  const { snapshot } = readStats(now, report(2));
  assert.equal(snapshot.availableKbps, 3000);
  assert.equal(snapshot.rttMs, 30);
  assert.equal(snapshot.sendLoss, 0.05);
  assert.ok(Math.abs(snapshot.sendKbps - 840) < 1, `${snapshot.sendKbps}`);
  assert.ok(Math.abs(snapshot.recvKbps - 640) < 1, `${snapshot.recvKbps}`);
  assert.ok(Math.abs(snapshot.recvLoss - 25 / 325) < 1e-9);
  assert.equal(snapshot.jitterMs, 4);
  assert.equal(snapshot.limitation, "none");
  assert.ok(Math.abs(snapshot.decodeMsPerFrame - 4) < 1e-9);
  assert.equal(snapshot.droppedFrameRatio, 0);
});

test("stale or pause-spanning receiver reports are not counted as loss", () => {
  const at = (/** @type {number} */ t, /** @type {number} */ stamp) => {
    const stats = report(t, { fractionLost: 0.3 });
    stats.find((s) => s.id === "RV").timestamp = stamp;
    return stats;
  };
  // the same report again: the peer has not sent a new one
  assert.equal(readStats(at(4, 1000), at(2, 1000)).snapshot.sendLoss, null);
  // a new report after a long pause of the stream
  assert.equal(readStats(at(4, 30_000), at(2, 1000)).snapshot.sendLoss, null);
  // a new report in the usual rhythm
  assert.equal(readStats(at(4, 3000), at(2, 1000)).snapshot.sendLoss, 0.3);
});

test("a probe tries the next profile's encoding for one decision", async () => {
  // an application-limited estimate at low that does not answer the probe
  const reports = [];
  for (let t = 2; t <= 12; t += 2) reports.push(report(t, { availableKbps: 240 }));
  const { pc, q } = setup(reports, { policy: { initialProfile: "low" } });
  q.start();
  const caps = [];
  const scales = [];
  for (let i = 0; i < 4; i += 1) {
    await q.tick();
    caps.push(pc.video.params.encodings[0].maxBitrate);
    scales.push(pc.video.params.encodings[0].scaleResolutionDownBy);
    assert.equal(q.state.profile, "low", "a probe does not change the profile");
  }
  q.stop();
  const low = PROFILE_VIDEO.low.videoKbps * 1000;
  const medium = PROFILE_VIDEO.medium.videoKbps * 1000;
  assert.ok(caps.includes(medium), `caps ${caps}`);
  assert.ok(scales.includes(PROFILE_VIDEO.medium.scaleResolutionDownBy));
  assert.equal(caps.at(-1), low, "the unanswered probe is withdrawn");
  assert.equal(pc.video.params.encodings[0].scaleResolutionDownBy, 4);
});
