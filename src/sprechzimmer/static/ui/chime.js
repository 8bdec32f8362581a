// @ts-check
/** A short two-tone chime made with WebAudio: no sound file to load. */

/** @type {AudioContext|null} */
let context = null;

export function chime() {
  try {
    context ??= new AudioContext();
    const now = context.currentTime;
    [660, 880].forEach((frequency, index) => {
      const ctx = /** @type {AudioContext} */ (context);
      const oscillator = ctx.createOscillator();
      const gain = ctx.createGain();
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, now + index * 0.18);
      gain.gain.exponentialRampToValueAtTime(0.2, now + index * 0.18 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + index * 0.18 + 0.3);
      oscillator.connect(gain).connect(ctx.destination);
      oscillator.start(now + index * 0.18);
      oscillator.stop(now + index * 0.18 + 0.32);
    });
  } catch {
    // No audio output: the visual cue is still there.
  }
}
