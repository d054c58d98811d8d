"""The officer's media engine (and the supervisor's receive-only one): a peer per booth.

The console drives it from desk state: ``ensure(visit)`` when a visit takes a slot,
``drop(visit)`` when it leaves, ``set_on_air(visit)`` on the server's focus event. Each
``BoothLink`` keeps only the latest decoded video frame (the console paints what is newest and
never queues), measures the booth's audio, and carries the officer's voice and picture through
gates open only for the on-air booth, so focus moves without renegotiating.

The engine owns recovery: a link whose peer connection fails, that stops delivering frames for
``stall_s``, or whose offer goes unanswered, is rebuilt with a fresh peer connection (aiortc has
no ICE restart); its ``state`` reads ``reconnecting`` meanwhile and the other links are never
touched. It also samples ``getStats`` once a second into ``BoothLink.stats``.

Every offer carries a fresh ``offer_id`` and only the answer echoing the link's latest one is
applied (docs/protocol.md): an answer to an older offer is dropped by rule. A link is offered
once at a time (``BoothLink.offering``), and its no-answer clock starts when its offer is made,
so the watcher never rebuilds a link whose first offer is still being gathered. An offer the
server refuses with ``not_connected`` marks the booth away: no re-offers until the console says
it is back (``set_booth_present``, from the visit view's ``booth_present``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from lapak.media.audio_out import AudioMixer, AudioSink, open_sink
from lapak.media.audio_tracks import AudioProbe, GatedAudioTrack
from lapak.media.links import Counters, LinkStats, counters_from_report, link_stats
from lapak.media.peer import cancel_tasks, close_peers, new_peer_connection
from lapak.media.tones import OFFICER_FREQUENCY, AudioSource, SilenceSource, ToneSource
from lapak.media.video_tracks import Fanout, GatedVideoTrack, OfficerCardTrack

log = logging.getLogger("lapak.officer_media")

SendSdp = Callable[[str, str, str, str], Awaitable[None]]
"""``send_sdp(visit, sdp_type, sdp, offer_id)``: send an offer; raise ``RequestError`` (with
the server's ``code``) when it is refused, or ``ConnectionError`` when it cannot be sent."""
ANSWER_TIMEOUT_S = 8.0
CONNECT_TIMEOUT_S = 15.0
STALL_S = 3.0
FAILED_AFTER = 5
"""Rebuilds in a row without connecting before a link reads ``failed`` (it keeps retrying)."""
WATCH_PERIOD_S = 0.5
STATS_PERIOD_S = 1.0
AWAY_RETRY_S = ANSWER_TIMEOUT_S
"""A booth away (an offer refused ``not_connected``) whose presence the server does not report
is retried this often. With the visit view's ``booth_present`` it is never retried while away,
and re-offered as soon as it is back."""


def new_offer_id() -> str:
    """A fresh offer identity: unique per offer, 1..64 characters (docs/protocol.md)."""
    return secrets.token_hex(8)


@dataclass
class OfficerMediaOptions:
    """What the officer sends and hears.

    ``audio_in``: ``none`` (silence), ``tone`` (the 1200 Hz test tone), or a recording's path
    (played in a loop as the officer's microphone). ``voice`` overrides it with any
    ``AudioSource``. ``camera``: a capture device (see ``media.devices``) or None for a card with
    ``officer_name`` and ``desk``; ``send_video=False`` sends no picture at all. ``audio_out``:
    ``none``, ``device``/a device name, or a ``.wav`` path. ``monitor_level`` is the gain (0..1)
    for booths that are not on air; 0 mutes them.
    """

    audio_in: str = "none"
    voice: AudioSource | None = None
    camera: str | None = None
    send_video: bool = True
    officer_name: str = "Officer"
    desk: str = ""
    audio_out: str = "none"
    monitor_level: float = 0.0
    stall_s: float = STALL_S


@dataclass
class BoothLink:
    """Everything the console reads about one booth's media.

    ``state``: ``connecting`` (first offer out), ``connected``, ``reconnecting`` (being rebuilt
    after a failure or stall), ``failed`` (``FAILED_AFTER`` rebuilds without success; still
    retrying), ``closed``.
    """

    visit: str
    pc: RTCPeerConnection
    voice: GatedAudioTrack | None = None
    video_out: GatedVideoTrack | None = None
    audio: AudioProbe = field(default_factory=AudioProbe)
    state: str = "connecting"
    stats: LinkStats | None = None
    latest: av.VideoFrame | None = None
    frames: int = 0
    frame_times: deque[float] = field(default_factory=lambda: deque(maxlen=512))
    """Arrival times (monotonic) of the latest video frames: gaps, fps."""
    last_frame_at: float | None = None
    offered_at: float = 0.0
    """When the current offer was started (monotonic): the no-answer clock."""
    offer_id: str | None = None
    """The identity of the latest offer; only an answer echoing it is applied."""
    offering: bool = False
    """An offer is being made (ICE gathering, sending): the watcher leaves the link alone."""
    booth_away: bool = False
    """The server said the booth is not connected: no re-offers until it is back."""
    booth_present: bool | None = None
    """The visit view's ``booth_present`` (None: never reported)."""
    stale_answers: int = 0
    connected_at: float | None = None
    rebuilds: int = 0
    failures_in_row: int = 0
    next_attempt_at: float = 0.0
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _counters: Counters | None = None

    def take_frame(self) -> av.VideoFrame | None:
        """The newest frame not yet taken (None when nothing new arrived)."""
        frame, self.latest = self.latest, None
        return frame


class _MediaEngine:
    """Links to booths, each rebuilt on failure or stall; subclasses choose what is sent."""

    role = "officer"

    def __init__(self, send_sdp: SendSdp, stall_s: float = STALL_S) -> None:
        self.send_sdp = send_sdp
        self.stall_s = stall_s
        self.links: dict[str, BoothLink] = {}
        self.mixer: AudioMixer | None = None
        self._sink: AudioSink | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._presence: dict[str, bool] = {}
        self._background = False

    # -- public interface used by the console ------------------------------------------------

    async def ensure(self, visit: str) -> BoothLink:
        """Make sure a link to this visit's booth exists (offer sent), and return it."""
        self._start_background()
        link = self.links.get(visit)
        if link is not None:
            return link
        link = BoothLink(visit, new_peer_connection())
        self.links[visit] = link
        link.booth_present = self._presence.get(visit)
        if link.booth_present is False:
            link.booth_away = True  # offered when it is back (``set_booth_present``)
            return link
        await self._connect(link)
        return link

    async def on_answer(self, visit: str, sdp: str, offer_id: str | None = None) -> None:
        """Apply the answer to the link's latest offer; any other answer is dropped."""
        link = self.links.get(visit)
        if link is None:
            log.info("event=stray_answer role=%s visit=%s reason=no_link", self.role, visit)
            return
        if offer_id is None or offer_id != link.offer_id:
            link.stale_answers += 1
            log.info(
                "event=stale_answer role=%s visit=%s offer_id=%s latest=%s",
                self.role, visit, offer_id, link.offer_id,
            )  # fmt: skip
            return
        if link.pc.signalingState != "have-local-offer":
            log.warning(
                "event=stray_answer role=%s visit=%s offer_id=%s", self.role, visit, offer_id
            )
            return
        try:
            await link.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except Exception as exc:  # a malformed or mismatched answer: rebuild, never crash
            log.warning("event=bad_answer role=%s visit=%s reason=%r", self.role, visit, str(exc))
            link.next_attempt_at = 0.0
            await self._rebuild(link, "bad_answer")

    def set_booth_present(self, visit: str, present: bool | None) -> None:
        """The visit view's ``booth_present``: a booth that is back is offered at once, one
        that is away is left alone (no re-offer every few seconds)."""
        if present is None:
            return
        self._presence[visit] = present
        link = self.links.get(visit)
        if link is None:
            return
        was, link.booth_present = link.booth_present, present
        if not present:
            if was is not False:
                log.info("event=booth_away role=%s visit=%s", self.role, visit)
            link.booth_away = True
            return
        if link.booth_away or was is False:
            log.info("event=booth_back role=%s visit=%s", self.role, visit)
            link.booth_away = False
            link.next_attempt_at = 0.0
            link.failures_in_row = 0
            if link.state != "connected":  # a link that kept its media through a blip stays
                self._spawn(self._rebuild(link, "booth_back"), f"{self.role}-reoffer-{visit}")

    def needs_offer(self, visit: str, now: float | None = None) -> bool:
        """Only a visit without a link needs the console to call ``ensure``: the engine
        rebuilds failed, stalled and unanswered links itself."""
        return visit not in self.links

    async def drop(self, visit: str) -> None:
        self._presence.pop(visit, None)
        link = self.links.pop(visit, None)
        if link is None:
            return
        link.state = "closed"
        if self.mixer is not None:
            self.mixer.remove(visit)
        await self._teardown(link)

    async def close(self) -> None:
        self._closing = True
        await cancel_tasks(self._tasks)
        await asyncio.gather(*(self.drop(v) for v in list(self.links)))
        if self._sink is not None:
            await asyncio.to_thread(self._sink.close)
            self._sink = None
        await self._close_sources()

    # -- what subclasses choose ---------------------------------------------------------------

    def _add_transceivers(self, link: BoothLink) -> None:
        link.pc.addTransceiver("audio", direction="recvonly")
        link.pc.addTransceiver("video", direction="recvonly")

    def _gain(self, visit: str) -> float:
        return 1.0

    async def _close_sources(self) -> None:
        return None

    # -- machinery ----------------------------------------------------------------------------

    def _open_output(self, spec: str | None) -> None:
        self._sink = open_sink(spec, who=self.role)
        if self._sink is not None:
            self.mixer = AudioMixer(self._sink)

    def _start_background(self) -> None:
        if self._background or self._closing:
            return
        self._background = True
        self._spawn(self._watch(), f"{self.role}-media-watch")
        self._spawn(self._sample_stats(), f"{self.role}-media-stats")
        if self.mixer is not None:
            self._spawn(self.mixer.run(), f"{self.role}-audio-mixer")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, link: BoothLink) -> None:
        """Wire a fresh peer connection for ``link`` and send the offer.

        The link reads ``offering`` until the offer is out, and its no-answer clock starts now:
        gathering can take a while, and the watcher must not rebuild a link in the middle of
        its first offer (that sent two offers, and the first answer landed on the second peer).
        """
        pc = link.pc
        offer_id = new_offer_id()
        link.offer_id = offer_id
        link.offered_at = time.monotonic()
        link.offering = True
        try:
            await self._offer(link, pc, offer_id)
        finally:
            if link.offer_id == offer_id:
                link.offering = False

    async def _offer(self, link: BoothLink, pc: RTCPeerConnection, offer_id: str) -> None:
        visit = link.visit
        self._add_transceivers(link)
        if self.mixer is not None:
            self.mixer.set_gain(visit, self._gain(visit))
        link.audio.on_frame = self._audio_tap(visit)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            reader = (
                self._read_video(link, track) if track.kind == "video" else link.audio.run(track)
            )
            task = asyncio.create_task(reader, name=f"{track.kind}-{visit}")
            link.tasks.add(task)
            task.add_done_callback(link.tasks.discard)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if link.pc is not pc:
                return  # an old peer connection of a rebuilt link
            log.info(
                "event=link_state role=%s visit=%s state=%s", self.role, visit, pc.connectionState
            )
            if pc.connectionState == "connected":
                link.state = "connected"
                link.connected_at = time.monotonic()
                link.failures_in_row = 0

        await pc.setLocalDescription(await pc.createOffer())
        if link.pc is not pc or link.offer_id != offer_id or self.links.get(visit) is not link:
            log.info("event=offer_superseded role=%s visit=%s", self.role, visit)
            return
        link.offered_at = time.monotonic()
        try:
            await self.send_sdp(visit, "offer", pc.localDescription.sdp, offer_id)
        except Exception as exc:  # refused, or the signalling link is down: the watcher retries
            code = getattr(exc, "code", None)
            if code == "not_connected":
                link.booth_away = True
                log.info("event=offer_refused role=%s visit=%s code=%s", self.role, visit, code)
            else:
                log.warning(
                    "event=offer_not_sent role=%s visit=%s reason=%r", self.role, visit, exc
                )
            return
        log.info(
            "event=offered role=%s visit=%s offer_id=%s rebuilds=%d",
            self.role, visit, offer_id, link.rebuilds,
        )  # fmt: skip

    def _audio_tap(self, visit: str) -> Callable[[AudioProbe, np.ndarray], None] | None:
        mixer = self.mixer
        if mixer is None:
            return None
        return lambda _probe, mono: mixer.push(visit, mono)

    async def _teardown(self, link: BoothLink) -> None:
        await cancel_tasks(link.tasks)
        await close_peers([link.pc])
        if link.voice is not None:
            link.voice.stop()
        if link.video_out is not None:
            link.video_out.stop()

    def _why_rebuild(self, link: BoothLink, now: float) -> str | None:
        if link.offering:
            return None  # the offer is still being made; its clock started with it
        why = self._trouble(link, now)
        if why is None or not link.booth_away:
            return why
        # Away: ``set_booth_present`` re-offers when it is back; an offer now would only be
        # refused. Only a server that never reports presence leaves us guessing.
        if link.state == "connected":
            link.state = "reconnecting"
        if link.booth_present is False or now - link.offered_at < AWAY_RETRY_S:
            return None
        return "booth_away"

    def _trouble(self, link: BoothLink, now: float) -> str | None:
        """What is wrong with the link, if anything (it is rebuilt unless the booth is away)."""
        if link.pc.connectionState in ("failed", "closed"):
            return "failed"
        if link.state == "connected":
            # Stalled means nothing at all arrives: a squeezed link that still carries audio (or
            # a few video frames) is left alone, since rebuilding it would only make it worse.
            heard = [link.last_frame_at, link.audio.last_frame_at, link.connected_at]
            last = max((t for t in heard if t is not None), default=now)
            if now - last > self.stall_s:
                return "stalled"
            return None
        if link.pc.signalingState == "have-local-offer" and now - link.offered_at > min(
            ANSWER_TIMEOUT_S, CONNECT_TIMEOUT_S
        ):
            return "no_answer"
        if now - link.offered_at > CONNECT_TIMEOUT_S:
            return "connect_timeout"
        return None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_PERIOD_S)
            now = time.monotonic()
            for link in list(self.links.values()):
                why = self._why_rebuild(link, now)
                if why is not None and now >= link.next_attempt_at:
                    await self._rebuild(link, why)

    async def _rebuild(self, link: BoothLink, why: str) -> None:
        """Replace the link's peer connection; the console keeps the same ``BoothLink``."""
        if self.links.get(link.visit) is not link or link.offering:
            return
        link.offering = True  # nobody else rebuilds or offers this link until we are done
        try:
            await self._rebuild_now(link, why)
        finally:
            link.offering = False

    async def _rebuild_now(self, link: BoothLink, why: str) -> None:
        link.rebuilds += 1
        link.failures_in_row += 1
        link.state = "failed" if link.failures_in_row > FAILED_AFTER else "reconnecting"
        link.next_attempt_at = time.monotonic() + min(10.0, 1.0 * 2 ** (link.failures_in_row - 1))
        log.warning(
            "event=link_rebuild role=%s visit=%s reason=%s attempt=%d",
            self.role,
            link.visit,
            why,
            link.failures_in_row,
        )
        await self._teardown(link)
        link.tasks = set()
        if self.links.get(link.visit) is not link or self._closing:
            return
        link.pc = new_peer_connection()
        link.latest = None
        link.connected_at = None
        link._counters = None
        link.audio = AudioProbe()
        await self._connect(link)

    async def _sample_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_PERIOD_S)
            for link in list(self.links.values()):
                if link.state != "connected":
                    link.stats = None
                    continue
                try:
                    report = await link.pc.getStats()
                except Exception:  # a peer closing under us
                    continue
                current = counters_from_report(report, link.frames, time.monotonic())
                if link._counters is not None:
                    link.stats = link_stats(link._counters, current)
                link._counters = current

    async def _read_video(self, link: BoothLink, track: MediaStreamTrack) -> None:
        """Keep only the newest frame: the remote track's queue must never grow."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.monotonic()
            link.latest = frame
            link.frames += 1
            link.last_frame_at = now
            link.frame_times.append(now)


class OfficerMedia(_MediaEngine):
    """The officer's engine: sends voice and picture to the on-air booth only."""

    role = "officer"

    def __init__(
        self,
        send_sdp: SendSdp,
        options: OfficerMediaOptions | AudioSource | None = None,
        *,
        voice: AudioSource | None = None,
    ) -> None:
        if options is not None and not isinstance(options, OfficerMediaOptions):
            voice, options = options, None  # the older OfficerMedia(send_sdp, voice) call
        self.options = options or OfficerMediaOptions()
        if voice is not None:
            self.options.voice = voice
        super().__init__(send_sdp, self.options.stall_s)
        self.voice_source: AudioSource = self._voice_source()
        self.on_air: str | None = None
        self._muted = False
        self._video: Fanout | None = None
        self._open_output(self.options.audio_out)

    def _voice_source(self) -> AudioSource:
        opts = self.options
        if opts.voice is not None:
            return opts.voice
        if opts.audio_in == "tone":
            return ToneSource(OFFICER_FREQUENCY)
        if opts.audio_in not in ("none", ""):
            from lapak.media.live_audio import LiveAudioSource

            live = LiveAudioSource.from_file(opts.audio_in)
            if live is not None:
                return live
        return SilenceSource()

    @property
    def muted(self) -> bool:
        return self._muted

    def set_muted(self, muted: bool) -> None:
        """``m``: the officer's microphone goes silent for everyone (the picture stays)."""
        self._muted = bool(muted)
        log.info("event=officer_muted muted=%s", self._muted)
        self._apply_gates()

    def set_on_air(self, visit: str | None) -> None:
        """Open the officer's voice and picture to the on-air booth only (the focus event)."""
        if visit != self.on_air:
            log.info("event=on_air visit=%s", visit)
        self.on_air = visit
        self._apply_gates()

    def _apply_gates(self) -> None:
        for link in self.links.values():
            on = link.visit == self.on_air
            if link.voice is not None:
                link.voice.open = on and not self._muted
            if link.video_out is not None:
                link.video_out.open = on
            if self.mixer is not None:
                self.mixer.set_gain(link.visit, self._gain(link.visit))

    def set_monitor_level(self, level: float) -> None:
        """Gain (0..1) for the booths that are not on air; 0 mutes them."""
        self.options.monitor_level = max(0.0, min(1.0, float(level)))
        self._apply_gates()

    def _gain(self, visit: str) -> float:
        return 1.0 if visit == self.on_air else self.options.monitor_level

    def _video_fanout(self) -> Fanout | None:
        if not self.options.send_video:
            return None
        if self._video is None:
            source: MediaStreamTrack | None = None
            if self.options.camera:
                from lapak.media.devices import open_camera

                capture = open_camera(self.options.camera, 640, 480, 15)
                source = capture.track if capture is not None else None
            if source is None:
                source = OfficerCardTrack(self.options.officer_name, self.options.desk)
            self._video = Fanout(source, depth=1)
            self._video.start()
        return self._video

    def _add_transceivers(self, link: BoothLink) -> None:
        on = link.visit == self.on_air
        link.voice = GatedAudioTrack(self.voice_source, open=on and not self._muted)
        link.pc.addTransceiver(link.voice, direction="sendrecv")
        fanout = self._video_fanout()
        if fanout is None:
            link.video_out = None
            link.pc.addTransceiver("video", direction="recvonly")
        else:
            link.video_out = GatedVideoTrack(fanout, open=on)
            link.pc.addTransceiver(link.video_out, direction="sendrecv")

    async def _close_sources(self) -> None:
        if self._video is not None:
            await self._video.close()
            self._video = None
        closer = getattr(self.voice_source, "close", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()


class SupervisorMedia(_MediaEngine):
    """A supervisor's receive-only view of a desk's booths: the same ``links`` interface.

    Its offers carry only ``recvonly`` transceivers; the server relays them to booths of a desk
    the supervisor watches, and the booth answers sending its camera and microphone.
    """

    role = "supervisor"

    def __init__(self, send_sdp: SendSdp, audio_out: str = "none", stall_s: float = STALL_S):
        super().__init__(send_sdp, stall_s)
        self._open_output(audio_out)
