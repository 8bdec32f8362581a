// Sending-profile decisions from WebRTC statistics: a pure module.
//
// No browser API is used here, so the same code runs in the call page and
// in Node's test runner on recorded getStats sequences. The controller
// (quality.js) turns each getStats report into a Snapshot (quality-stats.js)
// and feeds it to decideProfile() every two seconds.
//
// The policy in one paragraph: the budget is the lower of the browser's
// available outgoing bitrate and the peer's advertised limit, reduced when
// packets are lost. A profile is kept while the budget stays above its
// "keep" rate; a collapse far below it acts at once, a slight shortfall
// must last two decisions. Going up is one step at a time after a few
// clean decisions, once the estimate shows the next profile fits. Chrome's
// estimate cannot rise far above what is being sent (it is "application
// limited"), so with some headroom the policy probes: the sender tries the
// next profile's encoding while the profile stays, which makes Chrome send
// probe packets (raising maxBitrate alone does not: at a small resolution
// the encoder's allocation stays small). If the estimate then shows room
// twice, the step holds; if not, the sender goes back. A failed probe
// doubles the wait before the next, unless the estimate has since grown
// past the one the probe failed at. The RTT helps on the way down: a
// queue building up lowers the profile before the estimate falls.
//
// What the page shows and what we tell the peer is in quality-report.js.

/** @typedef {"audio-only" | "low" | "medium" | "high"} Profile */
/** @typedef {"good" | "fair" | "poor"} QualityWord */

/**
 * @typedef {object} PeerAdvice
 * @property {number | null} maxKbps  what the peer can take, null = no limit
 * @property {Profile | null} maxProfile  the peer's decode limit
 * @property {Profile | null} [profile]  what the peer itself sends
 */

/**
 * One decision's view of the statistics; null where the browser had none.
 * @typedef {object} Snapshot
 * @property {number | null} availableKbps  outgoing estimate of the path
 * @property {number | null} sendLoss  fraction of our packets the peer lost
 * @property {number | null} recvLoss  fraction of the peer's packets lost
 * @property {number | null} rttMs
 * @property {number | null} jitterMs  of the audio we receive
 * @property {number | null} [sendKbps]
 * @property {number | null} [recvKbps]
 * @property {number | null} [sendFps]
 * @property {number | null} [recvFps]
 * @property {string | null} limitation  qualityLimitationReason of video
 * @property {number | null} [decodeMsPerFrame]
 * @property {number | null} [droppedFrameRatio]  of received video
 * @property {PeerAdvice | null} [peer]
 */

/** Profiles from the least to the most demanding. */
export const PROFILES = Object.freeze(
  /** @type {Profile[]} */ (["audio-only", "low", "medium", "high"]),
);

// Opus at 32 kbit/s with in-band FEC, plus RTP/UDP/IP, SRTP and the E2EE
// frame header at 50 packets/s.
export const AUDIO_KBPS = 64;

/**
 * Video encoding of each profile; applied with RTCRtpSender.setParameters.
 * @type {Readonly<Record<Profile, {videoKbps: number,
 *   scaleResolutionDownBy: number, maxFramerate: number}>>}
 */
export const PROFILE_VIDEO = Object.freeze({
  "audio-only": { videoKbps: 0, scaleResolutionDownBy: 4, maxFramerate: 15 },
  low: { videoKbps: 120, scaleResolutionDownBy: 4, maxFramerate: 15 },
  medium: { videoKbps: 500, scaleResolutionDownBy: 2, maxFramerate: 24 },
  high: { videoKbps: 1200, scaleResolutionDownBy: 1, maxFramerate: 30 },
});

export const DEFAULT_OPTIONS = Object.freeze({
  /** The first profile, before any statistics arrived. */
  initialProfile: /** @type {Profile} */ ("high"),
  /** Decisions at the start while Chrome's estimate is still ramping. */
  warmupDecisions: 2,
  /** Clean decisions in a row before a step up. */
  holdDecisions: 2,
  /** Upper bound of the doubled wait after failed steps up; it also
   * bounds how long paused video waits once the network is back. */
  maxHoldDecisions: 8,
  /** The same bound after failed probes, which end within a decision. */
  maxProbeHoldDecisions: 4,
  /** The estimate must exceed a failed probe's by this to skip the wait. */
  ceilingMargin: 1.15,
  /** A step down this soon after a step up counts as a failed probe. */
  probeWindow: 15,
  /** Decisions at one profile after which the wait is reset. */
  settleDecisions: 30,
  /** Loss at or below this is clean. */
  cleanLoss: 0.02,
  /** A probe needs the estimate this much over the current profile's rate. */
  headroom: 1.1,
  /** A step up needs the estimate this much over the next keep rate. */
  upMargin: 1.1,
  /** The keep rate is the audio plus this share of the video rate. */
  keepShare: 0.6,
  /** Below this share of the keep rate a collapse acts at once. */
  severeShare: 0.6,
  /** RTT samples kept for the baseline. */
  rttWindow: 15,
  /** RTT this far above the baseline means a queue is building. */
  queueMs: 250,
});

/** @typedef {typeof DEFAULT_OPTIONS} PolicyOptions */

/**
 * The policy's memory between decisions; treat as opaque.
 * @typedef {object} PolicyState
 * @property {Profile} profile
 * @property {number} decisions  decisions made so far
 * @property {number} clean  clean decisions in a row that allow a probe
 * @property {number} steps  of those, the ones that allow a step up
 * @property {number} short  decisions in a row below the keep rate
 * @property {number | null} shortBudget  the larger budget of that run
 * @property {number} hold  clean decisions needed for the next step up
 * @property {number} since  decisions at the current profile
 * @property {boolean} probing  the last change was a step up
 * @property {number | null} probeBudget  the budget the last step up saw
 * @property {number | null} ceiling  the budget of the last failed probe
 * @property {number} grown  clean decisions in a row above the ceiling
 * @property {boolean} trying  the sender tries the next profile
 * @property {number} answers  readings in a row that answered the probe
 * @property {number} queued  decisions in a row with a queue building
 * @property {number[]} rtts  recent RTTs for the baseline
 */

/**
 * A new policy state.
 * @param {Partial<PolicyOptions>} [options]
 * @returns {PolicyState}
 */
export function initialPolicyState(options = {}) {
  const opts = { ...DEFAULT_OPTIONS, ...options };
  return {
    profile: opts.initialProfile,
    decisions: 0,
    clean: 0,
    steps: 0,
    short: 0,
    shortBudget: null,
    hold: opts.holdDecisions,
    since: 0,
    probing: false,
    probeBudget: null,
    ceiling: null,
    grown: 0,
    trying: false,
    answers: 0,
    queued: 0,
    rtts: [],
  };
}

/** @param {Profile} profile */
export function rank(profile) {
  return PROFILES.indexOf(profile);
}

/** @param {Profile} a @param {Profile} b @returns {Profile} */
export function lowerProfile(a, b) {
  return rank(a) <= rank(b) ? a : b;
}

/** Total send rate of a profile in kbit/s. @param {Profile} profile */
export function profileKbps(profile) {
  return AUDIO_KBPS + PROFILE_VIDEO[profile].videoKbps;
}

/**
 * The budget a profile needs to be kept.
 * @param {Profile} profile @param {PolicyOptions} opts
 */
export function keepKbps(profile, opts = DEFAULT_OPTIONS) {
  if (profile === "audio-only") return 0;
  return AUDIO_KBPS + opts.keepShare * PROFILE_VIDEO[profile].videoKbps;
}

/**
 * Below this budget there is no room for any video next to the audio.
 * @param {PolicyOptions} [opts]
 */
export function audioOnlyBelowKbps(opts = DEFAULT_OPTIONS) {
  return keepKbps("low", opts);
}

/**
 * The budget of one snapshot: estimate and peer limit, less for loss.
 * @param {Snapshot} snap
 * @returns {number | null}
 */
export function budgetKbps(snap) {
  const limits = [snap.availableKbps, snap.peer?.maxKbps].filter(
    (value) => typeof value === "number" && Number.isFinite(value),
  );
  if (limits.length === 0) return null;
  const loss = snap.sendLoss ?? 0;
  // GCC already lowers its estimate on loss over 10 %; this reacts to the
  // loss a congested downlink or relay adds before the estimate does.
  const factor = loss <= 0.02 ? 1 : Math.max(0.3, 1 - 2 * loss);
  return Math.min(.../** @type {number[]} */ (limits)) * factor;
}

/**
 * The budget, lowered below what we send while a queue builds up: the
 * estimate can lag behind a sudden bottleneck by seconds, the RTT does not.
 * Two decisions in a row, so that one late report is not decisive, and
 * not during the warm-up, when the baseline is still unknown.
 * @param {PolicyState} state @param {PolicyState} next
 * @param {Snapshot} snap @param {PolicyOptions} opts
 * @returns {number | null}
 */
function queueAware(state, next, snap, opts) {
  const budget = budgetKbps(snap);
  const base = state.rtts.length ? Math.min(...state.rtts) : null;
  const queued =
    base != null && snap.rttMs != null && snap.rttMs > base + opts.queueMs;
  const warm = next.decisions > opts.warmupDecisions;
  next.queued = queued && warm ? state.queued + 1 : 0;
  if (budget == null || next.queued < 2 || !snap.sendKbps) return budget;
  // A busy machine delays reports too; the RTT alone never pauses video.
  const floor = keepKbps("low", opts);
  return Math.min(budget, Math.max(0.85 * snap.sendKbps, floor));
}

/**
 * The highest profile the caps allow: the peer's decode limit, our CPU.
 * @param {PolicyState} state @param {Snapshot} snap
 * @returns {Profile}
 */
function capProfile(state, snap) {
  let cap = /** @type {Profile} */ ("high");
  if (snap.peer?.maxProfile && PROFILES.includes(snap.peer.maxProfile)) {
    cap = lowerProfile(cap, snap.peer.maxProfile);
  }
  if (snap.limitation === "cpu" && rank(state.profile) > rank("low")) {
    // The encoder cannot keep up: one step down, never to audio-only.
    cap = lowerProfile(cap, PROFILES[rank(state.profile) - 1]);
  }
  return cap;
}

/**
 * The highest profile at or below `from` whose keep rate fits the budget.
 * @param {Profile} from @param {number} budget @param {PolicyOptions} opts
 * @returns {Profile}
 */
function fitting(from, budget, opts) {
  for (let i = rank(from); i > 0; i -= 1) {
    if (budget >= keepKbps(PROFILES[i], opts)) return PROFILES[i];
  }
  return "audio-only";
}

/**
 * The estimate that shows the next profile fits: its keep rate and a
 * margin, so that going up and coming down are apart (hysteresis).
 * @param {Profile} profile @param {PolicyOptions} opts
 */
export function upKbps(profile, opts = DEFAULT_OPTIONS) {
  const next = PROFILES[Math.min(rank(profile) + 1, PROFILES.length - 1)];
  return opts.upMargin * keepKbps(next, opts);
}

/**
 * The best profile a budget keeps.
 * @param {number} budget
 */
export function profileForBudget(budget) {
  return fitting("high", budget, DEFAULT_OPTIONS);
}

/** @param {PolicyState} state @param {Snapshot} snap @param {PolicyOptions} opts */
function isClean(state, snap, opts) {
  if ((snap.sendLoss ?? 0) > opts.cleanLoss) return false;
  if (snap.rttMs == null || state.rtts.length === 0) return true;
  const base = Math.min(...state.rtts);
  // A queue building up shows as RTT above the path's own before loss
  // does; smaller swings are a busy machine's late reports.
  return snap.rttMs <= base + opts.queueMs;
}

/**
 * What the budget allows from the current profile: "step" up, a "probe"
 * (headroom over what we send, but no proof the next profile fits), or
 * null.
 * @param {PolicyState} state @param {Snapshot} snap
 * @param {number} budget @param {PolicyOptions} opts
 * @returns {"step" | "probe" | null}
 */
function roomToGrow(state, snap, budget, opts) {
  if (state.profile === "audio-only") {
    // With video paused the estimate cannot grow (it stays near what the
    // audio sends); a clean path is the only evidence, so try the lowest
    // video and learn from the result.
    return budget >= AUDIO_KBPS / 2 ? "step" : null;
  }
  // qualityLimitationReason says "bandwidth" also while the encoder ramps
  // its resolution up after a change, so only the CPU counts against.
  if (snap.limitation === "cpu") return null;
  if (budget >= upKbps(state.profile, opts)) return "step";
  if (budget >= opts.headroom * profileKbps(state.profile)) return "probe";
  return null;
}

/**
 * One decision: the profile to send with after this snapshot.
 * @param {PolicyState} state
 * @param {Snapshot} snap
 * @param {Partial<PolicyOptions>} [options]
 * @returns {{state: PolicyState, profile: Profile, changed: boolean,
 *   probe: boolean, reason: string}}
 *   probe: try the next profile's video encoding, keep the profile
 */
export function decideProfile(state, snap, options = {}) {
  const opts = { ...DEFAULT_OPTIONS, ...options };
  const next = {
    ...state,
    decisions: state.decisions + 1,
    grown: 0,
    trying: false,
    answers: 0,
    steps: 0,
  };
  next.since = state.since + 1;
  // A step up that held long enough clears the memory of failed ones.
  if (state.probing && next.since >= opts.settleDecisions) {
    next.hold = opts.holdDecisions;
  }
  if (state.probing && next.since >= opts.probeWindow) next.ceiling = null;

  const budget = queueAware(state, next, snap, opts);
  const cap = capProfile(state, snap);
  const result = (/** @type {Profile} */ profile, /** @type {string} */ why) =>
    finish(state, next, snap, profile, why, opts);

  // caps act at once
  if (rank(cap) < rank(state.profile)) return result(cap, "cap");
  if (budget == null) return result(state.profile, "no estimate");

  // going down
  const target = fitting(state.profile, budget, opts);
  const pending =
    state.probing &&
    state.since === 0 &&
    budget >= 0.9 * (state.probeBudget ?? Number.POSITIVE_INFINITY);
  if (target !== state.profile && pending) {
    // Right after a step up the estimate may not show Chrome's probe yet;
    // it has not fallen, so wait for one more reading.
    return result(state.profile, "probe pending");
  }
  if (target !== state.profile) {
    // A queue seen twice in a row has been debounced already.
    const severe =
      budget < opts.severeShare * keepKbps(state.profile, opts) ||
      next.queued >= 2;
    const warm = next.decisions > opts.warmupDecisions;
    if (severe && (warm || target === "audio-only")) {
      return result(target, "collapse");
    }
    next.short = state.short + 1;
    next.shortBudget = Math.max(state.shortBudget ?? 0, budget);
    next.clean = 0;
    if (next.short >= 2 && warm) {
      // The kinder of the two budgets, so one bad reading is not decisive.
      return result(fitting(state.profile, next.shortBudget, opts), "short");
    }
    return result(state.profile, "short, waiting");
  }
  next.short = 0;
  next.shortBudget = null;

  // going up, one step at a time
  const top = state.profile === "high" || rank(state.profile) >= rank(cap);
  if (top || !isClean(state, snap, opts)) {
    next.clean = 0;
    return result(state.profile, top ? "at cap" : "not clean");
  }
  const room = roomToGrow(state, snap, budget, opts);
  const up = PROFILES[rank(state.profile) + 1];
  if (state.trying) {
    // the probe's answer, twice, so that one lucky reading is not enough
    if (room === "step" && state.answers >= 1) {
      next.probeBudget = budget;
      return result(up, "probe held");
    }
    if (room === "step") {
      next.trying = true;
      next.answers = 1;
      return result(state.profile, "probe answered");
    }
    probeFailed(state, next, opts);
    return result(state.profile, "probe failed");
  }
  if (!room) {
    next.clean = 0;
    return result(state.profile, "no headroom");
  }
  next.clean = state.clean + 1;
  next.steps = room === "step" ? state.steps + 1 : 0;
  const grown =
    state.ceiling != null && budget > opts.ceilingMargin * state.ceiling;
  next.grown = grown ? state.grown + 1 : 0;
  const wait = next.grown >= opts.holdDecisions ? next.grown : state.hold;
  if (next.clean < wait) return result(state.profile, "clean, waiting");
  next.probeBudget = budget;
  // A step needs the estimate to show room all along; else probe first.
  if (next.steps >= wait) return result(up, "step up");
  next.trying = true;
  next.clean = 0;
  return result(state.profile, "probe");
}

/**
 * Book-keeping common to every decision.
 * @param {PolicyState} before @param {PolicyState} next @param {Snapshot} snap
 * @param {Profile} profile @param {string} reason @param {PolicyOptions} opts
 */
function finish(before, next, snap, profile, reason, opts) {
  if (snap.rttMs != null) {
    next.rtts = [...before.rtts, snap.rttMs].slice(-opts.rttWindow);
  }
  const changed = profile !== before.profile;
  if (changed) {
    const down = rank(profile) < rank(before.profile);
    const recent = before.probing && before.since < opts.probeWindow;
    if (down && (recent || before.trying)) probeFailed(before, next, opts);
    next.profile = profile;
    next.probing = !down;
    next.since = 0;
    next.clean = 0;
    next.short = 0;
    next.shortBudget = null;
  }
  return { state: next, profile, changed, probe: next.trying, reason };
}

/**
 * The last step up or probe did not hold: wait twice as long next time,
 * or until the estimate clearly beats the one that misled us.
 * @param {PolicyState} before @param {PolicyState} next @param {PolicyOptions} opts
 */
function probeFailed(before, next, opts) {
  // A probe is withdrawn after one reading, so its failures lengthen the
  // wait less: the network may come back any time.
  const most = before.trying
    ? opts.maxProbeHoldDecisions
    : opts.maxHoldDecisions;
  next.hold = Math.max(before.hold, Math.min(before.hold * 2, most));
  next.ceiling = before.probeBudget;
  next.clean = 0;
}

/**
 * Run the policy over a whole sequence; for tests and offline analysis.
 * @param {Snapshot[]} snapshots
 * @param {Partial<PolicyOptions>} [options]
 * @returns {Profile[]} the profile after each snapshot
 */
export function decideSequence(snapshots, options = {}) {
  let state = initialPolicyState(options);
  const profiles = [];
  for (const snap of snapshots) {
    const decision = decideProfile(state, snap, options);
    state = decision.state;
    profiles.push(decision.profile);
  }
  return profiles;
}
