// The frame encryption worker: an RTCRtpScriptTransform for every sender
// and receiver of one peer connection.
//
// Senders encrypt each frame with the current epoch's key and drop frames
// while no key exists, so nothing leaves in clear. Receivers decrypt with
// the key named by the frame's epoch, drop and count anything that fails,
// and keep a previous epoch's key for a short grace time after the first
// frame of a newer epoch. Keys arrive as non-extractable CryptoKeys from
// the page (e2ee.js); this worker never sees key bytes.
//
// Messages from the page: init {direction, graceMs}, sendKey {epoch, key},
// receiveKey {id, epoch, key} (answered with installed {id}),
// wrongReceiveKey {}, capture {id, count} (answered with captured {id,
// kinds, before, after}). To the page: stats {...counters}, installed, captured.

import {
  FrameCounter,
  MAX_STREAMS,
  TAG_BYTES,
  TRAILER_BYTES,
  buildNonce,
  clearByteCount,
  concatBytes,
  encodeTrailer,
  parseTrailer,
} from "./e2ee-core.js";

const STATS_INTERVAL_MS = 250;

const state = {
  direction: 0,
  graceMs: 2000,
  sendEpoch: 0,
  /** @type {CryptoKey | null} */
  sendKey: null,
  /** @type {Map<number, CryptoKey>} */
  receiveKeys: new Map(),
  latestReceiveEpoch: 0,
  nextStream: 0,
  wrongReceiveKey: false,
  /** @type {{id: number, count: number, kinds: string[],
   *   before: Uint8Array[], after: Uint8Array[]} | null} */
  capture: null,
  /** @type {Set<any>} video sender transformers, for key frame requests */
  videoSenders: new Set(),
};

const counts = {
  framesEncrypted: 0,
  framesDecrypted: 0,
  decryptFailures: 0,
  unencryptedRefused: 0,
  droppedWithoutKey: 0,
  receiveEpoch: 0,
};
let reported = "";

/** @type {Record<string, (m: any) => void | Promise<void>>} */
const handlers = {
  init(m) {
    state.direction = m.direction;
    if (typeof m.graceMs === "number") state.graceMs = m.graceMs;
  },
  sendKey(m) {
    const first = state.sendKey === null;
    state.sendKey = m.key;
    state.sendEpoch = m.epoch;
    // frames before the first key were dropped; start with a key frame
    if (first) for (const t of state.videoSenders) requestKeyFrame(t);
  },
  async receiveKey(m) {
    state.receiveKeys.set(m.epoch, state.wrongReceiveKey ? await randomKey() : m.key);
    self.postMessage({ type: "installed", id: m.id });
  },
  async wrongReceiveKey() {
    state.wrongReceiveKey = true;
    for (const epoch of state.receiveKeys.keys()) {
      state.receiveKeys.set(epoch, await randomKey());
    }
  },
  capture(m) {
    state.capture = { id: m.id, count: m.count, kinds: [], before: [], after: [] };
  },
};

self.onmessage = (event) => {
  const m = event.data;
  if (m && Object.hasOwn(handlers, m.type)) handlers[m.type](m);
};

// @ts-ignore: onrtctransform exists in workers of browsers with
// RTCRtpScriptTransform
self.onrtctransform = (/** @type {any} */ event) => {
  const transformer = event.transformer;
  const { side, kind } = transformer.options;
  const process = side === "send" ? sender(transformer, kind) : receiver(kind);
  transformer.readable
    .pipeThrough(new TransformStream(inOrder(process)))
    .pipeTo(transformer.writable)
    .catch(() => {});
};

/**
 * Run the frames' crypto side by side but pass them on in order.
 *
 * Each WebCrypto call crosses to another thread and back; awaiting one
 * frame before the next caps the throughput at one frame per round trip,
 * which a busy machine makes too slow for audio and video together.
 * @param {(frame: any) => Promise<any>} process resolves to the frame to
 *   pass on, or null to drop it
 */
function inOrder(process) {
  let tail = Promise.resolve();
  return {
    transform(/** @type {any} */ frame, /** @type {any} */ controller) {
      // a frame that throws is dropped; the frames after it still flow
      const done = process(frame).catch(() => null);
      tail = tail.then(async () => {
        const out = await done;
        if (!out) return;
        try {
          controller.enqueue(out);
        } catch {
          // the stream closed with the peer connection
        }
      });
    },
    flush: () => tail,
  };
}

/**
 * @param {any} transformer
 * @param {string} kind
 */
function sender(transformer, kind) {
  const stream = state.nextStream++ % MAX_STREAMS;
  const counter = new FrameCounter();
  if (kind === "video") state.videoSenders.add(transformer);
  return async (/** @type {any} */ frame) => {
    const key = state.sendKey;
    const epoch = state.sendEpoch;
    if (!key) {
      counts.droppedWithoutKey++;
      return null;
    }
    const data = new Uint8Array(frame.data);
    const clear = clearByteCount(kind, data, mimeTypeOf(frame));
    const n = counter.take(epoch);
    if (clear < 0 || n === null || data.length === 0) return null;

    const trailer = encodeTrailer({ epoch, stream, counter: n });
    const head = data.subarray(0, clear);
    const sealed = await crypto.subtle.encrypt(
      {
        name: "AES-GCM",
        iv: buildNonce(state.direction, stream, epoch, n),
        additionalData: concatBytes(head, trailer),
      },
      key,
      data.subarray(clear),
    );
    const out = concatBytes(head, new Uint8Array(sealed), trailer);
    noteCapture(kind, data, out);
    frame.data = out.buffer;
    counts.framesEncrypted++;
    return frame;
  };
}

/** @param {string} kind */
function receiver(kind) {
  return async (/** @type {any} */ frame) => {
    const data = new Uint8Array(frame.data);
    const trailer = parseTrailer(data);
    const clear = clearByteCount(kind, data, mimeTypeOf(frame));
    if (!trailer || clear < 0 || data.length < clear + TAG_BYTES + TRAILER_BYTES) {
      counts.unencryptedRefused++;
      return null;
    }
    const found = receiveKeyFor(trailer.epochLow);
    if (!found) {
      counts.decryptFailures++;
      return null;
    }

    const head = data.subarray(0, clear);
    const tail = data.subarray(data.length - TRAILER_BYTES);
    let plain;
    try {
      plain = await crypto.subtle.decrypt(
        {
          name: "AES-GCM",
          iv: buildNonce(
            1 - state.direction,
            trailer.stream,
            found.epoch,
            trailer.counter,
          ),
          additionalData: concatBytes(head, tail),
        },
        found.key,
        data.subarray(clear, data.length - TRAILER_BYTES),
      );
    } catch {
      counts.decryptFailures++;
      return null;
    }
    frame.data = concatBytes(head, new Uint8Array(plain)).buffer;
    counts.framesDecrypted++;
    noteReceiveEpoch(found.epoch);
    return frame;
  };
}

/**
 * The newest receive key whose epoch ends in the trailer's epoch byte.
 * @param {number} epochLow
 */
function receiveKeyFor(epochLow) {
  let best = null;
  for (const [epoch, key] of state.receiveKeys) {
    if ((epoch & 0xff) === epochLow && (!best || epoch > best.epoch)) {
      best = { epoch, key };
    }
  }
  return best;
}

/**
 * After the first frame of a newer epoch, erase older keys after a grace
 * time that covers frames still in flight or retransmitted.
 * @param {number} epoch
 */
function noteReceiveEpoch(epoch) {
  if (epoch <= state.latestReceiveEpoch) return;
  state.latestReceiveEpoch = epoch;
  counts.receiveEpoch = epoch;
  setTimeout(() => {
    for (const e of state.receiveKeys.keys()) {
      if (e < epoch) state.receiveKeys.delete(e);
    }
  }, state.graceMs);
}

/** @param {any} frame */
function mimeTypeOf(frame) {
  const meta = typeof frame.getMetadata === "function" ? frame.getMetadata() : {};
  return typeof meta.mimeType === "string" ? meta.mimeType : undefined;
}

/** @param {any} transformer */
function requestKeyFrame(transformer) {
  if (typeof transformer.generateKeyFrame !== "function") return;
  transformer.generateKeyFrame().catch(() => {});
}

async function randomKey() {
  return crypto.subtle.generateKey({ name: "AES-GCM", length: 128 }, false, [
    "encrypt",
    "decrypt",
  ]);
}

/**
 * @param {string} kind
 * @param {Uint8Array} before
 * @param {Uint8Array} after
 */
function noteCapture(kind, before, after) {
  const c = state.capture;
  if (!c) return;
  c.kinds.push(kind);
  c.before.push(before.slice());
  c.after.push(after.slice());
  if (c.before.length < c.count) return;
  const { id, kinds } = c;
  self.postMessage({ type: "captured", id, kinds, before: c.before, after: c.after });
  state.capture = null;
}

setInterval(() => {
  const text = JSON.stringify(counts);
  if (text === reported) return;
  reported = text;
  self.postMessage({ type: "stats", ...counts });
}, STATS_INTERVAL_MS);
