// Pure building blocks of the end-to-end encryption layer.
//
// Nothing here touches the DOM, a peer connection or a worker: the same
// module runs in the page, in the encoded-transform worker and under Node's
// test runner. It needs only WebCrypto (globalThis.crypto.subtle).
//
// Frame layout on the wire (one encoded audio or video frame):
//
//   clear codec bytes | AES-128-GCM ciphertext + 16-byte tag | trailer (7)
//
//   trailer = epoch & 0xff (1) | stream (1) | counter (4, big endian) | 0xe2
//
// The clear bytes and the trailer are the additional authenticated data.
// The 12-byte nonce is never sent; both ends build it from the trailer:
//
//   nonce = direction (1) | stream (1) | 0 0 | epoch (4) | counter (4)

import { BITS_PER_WORD, SAFETY_WORDS } from "./safety-words.js";

export const PROTOCOL_VERSION = 1;
export const TAG_BYTES = 16;
export const TRAILER_BYTES = 7;
export const TRAILER_MAGIC = 0xe2;
export const NONCE_BYTES = 12;
export const MAX_COUNTER = 0xffffffff;
export const MAX_STREAMS = 256;

/** Words in the safety code: 4 words of 6 bits give 24 bits. */
export const SAFETY_CODE_WORDS = 4;

/** Direction bytes: keys and nonces differ for each direction. */
export const DIRECTION = Object.freeze({
  impoliteToPolite: 0,
  politeToImpolite: 1,
});

const encoder = new TextEncoder();
const DOMAIN = "sprechzimmer-e2ee-v1";

/**
 * The direction byte of frames that a participant sends.
 * @param {boolean} polite
 * @returns {number}
 */
export function sendDirection(polite) {
  return polite ? DIRECTION.politeToImpolite : DIRECTION.impoliteToPolite;
}

/**
 * Concatenate byte arrays.
 * @param {...Uint8Array} parts
 * @returns {Uint8Array}
 */
export function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Length-prefixed concatenation, so that no two field lists encode alike.
 * @param {...Uint8Array} fields
 * @returns {Uint8Array}
 */
export function encodeFields(...fields) {
  const parts = [];
  for (const field of fields) {
    parts.push(u32(field.length), field);
  }
  return concatBytes(...parts);
}

/** @param {number} n */
function u32(n) {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

/**
 * Compare two byte arrays without an early exit.
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 */
export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** @param {Uint8Array} bytes */
export function toBase64(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}

/**
 * @param {string} text
 * @returns {Uint8Array} empty when the text is not base64
 */
export function fromBase64(text) {
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    return new Uint8Array(0);
  }
}

// DTLS fingerprints

/**
 * The a=fingerprint values of a session description, normalised
 * ("sha-256 AB:CD:..."), without duplicates, sorted.
 * @param {string} sdp
 * @returns {string[]}
 */
export function parseFingerprints(sdp) {
  const found = new Set();
  for (const line of sdp.split(/\r?\n/)) {
    const m = /^a=fingerprint:(\S+)\s+([0-9A-Fa-f:]+)\s*$/.exec(line);
    if (m) found.add(`${m[1].toLowerCase()} ${m[2].toUpperCase()}`);
  }
  return [...found].sort();
}

/**
 * Both participants' fingerprints in an order that both sides agree on
 * without knowing who is who: the two lists, each joined, sorted.
 * @param {string[]} local
 * @param {string[]} remote
 * @returns {[string, string]}
 */
export function canonicalFingerprints(local, remote) {
  const a = local.join(",");
  const b = remote.join(",");
  return a <= b ? [a, b] : [b, a];
}

// Key derivation

/**
 * HKDF info for one direction's key of one epoch, binding both DTLS
 * fingerprints.
 * @param {string} label
 * @param {number} epoch
 * @param {[string, string]} fingerprints canonical order
 */
export function hkdfInfo(label, epoch, fingerprints) {
  return encodeFields(
    encoder.encode(DOMAIN),
    encoder.encode(label),
    u32(epoch),
    encoder.encode(fingerprints[0]),
    encoder.encode(fingerprints[1]),
  );
}

/**
 * Derive one epoch's keys from an ECDH shared secret.
 *
 * `chain` is the previous epoch's chain secret (32 zero bytes for the
 * first epoch of an exchange), used as HKDF salt: a later epoch depends on
 * every earlier one, so someone who was not in the first exchange cannot
 * join at a renewal. Keys come back non-extractable.
 *
 * @param {Uint8Array} sharedSecret
 * @param {{epoch: number, chain: Uint8Array, fingerprints: [string, string]}} p
 * @returns {Promise<{keys: CryptoKey[], chain: Uint8Array}>} keys indexed
 *   by DIRECTION
 */
export async function deriveEpochKeys(sharedSecret, { epoch, chain, fingerprints }) {
  const subtle = globalThis.crypto.subtle;
  const ikm = await subtle.importKey("raw", sharedSecret, "HKDF", false, [
    "deriveKey",
    "deriveBits",
  ]);
  const params = (/** @type {string} */ label) => ({
    name: "HKDF",
    hash: "SHA-256",
    salt: chain,
    info: hkdfInfo(label, epoch, fingerprints),
  });
  const aes = { name: "AES-GCM", length: 128 };
  const usages = /** @type {KeyUsage[]} */ (["encrypt", "decrypt"]);
  const keys = [
    await subtle.deriveKey(params("impolite-to-polite"), ikm, aes, false, usages),
    await subtle.deriveKey(params("polite-to-impolite"), ikm, aes, false, usages),
  ];
  const next = new Uint8Array(await subtle.deriveBits(params("chain"), ikm, 256));
  return { keys, chain: next };
}

// Commit then reveal

/**
 * Commitment to a public key, sent before the key itself.
 * @param {Uint8Array} publicKey raw
 * @returns {Promise<Uint8Array>}
 */
export async function commitment(publicKey) {
  const data = encodeFields(encoder.encode(`${DOMAIN}-commit`), publicKey);
  return new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", data));
}

/**
 * Whether a revealed public key matches the earlier commitment.
 * @param {Uint8Array} commit
 * @param {Uint8Array} publicKey
 */
export async function verifyReveal(commit, publicKey) {
  return equalBytes(commit, await commitment(publicKey));
}

// Safety code

/**
 * The safety code both participants compare: 24 bits as 4 words, from
 * both fingerprints and both initial public keys.
 * @param {{fingerprints: [string, string], impolitePublicKey: Uint8Array,
 *   politePublicKey: Uint8Array}} p
 * @returns {Promise<string[]>}
 */
export async function deriveSafetyCode({
  fingerprints,
  impolitePublicKey,
  politePublicKey,
}) {
  const data = encodeFields(
    encoder.encode(`${DOMAIN}-safety-code`),
    encoder.encode(fingerprints[0]),
    encoder.encode(fingerprints[1]),
    impolitePublicKey,
    politePublicKey,
  );
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", data));
  const words = [];
  let bits = 0;
  let acc = 0;
  for (const byte of digest) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= BITS_PER_WORD && words.length < SAFETY_CODE_WORDS) {
      bits -= BITS_PER_WORD;
      words.push(SAFETY_WORDS[(acc >> bits) & (SAFETY_WORDS.length - 1)]);
    }
    acc &= (1 << bits) - 1;
    if (words.length === SAFETY_CODE_WORDS) break;
  }
  return words;
}

// Frames

/**
 * The 12-byte AES-GCM nonce of one frame.
 * @param {number} direction DIRECTION value
 * @param {number} stream 0..255, one per sender
 * @param {number} epoch 0..2^32-1
 * @param {number} counter 0..2^32-1, one per frame of a stream in an epoch
 */
export function buildNonce(direction, stream, epoch, counter) {
  const nonce = new Uint8Array(NONCE_BYTES);
  const view = new DataView(nonce.buffer);
  nonce[0] = direction;
  nonce[1] = stream;
  view.setUint32(4, epoch);
  view.setUint32(8, counter);
  return nonce;
}

/**
 * @param {{epoch: number, stream: number, counter: number}} t
 * @returns {Uint8Array}
 */
export function encodeTrailer({ epoch, stream, counter }) {
  const out = new Uint8Array(TRAILER_BYTES);
  out[0] = epoch & 0xff;
  out[1] = stream;
  new DataView(out.buffer).setUint32(2, counter);
  out[6] = TRAILER_MAGIC;
  return out;
}

/**
 * The trailer of a received frame, or null when the frame does not end in
 * one (an unencrypted frame, most likely).
 * @param {Uint8Array} data
 * @returns {{epochLow: number, stream: number, counter: number} | null}
 */
export function parseTrailer(data) {
  if (data.length < TRAILER_BYTES + TAG_BYTES) return null;
  const t = data.subarray(data.length - TRAILER_BYTES);
  if (t[6] !== TRAILER_MAGIC) return null;
  const counter = new DataView(t.buffer, t.byteOffset).getUint32(2);
  return { epochLow: t[0], stream: t[1], counter };
}

/**
 * How many leading bytes of a frame stay in clear for the packetizer, or
 * -1 for a codec this layer does not carry.
 *
 * Opus: the TOC byte. VP8: the payload header, 10 bytes for a key frame
 * (frame tag, start code, size, which the receiver's depacketizer reads)
 * and 3 for a delta frame. Other codecs are refused (H264 and AV1
 * packetizers parse NAL units and OBUs all through the frame, so a blindly
 * encrypted frame would be split wrongly; VP9 is not needed): the call
 * negotiates VP8 and Opus only, and a frame of anything else is dropped
 * rather than sent in clear.
 *
 * @param {string} kind "audio" or "video"
 * @param {Uint8Array} data
 * @param {string} [mimeType] from the frame's metadata when the browser
 *   reports it
 */
export function clearByteCount(kind, data, mimeType) {
  const mime = mimeType ? mimeType.toLowerCase() : "";
  if (kind === "audio") {
    if (mime && mime !== "audio/opus") return -1;
    return Math.min(1, data.length);
  }
  if (mime && mime !== "video/vp8") return -1;
  if (data.length === 0) return 0;
  // bit 0 of the VP8 frame tag is 0 on a key frame
  const clear = (data[0] & 0x01) === 0 ? 10 : 3;
  return Math.min(clear, data.length);
}

/**
 * Allocates frame counters for one sending stream; restarts at 0 for each
 * epoch (a new epoch has a new key) and refuses to wrap.
 */
export class FrameCounter {
  constructor() {
    this.epoch = -1;
    this.next = 0;
  }

  /**
   * @param {number} epoch
   * @returns {number | null} null when the epoch's counters are used up
   */
  take(epoch) {
    if (epoch !== this.epoch) {
      if (epoch < this.epoch) return null;
      this.epoch = epoch;
      this.next = 0;
    }
    if (this.next > MAX_COUNTER) return null;
    return this.next++;
  }
}
