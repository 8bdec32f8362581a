// The policy on stats recorded from real Chromium calls under a real
// bandwidth limit (tests/js/fixtures/quality-*.json).
//
// Each fixture is one side's getStats reports, every 2 s, from a call
// between two peer connections in a network namespace whose loopback was
// shaped with `tc qdisc add dev lo root tbf rate R ...` during the phase
// "limit" and unshaped in "lifted". The replay is open loop: the recorded
// estimate came from what the live controller sent, so after the policy
// here differs from it the estimate no longer answers its choices. The
// tests therefore check what holds regardless: the reaction to a
// collapse, staying down under the limit, and video back after the lift.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import {
  audioOnlyBelowKbps,
  budgetKbps,
  decideProfile,
  initialPolicyState,
  keepKbps,
  rank,
} from "../../src/sprechzimmer/static/call/quality-policy.js";
import { readStats } from "../../src/sprechzimmer/static/call/quality-stats.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** @param {string} name */
function load(name) {
  const file = path.join(HERE, "fixtures", name);
  return JSON.parse(fs.readFileSync(file, "utf8")).log;
}

/**
 * Replay a recording through the stats reader and the policy.
 * @param {any[]} log
 */
function replay(log) {
  let previous = null;
  let state = initialPolicyState();
  const out = [];
  for (const entry of log) {
    const reading = readStats(entry.stats, previous);
    previous = entry.stats;
    if (!reading.path) continue;
    const snapshot = { ...reading.snapshot, peer: entry.peer ?? null };
    const decision = decideProfile(state, snapshot);
    state = decision.state;
    out.push({
      phase: entry.phase,
      live: entry.profile,
      budget: budgetKbps(snapshot),
      profile: decision.profile,
      reading,
    });
  }
  return out;
}

/** Index of the first step that satisfies `pick`. */
function first(/** @type {any[]} */ steps, /** @type {(s: any) => boolean} */ pick) {
  const i = steps.findIndex(pick);
  assert.ok(i >= 0, "no such step in the recording");
  return i;
}

const RECORDINGS = fs
  .readdirSync(path.join(HERE, "fixtures"))
  .filter((name) => name.startsWith("quality-") && name.endsWith(".json"));

test("recordings exist for a moderate and a severe limit", () => {
  assert.ok(RECORDINGS.includes("quality-tbf-250k.json"));
  assert.ok(RECORDINGS.includes("quality-tbf-100k.json"));
});

for (const name of RECORDINGS) {
  test(`${name}: the reader makes sane numbers of every report`, () => {
    for (const step of replay(load(name))) {
      const s = step.reading.snapshot;
      assert.equal(step.reading.path, "direct");
      assert.equal(step.reading.candidate, "host");
      assert.ok(s.availableKbps == null || s.availableKbps > 0);
      assert.ok(s.rttMs == null || (s.rttMs >= 0 && s.rttMs < 5000));
      for (const loss of [s.sendLoss, s.recvLoss]) {
        assert.ok(loss == null || (loss >= 0 && loss <= 1), `${loss}`);
      }
    }
  });

  test(`${name}: the fast start keeps the high profile`, () => {
    const steps = replay(load(name)).filter((s) => s.phase === "free");
    assert.ok(steps.length >= 5);
    assert.deepEqual(new Set(steps.map((s) => s.profile)), new Set(["high"]));
  });

  test(`${name}: the collapse reaches low within two decisions`, () => {
    const steps = replay(load(name));
    const hit = first(
      steps,
      (s) => s.phase === "limit" && s.budget < keepKbps("high"),
    );
    const reached = steps
      .slice(hit, hit + 2)
      .some((s) => rank(s.profile) <= rank("low"));
    assert.ok(reached, steps.slice(hit, hit + 2).map((s) => s.profile).join());
  });

  test(`${name}: under the limit the profile stays down`, () => {
    const steps = replay(load(name));
    const hit = first(
      steps,
      (s) => s.phase === "limit" && s.budget < keepKbps("high"),
    );
    const under = steps.slice(hit + 2).filter((s) => s.phase === "limit");
    assert.ok(under.length >= 5);
    for (const s of under) assert.ok(rank(s.profile) <= rank("low"), s.profile);
  });

  test(`${name}: video is on again within 20 s after the lift`, () => {
    const steps = replay(load(name));
    const lift = first(steps, (s) => s.phase === "lifted");
    const within = steps.slice(lift, lift + 10);
    assert.ok(
      within.some((s) => rank(s.profile) >= rank("low")),
      within.map((s) => s.profile).join(),
    );
  });

  test(`${name}: the live controller recovered as well`, () => {
    // What the controller did in the recorded call, closed loop.
    const log = load(name);
    const lift = log.findIndex((e) => e.phase === "lifted");
    const after = log.slice(lift, lift + 11).map((e) => e.profile);
    assert.ok(after.some((p) => rank(p) >= rank("low")), after.join());
    const worst = Math.min(
      ...log.filter((e) => e.phase === "limit").map((e) => rank(e.profile)),
    );
    assert.ok(worst <= rank("low"), "the limit lowered the live profile");
  });
}

test("the severe limit pauses the video within two decisions", () => {
  const steps = replay(load("quality-tbf-100k.json"));
  const hit = first(
    steps,
    (s) => s.phase === "limit" && s.budget < audioOnlyBelowKbps(),
  );
  const paused = steps.slice(hit, hit + 2).some((s) => s.profile === "audio-only");
  assert.ok(paused, steps.slice(hit, hit + 2).map((s) => s.profile).join());
});

test("the moderate limit keeps some video most of the time", () => {
  const steps = replay(load("quality-tbf-250k.json")).filter(
    (s) => s.phase === "limit",
  );
  const withVideo = steps.filter((s) => s.profile !== "audio-only").length;
  assert.ok(withVideo >= steps.length / 2, `${withVideo} of ${steps.length}`);
});
