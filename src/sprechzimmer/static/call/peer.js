// @ts-check
/**
 * The peer connection of a call, negotiated with the "perfect negotiation"
 * pattern: the therapist is impolite, the client polite, so that offers
 * from both sides at the same instant cannot deadlock. DOM-free.
 *
 * Only the impolite side offers first: it creates the audio and video
 * transceivers. The polite side waits for that offer and sends on the
 * transceivers the offer made, so that the call has exactly one audio and
 * one video transceiver. (Transceivers that both sides added on their own
 * would never be paired, and would need a second round of offers.) They
 * are never removed: turning the camera off and on swaps the track with
 * replaceTrack. So the encryption layer wraps every sender and receiver
 * once, before the first answer or offer leaves.
 */

/**
 * @typedef {object} PeerOptions
 * @property {boolean} polite
 * @property {RTCConfiguration} configuration  ICE servers and policy
 * @property {MediaStream} localStream
 * @property {(signal: {description?: RTCSessionDescriptionInit,
 *                      candidate?: RTCIceCandidateInit|null}) => void} sendSignal
 * @property {(stream: MediaStream) => void} [onremotestream]
 * @property {(state: RTCPeerConnectionState) => void} [onconnectionstate]
 * @property {(pc: RTCPeerConnection) => void} [onsetup]
 *           called once the transceivers exist, before any offer or answer
 */

export class Peer {
  /** @param {PeerOptions} options */
  constructor(options) {
    this.options = options;
    this.polite = options.polite;
    this.pc = new RTCPeerConnection(options.configuration);
    this.remoteStream = new MediaStream();
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswerPending = false;
    this.closed = false;
    /** True once the transceivers exist and the layers are attached. */
    this.ready = false;

    /** @type {RTCRtpTransceiver|null} */
    this.audio = null;
    /** @type {RTCRtpTransceiver|null} */
    this.video = null;
    this.#listen();
    if (!this.polite) {
      const stream = options.localStream;
      const init = { direction: /** @type {const} */ ("sendrecv"), streams: [stream] };
      const audio = stream.getAudioTracks()[0];
      const video = stream.getVideoTracks()[0];
      this.audio = this.pc.addTransceiver(audio ?? "audio", init);
      this.video = this.pc.addTransceiver(video ?? "video", init);
      this.#setUp();
    }
  }

  /** Send our tracks on the transceivers the first offer created. */
  async #adoptOffer() {
    const stream = this.options.localStream;
    for (const transceiver of this.pc.getTransceivers()) {
      const kind = transceiver.receiver.track.kind;
      if (kind === "audio" && !this.audio) this.audio = transceiver;
      else if (kind === "video" && !this.video) this.video = transceiver;
    }
    // Layers first: no frame may leave before the encryption is in place.
    this.#setUp();
    for (const transceiver of [this.audio, this.video]) {
      if (!transceiver) continue;
      const kind = transceiver.receiver.track.kind;
      const track = kind === "audio" ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
      transceiver.direction = "sendrecv";
      if (track) {
        await transceiver.sender.replaceTrack(track);
        transceiver.sender.setStreams(stream);
      }
    }
  }

  #setUp() {
    this.#preferAudio();
    this.options.onsetup?.(this.pc);
    this.ready = true;
  }

  /** Apply a description or candidate from the other side. */
  async handleSignal(/** @type {any} */ { description, candidate }) {
    const pc = this.pc;
    if (this.closed) return;
    try {
      if (description) {
        // An offer collides if we are making one or are not stable.
        const readyForOffer =
          !this.makingOffer &&
          (pc.signalingState === "stable" || this.settingRemoteAnswerPending);
        const collision = description.type === "offer" && !readyForOffer;
        this.ignoreOffer = !this.polite && collision;
        if (this.ignoreOffer) return;
        this.settingRemoteAnswerPending = description.type === "answer";
        await pc.setRemoteDescription(description);
        this.settingRemoteAnswerPending = false;
        if (description.type === "offer" && !this.ready) await this.#adoptOffer();
        if (description.type === "offer") {
          await pc.setLocalDescription();
          this.options.sendSignal({ description: pc.localDescription?.toJSON() });
        }
      } else if (candidate !== undefined) {
        try {
          await pc.addIceCandidate(candidate ?? undefined);
        } catch (error) {
          if (!this.ignoreOffer) throw error;
        }
      }
    } catch (error) {
      console.warn("negotiation:", error instanceof Error ? error.name : error);
    }
  }

  /** Restart ICE, with a new configuration (fresh TURN credentials). */
  restartIce(/** @type {RTCConfiguration|undefined} */ configuration) {
    if (this.closed) return;
    if (configuration) this.pc.setConfiguration(configuration);
    this.pc.restartIce();
  }

  /**
   * Send the offer that is still waiting for an answer once more, as the
   * other side may have missed it while its signaling was down. False if
   * no offer is waiting.
   */
  resendOffer() {
    const offer = this.pc.localDescription;
    if (this.closed || this.pc.signalingState !== "have-local-offer" || !offer) {
      return false;
    }
    this.options.sendSignal({ description: offer.toJSON() });
    return true;
  }

  /**
   * Send this camera track, or none. The direction changes with it, so the
   * other side learns by renegotiation that the camera is off.
   */
  async setVideoTrack(/** @type {MediaStreamTrack|null} */ track) {
    if (!this.video) return;
    await this.video.sender.replaceTrack(track);
    this.video.direction = track ? "sendrecv" : "recvonly";
  }

  /** Counters a person would notice: frames decoded, audio arriving. */
  async stats() {
    const result = {
      framesDecoded: 0,
      framesSent: 0,
      audioPacketsReceived: 0,
      audioPacketsSent: 0,
      candidateType: /** @type {string|null} */ (null),
      remoteCandidateType: /** @type {string|null} */ (null),
      connectionState: this.pc.connectionState,
      iceConnectionState: this.pc.iceConnectionState,
      signalingState: this.pc.signalingState,
    };
    const report = await this.pc.getStats();
    /** @type {Map<string, any>} */
    const byId = new Map();
    report.forEach((entry) => byId.set(entry.id, entry));
    report.forEach((entry) => {
      if (entry.type === "inbound-rtp" && entry.kind === "video") {
        result.framesDecoded += entry.framesDecoded ?? 0;
      } else if (entry.type === "inbound-rtp" && entry.kind === "audio") {
        result.audioPacketsReceived += entry.packetsReceived ?? 0;
      } else if (entry.type === "outbound-rtp" && entry.kind === "video") {
        result.framesSent += entry.framesSent ?? 0;
      } else if (entry.type === "outbound-rtp" && entry.kind === "audio") {
        result.audioPacketsSent += entry.packetsSent ?? 0;
      } else if (entry.type === "transport" && entry.selectedCandidatePairId) {
        const pair = byId.get(entry.selectedCandidatePairId);
        result.candidateType = byId.get(pair?.localCandidateId)?.candidateType ?? null;
        result.remoteCandidateType =
          byId.get(pair?.remoteCandidateId)?.candidateType ?? null;
      }
    });
    return result;
  }

  close() {
    this.closed = true;
    this.pc.close();
  }

  #listen() {
    const pc = this.pc;
    pc.addEventListener("negotiationneeded", async () => {
      // The polite side answers the first offer rather than making one.
      if (!this.ready) return;
      try {
        this.makingOffer = true;
        await pc.setLocalDescription();
        this.options.sendSignal({ description: pc.localDescription?.toJSON() });
      } catch (error) {
        console.warn("offer:", error instanceof Error ? error.name : error);
      } finally {
        this.makingOffer = false;
      }
    });
    pc.addEventListener("icecandidate", ({ candidate }) => {
      this.options.sendSignal({ candidate: candidate ? candidate.toJSON() : null });
    });
    pc.addEventListener("track", ({ track }) => {
      this.remoteStream.addTrack(track);
      this.options.onremotestream?.(this.remoteStream);
    });
    pc.addEventListener("connectionstatechange", () => {
      this.options.onconnectionstate?.(pc.connectionState);
    });
  }

  /** Opus first and audio marked as the most important traffic. */
  #preferAudio() {
    if (!this.audio) return;
    const sender = this.audio.sender;
    const parameters = sender.getParameters();
    if (parameters.encodings && parameters.encodings.length) {
      parameters.encodings[0].priority = "high";
      parameters.encodings[0].networkPriority = "high";
      sender.setParameters(parameters).catch(() => {});
    }
  }
}
