// From getStats reports to the numbers the quality policy and the anonymous
// samples use: a pure module, so recorded reports replay in Node.
//
// Rates and loss are differences between two reports, so every function
// takes the report before as well. A report is a plain array of the stats
// objects (Array.from(report.values()) in the browser).

/** @typedef {import("./quality-policy.js").Snapshot} Snapshot */
/** @typedef {import("./quality-policy.js").Profile} Profile */
/** @typedef {Record<string, any>} Stat */

/**
 * Numbers of one reading that the sample adds up, beside the snapshot.
 * @typedef {object} Reading
 * @property {Snapshot} snapshot
 * @property {"host" | "srflx" | "prflx" | "relay" | null} candidate
 * @property {"direct" | "relay" | null} path
 * @property {number | null} recvWidth
 * @property {number | null} recvHeight
 */

/**
 * The candidate pair media flows on.
 * @param {Stat[]} stats
 * @returns {Stat | null}
 */
export function selectedPair(stats) {
  const byId = new Map(stats.map((s) => [s.id, s]));
  for (const s of stats) {
    if (s.type === "transport" && s.selectedCandidatePairId) {
      const pair = byId.get(s.selectedCandidatePairId);
      if (pair) return pair;
    }
  }
  // Firefox marks the pair itself instead of naming it on the transport.
  const pairs = stats.filter(
    (s) =>
      s.type === "candidate-pair" &&
      (s.selected || (s.nominated && s.state === "succeeded")),
  );
  pairs.sort((a, b) => (b.bytesSent ?? 0) - (a.bytesSent ?? 0));
  return pairs[0] ?? null;
}

/**
 * Candidate types at both ends of the pair in use.
 * @param {Stat[]} stats @param {Stat | null} pair
 */
function candidateTypes(stats, pair) {
  if (!pair) return { local: null, remote: null };
  const find = (/** @type {string} */ id) =>
    stats.find((s) => s.id === id)?.candidateType ?? null;
  return {
    local: find(pair.localCandidateId),
    remote: find(pair.remoteCandidateId),
  };
}

/**
 * Stats of one type, keyed by SSRC so that two reports line up.
 * @param {Stat[]} stats @param {string} type
 * @returns {Map<string, Stat>}
 */
function bySsrc(stats, type) {
  const out = new Map();
  for (const s of stats) {
    if (s.type === type) out.set(`${s.kind}:${s.ssrc}`, s);
  }
  return out;
}

/** @param {number} now @param {number} before */
function positive(now, before) {
  const d = (now ?? 0) - (before ?? 0);
  return d > 0 ? d : 0;
}

/**
 * Kilobits per second of a byte counter between two stats.
 * @param {Stat[]} now @param {Map<string, Stat>} before @param {string} field
 * @param {number} seconds
 */
function kbps(now, before, field, seconds) {
  let bytes = 0;
  for (const s of now) {
    const prev = before.get(`${s.kind}:${s.ssrc}`);
    if (prev) bytes += positive(s[field], prev[field]);
  }
  return seconds > 0 ? (bytes * 8) / 1000 / seconds : null;
}

/**
 * The main video stream of a kind of RTP stat: the one carrying most.
 * @param {Map<string, Stat>} streams @param {string} field
 */
function mainVideo(streams, field) {
  let best = null;
  for (const s of streams.values()) {
    if (s.kind !== "video") continue;
    if (!best || (s[field] ?? 0) > (best[field] ?? 0)) best = s;
  }
  return best;
}

/**
 * Read one report against the one before.
 * @param {Stat[]} stats
 * @param {Stat[] | null} previous
 * @returns {Reading}
 */
export function readStats(stats, previous) {
  const before = previous ?? [];
  const pair = selectedPair(stats);
  const types = candidateTypes(stats, pair);
  const relay = types.local === "relay" || types.remote === "relay";

  const out = bySsrc(stats, "outbound-rtp");
  const inb = bySsrc(stats, "inbound-rtp");
  const remote = bySsrc(stats, "remote-inbound-rtp");
  const outBefore = bySsrc(before, "outbound-rtp");
  const inBefore = bySsrc(before, "inbound-rtp");
  const seconds = elapsedSeconds(stats, before);

  // loss the peer reports for what we send
  const remoteBefore = bySsrc(before, "remote-inbound-rtp");
  let sendLoss = null;
  let remoteRtt = null;
  for (const [key, s] of remote) {
    if (typeof s.fractionLost === "number" && freshReport(s, remoteBefore.get(key))) {
      sendLoss = Math.max(sendLoss ?? 0, s.fractionLost);
    }
    if (typeof s.roundTripTime === "number") remoteRtt = s.roundTripTime;
  }

  // loss and jitter of what we receive
  let lost = 0;
  let arrived = 0;
  let jitterMs = null;
  for (const [key, s] of inb) {
    const prev = inBefore.get(key);
    if (prev) {
      lost += positive(s.packetsLost, prev.packetsLost);
      arrived += positive(s.packetsReceived, prev.packetsReceived);
    }
    if (s.kind === "audio" && typeof s.jitter === "number") {
      jitterMs = s.jitter * 1000;
    }
  }

  // what we send and decode
  const sentVideo = mainVideo(out, "bytesSent");
  const gotVideo = mainVideo(inb, "bytesReceived");
  const gotBefore = gotVideo
    ? inBefore.get(`${gotVideo.kind}:${gotVideo.ssrc}`)
    : null;
  const decode = decodeLoad(gotVideo, gotBefore);

  const rttSeconds = pair?.currentRoundTripTime ?? remoteRtt;
  const available = pair?.availableOutgoingBitrate;
  /** @type {Snapshot} */
  const snapshot = {
    availableKbps: typeof available === "number" ? available / 1000 : null,
    sendLoss,
    recvLoss: lost + arrived > 0 ? lost / (lost + arrived) : null,
    rttMs: typeof rttSeconds === "number" ? rttSeconds * 1000 : null,
    jitterMs,
    sendKbps: previous
      ? kbps([...out.values()], outBefore, "bytesSent", seconds)
      : null,
    recvKbps: previous
      ? kbps([...inb.values()], inBefore, "bytesReceived", seconds)
      : null,
    sendFps: sentVideo?.framesPerSecond ?? null,
    recvFps: gotVideo ? (gotVideo.framesPerSecond ?? 0) : null,
    limitation: sentVideo?.qualityLimitationReason ?? null,
    decodeMsPerFrame: decode.msPerFrame,
    droppedFrameRatio: decode.droppedRatio,
    peer: null,
  };
  return {
    snapshot,
    candidate: /** @type {Reading["candidate"]} */ (types.local),
    path: pair ? (relay ? "relay" : "direct") : null,
    recvWidth: gotVideo?.frameWidth ?? null,
    recvHeight: gotVideo?.frameHeight ?? null,
  };
}

// A receiver report covering more than this spans a pause of the stream
// (video paused for audio), so its loss is mostly from before the pause.
const MAX_REPORT_SPAN_MS = 10_000;

/**
 * Whether a remote-inbound-rtp stat is a new receiver report worth using:
 * audio reports come only every few seconds and repeat in between, and a
 * paused stream keeps its last report forever.
 * @param {Stat} now @param {Stat | undefined} before
 */
function freshReport(now, before) {
  if (!before) return true;
  const span = (now.timestamp ?? 0) - (before.timestamp ?? 0);
  return span > 0 && span <= MAX_REPORT_SPAN_MS;
}

/** Seconds between two reports, from their time stamps. */
function elapsedSeconds(/** @type {Stat[]} */ now, /** @type {Stat[]} */ before) {
  const stamp = (/** @type {Stat[]} */ stats) =>
    stats.find((s) => s.type === "outbound-rtp" || s.type === "inbound-rtp")
      ?.timestamp ?? null;
  const a = stamp(now);
  const b = stamp(before);
  return a != null && b != null ? (a - b) / 1000 : 0;
}

/**
 * How hard decoding the received video is.
 * @param {Stat | null} now @param {Stat | null | undefined} before
 */
function decodeLoad(now, before) {
  if (!now || !before) return { msPerFrame: null, droppedRatio: null };
  const decoded = positive(now.framesDecoded, before.framesDecoded);
  const received = positive(now.framesReceived, before.framesReceived);
  const dropped = positive(now.framesDropped, before.framesDropped);
  const seconds = positive(now.totalDecodeTime, before.totalDecodeTime);
  return {
    msPerFrame: decoded > 0 ? (seconds * 1000) / decoded : null,
    droppedRatio: received > 0 ? dropped / received : null,
  };
}

/**
 * The anonymous sample the server stores: averages of the readings since
 * the last one. Nothing in it names a person, a session or an address.
 * @param {Reading[]} readings
 * @param {{profile: Profile, decryptFailures: number, errors: number}} extra
 * @returns {Record<string, number | string | null>}
 */
export function makeSample(readings, extra) {
  const mean = (/** @type {(r: Reading) => number | null | undefined} */ pick) => {
    const values = readings
      .map(pick)
      .filter((v) => typeof v === "number" && Number.isFinite(v));
    if (values.length === 0) return null;
    const sum = values.reduce((a, b) => a + /** @type {number} */ (b), 0);
    return Math.round((sum / values.length) * 10) / 10;
  };
  const last = readings.at(-1);
  const loss = mean((r) =>
    r.snapshot.recvLoss == null ? null : r.snapshot.recvLoss * 100,
  );
  return {
    send_kbps: mean((r) => r.snapshot.sendKbps),
    recv_kbps: mean((r) => r.snapshot.recvKbps),
    loss_pct: loss == null ? null : Math.min(100, loss),
    rtt_ms: mean((r) => r.snapshot.rttMs),
    jitter_ms: mean((r) => r.snapshot.jitterMs),
    fps: mean((r) => r.snapshot.recvFps),
    width: last?.recvWidth ?? null,
    height: last?.recvHeight ?? null,
    candidate: last?.candidate ?? null,
    path: last?.path ?? null,
    profile: extra.profile,
    decrypt_failures: extra.decryptFailures,
    errors: extra.errors,
  };
}
