// Unit tests of the signaling connection's reconnects (static/call/signaling.js),
// over a fake WebSocket whose sockets the test opens and closes.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Signaling } from "../../src/sprechzimmer/static/call/signaling.js";

class FakeSocket extends EventTarget {
  static OPEN = 1;
  /** @type {FakeSocket[]} */
  static made = [];
  constructor() {
    super();
    this.readyState = 0;
    this.sent = [];
    FakeSocket.made.push(this);
  }
  send(data) {
    this.sent.push(data);
  }
  close() {
    this.readyState = 3;
  }
  drop(code = 1006) {
    this.readyState = 3;
    const event = new Event("close");
    Object.assign(event, { code, reason: "" });
    this.dispatchEvent(event);
  }
}
globalThis.WebSocket = /** @type {any} */ (FakeSocket);

function signaling() {
  FakeSocket.made = [];
  const states = [];
  const connection = new Signaling({
    url: "ws://test/ws",
    hello: () => ({ type: "hello" }),
    onmessage: () => {},
    onstate: (state) => states.push(state),
  });
  return { connection, states };
}

test("retries keep within 4.25 s however long the server is away", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  t.mock.method(Math, "random", () => 1);
  const { connection } = signaling();
  connection.connect();
  for (let attempt = 0; attempt < 12; attempt += 1) {
    const count = FakeSocket.made.length;
    FakeSocket.made.at(-1).drop();
    t.mock.timers.tick(4250);
    assert.equal(FakeSocket.made.length, count + 1, `attempt ${attempt}`);
  }
});

test("reconnectNow drops a socket that only looks open and opens a new one", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const { connection, states } = signaling();
  connection.connect();
  const stale = FakeSocket.made[0];
  stale.readyState = FakeSocket.OPEN;
  connection.reconnectNow();
  assert.equal(FakeSocket.made.length, 2);
  assert.equal(stale.readyState, 3);
  assert.deepEqual(states, ["reconnecting"]);
  // The stale socket's late close event starts no further retry.
  stale.drop();
  t.mock.timers.tick(10000);
  assert.equal(FakeSocket.made.length, 2);
});
