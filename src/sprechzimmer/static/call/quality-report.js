// What the call page shows about quality and what this side tells its
// peer it can take: a pure module, beside the sending policy.

import {
  AUDIO_KBPS,
  PROFILES,
  budgetKbps,
  profileForBudget,
  rank,
} from "./quality-policy.js";

/** @typedef {import("./quality-policy.js").Profile} Profile */
/** @typedef {import("./quality-policy.js").QualityWord} QualityWord */
/** @typedef {import("./quality-policy.js").PeerAdvice} PeerAdvice */
/** @typedef {import("./quality-policy.js").Snapshot} Snapshot */

/**
 * The word for one direction of the call, from what the path does to the
 * packets and what it leaves room for.
 * @param {{loss: number | null, rttMs: number | null,
 *   jitterMs?: number | null, roomFor?: Profile | null}} m
 *   roomFor: the best profile the path carries, when known
 * @returns {QualityWord}
 */
export function qualityWord(m) {
  const loss = m.loss ?? 0;
  const rtt = m.rttMs ?? 0;
  const jitter = m.jitterMs ?? 0;
  const room = m.roomFor ? rank(m.roomFor) : rank("high");
  if (loss > 0.1 || rtt > 600 || jitter > 100 || room < rank("low")) {
    return "poor";
  }
  if (loss > 0.02 || rtt > 250 || jitter > 30 || room < rank("medium")) {
    return "fair";
  }
  return "good";
}

/**
 * Quality of what we send and of what we receive. The send side knows its
 * budget; the receive side only what arrives (a peer without a camera
 * sends little, which says nothing about the path).
 * @param {Snapshot} snap
 * @returns {{send: QualityWord, recv: QualityWord}}
 */
export function qualityWords(snap) {
  const budget = budgetKbps(snap);
  return {
    send: qualityWord({
      loss: snap.sendLoss,
      rttMs: snap.rttMs,
      roomFor: budget == null ? null : profileForBudget(budget),
    }),
    recv: qualityWord({
      loss: snap.recvLoss,
      rttMs: snap.rttMs,
      jitterMs: snap.jitterMs,
    }),
  };
}

/**
 * Memory of the receive side between decisions.
 * @typedef {{lossy: number, slow: number, calm: number,
 *   cap: Profile | null}} AdviceState
 */

/** @returns {AdviceState} */
export function initialAdviceState() {
  return { lossy: 0, slow: 0, calm: 0, cap: null };
}

/**
 * What to tell the peer we can take: a downlink limit while what arrives
 * is being lost, and a decode limit when our CPU drops frames.
 * @param {AdviceState} state
 * @param {Snapshot} snap
 * @param {{calmDecisions?: number}} [options]
 * @returns {{state: AdviceState, advice: PeerAdvice}}
 */
export function adviseReceive(state, snap, options = {}) {
  const calmDecisions = options.calmDecisions ?? 15;
  const lossy = (snap.recvLoss ?? 0) >= 0.05 ? state.lossy + 1 : 0;
  const frameMs = snap.recvFps ? 1000 / snap.recvFps : 1000 / 30;
  const struggling =
    (snap.droppedFrameRatio ?? 0) > 0.15 ||
    (snap.decodeMsPerFrame ?? 0) > 0.8 * frameMs;
  const slow = struggling ? state.slow + 1 : 0;

  let maxKbps = null;
  if (lossy >= 2 && snap.recvKbps) {
    maxKbps = Math.max(AUDIO_KBPS, Math.round(0.85 * snap.recvKbps));
  }

  // A decode limit is lifted only after a long calm spell, or the peer
  // would climb back into the overload at once.
  let cap = state.cap;
  let calm = struggling ? 0 : state.calm + 1;
  const sent = snap.peer?.profile;
  if (slow >= 2 && sent && rank(sent) > rank("low")) {
    cap = PROFILES[rank(sent) - 1];
    calm = 0;
  } else if (cap && calm >= calmDecisions) {
    cap = null;
  }
  return {
    state: { lossy, slow: slow >= 2 ? 0 : slow, calm, cap },
    advice: { maxKbps, maxProfile: cap },
  };
}
