// Prints, as JSON, the samples the call page would send for the recorded
// Chromium stats given as arguments. Used by tests/unit/test_quality_samples.py
// to check that the browser's samples pass the server's schema.

import fs from "node:fs";

import {
  makeSample,
  readStats,
} from "../../src/sprechzimmer/static/call/quality-stats.js";

const out = [];
for (const file of process.argv.slice(2)) {
  const { log } = JSON.parse(fs.readFileSync(file, "utf8"));
  let previous = null;
  const readings = [];
  for (const entry of log) {
    const reading = readStats(entry.stats, previous);
    previous = entry.stats;
    if (reading.path) readings.push({ reading, profile: entry.profile });
  }
  for (let i = 0; i < readings.length; i += 5) {
    const chunk = readings.slice(i, i + 5);
    out.push(
      makeSample(
        chunk.map((r) => r.reading),
        { profile: chunk.at(-1).profile ?? "high", decryptFailures: 0, errors: 0 },
      ),
    );
  }
}
console.log(JSON.stringify(out));
