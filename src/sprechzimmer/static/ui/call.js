// @ts-check
/**
 * The call page, for both roles: wires the DOM-free call library
 * (signaling, peer, media) to the page. The client's invite token comes
 * from the URL fragment and leaves the address bar at once.
 */
import { N_, loadCatalog, t } from "./i18n.js";
import { chime } from "./chime.js";
import { Signaling } from "../call/signaling.js";
import { Peer } from "../call/peer.js";
import { openCamera, openLocalMedia } from "../call/media.js";
import { E2EE } from "../call/e2ee.js";
import { QualityController } from "../call/quality.js";

const role = /** @type {"therapist"|"client"} */ (document.body.dataset.role);
const sessionId = document.body.dataset.session ?? null;
const instance = randomId();
const INVITE_KEY = "sprechzimmer.invite";
const RESUME_PREFIX = "sprechzimmer.resume.";

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

const state = {
  /** @type {Signaling|null} */ signaling: null,
  /** @type {Peer|null} */ peer: null,
  /** @type {E2EE|null} */ e2ee: null,
  /** @type {QualityController|null} */ quality: null,
  /** @type {string|null} */ remoteInstance: null,
  /** @type {any} */ welcome: null,
  iceAt: 0,
  /** @type {import("../call/media.js").LocalMedia|null} */ local: null,
  /** @type {string|null} */ token: null,
  /** localStorage key of this link's resume credential. */
  resumeKey: "",
  name: "",
  mediaConnected: false,
  inCall: false,
  finished: false,
  /** @type {ReturnType<typeof setInterval>|null} */ heartbeat: null,
  /** @type {ReturnType<typeof setTimeout>|null} */ restartTimer: null,
};

// Tests and support read the live objects here; nothing secret is in them.
Object.defineProperty(window, "sprechzimmer", {
  value: {
    get peer() {
      return state.peer;
    },
    get signaling() {
      return state.signaling;
    },
    get e2ee() {
      return state.e2ee;
    },
    get quality() {
      return state.quality;
    },
    stats: async () => {
      if (!state.peer) return null;
      const stats = await state.peer.stats();
      return { ...stats, e2ee: state.e2ee ? { ...state.e2ee.state } : null };
    },
  },
});

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// -- start ------------------------------------------------------------------

async function startClient() {
  const fragment = location.hash.slice(1);
  if (fragment) {
    // The token must not stay in the address bar, history or a screenshot.
    sessionStorage.setItem(INVITE_KEY, fragment);
    history.replaceState(null, "", location.pathname);
  }
  state.token = sessionStorage.getItem(INVITE_KEY);
  if (!state.token) return showLinkState("invalid");
  const linkState = await checkInvite(state.token);
  if (linkState !== "open") return showLinkState(linkState);
  state.resumeKey = RESUME_PREFIX + (await digest(state.token));

  state.local = await openLocalMedia();
  showDeviceNote();
  attachPreview(/** @type {HTMLVideoElement} */ ($("preview")));
  attachPreview(/** @type {HTMLVideoElement} */ ($("local-video")));
  startMicMeter();
  if (resume()) {
    // A reload, or a second tab, during the call: back in without the
    // waiting room. The credential is shared by this browser's tabs.
    connect();
    return;
  }
  $("setup").hidden = false;
  $("join").addEventListener("click", () => {
    state.name = /** @type {HTMLInputElement} */ ($("display-name")).value.trim();
    $("setup").hidden = true;
    connect();
  });
}

async function startTherapist() {
  state.local = await openLocalMedia();
  showDeviceNote();
  attachPreview(/** @type {HTMLVideoElement} */ ($("local-video")));
  setConnection(t("Waiting for the client"));
  connect();
}

/** The resume credential of this link, if this browser holds one. */
function resume() {
  return state.resumeKey ? localStorage.getItem(state.resumeKey) : null;
}

/** A short SHA-256 of the token: the storage key must not be the token. */
async function digest(/** @type {string} */ text) {
  const hash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(hash).slice(0, 12), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** @param {string} token */
async function checkInvite(token) {
  try {
    const response = await fetch("/api/invite", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token }),
    });
    if (!response.ok) return "invalid";
    return (await response.json()).state;
  } catch {
    return "open";
  }
}

// -- signaling --------------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  state.signaling = new Signaling({
    url: `${scheme}//${location.host}/ws`,
    hello: () => ({
      type: "hello",
      version: 1,
      role,
      instance,
      ...(role === "therapist"
        ? { session: sessionId }
        : {
            token: state.token,
            name: state.name,
            ...(resume() ? { resume: resume() } : {}),
          }),
    }),
    onmessage: (message) => handlers[message.type]?.(message),
    onstate: onSignalingState,
  });
  state.signaling.connect();
  // Back online after a drop: reconnect now, not after the backoff.
  addEventListener("online", () => state.signaling?.reconnectNow());
}

/** @type {Record<string, (message: any) => void>} */
const handlers = {
  welcome(message) {
    state.welcome = message;
    state.iceAt = Date.now();
    if (!message.ice.relayAvailable) {
      notice(
        message.ice.relayOnly
          ? t("No relay server is available, and this session is relay-only: the call cannot connect now.")
          : t("No relay server is available: the call can only connect directly."),
      );
    }
    // After a reconnect the server's room is new: tell it where we are.
    if (state.mediaConnected) sendMedia(true);
  },
  joined(message) {
    if (message.state === "waiting") {
      $("waiting").hidden = false;
    } else {
      enterCall();
    }
  },
  admitted(message) {
    localStorage.setItem(state.resumeKey, message.resume);
    enterCall();
  },
  lobby(message) {
    const waiting = message.waiting;
    $("lobby-actions").hidden = !waiting;
    $("lobby").classList.toggle("waiting", Boolean(waiting));
    $("lobby-text").textContent = waiting
      ? waiting.name
        ? t("{name} is waiting", { name: waiting.name })
        : t("Client is waiting")
      : t("Nobody is waiting.");
    if (waiting) chime();
  },
  peer(message) {
    if (!message.present) {
      setConnection(t("The other side has left or lost the connection"));
      return;
    }
    if (!state.peer || message.instance !== state.remoteInstance) {
      newPeer(message.instance);
    } else if (role === "therapist") {
      recoverPeer();
    }
  },
  signal(message) {
    if (!state.peer || message.sender !== state.remoteInstance) newPeer(message.sender);
    state.peer?.handleSignal(message);
  },
  ice(message) {
    state.welcome.ice = message.ice;
    state.iceAt = Date.now();
    // Both sides take fresh credentials; the impolite side restarts ICE.
    if (role === "therapist") state.peer?.restartIce(iceConfiguration());
    else state.peer?.pc.setConfiguration(iceConfiguration());
  },
  ended(message) {
    finish(message.reason === "declined" ? "declined" : "ended");
  },
  replaced() {
    finish("replaced");
  },
  error() {},
};

/**
 * @param {string} status
 * @param {{code: number, reason: string}} [detail]
 */
function onSignalingState(status, detail) {
  if (status === "reconnecting" && state.inCall) {
    setConnection(t("Reconnecting…"));
  }
  if (status === "open" && state.inCall) {
    setConnection(state.mediaConnected ? t("Connected") : t("Connecting…"));
  }
  if (status === "closed" && detail) {
    const byCode = {
      4000: "replaced",
      4401: "invalid",
      4409: "in_use",
      4426: "outdated",
    };
    const reason = detail.code === 4410 ? detail.reason : byCode[/** @type {4000} */ (detail.code)];
    finish(reason || "ended");
  }
}

// -- the call ---------------------------------------------------------------

function enterCall() {
  state.inCall = true;
  $("waiting") && ($("waiting").hidden = true);
  $("call").hidden = false;
  if (!state.peer) setConnection(t("Waiting for the other side"));
}

function iceConfiguration() {
  const ice = state.welcome?.ice ?? { iceServers: [], iceTransportPolicy: "all" };
  return {
    iceServers: ice.iceServers,
    iceTransportPolicy: ice.iceTransportPolicy,
    bundlePolicy: /** @type {RTCBundlePolicy} */ ("max-bundle"),
  };
}

/** @param {string} remoteInstance */
function newPeer(remoteInstance) {
  state.e2ee?.close();
  state.quality?.stop();
  state.peer?.close();
  state.remoteInstance = remoteInstance;
  setMediaConnected(false);
  state.peer = new Peer({
    polite: role === "client",
    configuration: iceConfiguration(),
    localStream: /** @type {any} */ (state.local).stream,
    sendSignal: (signal) => state.signaling?.send({ type: "signal", ...signal }),
    onremotestream: showRemote,
    onconnectionstate: onPeerState,
    onsetup: attachLayers,
  });
  setConnection(t("Connecting…"));
}

/**
 * Encryption and quality control join every new peer connection before
 * its first offer: a frame never leaves unencrypted.
 * @param {RTCPeerConnection} pc
 */
function attachLayers(pc) {
  const welcome = state.welcome ?? {};
  state.e2ee = new E2EE(pc, {
    polite: role === "client",
    rotationSeconds: welcome.keyRotationSeconds,
    testHooks: Boolean(welcome.testHooks),
    onchange: renderE2EE,
  });
  state.e2ee.start();
  state.quality = new QualityController(pc, {
    sampleSeconds: welcome.qualitySampleSeconds,
    onchange: renderQuality,
    counters: () => ({ decryptFailures: state.e2ee?.state.decryptFailures ?? 0 }),
    onsample: (sample) => state.signaling?.send({ type: "quality", sample }),
  });
  state.quality.start();
  renderE2EE(state.e2ee.state);
}

/** @param {import("../call/e2ee.js").E2EEState} e2ee */
function renderE2EE(e2ee) {
  const words = {
    negotiating: t("Setting up encryption…"),
    encrypted: t("End-to-end encrypted (key {epoch})", { epoch: e2ee.epoch }),
    failed: t("Encryption failed: no media is sent"),
  };
  const element = $("e2ee-state");
  element.textContent = words[e2ee.status] ?? words.negotiating;
  element.dataset.status = e2ee.status;
  element.dataset.epoch = String(e2ee.epoch);
  $("safety-code").textContent = e2ee.safetyCode ?? "–";
  const compared = document.getElementById("compared");
  if (compared) {
    compared.hidden = !e2ee.safetyCode;
    compared.textContent = e2ee.compared ? t("Compared ✓") : t("Mark as compared");
  }
  $("safety").dataset.compared = String(e2ee.compared);
}

/** @param {any} quality */
function renderQuality(quality) {
  const word = { good: t("good"), fair: t("fair"), poor: t("poor") };
  $("quality").textContent = t("Quality: sending {send}, receiving {recv}", {
    send: word[/** @type {"good"} */ (quality.sendQuality)] ?? "–",
    recv: word[/** @type {"good"} */ (quality.recvQuality)] ?? "–",
  });
  $("quality").dataset.send = quality.sendQuality ?? "";
  $("quality").dataset.recv = quality.recvQuality ?? "";
  if (quality.videoPausedForAudio) {
    notice(t("Video is paused to keep the sound clear."));
  }
}

/** @param {MediaStream} stream */
function showRemote(stream) {
  const video = /** @type {HTMLVideoElement} */ ($("remote-video"));
  if (video.srcObject !== stream) video.srcObject = stream;
  video.play().catch(() => {
    // Autoplay with sound was refused: one click turns it on.
    $("play-audio").hidden = false;
  });
}

/** @param {RTCPeerConnectionState} connection */
function onPeerState(connection) {
  if (connection === "connected") {
    setMediaConnected(true);
    setConnection(t("Connected"));
    updatePath();
  } else if (connection === "disconnected" || connection === "failed") {
    setMediaConnected(false);
    setConnection(t("Reconnecting…"));
    scheduleIceRestart(connection === "failed" ? 0 : 3000);
  } else if (connection === "connecting" || connection === "new") {
    setConnection(t("Connecting…"));
  }
}

/** The impolite side restarts ICE, with fresh relay credentials. */
function scheduleIceRestart(/** @type {number} */ delay) {
  if (role !== "therapist") {
    // The polite side only renews its credentials for the restart to come.
    state.signaling?.send({ type: "ice" });
    return;
  }
  if (state.restartTimer) return;
  state.restartTimer = setTimeout(() => {
    state.restartTimer = null;
    const pc = state.peer?.pc;
    if (!pc || pc.connectionState === "connected") return;
    if (!state.signaling?.send({ type: "ice" })) state.peer?.restartIce();
    scheduleIceRestart(8000);
  }, delay);
}

/**
 * The other page's signaling is back with the same peer connection. What
 * we sent while it was away was lost, an ICE restart's offer among it: the
 * impolite side sends that offer again, or restarts ICE now, rather than
 * wait for its next restart.
 */
function recoverPeer() {
  const peer = state.peer;
  if (!peer || peer.pc.connectionState === "connected") return;
  if (!peer.resendOffer()) peer.restartIce(iceConfiguration());
}

/** @param {boolean} connected */
function setMediaConnected(connected) {
  if (state.mediaConnected === connected) return;
  state.mediaConnected = connected;
  sendMedia(connected);
  if (state.heartbeat) clearInterval(state.heartbeat);
  state.heartbeat = null;
  if (connected) {
    const seconds = state.welcome?.heartbeatSeconds ?? 10;
    state.heartbeat = setInterval(
      () => state.signaling?.send({ type: "heartbeat" }),
      seconds * 1000,
    );
  }
}

/** @param {boolean} connected */
function sendMedia(connected) {
  state.signaling?.send({ type: "media", state: connected ? "connected" : "lost" });
}

async function updatePath() {
  const stats = await state.peer?.stats();
  if (!stats) return;
  const relayed = stats.candidateType === "relay" || stats.remoteCandidateType === "relay";
  const region = state.welcome?.ice?.relayRegion;
  $("call-path").textContent = relayed
    ? t("Relayed through a server in {region}", { region: region || "?" })
    : t("Direct connection");
}

// -- controls ---------------------------------------------------------------

function wireControls() {
  $("mute").addEventListener("click", () => {
    const track = state.local?.stream.getAudioTracks()[0];
    if (!track) return;
    track.enabled = !track.enabled;
    $("mute").textContent = track.enabled ? t("Mute") : t("Unmute");
  });
  $("camera").addEventListener("click", toggleCamera);
  $("play-audio").addEventListener("click", () => {
    /** @type {HTMLVideoElement} */ ($("remote-video")).play();
    $("play-audio").hidden = true;
  });
  $("end")?.addEventListener("click", () => {
    state.signaling?.send({ type: "end" });
  });
  $("hangup")?.addEventListener("click", () => {
    state.signaling?.close(true);
    finish("left");
  });
  $("admit")?.addEventListener("click", () => state.signaling?.send({ type: "admit" }));
  $("compared")?.addEventListener("click", () => state.e2ee?.markCompared());
  $("decline")?.addEventListener("click", () => state.signaling?.send({ type: "decline" }));
}

async function toggleCamera() {
  const local = state.local;
  if (!local) return;
  const current = local.stream.getVideoTracks()[0];
  if (current) {
    // Stop the track so that the camera's light goes off, too.
    current.stop();
    local.stream.removeTrack(current);
    await state.peer?.setVideoTrack(null);
    $("camera").textContent = t("Camera on");
    return;
  }
  try {
    const track = await openCamera();
    local.stream.addTrack(track);
    await state.peer?.setVideoTrack(track);
    $("camera").textContent = t("Camera off");
  } catch {
    notice(t("The camera could not be started."));
  }
}

// -- page states ------------------------------------------------------------

/** @param {string} text */
function setConnection(text) {
  $("connection-state").textContent = text;
}

/** @param {string} text */
function notice(text) {
  // Several things may need saying at once (no microphone and no relay):
  // each stays, once, so that a later one never hides an earlier one.
  const element = $("notice");
  const lines = Array.from(element.querySelectorAll("span"));
  if (lines.some((line) => line.textContent === text)) return;
  const line = document.createElement("span");
  line.textContent = text;
  if (lines.length) element.append(document.createElement("br"));
  element.append(line);
  element.hidden = false;
}

function showDeviceNote() {
  const local = state.local;
  if (!local) return;
  let text = "";
  if (!local.audio) {
    text = t("Your microphone is not available: you can see and hear, but not speak.");
  } else if (!local.video) {
    text = t("Your camera is not available: you join with sound only.");
    $("camera").textContent = t("Camera on");
  }
  if (!text) return;
  notice(text);
  const note = document.getElementById("device-note");
  if (note) {
    note.textContent = text;
    note.hidden = false;
  }
}

/** @param {HTMLVideoElement} video */
function attachPreview(video) {
  if (state.local) video.srcObject = state.local.stream;
}

function startMicMeter() {
  const track = state.local?.stream.getAudioTracks()[0];
  if (!track) return;
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  context.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const bar = $("mic-level");
  const draw = () => {
    if (state.inCall || state.finished) return context.close();
    analyser.getFloatTimeDomainData(samples);
    const rms = Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length);
    bar.style.width = `${Math.min(100, Math.round(rms * 400))}%`;
    bar.dataset.level = String(rms);
    requestAnimationFrame(draw);
  };
  draw();
}

// Marked with N_ for extraction; translated with t() where shown.
const LINK_TEXTS = {
  ended: [N_("The session has ended."), N_("Thank you. You can close this window.")],
  declined: [
    N_("You were not admitted."),
    N_("Your therapist could not admit you this time. This link no longer works."),
  ],
  expired: [N_("This link has expired."), N_("Please ask your therapist for a new link.")],
  invalid: [
    N_("This link is not valid."),
    N_("Please check the link, or ask your therapist for a new one."),
  ],
  in_use: [
    N_("This link is already in use."),
    N_("Someone is already in this session with this link. If that is you, close the other window first."),
  ],
  replaced: [N_("The call continues in another window."), N_("You can close this one.")],
  left: [N_("You left the call."), N_("You can close this window.")],
  outdated: [N_("This page is out of date."), N_("Please reload the page.")],
};

/** @param {string} reason */
function showLinkState(reason) {
  const [title, text] = LINK_TEXTS[/** @type {"ended"} */ (reason)] ?? LINK_TEXTS.invalid;
  $("link-state-title").textContent = t(title);
  $("link-state-text").textContent = t(text);
  $("link-state").dataset.state = reason;
  $("link-state").hidden = false;
}

/** The call is over for this page; say why, release camera and mic. */
function finish(/** @type {string} */ reason) {
  if (state.finished) return;
  state.finished = true;
  state.inCall = false;
  if (reason !== "replaced" && reason !== "in_use") {
    if (state.resumeKey) localStorage.removeItem(state.resumeKey);
    if (reason !== "left") sessionStorage.removeItem(INVITE_KEY);
  }
  if (state.heartbeat) clearInterval(state.heartbeat);
  state.e2ee?.close();
  state.quality?.stop();
  state.peer?.close();
  state.signaling?.close();
  state.local?.stream.getTracks().forEach((track) => track.stop());
  for (const id of ["call", "waiting", "setup", "lobby"]) {
    const element = document.getElementById(id);
    if (element) element.hidden = true;
  }
  const [title, text] = LINK_TEXTS[/** @type {"ended"} */ (reason)] ?? LINK_TEXTS.ended;
  $("closed-title").textContent = t(title);
  $("closed-text").textContent = t(text);
  $("closed").dataset.state = reason;
  $("closed").hidden = false;
}

await loadCatalog();
wireControls();
if (role === "client") await startClient();
else await startTherapist();
