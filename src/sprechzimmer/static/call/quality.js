// @ts-check
// The quality controller of one peer connection. DOM-free.
//
// Every two seconds it reads getStats, lets the pure policy decide the
// sending profile and applies it with RTCRtpSender.setParameters, which
// needs no renegotiation. It tells the peer over a negotiated data channel
// (id 1; id 0 belongs to E2EE) what this side can take, and obeys the
// lower of its own estimate and the peer's limit. Every sampleSeconds it
// hands an anonymous sample to onsample for the server.
//
// Opus in-band FEC: Chrome offers `useinbandfec=1` for Opus by default and
// the answer copies it, so no SDP is changed here.

import {
  AUDIO_KBPS,
  PROFILES,
  PROFILE_VIDEO,
  decideProfile,
  initialPolicyState,
} from "./quality-policy.js";
import {
  adviseReceive,
  initialAdviceState,
  qualityWords,
} from "./quality-report.js";
import { makeSample, readStats } from "./quality-stats.js";

/** @typedef {import("./quality-policy.js").Profile} Profile */
/** @typedef {import("./quality-policy.js").PeerAdvice} PeerAdvice */
/** @typedef {import("./quality-policy.js").QualityWord} QualityWord */
/** @typedef {import("./quality-stats.js").Reading} Reading */

/**
 * What the page shows.
 * @typedef {object} QualityState
 * @property {Profile} profile  what this side sends
 * @property {QualityWord | null} sendQuality  null before the first reading
 * @property {QualityWord | null} recvQuality
 * @property {boolean} videoPausedForAudio  our video paused to keep sound
 * @property {boolean} peerVideoPaused  the peer paused its video for audio
 * @property {"direct" | "relay" | null} path
 */

/**
 * @typedef {object} QualityOptions
 * @property {number} [sampleSeconds]  between samples; 30 by default
 * @property {number} [intervalSeconds]  between decisions; 2 by default
 * @property {(state: QualityState) => void} [onchange]
 * @property {(sample: Record<string, number | string | null>) => void}
 *   [onsample]  an anonymous sample for the server
 * @property {() => {decryptFailures?: number, errors?: number}} [counters]
 *   running totals from other parts (E2EE); the sample carries increments
 * @property {Partial<import("./quality-policy.js").PolicyOptions>} [policy]
 */

/** The label and id of the data channel; both sides create it. */
export const CHANNEL = Object.freeze({ label: "quality", id: 1 });

// A peer message larger than this is dropped unread.
const MAX_MESSAGE = 512;
// Advice older than this is forgotten: the peer may be gone or stuck.
const ADVICE_TTL_MS = 15_000;

export class QualityController {
  /**
   * @param {RTCPeerConnection} pc
   * @param {QualityOptions} [options]
   */
  constructor(pc, options = {}) {
    this.pc = pc;
    this.options = options;
    this.sampleSeconds = options.sampleSeconds ?? 30;
    this.intervalSeconds = options.intervalSeconds ?? 2;
    this.policy = initialPolicyState(options.policy);
    this.advice = initialAdviceState();
    /** @type {QualityState} */
    this.state = {
      profile: this.policy.profile,
      sendQuality: null,
      recvQuality: null,
      videoPausedForAudio: false,
      peerVideoPaused: false,
      path: null,
    };
    /** @type {RTCDataChannel | null} */
    this.channel = null;
    /** @type {(PeerAdvice & {at: number}) | null} */
    this.peerAdvice = null;
    /** @type {any[] | null} */
    this.lastStats = null;
    /** @type {Reading[]} */
    this.readings = [];
    this.errors = 0;
    this.counted = { decryptFailures: 0, errors: 0 };
    this.lastSent = "";
    this.sentAt = 0;
    /** @type {ReturnType<typeof setInterval> | null} */
    this.timer = null;
    /** @type {ReturnType<typeof setInterval> | null} */
    this.sampleTimer = null;
    this.busy = false;
    /** @type {ReturnType<typeof decideProfile> | null} */
    this.lastDecision = null;
  }

  /** Create the data channel and start deciding; call before the offer. */
  start() {
    if (this.timer) return;
    this.channel = this.pc.createDataChannel(CHANNEL.label, {
      negotiated: true,
      id: CHANNEL.id,
    });
    this.channel.onmessage = (event) => this.receive(event.data);
    this.timer = setInterval(() => {
      this.tick().catch(() => {
        this.errors += 1;
      });
    }, this.intervalSeconds * 1000);
    this.sampleTimer = setInterval(
      () => this.flushSample(),
      this.sampleSeconds * 1000,
    );
  }

  /** Stop the timers and close the channel; the last sample is sent. */
  stop() {
    if (this.timer) clearInterval(this.timer);
    if (this.sampleTimer) clearInterval(this.sampleTimer);
    this.timer = null;
    this.sampleTimer = null;
    this.flushSample();
    this.channel?.close();
    this.channel = null;
  }

  /** One decision now; the timer calls this every intervalSeconds. */
  async tick() {
    if (this.busy || this.pc.connectionState === "closed") return;
    this.busy = true;
    try {
      await this.#decide();
    } finally {
      this.busy = false;
    }
  }

  async #decide() {
    const report = await this.pc.getStats();
    const stats = Array.from(report.values());
    const reading = readStats(stats, this.lastStats);
    this.lastStats = stats;
    if (!reading.path) return; // not connected yet
    // While the connection is down the counters say nothing about the
    // network to come; deciding on them would drive video to audio-only.
    if (this.pc.connectionState !== "connected") return;

    const peer = this.#currentAdvice();
    const snapshot = { ...reading.snapshot, peer };
    this.readings.push(reading);

    // what we send
    const decision = decideProfile(this.policy, snapshot, this.options.policy);
    this.policy = decision.state;
    /** The last decision and its reason, for support and tests. */
    this.lastDecision = decision;
    await this.#applyProfile(decision.profile, decision.probe);
    await this.#preferAudio();

    // what we can take; without a camera there is no video to announce
    const camera = Boolean(this.#sender("video")?.track);
    const advised = adviseReceive(this.advice, snapshot);
    this.advice = advised.state;
    this.#tellPeer({
      ...advised.advice,
      profile: camera ? decision.profile : null,
    });

    const words = qualityWords(snapshot);
    this.#update({
      profile: decision.profile,
      sendQuality: words.send,
      recvQuality: words.recv,
      videoPausedForAudio: camera && decision.profile === "audio-only",
      peerVideoPaused: peer?.profile === "audio-only",
      path: reading.path,
    });
  }

  /** The peer's advice if it is fresh. @returns {PeerAdvice | null} */
  #currentAdvice() {
    const advice = this.peerAdvice;
    if (!advice || Date.now() - advice.at > ADVICE_TTL_MS) return null;
    return {
      maxKbps: advice.maxKbps,
      maxProfile: advice.maxProfile,
      profile: advice.profile,
    };
  }

  /**
   * Set the video sender's encoding to a profile, if it differs. A probe
   * tries the next profile's encoding; Chrome then probes the path.
   * @param {Profile} profile @param {boolean} probe
   */
  async #applyProfile(profile, probe) {
    const sender = this.#sender("video");
    if (!sender) return;
    const params = sender.getParameters();
    const encoding = params.encodings?.[0];
    if (!encoding) return; // before negotiation

    const top = PROFILES.length - 1;
    const next = PROFILES[Math.min(PROFILES.indexOf(profile) + 1, top)];
    const video = PROFILE_VIDEO[probe ? next : profile];
    const wanted = {
      active: profile !== "audio-only",
      maxBitrate: Math.max(video.videoKbps, 1) * 1000,
      scaleResolutionDownBy: video.scaleResolutionDownBy,
      maxFramerate: video.maxFramerate,
    };
    const same = Object.entries(wanted).every(
      ([key, value]) => /** @type {any} */ (encoding)[key] === value,
    );
    if (same) return;
    Object.assign(encoding, wanted);
    try {
      await sender.setParameters(params);
    } catch {
      this.errors += 1;
    }
  }

  /** Audio goes first on the network and in the browser's own queues. */
  async #preferAudio() {
    const sender = this.#sender("audio");
    const params = sender?.getParameters();
    const encoding = params?.encodings?.[0];
    if (!sender || !params || !encoding) return;
    if (encoding.networkPriority === "high" && encoding.priority === "high") {
      return;
    }
    encoding.networkPriority = "high";
    encoding.priority = "high";
    try {
      await sender.setParameters(params);
    } catch {
      this.errors += 1;
    }
  }

  /** @param {"audio" | "video"} kind */
  #sender(kind) {
    for (const transceiver of this.pc.getTransceivers()) {
      // The receiver's track always exists and tells the kind, also while
      // the camera is off and the sender has no track.
      const own = transceiver.receiver?.track?.kind ?? transceiver.sender.track?.kind;
      if (own === kind && !transceiver.stopped) return transceiver.sender;
    }
    return null;
  }

  /** Send our advice when it changed, and every 10 s so it stays fresh. */
  #tellPeer(/** @type {PeerAdvice} */ advice) {
    const channel = this.channel;
    if (!channel || channel.readyState !== "open") return;
    const text = JSON.stringify({ type: "limits", v: 1, ...advice });
    const now = Date.now();
    if (text === this.lastSent && now - this.sentAt < ADVICE_TTL_MS / 1.5) {
      return;
    }
    try {
      channel.send(text);
      this.lastSent = text;
      this.sentAt = now;
    } catch {
      this.errors += 1;
    }
  }

  /** A message from the peer; anything malformed is dropped. */
  receive(/** @type {unknown} */ data) {
    const advice = parseAdvice(data);
    if (advice) this.peerAdvice = { ...advice, at: Date.now() };
  }

  /** Hand the sample of the readings since the last one to onsample. */
  flushSample() {
    if (this.readings.length === 0) return;
    const totals = this.options.counters?.() ?? {};
    const decryptFailures = totals.decryptFailures ?? 0;
    const errors = (totals.errors ?? 0) + this.errors;
    const sample = makeSample(this.readings, {
      profile: this.state.profile,
      decryptFailures: Math.max(
        0,
        decryptFailures - this.counted.decryptFailures,
      ),
      errors: Math.max(0, errors - this.counted.errors),
    });
    this.counted = { decryptFailures, errors };
    this.readings = [];
    this.options.onsample?.(sample);
  }

  /** @param {QualityState} next */
  #update(next) {
    const changed = Object.entries(next).some(
      ([key, value]) => /** @type {any} */ (this.state)[key] !== value,
    );
    this.state = next;
    if (changed) this.options.onchange?.(next);
  }
}

/**
 * A peer's limits message, or null if it is not one.
 * @param {unknown} data
 * @returns {PeerAdvice | null}
 */
export function parseAdvice(data) {
  if (typeof data !== "string" || data.length > MAX_MESSAGE) return null;
  let m;
  try {
    m = JSON.parse(data);
  } catch {
    return null;
  }
  if (!m || m.type !== "limits" || m.v !== 1) return null;
  const kbps = m.maxKbps;
  const maxKbps =
    typeof kbps === "number" && Number.isFinite(kbps) && kbps >= AUDIO_KBPS
      ? Math.min(kbps, 100_000)
      : null;
  const isProfile = (/** @type {unknown} */ p) =>
    typeof p === "string" && PROFILES.includes(/** @type {Profile} */ (p));
  return {
    maxKbps,
    maxProfile: isProfile(m.maxProfile) ? m.maxProfile : null,
    profile: isProfile(m.profile) ? m.profile : null,
  };
}
