// @ts-check
/**
 * Local camera and microphone, with the fallbacks people need: no camera
 * means audio only; no microphone means receive only. DOM-free.
 */

/**
 * @typedef {object} LocalMedia
 * @property {MediaStream} stream        possibly without tracks
 * @property {boolean} audio             a microphone track is there
 * @property {boolean} video             a camera track is there
 * @property {string|null} cameraProblem "denied", "busy", "missing" or null
 * @property {string|null} micProblem    "denied", "busy", "missing" or null
 */

/** @param {unknown} error */
function problem(error) {
  const name = error instanceof DOMException ? error.name : "";
  if (name === "NotAllowedError" || name === "SecurityError") return "denied";
  if (name === "NotReadableError" || name === "AbortError") return "busy";
  return "missing";
}

const VIDEO = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } };
const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

/** Ask for camera and microphone, each on its own so one can fail alone. */
export async function openLocalMedia() {
  const stream = new MediaStream();
  /** @type {LocalMedia} */
  const result = { stream, audio: false, video: false, cameraProblem: null, micProblem: null };
  try {
    const both = await navigator.mediaDevices.getUserMedia({ audio: AUDIO, video: VIDEO });
    both.getTracks().forEach((track) => stream.addTrack(track));
    result.audio = result.video = true;
    return result;
  } catch {
    // One of them failed: find out which, one at a time.
  }
  try {
    const audio = await navigator.mediaDevices.getUserMedia({ audio: AUDIO });
    audio.getTracks().forEach((track) => stream.addTrack(track));
    result.audio = true;
  } catch (error) {
    result.micProblem = problem(error);
  }
  try {
    const video = await navigator.mediaDevices.getUserMedia({ video: VIDEO });
    video.getTracks().forEach((track) => stream.addTrack(track));
    result.video = true;
  } catch (error) {
    result.cameraProblem = problem(error);
  }
  return result;
}

/** A fresh camera track, for turning the camera on again later. */
export async function openCamera() {
  const video = await navigator.mediaDevices.getUserMedia({ video: VIDEO });
  return video.getVideoTracks()[0];
}
