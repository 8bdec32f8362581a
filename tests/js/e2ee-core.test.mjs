// Unit tests of the pure E2EE building blocks (static/call/e2ee-core.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DIRECTION,
  FrameCounter,
  MAX_COUNTER,
  TAG_BYTES,
  TRAILER_BYTES,
  buildNonce,
  canonicalFingerprints,
  clearByteCount,
  commitment,
  deriveEpochKeys,
  deriveSafetyCode,
  encodeTrailer,
  hkdfInfo,
  parseFingerprints,
  parseTrailer,
  verifyReveal,
} from "../../src/sprechzimmer/static/call/e2ee-core.js";
import { SAFETY_WORDS } from "../../src/sprechzimmer/static/call/safety-words.js";

const FP_A = "sha-256 AA:01:02";
const FP_B = "sha-256 BB:03:04";

/** @param {number} n @param {number} fill */
const bytes = (n, fill) => new Uint8Array(n).fill(fill);

const baseCode = {
  fingerprints: /** @type {[string, string]} */ ([FP_A, FP_B]),
  impolitePublicKey: bytes(32, 1),
  politePublicKey: bytes(32, 2),
};

test("safety code has four words from the list, at least 20 bits", async () => {
  const words = await deriveSafetyCode(baseCode);
  assert.equal(words.length, 4);
  for (const w of words) assert.ok(SAFETY_WORDS.includes(w));
  assert.equal(SAFETY_WORDS.length, 64);
  assert.equal(new Set(SAFETY_WORDS).size, 64);
  assert.ok(Math.log2(SAFETY_WORDS.length) * words.length >= 20);
});

test("safety code changes when any fingerprint or public key changes", async () => {
  const code = (await deriveSafetyCode(baseCode)).join(" ");
  const variants = [
    { ...baseCode, fingerprints: ["sha-256 AA:01:03", FP_B] },
    { ...baseCode, fingerprints: [FP_A, "sha-256 BB:03:05"] },
    {
      ...baseCode,
      impolitePublicKey: Uint8Array.from(bytes(32, 1), (b, i) => (i ? b : 9)),
    },
    {
      ...baseCode,
      politePublicKey: Uint8Array.from(bytes(32, 2), (b, i) => (i === 31 ? 7 : b)),
    },
    // swapping the roles of the keys changes the code too
    { ...baseCode, impolitePublicKey: bytes(32, 2), politePublicKey: bytes(32, 1) },
  ];
  for (const variant of variants) {
    const other = (await deriveSafetyCode(/** @type {any} */ (variant))).join(" ");
    assert.notEqual(other, code, "got the same code for a changed input");
  }
});

test("fingerprint order is the same from both sides", async () => {
  const a = canonicalFingerprints([FP_A], [FP_B]);
  const b = canonicalFingerprints([FP_B], [FP_A]);
  assert.deepEqual(a, b);
});

test("fingerprints are parsed, normalised and sorted from SDP", () => {
  const sdp = [
    "v=0",
    "a=fingerprint:SHA-256 ab:cd:ef",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "a=fingerprint:sha-256 AB:CD:EF",
    "a=fingerprint:sha-1 01:02",
  ].join("\r\n");
  assert.deepEqual(parseFingerprints(sdp), ["sha-1 01:02", "sha-256 AB:CD:EF"]);
});

test("a reveal matches only the key it was committed to", async () => {
  const key = bytes(32, 5);
  const c = await commitment(key);
  assert.equal(await verifyReveal(c, key), true);
  const other = key.slice();
  other[0] ^= 1;
  assert.equal(await verifyReveal(c, other), false);
});

test("HKDF info binds both fingerprints, the epoch and the direction", () => {
  const fps = /** @type {[string, string]} */ ([FP_A, FP_B]);
  const base = hkdfInfo("impolite-to-polite", 1, fps);
  const hex = (/** @type {Uint8Array} */ b) => Buffer.from(b).toString("hex");
  const others = [
    hkdfInfo("polite-to-impolite", 1, fps),
    hkdfInfo("impolite-to-polite", 2, fps),
    hkdfInfo("impolite-to-polite", 1, [FP_A, "sha-256 BB:03:05"]),
    hkdfInfo("impolite-to-polite", 1, ["sha-256 AA:01:03", FP_B]),
  ];
  for (const o of others) assert.notEqual(hex(o), hex(base));
});

test("epoch keys differ by direction and encrypt differently", async () => {
  const secret = bytes(32, 3);
  const fps = /** @type {[string, string]} */ ([FP_A, FP_B]);
  const { keys, chain } = await deriveEpochKeys(secret, {
    epoch: 1,
    chain: new Uint8Array(32),
    fingerprints: fps,
  });
  const iv = buildNonce(0, 0, 1, 0);
  const plain = bytes(16, 0);
  const enc = async (/** @type {CryptoKey} */ k) =>
    Buffer.from(
      await crypto.subtle.encrypt({ name: "AES-GCM", iv }, k, plain),
    ).toString("hex");
  assert.notEqual(await enc(keys[0]), await enc(keys[1]));
  assert.equal(chain.length, 32);
  const second = await deriveEpochKeys(secret, { epoch: 2, chain, fingerprints: fps });
  assert.notEqual(await enc(second.keys[0]), await enc(keys[0]));
});

test("trailer round-trips and unencrypted frames have none", () => {
  const t = encodeTrailer({ epoch: 0x1234, stream: 3, counter: 0xdeadbeef });
  const frame = new Uint8Array(40);
  frame.set(t, frame.length - TRAILER_BYTES);
  assert.deepEqual(parseTrailer(frame), {
    epochLow: 0x34,
    stream: 3,
    counter: 0xdeadbeef,
  });
  assert.equal(parseTrailer(new Uint8Array(40)), null);
  assert.equal(parseTrailer(t), null, "too short to hold a tag");
  assert.equal(TAG_BYTES, 16);
});

test("clear bytes: Opus TOC, VP8 header by frame type, other codecs refused", () => {
  const key = Uint8Array.of(0x10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
  const delta = Uint8Array.of(0x11, 1, 2, 3, 4, 5);
  assert.equal(clearByteCount("audio", Uint8Array.of(0x78, 1, 2)), 1);
  assert.equal(clearByteCount("audio", Uint8Array.of(0x78), "audio/opus"), 1);
  assert.equal(clearByteCount("video", key), 10);
  assert.equal(clearByteCount("video", delta, "video/VP8"), 3);
  assert.equal(clearByteCount("video", Uint8Array.of(0x10, 1)), 2);
  assert.equal(clearByteCount("video", key, "video/H264"), -1);
  assert.equal(clearByteCount("video", key, "video/AV1"), -1);
  assert.equal(clearByteCount("video", key, "video/VP9"), -1);
  assert.equal(clearByteCount("audio", key, "audio/PCMU"), -1);
});

test("nonces never repeat across directions, streams and rotations", () => {
  // property test: random traffic in both directions over random rotations
  for (let run = 0; run < 50; run++) {
    const seen = new Set();
    const streams = 1 + Math.floor(Math.random() * 3);
    const senders = [DIRECTION.impoliteToPolite, DIRECTION.politeToImpolite].flatMap(
      (direction) =>
        Array.from({ length: streams }, (_, stream) => ({
          direction,
          stream,
          counter: new FrameCounter(),
        })),
    );
    let epoch = 1 + Math.floor(Math.random() * 1000);
    for (let step = 0; step < 2000; step++) {
      if (Math.random() < 0.01) epoch += 1 + Math.floor(Math.random() * 2);
      const s = senders[Math.floor(Math.random() * senders.length)];
      const n = s.counter.take(epoch);
      assert.notEqual(n, null);
      const nonce = Buffer.from(buildNonce(s.direction, s.stream, epoch, n)).toString(
        "hex",
      );
      assert.ok(!seen.has(nonce), `nonce repeated: ${nonce}`);
      seen.add(nonce);
    }
  }
});

test("a frame counter refuses to wrap or to go back to an older epoch", () => {
  const c = new FrameCounter();
  assert.equal(c.take(5), 0);
  assert.equal(c.take(5), 1);
  assert.equal(c.take(4), null);
  c.next = MAX_COUNTER;
  assert.equal(c.take(5), MAX_COUNTER);
  assert.equal(c.take(5), null);
  assert.equal(c.take(6), 0);
});
