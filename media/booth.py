"""The booth agent: one kiosk's signalling session and its media peers.

It says hello with its booth token, starts (or resumes) a visit, answers the officer's offers
with its camera and microphone (real devices when asked for and present, else the synthetic
test card and tone, clearly logged), and plays what the officer sends only while on air. It
never decides anything: the server's ``booth_state`` says whether it is queued, at a desk or on
air. Supervisors' offers are answered too, on their own peer connections, but only when the
server relayed them as such (``from: "supervisor"`` with a ``peer``), and send-only: the booth
takes nothing from a supervisor.

Every answer echoes the ``offer_id`` of the offer it answers. Offers from one peer (the officer,
or one supervisor) are answered in order, and an offer that a newer one from the same peer has
replaced is dropped, its peer connection closed: only the latest offer gets an answer.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole
from aiortc.mediastreams import MediaStreamError

from lapak.media.audio_out import AudioSink, open_sink
from lapak.media.audio_tracks import AudioProbe, SourceAudioTrack
from lapak.media.booth_status import BoothScreen, booth_screen
from lapak.media.peer import cancel_tasks, close_peers, new_peer_connection
from lapak.media.testcard import TestCardTrack
from lapak.media.tones import OFFICER_FREQUENCY, ToneBurstSource, booth_frequency, to_mono
from lapak.media.video_tracks import Fanout, FanoutTrack
from lapak.signaling.client import SignalClient

log = logging.getLogger("lapak.booth")

MAX_SUPERVISOR_PEERS = 4
CONNECT_BACKOFF_S = (0.5, 10.0)
"""First and longest wait between attempts to reach a server that is not up yet."""


@dataclass
class BoothMediaConfig:
    """Video size and rate, and the devices: None means the synthetic source.

    ``camera``/``mic``: a capture device (see ``media.devices``); ``source``: a recording played
    as camera and microphone; ``speaker``: ``none``, ``device``/a name, or a ``.wav`` path.
    """

    width: int = 640
    height: int = 480
    fps: int = 15
    camera: str | None = None
    mic: str | None = None
    source: str | None = None
    speaker: str = "none"


@dataclass
class ClaimantInfo:
    name: str
    membership_no: str
    claim_type: str = "JHT"


@dataclass
class BoothAgent:
    """One booth speaking the real protocol, with real or synthetic media."""

    url: str
    token: str
    name: str
    index: int
    claimant: ClaimantInfo
    media: BoothMediaConfig = field(default_factory=BoothMediaConfig)
    on_change: Callable[[BoothAgent], None] | None = None

    def __post_init__(self) -> None:
        self.client = SignalClient(self.url, self.token, self._on_message)
        self.visit: str | None = None
        self.status: dict[str, Any] = {}
        self.officer_audio = AudioProbe([OFFICER_FREQUENCY])
        """Everything the officer's audio track delivers (on air or not)."""
        self.played_audio = AudioProbe([OFFICER_FREQUENCY])
        """What the booth plays to the claimant: the officer's audio, only while on air."""
        self.officer_frame: av.VideoFrame | None = None
        self.officer_frames_shown = 0
        self.officer_frame_at: float | None = None
        self.offers_answered = 0
        self.offers_refused = 0
        self.supervisor_peers: dict[str, RTCPeerConnection] = {}
        self.screen: BoothScreen = booth_screen({}, False)
        self._pc: RTCPeerConnection | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sinks: list[MediaBlackhole] = []
        self._speaker: AudioSink | None = None
        self._video: Fanout | None = None
        self._mic: Fanout | None = None
        self._sources_ready = False
        self._answering = asyncio.Lock()  # offers are answered one at a time, in order
        self._latest_offer: dict[str, str | None] = {}
        """The latest offer's ``offer_id`` per peer ("" for the officer, else the supervisor's
        peer): an offer that is not the latest when its turn comes is dropped."""
        self.offers_superseded = 0

    # -- state --------------------------------------------------------------------------------

    @property
    def on_air(self) -> bool:
        return bool(self.status.get("on_air"))

    @property
    def media_connected(self) -> bool:
        return self._pc is not None and self._pc.connectionState == "connected"

    @property
    def state(self) -> str:
        """The claimant's screen: starting, queued, waiting_officer, connected, on_air,
        finished (see ``media.booth_status``)."""
        return self.screen.state

    def hears_officer(self, within: float = 0.5) -> bool:
        """Whether the booth played the officer's tone in the last ``within`` seconds."""
        return self.played_audio.heard_within(OFFICER_FREQUENCY, within)

    def _refresh_screen(self) -> None:
        screen = booth_screen(self.status, self.media_connected)
        if screen != self.screen:
            self.screen = screen
            log.info(
                "event=booth_screen booth=%s visit=%s state=%s position=%s",
                self.name,
                self.status.get("visit"),
                screen.state,
                self.status.get("position"),
            )
            if self.on_change is not None:
                self.on_change(self)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, *, retry: bool = False) -> str:
        """Connect, say hello and start (or resume) the visit; returns its id.

        ``retry``: a server that cannot be reached yet (a booth PC that boots before it) is
        tried again with back-off until it answers. A refused token, or a certificate that is
        not trusted, is never retried: it raises.
        """
        self._open_sources()
        await self._connect(retry)
        answer = await self.client.request(
            {
                "type": "start_visit",
                "claimant": {
                    "name": self.claimant.name,
                    "membership_no": self.claimant.membership_no,
                    "claim_type": self.claimant.claim_type,
                },
            }
        )
        self.visit = answer["visit"]
        log.info("event=visit_started booth=%s visit=%s", self.name, self.visit)
        return self.visit

    async def _connect(self, retry: bool) -> None:
        delay, ceiling = CONNECT_BACKOFF_S
        while True:
            try:
                await self.client.connect()
                return
            except ssl.SSLError:
                raise  # a certificate problem does not heal by waiting
            except (OSError, TimeoutError) as exc:
                if not retry:
                    raise
                log.warning(
                    "event=server_unreachable booth=%s url=%s retry_in_s=%.1f reason=%r",
                    self.name, self.url, delay, str(exc) or type(exc).__name__,
                )  # fmt: skip
            await self.client.close()
            self.client = SignalClient(self.url, self.token, self._on_message)
            await asyncio.sleep(delay)
            delay = min(delay * 2, ceiling)

    async def close(self) -> None:
        await cancel_tasks(self._tasks)
        peers = list(self.supervisor_peers.values())
        self.supervisor_peers.clear()
        if self._pc is not None:
            peers.append(self._pc)
            self._pc = None
        await close_peers(peers)
        for sink in self._sinks:
            await sink.stop()
        self._sinks.clear()
        for fanout in (self._video, self._mic):
            if fanout is not None:
                await fanout.close()
        self._video = self._mic = None
        if self._speaker is not None:
            await asyncio.to_thread(self._speaker.close)
            self._speaker = None
        await self.client.close()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- sources ------------------------------------------------------------------------------

    def _open_sources(self) -> None:
        """Open devices once; any that is missing falls back to the synthetic one, logged."""
        if self._sources_ready:
            return
        self._sources_ready = True
        from lapak.media.devices import open_camera, open_microphone, open_recording

        cfg = self.media
        camera = mic = None
        if cfg.source:
            camera = open_recording(cfg.source, "video")
            mic = open_recording(cfg.source, "audio")
        if cfg.camera and camera is None:
            camera = open_camera(cfg.camera, cfg.width, cfg.height, cfg.fps)
        if cfg.mic and cfg.mic != "none" and mic is None:
            mic = open_microphone(cfg.mic)
        if camera is None:
            if cfg.camera or cfg.source:
                log.warning("event=fallback booth=%s kind=video source=test_card", self.name)
            track: MediaStreamTrack = TestCardTrack(
                self.name, self.index, width=cfg.width, height=cfg.height, fps=cfg.fps
            )
        else:
            track = camera.track
        self._video = Fanout(track, depth=2)
        self._video.start()
        if mic is not None:
            self._mic = Fanout(mic.track, depth=8)
            self._mic.start()
        elif cfg.mic == "none":
            log.info("event=no_microphone booth=%s", self.name)
        elif cfg.mic or cfg.source:
            log.warning("event=fallback booth=%s kind=audio source=tone", self.name)
        self._speaker = open_sink(cfg.speaker, who=f"booth:{self.name}")

    def _camera_track(self) -> MediaStreamTrack:
        assert self._video is not None
        return FanoutTrack(self._video)

    def _mic_track(self) -> MediaStreamTrack | None:
        if self._mic is not None:
            return FanoutTrack(self._mic)
        if self.media.mic == "none":
            return None
        return SourceAudioTrack(ToneBurstSource(booth_frequency(self.index)))

    # -- signalling ---------------------------------------------------------------------------

    async def _on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "booth_state":
            self.status = message
            if not self.on_air:
                self.officer_frame = None  # off air: the waiting screen, never the officer
            self._refresh_screen()
        elif kind == "peer_left":
            self._latest_offer.pop(str(message.get("peer")), None)
            pc = self.supervisor_peers.pop(str(message.get("peer")), None)
            if pc is not None:
                log.info("event=supervisor_left booth=%s peer=%s", self.name, message.get("peer"))
                self._spawn(close_peers([pc]), f"sup-close-{self.name}")
        elif kind == "sdp" and message.get("sdp_type") == "offer":
            sender = message.get("from")
            peer = message.get("peer")
            if sender == "officer" and not peer:
                self._latest_offer[""] = message.get("offer_id")
                self._spawn(self._answer_officer(message), f"answer-{self.name}")
            elif sender == "supervisor" and isinstance(peer, str) and peer:
                self._latest_offer[peer] = message.get("offer_id")
                self._spawn(self._answer_supervisor(message, peer), f"sup-{self.name}-{peer}")
            else:
                self.offers_refused += 1
                log.warning("event=offer_refused booth=%s from=%s peer=%s", self.name, sender, peer)

    def _superseded(self, message: dict[str, Any], peer: str | None) -> bool:
        """Whether a newer offer from the same peer has arrived since ``message``."""
        latest = self._latest_offer.get(peer or "")
        if latest == message.get("offer_id"):
            return False
        self.offers_superseded += 1
        log.info(
            "event=offer_superseded booth=%s peer=%s offer_id=%s latest=%s",
            self.name, peer, message.get("offer_id"), latest,
        )  # fmt: skip
        return True

    async def _send_answer(
        self, pc: RTCPeerConnection, message: dict[str, Any], peer: str | None
    ) -> bool:
        """Answer ``message`` on ``pc``, echoing its ``offer_id``; False (nothing sent) when a
        newer offer from the same peer came in while the answer was being gathered."""
        await pc.setLocalDescription(await pc.createAnswer())
        if self._superseded(message, peer):
            return False
        local = pc.localDescription
        answer: dict[str, Any] = {
            "type": "sdp",
            "visit": message["visit"],
            "sdp_type": local.type,
            "sdp": local.sdp,
        }
        if message.get("offer_id") is not None:
            answer["offer_id"] = message["offer_id"]
        if peer is not None:
            answer["peer"] = peer
        await self.client.send(answer)
        return True

    async def _answer_officer(self, message: dict[str, Any]) -> None:
        """Answer with a fresh peer; an old one (a rebuilt link) is closed first."""
        async with self._answering:
            try:
                await self._answer_officer_now(message)
            except Exception as exc:  # a bad offer or a peer closed under us: wait for the next
                log.warning("event=answer_failed booth=%s reason=%r", self.name, str(exc))

    async def _answer_officer_now(self, message: dict[str, Any]) -> None:
        if self._pc is not None:
            old, self._pc = self._pc, None
            await close_peers([old])
        if self._superseded(message, None):
            return
        pc = new_peer_connection()
        self._pc = pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._spawn(self._play_officer_audio(track), f"officer-audio-{self.name}")
            else:
                self._spawn(self._show_officer_video(track), f"officer-video-{self.name}")

        @pc.on("connectionstatechange")
        def on_state() -> None:
            log.info("event=media_state booth=%s state=%s", self.name, pc.connectionState)
            self._refresh_screen()

        await pc.setRemoteDescription(
            RTCSessionDescription(sdp=message["sdp"], type=message["sdp_type"])
        )
        pc.addTrack(self._camera_track())
        mic = self._mic_track()
        if mic is not None:
            pc.addTrack(mic)
        if not await self._send_answer(pc, message, None):
            if self._pc is pc:
                self._pc = None
            await close_peers([pc])
            return
        self.offers_answered += 1
        log.info("event=answered booth=%s visit=%s", self.name, message["visit"])

    async def _answer_supervisor(self, message: dict[str, Any], peer: str) -> None:
        """A watching supervisor: send camera and microphone, take nothing, keep it bounded."""
        async with self._answering:
            try:
                await self._answer_supervisor_now(message, peer)
            except Exception as exc:
                log.warning(
                    "event=answer_failed booth=%s peer=%s reason=%r", self.name, peer, str(exc)
                )

    async def _answer_supervisor_now(self, message: dict[str, Any], peer: str) -> None:
        old = self.supervisor_peers.pop(peer, None)
        if old is not None:
            await close_peers([old])
        if self._superseded(message, peer):
            return
        if len(self.supervisor_peers) >= MAX_SUPERVISOR_PEERS:
            log.warning(
                "event=supervisor_refused booth=%s peer=%s reason=too_many", self.name, peer
            )
            self.offers_refused += 1
            return
        pc = new_peer_connection()
        self.supervisor_peers[peer] = pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            sink = MediaBlackhole()  # a supervisor sends nothing; drain anything that comes
            sink.addTrack(track)
            self._sinks.append(sink)
            self._spawn(sink.start(), f"sup-drain-{self.name}")

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed") and self.supervisor_peers.get(peer) is pc:
                del self.supervisor_peers[peer]
                await close_peers([pc])

        await pc.setRemoteDescription(
            RTCSessionDescription(sdp=message["sdp"], type=message["sdp_type"])
        )
        tracks: dict[str, MediaStreamTrack | None] = {
            "video": self._camera_track(),
            "audio": self._mic_track(),
        }
        for transceiver in pc.getTransceivers():
            track = tracks.pop(transceiver.kind, None)
            if track is not None:
                transceiver.sender.replaceTrack(track)
            transceiver.direction = "sendonly" if track is not None else "inactive"
        if not await self._send_answer(pc, message, peer):
            if self.supervisor_peers.get(peer) is pc:
                del self.supervisor_peers[peer]
            await close_peers([pc])
            return
        log.info("event=answered_supervisor booth=%s peer=%s", self.name, peer)

    # -- what the claimant sees and hears -----------------------------------------------------

    async def _play_officer_audio(self, track: MediaStreamTrack) -> None:
        """Drain the officer's audio; play it (probe + speaker) only while on air."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            self.officer_audio.feed(frame)
            if self.on_air:
                self.played_audio.feed(frame)
                if self._speaker is not None:
                    self._speaker.write(to_mono(frame))
            elif self._speaker is not None:
                self._speaker.write(np.zeros(frame.samples, dtype=np.float32))

    async def _show_officer_video(self, track: MediaStreamTrack) -> None:
        """Drain the officer's picture; keep the newest frame only while on air."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if self.on_air and isinstance(frame, av.VideoFrame):
                self.officer_frame = frame
                self.officer_frames_shown += 1
                self.officer_frame_at = time.monotonic()
