// Unit tests of the sending-profile policy (static/call/quality-policy.js)
// on synthetic stats sequences. Recorded Chromium sequences are replayed in
// quality-recorded.test.mjs.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AUDIO_KBPS,
  PROFILES,
  audioOnlyBelowKbps,
  budgetKbps,
  decideProfile,
  decideSequence,
  initialPolicyState,
  keepKbps,
  profileKbps,
  rank,
  upKbps,
} from "../../src/sprechzimmer/static/call/quality-policy.js";

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

/** n copies of a snapshot. */
const repeat = (/** @type {number} */ n, /** @type {any} */ s) =>
  Array.from({ length: n }, () => s);

/** A small seeded generator, so that "random" noise is the same each run. */
function random(seed) {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

/** Indexes where the profile changed. @param {string[]} profiles */
function changes(profiles) {
  const out = [];
  for (let i = 1; i < profiles.length; i += 1) {
    if (profiles[i] !== profiles[i - 1]) out.push(i);
  }
  return out;
}

const STEADY = repeat(10, snap(3000));

test("a clean fast path keeps the high profile", () => {
  const profiles = decideSequence(repeat(60, snap(3000)));
  assert.deepEqual(new Set(profiles), new Set(["high"]));
});

test("an abrupt collapse reaches low at the first decision after it", () => {
  const profiles = decideSequence([...STEADY, ...repeat(10, snap(200))]);
  assert.equal(profiles[9], "high");
  assert.equal(profiles[10], "low");
  assert.deepEqual(new Set(profiles.slice(10)), new Set(["low"]));
});

test("a gradual collapse, as the estimate falls, reaches low in two", () => {
  const falling = [snap(700), snap(260), ...repeat(8, snap(200))];
  const profiles = decideSequence([...STEADY, ...falling]);
  assert.ok(rank(profiles[10]) <= rank("high"));
  assert.equal(profiles[11], "low", `got ${profiles.slice(10, 12)}`);
});

test("a collapse with heavy loss reaches low within two decisions", () => {
  const lossy = snap(400, { sendLoss: 0.15, rttMs: 400 });
  const profiles = decideSequence([...STEADY, ...repeat(6, lossy)]);
  assert.ok(rank(profiles[11]) <= rank("low"), `got ${profiles[11]}`);
});

test("below the floor audio needs the video is paused at once", () => {
  const profiles = decideSequence([...STEADY, ...repeat(5, snap(50))]);
  assert.equal(profiles[10], "audio-only");
  assert.ok(50 < AUDIO_KBPS);
});

test("with no room for video next to the audio, audio only in two", () => {
  const thin = audioOnlyBelowKbps() - 20;
  const profiles = decideSequence([
    ...STEADY,
    snap(600),
    ...repeat(5, snap(thin)),
  ]);
  assert.equal(profiles[11], "audio-only", `got ${profiles.slice(10, 13)}`);
});

test("recovery climbs one step at a time, waiting between steps", () => {
  const collapsed = snap(50, { sendLoss: 0.1, rttMs: 500 });
  const seq = [...STEADY, ...repeat(10, collapsed), ...repeat(30, snap(4000))];
  const profiles = decideSequence(seq);
  assert.equal(profiles[19], "audio-only");
  const steps = changes(profiles).filter((i) => i > 19);
  assert.deepEqual(
    steps.map((i) => profiles[i]),
    ["low", "medium", "high"],
  );
  for (const i of steps) {
    assert.equal(rank(profiles[i]) - rank(profiles[i - 1]), 1);
  }
  for (let k = 1; k < steps.length; k += 1) {
    assert.ok(steps[k] - steps[k - 1] >= 2, "a step waits for clean decisions");
  }
  assert.ok(steps.at(-1) - 20 <= 10, "high again within 20 s of plenty");
});

test("an application-limited estimate is probed by trying the next", () => {
  // Chrome's estimate stays near 1.5 times what is sent: at low it never
  // shows that medium fits. Trying medium's encoding makes Chrome probe;
  // the step holds when the estimate answers twice.
  let state = initialPolicyState({ initialProfile: "low" });
  const run = (/** @type {any} */ s) => {
    const d = decideProfile(state, s);
    state = d.state;
    return d;
  };
  const limited = snap(1.3 * profileKbps("low"));
  assert.equal(run(limited).probe, false);
  const probe = run(limited);
  assert.deepEqual([probe.profile, probe.probe], ["low", true]);
  const first = run(snap(900));
  assert.deepEqual([first.profile, first.probe], ["low", true]);
  const answer = run(snap(900));
  assert.deepEqual([answer.profile, answer.reason], ["medium", "probe held"]);
  assert.equal(answer.probe, false);
});

test("a probe the estimate does not answer keeps the profile, waits longer", () => {
  let state = initialPolicyState({ initialProfile: "low" });
  const run = (/** @type {any} */ s) => {
    const d = decideProfile(state, s);
    state = d.state;
    return d;
  };
  const limited = snap(1.3 * profileKbps("low"));
  run(limited);
  assert.equal(run(limited).probe, true);
  const answer = run(limited);
  assert.deepEqual([answer.profile, answer.reason], ["low", "probe failed"]);
  assert.equal(state.hold, 4, "after a failed probe the wait doubles");
  const probes = [];
  for (let i = 0; i < 12; i += 1) probes.push(run(limited).probe);
  const at = probes.map((p, i) => (p ? i : -1)).filter((i) => i >= 0);
  assert.deepEqual(at, [3, 8], "a probe after four clean decisions");
});

test("right after a step up, an unchanged estimate waits for the probe", () => {
  // Chrome probes when maxBitrate rises; the estimate shows it a moment
  // later, so the first reading after the step must not undo it.
  let state = initialPolicyState({ initialProfile: "audio-only" });
  const run = (/** @type {any} */ s) => {
    const d = decideProfile(state, s);
    state = d.state;
    return d;
  };
  run(snap(50));
  assert.equal(run(snap(50)).profile, "low");
  const next = run(snap(50));
  assert.equal(next.profile, "low");
  assert.equal(next.reason, "probe pending");
  assert.equal(run(snap(237)).profile, "low", "the probe's estimate arrived");
});

test("a failed probe doubles the wait before the next one", () => {
  let state = initialPolicyState();
  const run = (/** @type {any} */ s) => {
    const d = decideProfile(state, s);
    state = d.state;
    return d.profile;
  };
  for (const s of repeat(10, snap(3000))) run(s);
  for (const s of repeat(3, snap(200))) run(s);
  assert.equal(state.profile, "low");
  const baseHold = state.hold;

  // headroom at low, but medium does not hold
  const probe = snap(upKbps("low") + 5);
  let steps = 0;
  while (state.profile === "low" && steps < 20) {
    run(probe);
    steps += 1;
  }
  assert.equal(state.profile, "medium");
  run(snap(keepKbps("medium") * 0.5));
  assert.equal(state.profile, "low");
  assert.equal(state.hold, 2 * baseHold);

  // the same estimate again waits the doubled hold
  let waited = 0;
  while (state.profile === "low" && waited < 20) {
    run(probe);
    waited += 1;
  }
  assert.equal(waited, 2 * baseHold);
});

test("a grown estimate skips the doubled wait after a failed probe", () => {
  let state = initialPolicyState({ initialProfile: "low" });
  const run = (/** @type {any} */ s) => {
    const d = decideProfile(state, s);
    state = d.state;
    return d;
  };
  const limited = snap(240);
  run(limited);
  run(limited);
  assert.equal(run(limited).reason, "probe failed");
  assert.equal(state.hold, 4);
  run(snap(1.2 * 240));
  assert.equal(run(snap(1.2 * 240)).probe, true, "probed after two, not four");
});

test("noise inside a profile's band does not change the profile", () => {
  for (const [level, profile] of [
    [2400, "high"],
    [500, "medium"],
    [200, "low"],
  ]) {
    const next = random(level);
    const seq = Array.from({ length: 150 }, () =>
      snap(level * (0.8 + 0.4 * next()), {
        sendLoss: 0.02 * next(),
        rttMs: 30 + 40 * next(),
        // the encoder reports bandwidth while it ramps, at random here
        limitation: next() < 0.3 ? "bandwidth" : "none",
      }),
    );
    const start = /** @type {any} */ (profile);
    const profiles = decideSequence(seq, {
      initialProfile: start,
      headroom: 1.6,
    });
    assert.deepEqual(changes(profiles), [], `${profile} at ${level}`);
  }
});

test("noise across a threshold changes the profile rarely", () => {
  const next = random(7);
  const level = keepKbps("high");
  const seq = Array.from({ length: 150 }, () =>
    snap(level * (0.75 + 0.5 * next()), {
      sendLoss: next() < 0.1 ? 0.05 : 0,
      rttMs: 30 + 60 * next(),
    }),
  );
  const profiles = decideSequence(seq);
  const moves = changes(profiles);
  assert.ok(moves.length <= 6, `${moves.length} changes in 5 minutes`);
  for (let k = 1; k < moves.length; k += 1) {
    assert.ok(moves[k] - moves[k - 1] >= 2, "no flapping between decisions");
  }
});

test("a queue building up lowers the profile before the estimate does", () => {
  const queue = snap(3000, { rttMs: 600, sendKbps: 700 });
  const seq = [...STEADY, queue, queue, queue];
  const profiles = decideSequence(seq);
  assert.equal(profiles[10], "high", "one late report is not decisive");
  assert.equal(profiles[11], "medium");
});

test("a single RTT spike changes nothing", () => {
  const spike = snap(3000, { rttMs: 900, sendKbps: 700 });
  const seq = [...STEADY, spike, ...repeat(5, snap(3000))];
  assert.deepEqual(new Set(decideSequence(seq)), new Set(["high"]));
});

test("loss spikes alone on a fast path do not lower the profile", () => {
  const next = random(3);
  const seq = Array.from({ length: 100 }, () =>
    snap(2500, { sendLoss: next() < 0.2 ? 0.08 : 0, rttMs: 20 + 30 * next() }),
  );
  assert.deepEqual(new Set(decideSequence(seq)), new Set(["high"]));
});

test("a single bad reading during a steady call is ignored", () => {
  const seq = [...STEADY, snap(600), ...repeat(10, snap(3000))];
  assert.deepEqual(new Set(decideSequence(seq)), new Set(["high"]));
});

test("the start ignores Chrome's low first estimate while it ramps", () => {
  const seq = [snap(300), snap(900), ...repeat(10, snap(2500))];
  assert.deepEqual(new Set(decideSequence(seq)), new Set(["high"]));
});

test("the peer's limit is obeyed when lower than our own estimate", () => {
  const peer = { maxKbps: 250, maxProfile: null, profile: "high" };
  const seq = [...STEADY, ...repeat(5, snap(3000, { peer }))];
  const profiles = decideSequence(seq);
  assert.equal(profiles[10], "low");
  assert.equal(budgetKbps(snap(3000, { peer })), 250);
  assert.equal(budgetKbps(snap(100, { peer })), 100);
});

test("the peer's decode limit caps the profile at once", () => {
  const peer = { maxKbps: null, maxProfile: "medium", profile: "high" };
  const profiles = decideSequence([...STEADY, ...repeat(10, snap(3000, { peer }))]);
  assert.equal(profiles[10], "medium");
  assert.deepEqual(new Set(profiles.slice(10)), new Set(["medium"]));
});

test("our own CPU limit steps down once but never pauses video", () => {
  const busy = snap(3000, { limitation: "cpu" });
  const profiles = decideSequence([...STEADY, ...repeat(20, busy)]);
  assert.equal(profiles[10], "medium");
  assert.ok(profiles.every((p) => rank(p) >= rank("low")));
});

test("missing statistics keep the current profile", () => {
  const profiles = decideSequence([...STEADY, ...repeat(5, snap(null))]);
  assert.deepEqual(new Set(profiles), new Set(["high"]));
});

test("profiles are ordered and their rates grow", () => {
  assert.deepEqual(PROFILES, ["audio-only", "low", "medium", "high"]);
  for (let i = 1; i < PROFILES.length; i += 1) {
    assert.ok(profileKbps(PROFILES[i]) > profileKbps(PROFILES[i - 1]));
    assert.ok(keepKbps(PROFILES[i]) < profileKbps(PROFILES[i]));
  }
});
