// Unit tests of the key agreement state machine (static/call/e2ee-exchange.js):
// two KeyExchange objects wired back to back, optionally through a tamperer.

import assert from "node:assert/strict";
import { test } from "node:test";

import { fromBase64, toBase64 } from "../../src/sprechzimmer/static/call/e2ee-core.js";
import { KeyExchange } from "../../src/sprechzimmer/static/call/e2ee-exchange.js";

const FP_IMPOLITE = ["sha-256 AA:AA"];
const FP_POLITE = ["sha-256 BB:BB"];

/**
 * One participant with its hooks recorded.
 * @param {boolean} polite
 * @param {{local: string[], remote: string[]}} fingerprints
 */
function participant(polite, fingerprints) {
  const p = {
    polite,
    sent: /** @type {any[]} */ ([]),
    receiveKeys: new Map(),
    sendKeys: new Map(),
    code: /** @type {string[] | null} */ (null),
    established: /** @type {number[]} */ ([]),
    failure: /** @type {string | null} */ (null),
    peer: /** @type {any} */ (null),
    /** @type {(m: any) => any} */
    tamper: (m) => m,
    exchange: /** @type {KeyExchange} */ (/** @type {unknown} */ (null)),
  };
  p.exchange = new KeyExchange(polite, {
    send: (m) => {
      const copy = JSON.parse(JSON.stringify(m));
      p.sent.push(copy);
      const delivered = p.tamper(copy);
      if (delivered) queueMicrotask(() => p.peer.exchange.receive(delivered));
    },
    fingerprints: () => fingerprints,
    installReceiveKey: async (epoch, key) => {
      p.receiveKeys.set(epoch, key);
    },
    useSendKey: (epoch, key) => p.sendKeys.set(epoch, key),
    safetyCode: (words) => {
      p.code = words;
    },
    established: (epoch) => p.established.push(epoch),
    fail: (reason) => {
      p.failure = reason;
    },
  });
  everyone.push(p);
  return p;
}

function pair() {
  const impolite = participant(false, { local: FP_IMPOLITE, remote: FP_POLITE });
  const polite = participant(true, { local: FP_POLITE, remote: FP_IMPOLITE });
  impolite.peer = polite;
  polite.peer = impolite;
  return { impolite, polite };
}

/** Every participant made so far; settle() waits for all of them. */
const everyone = /** @type {{exchange: KeyExchange}[]} */ ([]);

/** Wait until no exchange has work queued and no message is in flight. */
async function settle() {
  for (;;) {
    const queues = everyone.map((p) => p.exchange.queue);
    await Promise.all(queues);
    // messages are delivered in microtasks; a macrotask comes after them
    await new Promise((resolve) => setImmediate(resolve));
    if (everyone.every((p, i) => p.exchange.queue === queues[i])) return;
  }
}

/**
 * Whether frames sealed with `sendKey` open with `receiveKey`.
 * @param {CryptoKey} sendKey
 * @param {CryptoKey} receiveKey
 */
async function keysMatch(sendKey, receiveKey) {
  const iv = new Uint8Array(12);
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, sendKey, iv);
  try {
    await crypto.subtle.decrypt({ name: "AES-GCM", iv }, receiveKey, sealed);
    return true;
  } catch {
    return false;
  }
}

test("both sides agree on keys, epoch 1 and the safety code", async () => {
  const { impolite, polite } = pair();
  impolite.exchange.begin();
  await settle();
  assert.deepEqual(impolite.established, [1]);
  assert.deepEqual(polite.established, [1]);
  assert.ok(impolite.code && impolite.code.length === 4);
  assert.deepEqual(impolite.code, polite.code);
  assert.ok(await keysMatch(impolite.sendKeys.get(1), polite.receiveKeys.get(1)));
  assert.ok(await keysMatch(polite.sendKeys.get(1), impolite.receiveKeys.get(1)));
  assert.equal(
    await keysMatch(impolite.sendKeys.get(1), impolite.receiveKeys.get(1)),
    false,
    "the two directions must use different keys",
  );
});

test("the commitment comes before the polite key and the reveal after", async () => {
  const { impolite, polite } = pair();
  impolite.exchange.begin();
  await settle();
  const order = [...impolite.sent, ...polite.sent].map((m) => m.t);
  assert.equal(impolite.sent[0].t, "commit");
  assert.equal(polite.sent[0].t, "key");
  assert.equal(impolite.sent[1].t, "reveal");
  assert.ok(!("pub" in impolite.sent[0]), "the commit must not carry the key");
  assert.ok(order.includes("ready"));
});

test("a reveal that does not match its commitment aborts the exchange", async () => {
  const { impolite, polite } = pair();
  impolite.tamper = (m) => {
    if (m.t !== "reveal") return m;
    const pub = fromBase64(m.pub);
    pub[0] ^= 0x01;
    return { ...m, pub: toBase64(pub) };
  };
  impolite.exchange.begin();
  await settle();
  assert.equal(polite.failure, "commitment mismatch");
  assert.match(String(impolite.failure), /peer aborted/);
  assert.equal(polite.code, null, "no safety code after an abort");
  assert.equal(polite.receiveKeys.size, 0);
  assert.equal(impolite.sendKeys.size, 0, "the impolite side never switched");
  assert.deepEqual(polite.established, []);
});

test("a man in the middle who swaps keys gets different safety codes", async () => {
  // the middle replaces the polite key; the commit-reveal still passes
  // because the middle does not touch the impolite side's key
  const { impolite, polite } = pair();
  const other = await crypto.subtle.generateKey({ name: "X25519" }, true, [
    "deriveBits",
  ]);
  const otherPub = new Uint8Array(
    await crypto.subtle.exportKey(
      "raw",
      /** @type {CryptoKeyPair} */ (other).publicKey,
    ),
  );
  polite.tamper = (m) => (m.t === "key" ? { ...m, pub: toBase64(otherPub) } : m);
  impolite.exchange.begin();
  await settle();
  assert.ok(impolite.code && polite.code);
  assert.notDeepEqual(impolite.code, polite.code);
});

test("different fingerprints seen by the two sides give different codes", async () => {
  const impolite = participant(false, {
    local: FP_IMPOLITE,
    remote: ["sha-256 CC:CC"],
  });
  const polite = participant(true, { local: FP_POLITE, remote: FP_IMPOLITE });
  impolite.peer = polite;
  polite.peer = impolite;
  impolite.exchange.begin();
  await settle();
  assert.ok(impolite.code && polite.code);
  assert.notDeepEqual(impolite.code, polite.code);
  assert.equal(
    await keysMatch(impolite.sendKeys.get(1), polite.receiveKeys.get(1)),
    false,
    "keys are bound to the fingerprints",
  );
});

test("renewals raise the epoch and switch senders only after ready", async () => {
  const { impolite, polite } = pair();
  impolite.exchange.begin();
  await settle();
  const code = impolite.code;
  for (let i = 0; i < 5; i++) {
    impolite.exchange.rotate();
    await settle();
  }
  assert.deepEqual(impolite.established, [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(polite.established, [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(impolite.code, code, "renewal keeps the safety code");
  for (const e of [2, 6]) {
    assert.ok(await keysMatch(impolite.sendKeys.get(e), polite.receiveKeys.get(e)));
    assert.ok(await keysMatch(polite.sendKeys.get(e), impolite.receiveKeys.get(e)));
  }
  const readyBeforeSwitch = polite.sent.findIndex(
    (m) => m.t === "ready" && m.epoch === 6,
  );
  assert.ok(readyBeforeSwitch >= 0);
});

test("a polite restart asks for a new exchange with a higher epoch", async () => {
  const { impolite, polite } = pair();
  impolite.exchange.begin();
  await settle();
  impolite.exchange.rotate();
  await settle();
  polite.exchange.begin();
  await settle();
  assert.ok(polite.sent.some((m) => m.t === "hello"));
  assert.deepEqual(polite.established, [1, 2, 3]);
  assert.deepEqual(impolite.code, polite.code);
});

test("malformed messages are dropped without failing", async () => {
  const { impolite, polite } = pair();
  for (const m of [
    null,
    5,
    {},
    { t: "reveal" },
    { t: "key", x: 1, pub: "!!" },
    { t: "toString" },
  ]) {
    impolite.exchange.receive(m);
    polite.exchange.receive(m);
  }
  await settle();
  assert.equal(impolite.failure, null);
  assert.equal(polite.failure, null);
  impolite.exchange.begin();
  await settle();
  assert.deepEqual(polite.established, [1]);
});

test("an impolite restart runs a new commit-reveal and keeps epochs rising", async () => {
  const { impolite, polite } = pair();
  impolite.exchange.begin();
  await settle();
  impolite.exchange.begin();
  await settle();
  const commits = impolite.sent.filter((m) => m.t === "commit");
  assert.equal(commits.length, 2);
  assert.notEqual(commits[0].x, commits[1].x);
  assert.deepEqual(impolite.established, [1, 2]);
  assert.deepEqual(polite.established, [1, 2]);
  assert.deepEqual(impolite.code, polite.code);
});

test("messages of an earlier exchange are ignored", async () => {
  const { impolite, polite } = pair();
  impolite.exchange.begin();
  await settle();
  const oldReveal = impolite.sent.find((m) => m.t === "reveal");
  impolite.exchange.begin();
  await settle();
  polite.exchange.receive(oldReveal);
  polite.exchange.receive({ t: "ready", x: oldReveal.x, epoch: 1 });
  await settle();
  assert.equal(polite.failure, null);
  assert.deepEqual(polite.established, [1, 2]);
});

test("a renewal asked for during another one follows it, never overlaps", async () => {
  const { impolite, polite } = pair();
  impolite.exchange.begin();
  await settle();
  impolite.exchange.rotate();
  impolite.exchange.rotate();
  impolite.exchange.rotate();
  await settle();
  // the three beats came while the first renewal was open: one follows it
  assert.deepEqual(impolite.established, [1, 2, 3]);
  assert.deepEqual(polite.established, [1, 2, 3]);
  const rekeys = impolite.sent.filter((m) => m.t === "rekey").map((m) => m.epoch);
  assert.deepEqual(rekeys, [2, 3]);
  assert.ok(await keysMatch(impolite.sendKeys.get(3), polite.receiveKeys.get(3)));
});
