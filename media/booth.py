"""The booth agent: one kiosk's signalling session and its media peers.

It says hello with its booth token, starts (or resumes) a visit, opens its camera and
microphone (real devices when asked for and present, else the synthetic test card and tone,
clearly logged), and plays what the officer sends only while on air. It never decides
anything: the server's ``booth_state`` says whether it is queued, at a desk or on air.
Answering offers (the officer's, supervisors') is ``media.booth_answers``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack

from lapak.media.audio_out import AudioSink, open_sink
from lapak.media.audio_tracks import AudioProbe, SourceAudioTrack
from lapak.media.booth_answers import OfferAnswerer
from lapak.media.booth_status import BoothScreen, booth_screen, recording_notice_shown
from lapak.media.peer import cancel_tasks
from lapak.media.supervisor_voice import BargeAudio, supervisor_barging
from lapak.media.testcard import TestCardTrack
from lapak.media.tones import (
    OFFICER_FREQUENCY,
    SAMPLE_RATE,
    ToneBurstSource,
    booth_frequency,
    to_mono,
)
from lapak.media.track_frames import track_frames
from lapak.media.video_tier import TieredVideoTrack
from lapak.media.video_tracks import Fanout, FanoutTrack
from lapak.signaling.client import Backoff, SignalClient
from lapak.signaling.messages import (
    BoothState,
    IceServer,
    PeerLeft,
    SdpRelay,
    ServerMessage,
    VideoTier,
)
from lapak.signaling.protocol import Claimant, ClientMessage, RecordingNoticeShown, StartVisit

log = logging.getLogger("lapak.booth")

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
    entries: Sequence[str] = ()
    """A cluster's other nodes: tried when the one in use is down."""

    def __post_init__(self) -> None:
        first, cap = CONNECT_BACKOFF_S
        self.client = SignalClient(
            self.url,
            self.token,
            self._on_message,
            policy=Backoff(first=first, cap=cap),
            entries=self.entries,
        )
        self.visit: str | None = None
        self.status: BoothState | None = None
        self.officer_audio = AudioProbe([OFFICER_FREQUENCY])
        """Everything the officer's audio track delivers (on air or not)."""
        self.played_audio = AudioProbe([OFFICER_FREQUENCY])
        """What the booth plays to the claimant: the officer's audio, only while on air."""
        self.officer_frame: av.VideoFrame | None = None
        self.officer_frames_shown = 0
        self.officer_frame_at: float | None = None
        self.peers = OfferAnswerer(
            self.name,
            self._send,
            self._camera_track,
            self._mic_track,
            self._on_officer_track,
            self._refresh_screen,
            self._ice_servers,
            self._on_supervisor_audio,
            on_air=lambda: self.on_air,  # recorders get the officer as played here
        )
        self.barge = BargeAudio(
            self._barge_allowed, alone=lambda: not self.on_air, play_alone=self._play_voice
        )
        """A barging (or resolving) supervisor's voice: heard only while the booth_state
        names it; off air (an escalated visit) it is played as it arrives."""
        self.notice_logged: set[str] = set()  # visits whose recording notice the server logged
        self.screen: BoothScreen = booth_screen(None, False)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._speaker: AudioSink | None = None
        self._video: Fanout | None = None
        self._mic: Fanout | None = None
        self._sources_ready = False

    # -- state --------------------------------------------------------------------------------

    def _ice_servers(self) -> list[IceServer]:
        """The STUN/TURN servers of the latest welcome (fresh TURN credentials after each)."""
        welcome = self.client.welcome
        return welcome.ice_servers if welcome is not None else []

    @property
    def on_air(self) -> bool:
        return self.status is not None and self.status.on_air

    @property
    def video_tier(self) -> VideoTier:
        """What the server asks this booth to send; a thumbnail until it says otherwise."""
        return self.status.video if self.status is not None else "thumbnail"

    @property
    def media_connected(self) -> bool:
        return self.peers.media_connected

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
                self.visit,
                screen.state,
                self.status.position if self.status is not None else None,
            )
            if self.on_change is not None:
                self.on_change(self)
        self._log_recording_notice()

    def _log_recording_notice(self) -> None:
        """Once the screen says "this visit is recorded", tell the server (once per visit)."""
        visit = self.status.visit if self.status is not None else None
        if visit is None or visit in self.notice_logged or not recording_notice_shown(self.screen):
            return
        self.notice_logged.add(visit)
        self._spawn(self._send_notice(visit), f"notice-{self.name}")

    async def _send_notice(self, visit: str) -> None:
        try:
            await self.client.request(RecordingNoticeShown(visit=visit))
            log.info("event=recording_notice_shown booth=%s visit=%s", self.name, visit)
        except Exception as exc:  # not connected: shown again on the next booth_state
            self.notice_logged.discard(visit)
            log.warning("event=recording_notice_failed booth=%s reason=%r", self.name, str(exc))

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, *, retry: bool = False) -> str:
        """Connect, say hello and start (or resume) the visit; returns its id.

        ``retry``: a server that cannot be reached yet (a booth PC that boots before it) is
        tried again with back-off until it answers. A refused token, or a certificate that is
        not trusted, is never retried: it raises.
        """
        self._open_sources()
        await self.client.connect(retry=retry)
        claimant = Claimant(
            name=self.claimant.name,
            membership_no=self.claimant.membership_no,
            claim_type=self.claimant.claim_type,
        )
        answer = await self.client.request(StartVisit(claimant=claimant))
        assert isinstance(answer.visit, str), "the ack to start_visit names the visit"
        self.visit = answer.visit
        log.info("event=visit_started booth=%s visit=%s", self.name, self.visit)
        return self.visit

    async def close(self) -> None:
        await cancel_tasks(self._tasks)
        await self.peers.close()
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
        return TieredVideoTrack(FanoutTrack(self._video), lambda: self.video_tier)

    def _mic_track(self) -> MediaStreamTrack | None:
        if self._mic is not None:
            return FanoutTrack(self._mic)
        if self.media.mic == "none":
            return None
        return SourceAudioTrack(ToneBurstSource(booth_frequency(self.index)))

    # -- signalling ---------------------------------------------------------------------------

    async def _send(self, message: ClientMessage) -> None:
        await self.client.send(message)

    async def _on_message(self, message: ServerMessage) -> None:
        if isinstance(message, BoothState):
            self.status = message
            if not self.on_air:
                self.officer_frame = None  # off air: the waiting screen, never the officer
            self._refresh_screen()
        elif isinstance(message, PeerLeft):
            self.peers.on_peer_left(message)
        elif isinstance(message, SdpRelay) and message.sdp_type == "offer":
            self.peers.on_offer(message)

    def _barge_allowed(self, peer: str) -> bool:
        """Whether the server says this supervisor barges in on this booth now."""
        status = self.status
        return status is not None and supervisor_barging(status, peer)

    def _on_supervisor_audio(self, peer: str, track: MediaStreamTrack) -> None:
        self._spawn(self.barge.run(peer, track), f"barge-audio-{self.name}-{peer}")

    def _on_officer_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._spawn(self._play_officer_audio(track), f"officer-audio-{self.name}")
        else:
            self._spawn(self._show_officer_video(track), f"officer-video-{self.name}")

    # -- what the claimant sees and hears -----------------------------------------------------

    async def _play_officer_audio(self, track: MediaStreamTrack) -> None:
        """Drain the officer's audio; play it (probe + speaker) only while on air, with a
        barging supervisor's voice mixed in; what is played goes to recorders too."""
        async for frame in track_frames(track, av.AudioFrame):
            self.officer_audio.feed(frame)
            if self.on_air:
                self.played_audio.feed(frame)
                played = self.barge.mix_into(to_mono(frame))
                if self._speaker is not None:
                    self._speaker.write(played)
                if self.peers.relay is not None:
                    self.peers.relay.publish_heard(played, frame.sample_rate or SAMPLE_RATE)
            elif self._speaker is not None and not self.barge.speaking():
                self._speaker.write(np.zeros(frame.samples, dtype=np.float32))

    def _play_voice(self, mono: np.ndarray, rate: int) -> None:
        """A supervisor's voice with no officer on air (the resolver of an escalated visit):
        played as it arrives, and relayed to recorders as what the claimant heard."""
        if self._speaker is not None:
            self._speaker.write(mono)
        if self.peers.relay is not None:
            self.peers.relay.publish_heard(mono, rate)

    async def _show_officer_video(self, track: MediaStreamTrack) -> None:
        """Drain the officer's picture; keep the newest frame only while on air."""
        async for frame in track_frames(track, av.VideoFrame):
            if self.on_air:
                self.officer_frame = frame
                self.officer_frames_shown += 1
                self.officer_frame_at = time.monotonic()
