// Unit tests of the quality words and the advice to the peer
// (static/call/quality-report.js).

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  adviseReceive,
  initialAdviceState,
  qualityWord,
  qualityWords,
} from "../../src/sprechzimmer/static/call/quality-report.js";

/**
 * A snapshot with a clean path unless told otherwise.
 * @param {number | null} availableKbps
 * @param {Record<string, any>} [extra]
 */
function snap(availableKbps, extra = {}) {
  return {
    availableKbps,
    sendLoss: 0,
    recvLoss: 0,
    rttMs: 30,
    jitterMs: 5,
    limitation: "none",
    peer: null,
    ...extra,
  };
}

test("quality words follow loss, delay, jitter and room", () => {
  assert.equal(qualityWord({ loss: 0, rttMs: 40, jitterMs: 5 }), "good");
  assert.equal(qualityWord({ loss: 0.04, rttMs: 40 }), "fair");
  assert.equal(qualityWord({ loss: 0, rttMs: 300 }), "fair");
  assert.equal(qualityWord({ loss: 0.2, rttMs: 40 }), "poor");
  assert.equal(qualityWord({ loss: 0, rttMs: 40, jitterMs: 150 }), "poor");
  assert.equal(qualityWord({ loss: 0, rttMs: 40, roomFor: "low" }), "fair");
  assert.equal(
    qualityWord({ loss: 0, rttMs: 40, roomFor: "audio-only" }),
    "poor",
  );
  assert.deepEqual(qualityWords(snap(3000)), { send: "good", recv: "good" });
  assert.deepEqual(qualityWords(snap(60, { recvLoss: 0.03 })), {
    send: "poor",
    recv: "fair",
  });
  assert.deepEqual(qualityWords(snap(null)), { send: "good", recv: "good" });
});

test("receive advice limits the peer while what arrives is lost", () => {
  let state = initialAdviceState();
  const lossy = snap(null, { recvLoss: 0.1, recvKbps: 400 });
  let out = adviseReceive(state, lossy);
  assert.equal(out.advice.maxKbps, null, "one lossy reading is not enough");
  out = adviseReceive(out.state, lossy);
  assert.equal(out.advice.maxKbps, 340);
  out = adviseReceive(out.state, snap(null, { recvKbps: 300 }));
  assert.equal(out.advice.maxKbps, null, "lifted when loss is gone");
  state = out.state;
  assert.equal(state.lossy, 0);
});

test("decode trouble caps the peer one step below, lifted after calm", () => {
  const peer = { maxKbps: null, maxProfile: null, profile: "high" };
  const slow = snap(null, { recvFps: 30, decodeMsPerFrame: 40, peer });
  let out = adviseReceive(initialAdviceState(), slow);
  out = adviseReceive(out.state, slow);
  assert.equal(out.advice.maxProfile, "medium");
  const calm = snap(null, { recvFps: 24, decodeMsPerFrame: 8, peer });
  for (let i = 0; i < 14; i += 1) {
    out = adviseReceive(out.state, { ...calm, peer: { ...peer, profile: "medium" } });
    assert.equal(out.advice.maxProfile, "medium", `calm decision ${i}`);
  }
  out = adviseReceive(out.state, calm);
  assert.equal(out.advice.maxProfile, null);
});
