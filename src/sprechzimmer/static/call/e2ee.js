// End-to-end encryption of one peer connection's media.
//
// Wires three parts together: a negotiated RTCDataChannel (id 0) that
// carries the key agreement between the two browsers, the KeyExchange
// state machine (e2ee-exchange.js), and the frame worker (e2ee-worker.js)
// attached to every sender and receiver as an RTCRtpScriptTransform.
// Nothing here touches the DOM or the server; no key, public key or
// session description is logged.
//
// Usage, right after the transceivers exist and before the first offer:
//
//   const e2ee = new E2EE(pc, { polite, rotationSeconds, onchange });
//   e2ee.start();

import { parseFingerprints, sendDirection } from "./e2ee-core.js";
import { KeyExchange } from "./e2ee-exchange.js";

/** The data channel id of the key agreement; id 1 carries quality messages. */
export const E2EE_CHANNEL_ID = 0;

const DEFAULT_ROTATION_SECONDS = 600;
const GRACE_MS = 2000;

// only these codecs are negotiated; see clearByteCount in e2ee-core.js
const ALLOWED_CODECS = {
  audio: ["audio/opus"],
  video: ["video/vp8", "video/rtx", "video/red", "video/ulpfec"],
};

/**
 * @typedef {object} E2EEState
 * @property {"negotiating" | "encrypted" | "failed"} status
 * @property {number} epoch the epoch both directions use (0 before the first)
 * @property {string | null} safetyCode words joined by a space
 * @property {string[]} safetyCodeParts
 * @property {boolean} compared
 * @property {number} decryptFailures
 * @property {number} framesEncrypted
 * @property {number} framesDecrypted
 * @property {number} unencryptedRefused
 * @property {string | null} failure short reason when status is "failed"
 */

/**
 * @typedef {object} E2EEOptions
 * @property {boolean} polite the client is polite, the therapist not
 * @property {number} [rotationSeconds] key renewal period
 * @property {string | URL} [workerUrl] of e2ee-worker.js
 * @property {boolean} [testHooks] expose e2ee.test
 * @property {(state: E2EEState) => void} [onchange]
 * @property {number} [graceMs] how long a receiver keeps an old epoch's key
 */

/** End-to-end encryption for one RTCPeerConnection. */
export class E2EE {
  /**
   * @param {RTCPeerConnection} pc
   * @param {E2EEOptions} options
   */
  constructor(pc, options) {
    this.pc = pc;
    this.polite = Boolean(options.polite);
    this.rotationMs = 1000 * (options.rotationSeconds || DEFAULT_ROTATION_SECONDS);
    this.workerUrl = options.workerUrl || new URL("./e2ee-worker.js", import.meta.url);
    this.graceMs = options.graceMs ?? GRACE_MS;
    this.onchange = options.onchange || (() => {});
    /** @type {E2EEState} */
    this.state = {
      status: "negotiating",
      epoch: 0,
      safetyCode: null,
      safetyCodeParts: [],
      compared: false,
      decryptFailures: 0,
      framesEncrypted: 0,
      framesDecrypted: 0,
      unencryptedRefused: 0,
      failure: null,
    };
    /** @type {Worker | null} */
    this.worker = null;
    /** @type {RTCDataChannel | null} */
    this.channel = null;
    this.rotationTimer = 0;
    this.closed = false;
    this.requests = new Map();
    this.nextRequest = 1;
    /** @type {WeakSet<RTCRtpTransceiver>} */
    this.attached = new WeakSet();
    this.exchange = new KeyExchange(this.polite, this.exchangeHooks());
    /** @type {string[] | null} key channel messages, kept for tests only */
    this.channelLog = null;
    if (options.testHooks) {
      this.channelLog = [];
      this.test = this.testHooks();
    }
  }

  /** Create the key channel and attach the transform to every transceiver. */
  start() {
    if (this.worker) return;
    if (typeof RTCRtpScriptTransform === "undefined") {
      this.setFailed("RTCRtpScriptTransform unsupported");
      return;
    }
    this.worker = new Worker(this.workerUrl, { type: "module", name: "e2ee" });
    this.worker.onmessage = (event) => this.onWorkerMessage(event.data);
    this.worker.postMessage({
      type: "init",
      direction: sendDirection(this.polite),
      graceMs: this.graceMs,
    });
    this.attachAll();
    // an answerer gets new transceivers for a remote offer's m-lines that
    // its own addTransceiver calls do not match; they need the transform
    // too, before any media can flow on them
    this.pc.addEventListener("track", this.attachAll);
    this.pc.addEventListener("signalingstatechange", this.attachAll);

    const channel = this.pc.createDataChannel("e2ee", {
      negotiated: true,
      id: E2EE_CHANNEL_ID,
    });
    // the impolite side opens the exchange; the polite side only answers
    channel.onopen = () => {
      if (!this.polite) this.exchange.begin();
    };
    channel.onmessage = (event) => this.onChannelMessage(event.data);
    // the channel closes with the peer connection or when the peer leaves;
    // media ends with it, so this is no failure of the encryption
    channel.onclose = () => this.stopRotation();
    this.channel = channel;
  }

  /** Mark the safety code as compared, here and on the peer's page. */
  markCompared() {
    if (!this.state.safetyCode || this.state.compared) return;
    this.send({ t: "compared" });
    this.update({ compared: true });
  }

  /** Run a new key agreement (a participant rejoined); media stays encrypted. */
  restart() {
    if (this.closed) return;
    this.stopRotation();
    // a restart is the way out of "failed", so set the state directly
    this.state = {
      ...this.state,
      status: "negotiating",
      safetyCode: null,
      safetyCodeParts: [],
      compared: false,
      failure: null,
    };
    this.onchange(this.state);
    if (this.channel?.readyState === "open") this.exchange.begin();
  }

  /** Stop renewing, close the key channel and end the worker. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.stopRotation();
    this.pc.removeEventListener("track", this.attachAll);
    this.pc.removeEventListener("signalingstatechange", this.attachAll);
    this.channel?.close();
    this.worker?.terminate();
    for (const { reject } of this.requests.values()) reject(new Error("closed"));
    this.requests.clear();
  }

  // wiring

  /** Attach the transform to every transceiver that has none yet. */
  attachAll = () => {
    if (this.closed || !this.worker) return;
    for (const transceiver of this.pc.getTransceivers()) {
      if (this.attached.has(transceiver)) continue;
      this.attached.add(transceiver);
      try {
        this.attach(transceiver);
      } catch {
        // frames on this transceiver could pass in clear: say so
        this.setFailed("transform could not be attached");
      }
    }
  };

  /** @param {RTCRtpTransceiver} transceiver */
  attach(transceiver) {
    const kind = transceiver.receiver.track.kind;
    preferCodecs(transceiver, kind);
    const worker = /** @type {Worker} */ (this.worker);
    // @ts-ignore: transform is not in every TypeScript DOM library yet
    transceiver.sender.transform = new RTCRtpScriptTransform(worker, {
      side: "send",
      kind,
    });
    // @ts-ignore
    transceiver.receiver.transform = new RTCRtpScriptTransform(worker, {
      side: "receive",
      kind,
    });
  }

  /** @returns {import("./e2ee-exchange.js").ExchangeHooks} */
  exchangeHooks() {
    return {
      send: (message) => this.send(message),
      fingerprints: () => ({
        local: parseFingerprints(this.pc.localDescription?.sdp || ""),
        remote: parseFingerprints(this.pc.remoteDescription?.sdp || ""),
      }),
      installReceiveKey: (epoch, key) =>
        this.request({ type: "receiveKey", epoch, key }),
      useSendKey: (epoch, key) =>
        this.worker?.postMessage({ type: "sendKey", epoch, key }),
      safetyCode: (words) => {
        const code = words.join(" ");
        // a new code (after a rejoin) has not been compared yet
        const compared = this.state.compared && this.state.safetyCode === code;
        this.update({ safetyCode: code, safetyCodeParts: words, compared });
      },
      established: (epoch) => this.onEstablished(epoch),
      fail: (reason) => this.setFailed(reason),
      compared: () => {
        if (this.state.safetyCode) this.update({ compared: true });
      },
    };
  }

  /** @param {number} epoch */
  onEstablished(epoch) {
    this.update({ status: "encrypted", epoch });
    if (this.polite || this.closed || this.rotationTimer) return;
    // a steady beat from the first epoch on, so that the time an exchange
    // takes does not stretch the period; a beat that finds the previous
    // renewal unconfirmed is skipped (see KeyExchange.sendRekey)
    this.rotationTimer = setInterval(() => this.exchange.rotate(), this.rotationMs);
  }

  stopRotation() {
    clearInterval(this.rotationTimer);
    this.rotationTimer = 0;
  }

  /** @param {object} message */
  send(message) {
    if (this.channel?.readyState !== "open") return;
    const data = JSON.stringify(message);
    this.channelLog?.push(data);
    this.channel.send(data);
  }

  /** @param {unknown} data */
  onChannelMessage(data) {
    if (typeof data !== "string" || data.length > 4096) return;
    this.channelLog?.push(data);
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    this.exchange.receive(message);
  }

  /** @param {any} m */
  onWorkerMessage(m) {
    if (m.type === "stats") {
      this.update({
        decryptFailures: m.decryptFailures,
        framesEncrypted: m.framesEncrypted,
        framesDecrypted: m.framesDecrypted,
        unencryptedRefused: m.unencryptedRefused,
      });
      return;
    }
    const pending = this.requests.get(m.id);
    if (!pending) return;
    this.requests.delete(m.id);
    pending.resolve(m);
  }

  /**
   * Post to the worker and wait for its answer.
   * @param {object} message
   * @returns {Promise<any>}
   */
  request(message) {
    if (!this.worker || this.closed) return Promise.reject(new Error("closed"));
    const id = this.nextRequest++;
    return new Promise((resolve, reject) => {
      this.requests.set(id, { resolve, reject });
      this.worker?.postMessage({ ...message, id });
    });
  }

  /** @param {string} reason */
  setFailed(reason) {
    this.stopRotation();
    this.update({ status: "failed", failure: reason });
  }

  /** @param {Partial<E2EEState>} patch */
  update(patch) {
    const changed = Object.entries(patch).some(
      ([k, v]) => this.state[/** @type {keyof E2EEState} */ (k)] !== v,
    );
    if (!changed) return;
    if (this.state.status === "failed" && patch.status && patch.status !== "failed") {
      return;
    }
    this.state = { ...this.state, ...patch };
    this.onchange(this.state);
  }

  testHooks() {
    return {
      /** Replace every receive key, now and later, with a random one. */
      useWrongReceiveKey: () => this.worker?.postMessage({ type: "wrongReceiveKey" }),
      /**
       * Every key channel message sent or received, as JSON text, so that
       * a test can look for its public keys and commitments elsewhere.
       * @returns {string[]}
       */
      channelMessages: () => [...(this.channelLog || [])],
      /**
       * The next frames' bytes before and after the sender's transform,
       * with each frame's kind ("audio" or "video").
       * @param {number} [count]
       * @returns {Promise<{before: Uint8Array[], after: Uint8Array[],
       *   kinds: string[]}>}
       */
      captureSenderBytes: async (count = 10) => {
        const m = await this.request({ type: "capture", count });
        return { before: m.before, after: m.after, kinds: m.kinds };
      },
    };
  }
}

/**
 * Restrict a transceiver to the codecs whose frames this layer can carry.
 * @param {RTCRtpTransceiver} transceiver
 * @param {string} kind
 */
function preferCodecs(transceiver, kind) {
  const allowed = kind === "audio" ? ALLOWED_CODECS.audio : ALLOWED_CODECS.video;
  const codecs = (RTCRtpReceiver.getCapabilities(kind)?.codecs || []).filter((c) =>
    allowed.includes(c.mimeType.toLowerCase()),
  );
  try {
    transceiver.setCodecPreferences(codecs);
  } catch {
    // the worker still drops frames of any other codec
  }
}
