// The booth's media: camera and microphone, answering the officer's offers, and playing the
// officer's voice and picture only while the booth is on air.
//
// The officer's console is the offerer (docs/protocol.md, "WebRTC set-up"). Each offer is
// answered on a fresh RTCPeerConnection (the old one is closed first), like the Python booth:
// that is how a failed link is rebuilt, since the console re-offers on failure. The answer is
// sent once ICE gathering is complete (the console, aiortc, does not trickle candidates).
// Supervisors' and recorders' offers (from "supervisor"/"recorder" with a peer id) get
// send-only answers, except that a barging supervisor's offer that sends audio is answered
// sendrecv on audio: that voice plays through its own gain, open only while booth_state says
// on air and supervisor_present, and only the voice of booth_state.barge_peer when the server
// names one (a supervisor that is not barging is never heard, whatever its offer sends).
// A recorder's answer carries, after the camera and microphone, what the claimant is played:
// the sound of the page's speaker (the officer behind its on-air gain mixed with a barging or
// resolving supervisor behind theirs, taken from WebAudio) and the officer's picture as
// received, only while they play. The two relay senders are negotiated once and switched with
// replaceTrack (the track while it plays, none otherwise), so going on or off air never
// renegotiates; a rebuilt officer link swaps in its new picture.
// A supervisor's offer has a second audio transceiver (docs/protocol.md, "Supervisors'
// media"): the booth sends on it the officer's voice as received (the remote track itself,
// not the WebAudio mix, so a barging supervisor never hears itself), only on air; switched
// the same way, and a rebuilt officer link swaps in its new voice.
// Every answer echoes its offer's `offer_id`. Only the latest offer from each peer (the
// officer, or one supervisor) is answered: one replaced by a newer offer while it was being
// answered is dropped and its peer connection closed.

const GATHER_TIMEOUT_MS = 5000;
// What a booth sends off air (booth_state.video "thumbnail", docs/protocol.md "Video tiers"):
// a tile's worth, a quarter of the camera's width at 5 frames a second.
const THUMBNAIL_SCALE = 4;
const THUMBNAIL_FPS = 5;
const MAX_SUPERVISOR_PEERS = 4;
const MAX_RECORDER_PEERS = 2; // as the Python booth (media/booth_answers.py)
// Receive-only peers named by the server: supervisors, and recorders (docs/protocol.md,
// "Recording": a recorder's four transceivers are audio, video of the booth, then audio,
// video of the officer as the booth received them, relayed on air only).
const RECEIVERS = ["supervisor", "recorder"];

// Audio processing (echo cancellation, noise suppression, auto gain) is on: a booth has a
// loudspeaker next to its microphone. `#audio=raw` at enrolment switches it off (for
// measurements, and for tests that check a known tone's level).
export function audioConstraints(raw) {
  const on = !raw;
  return { echoCancellation: on, noiseSuppression: on, autoGainControl: on };
}

// getUserMedia's error names → the device-check screen's variants.
export function classifyDeviceError(error) {
  const name = error?.name || "";
  if (!window.isSecureContext) return "insecure"; // http:// from another host: no camera API
  if (name === "NotFoundError" || name === "DevicesNotFoundError" || name === "OverconstrainedError") {
    return "no_camera";
  }
  if (name === "NotAllowedError" || name === "PermissionDeniedError" || name === "SecurityError") {
    return "denied";
  }
  if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") {
    return "busy";
  }
  return "other";
}

export async function openDevices(raw) {
  if (!navigator.mediaDevices?.getUserMedia) {
    const error = new Error("this browser cannot capture media here (https needed?)");
    error.name = "SecurityError";
    throw error;
  }
  return navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15 } },
    audio: audioConstraints(raw),
  });
}

// A level and tone meter on a stream, read on demand (no timers of its own).
export class Meter {
  constructor(ctx, node) {
    this.ctx = ctx;
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 4096;
    this.analyser.minDecibels = -120;
    this.analyser.maxDecibels = 0;
    this.analyser.smoothingTimeConstant = 0;
    node.connect(this.analyser);
    this.time = new Float32Array(this.analyser.fftSize);
    this.freq = new Float32Array(this.analyser.frequencyBinCount);
  }

  levelDb() {
    this.analyser.getFloatTimeDomainData(this.time);
    let sum = 0;
    for (const v of this.time) sum += v * v;
    const rms = Math.sqrt(sum / this.time.length);
    return rms > 0 ? Math.max(-120, 20 * Math.log10(rms)) : -120;
  }

  // The strongest frequency and the level (dB) of the spectrum near `hz`.
  tone(hz) {
    this.analyser.getFloatFrequencyData(this.freq);
    const binHz = this.ctx.sampleRate / this.analyser.fftSize;
    let peak = 0;
    for (let i = 1; i < this.freq.length; i++) if (this.freq[i] > this.freq[peak]) peak = i;
    const at = Math.round(hz / binHz);
    let near = -Infinity;
    for (let i = Math.max(0, at - 2); i <= Math.min(this.freq.length - 1, at + 2); i++) {
      near = Math.max(near, this.freq[i]);
    }
    return { peakHz: peak * binHz, peakDb: this.freq[peak], db: near };
  }

  disconnect() {
    this.analyser.disconnect();
  }
}

export class BoothMedia {
  // iceServers(): the latest welcome's `ice_servers` (STUN/TURN with short-lived TURN
  // credentials, already in RTCIceServer's shape); none on a LAN.
  constructor({ sendAnswer, onChange, officerVideo, officerAudio, iceServers = () => [] }) {
    this.sendAnswer = sendAnswer;
    this.iceServers = iceServers;
    this.onChange = onChange;
    this.officerVideo = officerVideo;
    this.officerAudio = officerAudio;
    this.stream = null;
    this.pc = null;
    this.pcState = "new";
    this.answered = 0;
    this.supervisors = new Map();
    this.supervisorRelays = new Map(); // supervisor peer -> the sender of the officer's voice
    // Recorders: peer -> { pc, relay: { audio: RTCRtpSender, video: RTCRtpSender } }.
    this.recorders = new Map();
    this.relaySenders = new WeakSet(); // the officer's media to recorders: no video tier
    this.officerTracks = { audio: null, video: null }; // as received from the officer's link
    this.heard = null; // WebAudio destination: what the speaker plays, for recorders
    this.recorderAnswers = 0; // answers sent to recorders (on/off air must not add any)
    this.latestOffer = new Map(); // peer ("" for the officer) -> offer_id of its latest offer
    this.superseded = 0;
    this.onAir = false;
    this.videoTier = "thumbnail"; // until the server says otherwise
    this.ctx = null;
    this.micMeter = null;
    this.remoteSource = null;
    this.gain = null;
    this.received = null;
    this.played = null;
    // A barging supervisor's voice (docs/protocol.md, "Coach and barge media").
    this.barging = false;
    this.bargeGain = null;
    this.bargeSource = null;
    this.bargeElement = null;
    this.bargeReceived = null;
    this.bargePlayed = null;
    this.bargeTracks = new Map(); // supervisor peer -> the audio track its offer sends
    this.bargeLatest = null; // the peer whose voice came last (no barge_peer from the server)
    this.bargePeer = undefined; // booth_state.barge_peer; undefined: the server names none
    this.bargeTrack = null; // the track wired to the barge gain
  }

  // The AudioContext plays the officer's voice through a gain that is open only on air.
  // Created at the first user gesture (or at once where autoplay is allowed, as in kiosk mode).
  audio() {
    if (!this.ctx) {
      this.ctx = new AudioContext({ sampleRate: 48000 });
      this.gain = this.ctx.createGain();
      this.gain.gain.value = this.onAir ? 1 : 0;
      this.gain.connect(this.ctx.destination);
      this.played = new Meter(this.ctx, this.gain);
      this.bargeGain = this.ctx.createGain();
      this.bargeGain.gain.value = this.barging ? 1 : 0;
      this.bargeGain.connect(this.ctx.destination);
      this.bargePlayed = new Meter(this.ctx, this.bargeGain);
      this.heard = this.ctx.createMediaStreamDestination();
      this.gain.connect(this.heard);
      this.bargeGain.connect(this.heard);
    }
    if (this.ctx.state === "suspended") this.ctx.resume().catch(() => {});
    return this.ctx;
  }

  get soundBlocked() {
    return !this.ctx || this.ctx.state !== "running";
  }

  setStream(stream) {
    this.stream = stream;
    this.micMeter?.disconnect();
    this.micMeter = null;
    const ctx = this.audio();
    if (stream.getAudioTracks().length) {
      this.micMeter = new Meter(ctx, ctx.createMediaStreamSource(stream));
    }
  }

  stopStream() {
    this.micMeter?.disconnect();
    this.micMeter = null;
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
  }

  setOnAir(onAir) {
    this.onAir = onAir;
    if (this.gain) this.gain.gain.setTargetAtTime(onAir ? 1 : 0, this.ctx.currentTime, 0.01);
    this.relayOfficer();
  }

  // What the claimant is played, to every recorder: the speaker's sound while the officer
  // or a supervisor plays, the officer's received picture on air; none otherwise.
  // replaceTrack only: the relay transceivers were negotiated sendonly at the answer.
  relayOfficer() {
    const playing = {
      audio: this.onAir || this.barging ? this.heard?.stream.getAudioTracks()[0] ?? null : null,
      video: this.onAir ? this.officerTracks.video : null,
    };
    for (const { relay } of this.recorders.values()) {
      for (const kind of ["audio", "video"]) {
        const sender = relay[kind];
        const track = playing[kind];
        if (sender && sender.track !== track) sender.replaceTrack(track).catch(() => {});
      }
    }
    // Supervisors: the officer alone, as received, on air only (never a barge's voice).
    const voice = this.onAir ? this.officerTracks.audio : null;
    for (const sender of this.supervisorRelays.values()) {
      if (sender.track !== voice) sender.replaceTrack(voice).catch(() => {});
    }
  }

  // A supervisor barges in (see view.js bargeOf): `peer` is booth_state.barge_peer (only that
  // supervisor's voice is heard), undefined when the server does not name one (any).
  setBarge(barging, peer = undefined) {
    this.barging = barging;
    this.bargePeer = peer;
    this.wireBarge();
    if (this.bargeGain) {
      this.bargeGain.gain.setTargetAtTime(barging ? 1 : 0, this.ctx.currentTime, 0.01);
    }
    this.relayOfficer(); // a resolver speaking with no officer on air is relayed too
  }

  // A supervisor's offer sent its voice: kept per peer, played only if it is the barging one.
  addBargeTrack(peer, track) {
    this.bargeTracks.set(peer, track);
    this.bargeLatest = peer;
    this.wireBarge();
  }

  dropBargeTrack(peer) {
    if (!this.bargeTracks.delete(peer)) return;
    if (this.bargeLatest === peer) this.bargeLatest = null;
    this.wireBarge();
  }

  // The barge gain is fed by the named peer's track (or, unnamed, the latest voice); nobody
  // else's. A change of peer rewires the source.
  wireBarge() {
    const peer = this.bargePeer === undefined ? this.bargeLatest : this.bargePeer;
    const track = (peer !== null && this.bargeTracks.get(peer)) || null;
    if (track === this.bargeTrack) return;
    this.bargeTrack = track;
    this.bargeSource?.disconnect();
    this.bargeReceived?.disconnect();
    this.bargeSource = null;
    this.bargeReceived = null;
    if (track) this.attachBarge(track);
    else if (this.bargeElement) this.bargeElement.srcObject = null;
  }

  attachBarge(track) {
    const stream = new MediaStream([track]);
    // As for the officer's voice: Chromium needs a (muted) element playing the remote stream.
    this.bargeElement = this.bargeElement ?? document.createElement("audio");
    this.bargeElement.srcObject = stream;
    this.bargeElement.muted = true;
    this.bargeElement.play().catch(() => {});
    const ctx = this.audio();
    this.bargeSource?.disconnect();
    this.bargeReceived?.disconnect();
    this.bargeSource = ctx.createMediaStreamSource(stream);
    this.bargeSource.connect(this.bargeGain);
    this.bargeReceived = new Meter(ctx, this.bargeSource);
  }

  // "full" or "thumbnail", as the server's booth_state says: every peer's video sender follows.
  setVideoTier(tier) {
    if (tier !== "full" && tier !== "thumbnail") return;
    this.videoTier = tier;
    const recorders = Array.from(this.recorders.values(), (r) => r.pc);
    for (const pc of [this.pc, ...this.supervisors.values(), ...recorders]) {
      if (pc) this.applyVideoTier(pc);
    }
  }

  // The booth's camera, to every peer (the officer's picture relayed to a recorder is not
  // the booth's to scale).
  applyVideoTier(pc) {
    const thumbnail = this.videoTier === "thumbnail";
    for (const sender of pc.getSenders()) {
      if (sender.track?.kind !== "video" || this.relaySenders.has(sender)) continue;
      const params = sender.getParameters();
      if (!params.encodings?.length) continue; // not negotiated yet: applied after the answer
      for (const encoding of params.encodings) {
        encoding.scaleResolutionDownBy = thumbnail ? THUMBNAIL_SCALE : 1;
        if (thumbnail) encoding.maxFramerate = THUMBNAIL_FPS;
        else delete encoding.maxFramerate;
      }
      sender.setParameters(params).catch(() => {});
    }
  }

  // Record an offer as its peer's latest, at once (before any await).
  noteOffer(message) {
    if (RECEIVERS.includes(message.from) && typeof message.peer === "string" && message.peer) {
      this.latestOffer.set(message.peer, message.offer_id ?? null);
    } else if (message.from === "officer" && !message.peer) {
      this.latestOffer.set("", message.offer_id ?? null);
    }
  }

  // Whether a newer offer from the same peer came in since `message`.
  isSuperseded(message, peer) {
    if (this.latestOffer.get(peer || "") === (message.offer_id ?? null)) return false;
    this.superseded += 1;
    return true;
  }

  async onOffer(message) {
    if (message.from === "recorder" && typeof message.peer === "string" && message.peer) {
      return this.answerRecorder(message);
    }
    if (RECEIVERS.includes(message.from) && typeof message.peer === "string" && message.peer) {
      return this.answerSupervisor(message);
    }
    if (message.from !== "officer" || message.peer) return;
    if (this.isSuperseded(message, null)) return;
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
    const pc = new RTCPeerConnection({ iceServers: this.iceServers() });
    this.pc = pc;
    this.pcState = "connecting";
    pc.ontrack = (event) => {
      if (pc !== this.pc) return;
      if (event.track.kind === "video") {
        this.officerVideo.srcObject = new MediaStream([event.track]);
        this.officerVideo.play().catch(() => {});
      } else {
        this.attachVoice(event.track);
      }
      this.officerTracks[event.track.kind] = event.track;
      this.relayOfficer(); // a rebuilt link: recorders get its picture (on air)
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      this.pcState = pc.connectionState;
      if (pc.connectionState === "failed") {
        // The console re-offers a failed link; the next offer gets a fresh connection.
        pc.close();
      }
      this.onChange?.();
    };
    await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
    this.attachLocal(pc, "sendrecv");
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    if (pc !== this.pc) return;
    if (this.isSuperseded(message, null)) {
      pc.close();
      this.pc = null;
      this.pcState = "new";
      return;
    }
    this.applyVideoTier(pc);
    await this.sendAnswer(message.visit, pc.localDescription.sdp, null, message.offer_id);
    this.answered += 1;
    this.onChange?.();
  }

  // The camera and microphone on the first transceiver of each kind (`skip`: one the caller
  // sets up itself).
  attachLocal(pc, direction, skip = null) {
    const tracks = {
      audio: this.stream?.getAudioTracks()[0] ?? null,
      video: this.stream?.getVideoTracks()[0] ?? null,
    };
    for (const transceiver of pc.getTransceivers()) {
      if (transceiver === skip) continue;
      const kind = transceiver.receiver.track.kind;
      const track = tracks[kind];
      tracks[kind] = null; // one track per kind
      if (track) {
        transceiver.sender.replaceTrack(track);
        transceiver.direction = direction;
      } else {
        transceiver.direction = direction === "sendonly" ? "inactive" : "recvonly";
      }
    }
  }

  attachVoice(track) {
    const stream = new MediaStream([track]);
    // Chromium only pulls a remote stream into WebAudio when a media element plays it too;
    // the element stays muted: what is heard goes through the on-air gain.
    this.officerAudio.srcObject = stream;
    this.officerAudio.muted = true;
    this.officerAudio.play().catch(() => {});
    const ctx = this.audio();
    this.remoteSource?.disconnect();
    this.received?.disconnect();
    this.remoteSource = ctx.createMediaStreamSource(stream);
    this.remoteSource.connect(this.gain);
    this.received = new Meter(ctx, this.remoteSource);
  }

  async answerSupervisor(message) {
    if (this.supervisors.has(message.peer)) this.dropSupervisor(message.peer); // a re-offer
    if (this.isSuperseded(message, message.peer)) return;
    if (this.supervisors.size >= MAX_SUPERVISOR_PEERS) return;
    const pc = new RTCPeerConnection({ iceServers: this.iceServers() });
    this.supervisors.set(message.peer, pc);
    let hears = false; // the offer sends the supervisor's voice: a barge
    pc.ontrack = (event) => {
      if (event.track.kind !== "audio" || this.supervisors.get(message.peer) !== pc) return;
      const audio = pc.getTransceivers().filter((t) => t.receiver.track.kind === "audio");
      if (audio.indexOf(event.transceiver) > 0) return; // the officer's relay: never a voice
      hears = true;
      this.addBargeTrack(message.peer, event.track);
    };
    pc.onconnectionstatechange = () => {
      if (["failed", "closed"].includes(pc.connectionState)
          && this.supervisors.get(message.peer) === pc) {
        this.dropSupervisor(message.peer);
      }
    };
    await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
    // The second audio transceiver, if the offer has one, carries the officer's voice.
    const audio = pc.getTransceivers().filter((t) => t.receiver.track.kind === "audio");
    const relay = audio.length > 1 ? audio[1] : null;
    this.attachLocal(pc, "sendonly", relay);
    if (hears) {
      for (const transceiver of pc.getTransceivers()) {
        if (transceiver.receiver.track.kind !== "audio" || transceiver === relay) continue;
        transceiver.direction = transceiver.sender.track ? "sendrecv" : "recvonly";
      }
    }
    if (relay) {
      // Always sendonly: on and off air is replaceTrack, never a new negotiation.
      relay.direction = "sendonly";
      this.relaySenders.add(relay.sender);
    }
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    if (this.supervisors.get(message.peer) !== pc || this.isSuperseded(message, message.peer)) {
      if (this.supervisors.get(message.peer) === pc) this.supervisors.delete(message.peer);
      pc.close();
      return;
    }
    if (relay) this.supervisorRelays.set(message.peer, relay.sender);
    this.relayOfficer();
    this.applyVideoTier(pc);
    await this.sendAnswer(message.visit, pc.localDescription.sdp, message.peer, message.offer_id);
  }

  dropSupervisor(peer) {
    this.supervisors.get(peer)?.close();
    this.supervisors.delete(peer);
    this.supervisorRelays.delete(peer);
    this.dropBargeTrack(peer);
  }

  dropRecorder(peer) {
    this.recorders.get(peer)?.pc.close();
    this.recorders.delete(peer);
  }

  // peer_left: that supervisor's or recorder's connection closed; so does its peer here.
  onPeerLeft(peer) {
    this.latestOffer.delete(peer);
    this.dropSupervisor(peer);
    this.dropRecorder(peer);
  }

  // A recorder: camera and microphone, then what the claimant is played (relayOfficer).
  // Takes nothing from the recorder.
  async answerRecorder(message) {
    const peer = message.peer;
    this.dropRecorder(peer); // a relink replaces the old connection
    if (this.isSuperseded(message, peer)) return;
    if (this.recorders.size >= MAX_RECORDER_PEERS) return;
    const pc = new RTCPeerConnection({ iceServers: this.iceServers(), bundlePolicy: "max-bundle" });
    const entry = { pc, relay: { audio: null, video: null } };
    this.audio(); // the speaker's sound exists before it is relayed
    this.recorders.set(peer, entry);
    pc.onconnectionstatechange = () => {
      if (["failed", "closed"].includes(pc.connectionState)
          && this.recorders.get(peer) === entry) {
        this.dropRecorder(peer);
      }
    };
    await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
    const own = {
      audio: this.stream?.getAudioTracks()[0] ?? null,
      video: this.stream?.getVideoTracks()[0] ?? null,
    };
    const seen = { audio: 0, video: 0 };
    for (const transceiver of pc.getTransceivers()) {
      const kind = transceiver.receiver.track.kind;
      const index = seen[kind]++;
      if (index === 0 && own[kind]) {
        transceiver.sender.replaceTrack(own[kind]);
        transceiver.direction = "sendonly";
      } else if (index === 1) {
        // Always sendonly: on and off air is replaceTrack, never a new negotiation.
        entry.relay[kind] = transceiver.sender;
        this.relaySenders.add(transceiver.sender);
        transceiver.direction = "sendonly";
      } else {
        transceiver.direction = "inactive";
      }
    }
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    if (this.recorders.get(peer) !== entry || this.isSuperseded(message, peer)) {
      if (this.recorders.get(peer) === entry) this.recorders.delete(peer);
      pc.close();
      return;
    }
    this.applyVideoTier(pc);
    this.relayOfficer();
    await this.sendAnswer(message.visit, pc.localDescription.sdp, peer, message.offer_id);
    this.recorderAnswers += 1;
  }

  closePeers() {
    this.pc?.close();
    this.pc = null;
    this.pcState = "new";
    for (const peer of [...this.supervisors.keys()]) this.dropSupervisor(peer);
    for (const peer of [...this.recorders.keys()]) this.dropRecorder(peer);
    this.officerTracks = { audio: null, video: null };
    this.latestOffer.clear();
    this.officerVideo.srcObject = null;
    this.bargeTracks.clear();
    this.bargeLatest = null;
    this.wireBarge();
  }

  // What the page shows and plays, for the status line and for tests (no secrets here).
  diagnostics(hz) {
    const video = this.officerVideo;
    const quality = video.getVideoPlaybackQuality?.();
    return {
      pcState: this.pcState,
      answered: this.answered,
      supervisors: this.supervisors.size,
      recorders: this.recorders.size,
      recorderAnswers: this.recorderAnswers,
      // What each recorder is sent of the officer now: kinds with a track on its relay sender.
      relaying: Array.from(this.recorders.values(), ({ relay }) =>
        ["audio", "video"].filter((kind) => relay[kind]?.track)),
      // Supervisors sent the officer's voice now (of those whose offer asks for it).
      supervisorsHearing: Array.from(this.supervisorRelays.values()).filter((s) => s.track)
        .length,
      supervisorRelays: this.supervisorRelays.size,
      bargeVoices: this.bargeTracks.size, // supervisors whose offers send a voice
      bargePeer: this.bargeTrack
        ? Array.from(this.bargeTracks).find(([, track]) => track === this.bargeTrack)[0]
        : null,
      superseded: this.superseded,
      videoTier: this.videoTier,
      audioContext: this.ctx?.state ?? "none",
      micDb: this.micMeter?.levelDb() ?? null,
      micTone: this.micMeter?.tone(hz.mic) ?? null,
      received: this.received?.tone(hz.officer) ?? null,
      played: this.played?.tone(hz.officer) ?? null,
      barging: this.barging,
      bargeReceived: this.bargeReceived?.tone(hz.supervisor) ?? null,
      bargePlayed: this.bargePlayed?.tone(hz.supervisor) ?? null,
      officerVideo: {
        width: video.videoWidth,
        height: video.videoHeight,
        frames: quality?.totalVideoFrames ?? 0,
      },
    };
  }
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, GATHER_TIMEOUT_MS);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}
