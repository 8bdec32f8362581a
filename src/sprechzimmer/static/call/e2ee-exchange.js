// Key agreement between the two browsers, without I/O.
//
// A KeyExchange takes messages from the peer (receive) and the owner's
// requests (begin, rotate) and answers through hooks: messages to send, keys
// to install in the frame worker, the safety code, failure. The owner
// carries the messages over an RTCDataChannel; the server never sees them.
//
// First exchange (impolite = therapist, polite = client), as ZRTP and
// Matrix's SAS do it, so that a man in the middle must fix his keys before
// he sees the other side's and cannot search for matching safety codes:
//
//   impolite -> commit {x, epoch, c = H(pub_i)}
//   polite   -> key    {x, pub_p}
//   impolite -> reveal {x, pub_i}          polite checks H(pub_i) == c
//   each     -> ready  {x, epoch}          "I can decrypt this epoch"
//
// Renewal (impolite starts it on a timer), a fresh X25519 pair each side:
//
//   impolite -> rekey       {x, epoch, pub_i}
//   polite   -> rekey-reply {x, epoch, pub_p}
//   each     -> ready       {x, epoch}
//
// A side switches its sender to an epoch only after the peer's ready for
// that epoch, and sends ready only after its worker has the receive key.
// Other messages: hello {epoch} (polite asks for a new exchange), abort
// {reason}, compared {} (the safety code was compared).

import {
  canonicalFingerprints,
  commitment,
  deriveEpochKeys,
  deriveSafetyCode,
  fromBase64,
  sendDirection,
  toBase64,
  verifyReveal,
} from "./e2ee-core.js";

const CURVE = { name: "X25519" };
const MAX_EPOCH = 0xffffffff;

/**
 * @typedef {object} ExchangeHooks
 * @property {(message: object) => void} send  to the peer
 * @property {() => {local: string[], remote: string[]}} fingerprints DTLS
 *   fingerprints as this browser sees them
 * @property {(epoch: number, key: CryptoKey) => Promise<void>}
 *   installReceiveKey resolves once frames of the epoch can be decrypted
 * @property {(epoch: number, key: CryptoKey) => void} useSendKey
 * @property {(words: string[]) => void} safetyCode
 * @property {(epoch: number) => void} established both directions use it
 * @property {(reason: string) => void} fail
 * @property {() => void} [compared] the peer marked the code as compared
 */

/**
 * @typedef {object} Session
 * @property {string} id
 * @property {string} stage
 * @property {number} epoch epoch being negotiated or last negotiated
 * @property {CryptoKeyPair} [pair]
 * @property {Uint8Array} [commit]
 * @property {Uint8Array} chain
 * @property {Map<number, {sendKey: CryptoKey, local: boolean,
 *   peer: boolean}>} epochs
 * @property {number} established
 * @property {{epoch: number, pair: CryptoKeyPair} | null} rekey
 */

/** The browser-to-browser key agreement of one participant. */
export class KeyExchange {
  /**
   * @param {boolean} polite the client is polite, the therapist impolite
   * @param {ExchangeHooks} hooks
   */
  constructor(polite, hooks) {
    this.polite = polite;
    this.hooks = hooks;
    /** Highest epoch derived so far; epochs only grow. */
    this.epoch = 0;
    /** @type {Session | null} */
    this.session = null;
    this.failed = false;
    this.rotationDue = false;
    /** @type {Promise<CryptoKeyPair> | null} */
    this.spare = null;
    this.queue = Promise.resolve();
    /** @type {Record<string, (m: any) => Promise<void>>} */
    this.handlers = this.polite
      ? {
          commit: (m) => this.onCommit(m),
          reveal: (m) => this.onReveal(m),
          rekey: (m) => this.onRekey(m),
          ready: (m) => this.onReady(m),
        }
      : {
          hello: (m) => this.onHello(m),
          key: (m) => this.onKey(m),
          "rekey-reply": (m) => this.onRekeyReply(m),
          ready: (m) => this.onReady(m),
        };
    this.handlers.abort = async (m) => this.fail(`peer aborted: ${text(m.reason)}`);
    this.handlers.compared = async () => this.hooks.compared?.();
  }

  /** Start a new exchange (on channel open, or when a participant rejoins). */
  begin() {
    this.failed = false;
    this.enqueue(() => (this.polite ? this.askForExchange() : this.sendCommit()));
  }

  /**
   * Start a renewal; only the impolite side does, when its timer fires. If
   * the previous renewal is still unconfirmed, this one starts as soon as
   * that one is.
   */
  rotate() {
    if (!this.polite) this.enqueue(() => this.sendRekey());
  }

  /**
   * A message from the peer; malformed or out-of-turn messages are dropped.
   * @param {any} message
   */
  receive(message) {
    if (this.failed || !message || typeof message !== "object") return;
    const handler = Object.hasOwn(this.handlers, message.t)
      ? this.handlers[message.t]
      : null;
    if (handler) this.enqueue(() => handler(message));
  }

  /** @param {() => Promise<void>} step */
  enqueue(step) {
    this.queue = this.queue.then(step).catch((err) => {
      this.fail(err instanceof Error ? err.name : "error");
    });
    return this.queue;
  }

  /** @param {string} reason */
  fail(reason) {
    if (this.failed) return;
    this.failed = true;
    this.session = null;
    this.hooks.fail(reason);
  }

  // impolite side

  async sendCommit() {
    const pair = await this.takePair();
    const pub = await exportPublic(pair);
    const epoch = this.nextEpoch();
    this.epoch = epoch;
    this.rotationDue = false;
    this.session = newSession(randomId(), "committed", epoch);
    this.session.pair = pair;
    this.hooks.send({
      t: "commit",
      x: this.session.id,
      epoch,
      c: toBase64(await commitment(pub)),
    });
  }

  /** @param {{epoch: unknown}} m */
  async onHello(m) {
    if (isEpoch(m.epoch)) this.epoch = Math.max(this.epoch, m.epoch);
    await this.sendCommit();
  }

  /** @param {{x: unknown, pub: unknown}} m */
  async onKey(m) {
    const s = this.session;
    const peerPub = publicKeyField(m.pub);
    if (!s || s.stage !== "committed" || m.x !== s.id || !peerPub || !s.pair) return;
    s.stage = "revealed";
    const ownPub = await exportPublic(s.pair);
    const receiveKey = await this.derive(s, s.epoch, s.pair, peerPub);
    this.hooks.safetyCode(await this.safetyCode(ownPub, peerPub));
    this.hooks.send({ t: "reveal", x: s.id, pub: toBase64(ownPub) });
    await this.confirm(s, s.epoch, receiveKey);
  }

  async sendRekey() {
    const s = this.session;
    if (!s || !s.established) return;
    // one renewal at a time: each epoch's keys build on the previous
    // epoch's chain secret, so both sides must derive the same sequence
    if (s.established !== s.epoch || s.rekey) {
      this.rotationDue = true;
      return;
    }
    const pair = await this.takePair();
    // the epoch is used up even if no reply comes, so that a new exchange
    // never proposes an epoch the polite side may already have derived
    const epoch = this.nextEpoch();
    this.epoch = epoch;
    s.rekey = { epoch, pair };
    const pub = await exportPublic(pair);
    this.hooks.send({ t: "rekey", x: s.id, epoch, pub: toBase64(pub) });
  }

  /** @param {{x: unknown, epoch: unknown, pub: unknown}} m */
  async onRekeyReply(m) {
    const s = this.session;
    const peerPub = publicKeyField(m.pub);
    if (!s || !s.rekey || m.x !== s.id || m.epoch !== s.rekey.epoch || !peerPub) {
      return;
    }
    const { epoch, pair } = s.rekey;
    s.rekey = null;
    const receiveKey = await this.derive(s, epoch, pair, peerPub);
    await this.confirm(s, epoch, receiveKey);
  }

  // polite side

  async askForExchange() {
    this.session = null;
    this.hooks.send({ t: "hello", epoch: this.epoch });
  }

  /** @param {{x: unknown, epoch: unknown, c: unknown}} m */
  async onCommit(m) {
    const commit = fromBase64(text(m.c));
    if (!isId(m.x) || !isEpoch(m.epoch) || m.epoch === 0) return;
    if (commit.length !== 32) return;
    const s = newSession(m.x, "keyed", m.epoch);
    s.commit = commit;
    s.pair = await this.takePair();
    this.session = s;
    this.hooks.send({ t: "key", x: s.id, pub: toBase64(await exportPublic(s.pair)) });
  }

  /** @param {{x: unknown, pub: unknown}} m */
  async onReveal(m) {
    const s = this.session;
    const peerPub = publicKeyField(m.pub);
    if (!s || s.stage !== "keyed" || m.x !== s.id || !peerPub || !s.pair) return;
    if (!s.commit || !(await verifyReveal(s.commit, peerPub))) {
      this.hooks.send({ t: "abort", reason: "commitment mismatch" });
      this.fail("commitment mismatch");
      return;
    }
    s.stage = "revealed";
    const ownPub = await exportPublic(s.pair);
    const receiveKey = await this.derive(s, s.epoch, s.pair, peerPub);
    this.hooks.safetyCode(await this.safetyCode(peerPub, ownPub));
    await this.confirm(s, s.epoch, receiveKey);
  }

  /** @param {{x: unknown, epoch: unknown, pub: unknown}} m */
  async onRekey(m) {
    const s = this.session;
    const peerPub = publicKeyField(m.pub);
    if (!s || m.x !== s.id || !isEpoch(m.epoch) || !peerPub) return;
    if (s.stage !== "revealed" || m.epoch <= this.epoch) return;
    // the reply goes first, so that both sides derive at the same time
    const pair = await this.takePair();
    const pub = await exportPublic(pair);
    this.hooks.send({ t: "rekey-reply", x: s.id, epoch: m.epoch, pub: toBase64(pub) });
    const receiveKey = await this.derive(s, m.epoch, pair, peerPub);
    await this.confirm(s, m.epoch, receiveKey);
  }

  // both sides

  /** @param {{x: unknown, epoch: unknown}} m */
  async onReady(m) {
    const s = this.session;
    const entry = s && m.x === s.id && isEpoch(m.epoch) ? s.epochs.get(m.epoch) : null;
    if (!s || !entry || entry.peer) return;
    entry.peer = true;
    this.hooks.useSendKey(/** @type {number} */ (m.epoch), entry.sendKey);
    this.settle(s, /** @type {number} */ (m.epoch));
  }

  /**
   * Install the receive key, then tell the peer it may switch.
   * @param {Session} s
   * @param {number} epoch
   * @param {CryptoKey} receiveKey
   */
  async confirm(s, epoch, receiveKey) {
    await this.hooks.installReceiveKey(epoch, receiveKey);
    if (this.session !== s) return;
    const entry = s.epochs.get(epoch);
    if (!entry) return;
    entry.local = true;
    this.hooks.send({ t: "ready", x: s.id, epoch });
    this.settle(s, epoch);
  }

  /**
   * @param {Session} s
   * @param {number} epoch
   */
  settle(s, epoch) {
    const entry = s.epochs.get(epoch);
    if (!entry || !entry.local || !entry.peer || epoch <= s.established) return;
    s.established = epoch;
    for (const e of s.epochs.keys()) if (e < epoch) s.epochs.delete(e);
    this.hooks.established(epoch);
    if (this.rotationDue) {
      this.rotationDue = false;
      this.enqueue(() => this.sendRekey());
    }
  }

  /**
   * ECDH and HKDF for one epoch; keeps the send key, returns the receive key.
   * @param {Session} s
   * @param {number} epoch
   * @param {CryptoKeyPair} pair
   * @param {Uint8Array} peerPub
   */
  async derive(s, epoch, pair, peerPub) {
    const subtle = globalThis.crypto.subtle;
    const peerKey = await subtle.importKey("raw", peerPub, CURVE, false, []);
    const secret = new Uint8Array(
      await subtle.deriveBits(
        { name: "X25519", public: peerKey },
        pair.privateKey,
        256,
      ),
    );
    const { local, remote } = this.hooks.fingerprints();
    const fingerprints = canonicalFingerprints(local, remote);
    const { keys, chain } = await deriveEpochKeys(secret, {
      epoch,
      chain: s.chain,
      fingerprints,
    });
    secret.fill(0);
    s.chain.fill(0);
    s.chain = chain;
    s.epoch = epoch;
    this.epoch = Math.max(this.epoch, epoch);
    const mine = sendDirection(this.polite);
    s.epochs.set(epoch, { sendKey: keys[mine], local: false, peer: false });
    return keys[1 - mine];
  }

  /**
   * @param {Uint8Array} impolitePublicKey
   * @param {Uint8Array} politePublicKey
   */
  async safetyCode(impolitePublicKey, politePublicKey) {
    const { local, remote } = this.hooks.fingerprints();
    return deriveSafetyCode({
      fingerprints: canonicalFingerprints(local, remote),
      impolitePublicKey,
      politePublicKey,
    });
  }

  /**
   * A fresh key pair, made ahead of time to keep a renewal short; each
   * pair serves one exchange only.
   * @returns {Promise<CryptoKeyPair>}
   */
  takePair() {
    const pair = this.spare ?? generatePair();
    this.spare = generatePair();
    return pair;
  }

  nextEpoch() {
    if (this.epoch >= MAX_EPOCH) throw new RangeError("epochs exhausted");
    return this.epoch + 1;
  }
}

/**
 * @param {string} id
 * @param {string} stage
 * @param {number} epoch
 * @returns {Session}
 */
function newSession(id, stage, epoch) {
  return {
    id,
    stage,
    epoch,
    chain: new Uint8Array(32),
    epochs: new Map(),
    established: 0,
    rekey: null,
  };
}

async function generatePair() {
  return /** @type {CryptoKeyPair} */ (
    await globalThis.crypto.subtle.generateKey(CURVE, false, ["deriveBits"])
  );
}

/** @param {CryptoKeyPair} pair */
async function exportPublic(pair) {
  return new Uint8Array(
    await globalThis.crypto.subtle.exportKey("raw", pair.publicKey),
  );
}

function randomId() {
  return toBase64(globalThis.crypto.getRandomValues(new Uint8Array(12)));
}

/** @param {unknown} value */
function publicKeyField(value) {
  const bytes = fromBase64(text(value));
  return bytes.length === 32 ? bytes : null;
}

/** @param {unknown} value */
function text(value) {
  return typeof value === "string" ? value.slice(0, 200) : "";
}

/** @param {unknown} value @returns {value is string} */
function isId(value) {
  return typeof value === "string" && value.length > 0 && value.length <= 64;
}

/** @param {unknown} value @returns {value is number} */
function isEpoch(value) {
  return (
    typeof value === "number" &&
    Number.isInteger(value) &&
    value >= 0 &&
    value <= MAX_EPOCH
  );
}
