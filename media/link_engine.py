"""The engine that keeps a media link per booth for an officer or a supervisor.

The desk session drives it from desk state: ``ensure(visit)`` when a visit takes a slot,
``drop(visit)`` when it leaves, ``set_booth_present`` from the visit view. Each ``BoothLink``
keeps only the latest decoded video frame (the console paints what is newest and never
queues) and measures the booth's audio; subclasses (``media.officer``) choose what is sent.

The engine owns recovery: a link whose peer connection fails, that stops delivering frames for
``stall_s``, or whose offer goes unanswered, is rebuilt with a fresh peer connection (aiortc has
no ICE restart); its ``state`` reads ``reconnecting`` meanwhile and the other links are never
touched. It also samples ``getStats`` once a second into ``BoothLink.stats``.

Every offer carries a fresh ``offer_id`` and only the answer echoing the link's latest one is
applied (docs/protocol.md): an answer to an older offer is dropped by rule. A link is offered
once at a time (``BoothLink.offering``), and its no-answer clock starts when its offer is made,
so the watcher never rebuilds a link whose first offer is still being gathered. An offer the
server refuses with ``not_connected`` marks the booth away: no re-offers until the session says
it is back (``set_booth_present``, from the visit view's ``booth_present``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from lapak.media.audio_out import AudioMixer, AudioSink, open_sink
from lapak.media.audio_tracks import AudioProbe
from lapak.media.booth_link import FAILED_AFTER, STALL_S, BoothLink, new_offer_id, why_rebuild
from lapak.media.links import Grade, counters_from_report, link_stats
from lapak.media.peer import cancel_tasks, close_peers, new_peer_connection
from lapak.media.track_frames import track_frames
from lapak.media.video_tier import fps_scale
from lapak.signaling.messages import IceServer
from lapak.signaling.protocol import SdpType

log = logging.getLogger("lapak.officer_media")

SendSdp = Callable[[str, SdpType, str, str], Awaitable[None]]
"""``send_sdp(visit, sdp_type, sdp, offer_id)``: send an offer; raise ``RequestError`` (with
the server's ``code``) when it is refused, or ``ConnectionError`` when it cannot be sent."""
WATCH_PERIOD_S = 0.5
STATS_PERIOD_S = 1.0


class MediaEngine:
    """Links to booths, each rebuilt on failure or stall; subclasses choose what is sent."""

    role = "officer"

    def __init__(self, send_sdp: SendSdp | None = None, stall_s: float = STALL_S) -> None:
        self.send_sdp = send_sdp
        self.stall_s = stall_s
        self.links: dict[str, BoothLink] = {}
        self.mixer: AudioMixer | None = None
        self._sink: AudioSink | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._presence: dict[str, bool] = {}
        self._background = False
        self._renegotiate_after: set[str] = set()
        self.on_grade: Callable[[str, Grade], None] | None = None
        """Told each new reading's grade per visit (the desk session reports changes)."""
        self.ice_servers: list[IceServer] = []
        """The latest welcome's STUN/TURN servers (the desk session sets them): every peer
        connection made after that uses them, a rebuilt one included."""

    # -- public interface used by the desk session --------------------------------------------

    def attach(self, send_sdp: SendSdp) -> None:
        """Send offers through this (the desk session's connection)."""
        self.send_sdp = send_sdp

    async def ensure(self, visit: str) -> BoothLink:
        """Make sure a link to this visit's booth exists (offer sent), and return it."""
        self._start_background()
        link = self.links.get(visit)
        if link is not None:
            return link
        link = BoothLink(visit, new_peer_connection(self.ice_servers))
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

    def _other_track(self, link: BoothLink, track: MediaStreamTrack) -> Any | None:
        """A reader for a track that is not the booth's own camera or microphone (a
        subclass's extra transceiver), else None."""
        return None

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
            if link.visit in self._renegotiate_after:  # asked for while this offer was made
                self._renegotiate_after.discard(link.visit)
                self._spawn(self.renegotiate(link.visit, "deferred"), f"{self.role}-renegotiate")

    async def _offer(self, link: BoothLink, pc: RTCPeerConnection, offer_id: str) -> None:
        visit = link.visit
        self._add_transceivers(link)
        if self.mixer is not None:
            self.mixer.set_gain(visit, self._gain(visit))
        link.audio.on_frame = self._audio_tap(visit)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            reader = self._other_track(link, track)
            if reader is None:
                reader = (
                    self._read_video(link, track)
                    if track.kind == "video"
                    else link.audio.run(track)
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
            if self.send_sdp is None:
                raise ConnectionError("no signalling connection attached")
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

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_PERIOD_S)
            now = time.monotonic()
            for link in list(self.links.values()):
                why = why_rebuild(link, now, self.stall_s)
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
        link.pc = new_peer_connection(self.ice_servers)
        link.latest = None
        link.connected_at = None
        link._counters = None
        link.audio = AudioProbe()
        await self._connect(link)

    async def renegotiate(self, visit: str, why: str) -> None:
        """Offer the link afresh with what ``_add_transceivers`` says now (a supervisor's
        barge voice added or removed): not a failure, so no back-off is counted. A link still
        being offered is renegotiated once that offer is out, so the change is never lost."""
        link = self.links.get(visit)
        if link is None or self._closing:
            return
        if link.offering:
            self._renegotiate_after.add(visit)
            return
        log.info("event=link_renegotiate role=%s visit=%s reason=%s", self.role, visit, why)
        link.offering = True
        try:
            await self._teardown(link)
            link.tasks = set()
            if self.links.get(visit) is not link or self._closing:
                return
            link.state = "reconnecting"
            link.pc = new_peer_connection(self.ice_servers)
            link.latest = None
            link.connected_at = None
            link._counters = None
            link.audio = AudioProbe()
            link.offering = False
            await self._connect(link)
        finally:
            link.offering = False

    async def _sample_stats(self) -> None:
        """``getStats`` once a second into ``link.stats`` (graded by the tier it receives)."""
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
                    link.stats = link_stats(link._counters, current, fps_scale(link.frame_size))
                    if self.on_grade is not None:
                        self.on_grade(link.visit, link.stats.grade)
                link._counters = current

    async def _read_video(self, link: BoothLink, track: MediaStreamTrack) -> None:
        """Keep only the newest frame: the remote track's queue must never grow."""
        async for frame in track_frames(track, av.VideoFrame):
            now = time.monotonic()
            link.latest = frame
            link.frame_size = (frame.width, frame.height)
            link.frames += 1
            link.last_frame_at = now
            link.frame_times.append(now)
