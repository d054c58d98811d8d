"""The officer's media engine: one peer connection per booth on the desk.

The console drives it from desk state: ``ensure(visit)`` when a visit takes a slot,
``drop(visit)`` when it leaves, ``set_on_air(visit)`` on the server's focus event. Each
link keeps only the latest decoded video frame (the console paints what is newest and
never queues), measures the booth's audio, and carries the officer's voice through a
gate that is open only for the on-air booth, so focus moves without renegotiation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from media.audio_tracks import AudioProbe, GatedAudioTrack
from media.peer import cancel_tasks, close_peers, new_peer_connection
from media.tones import AudioSource, SilenceSource

log = logging.getLogger("lapak.officer_media")

SendSdp = Callable[[str, str, str], Awaitable[None]]
ANSWER_TIMEOUT_S = 8.0


@dataclass
class BoothLink:
    """Everything the console reads about one booth's media."""

    visit: str
    pc: RTCPeerConnection
    voice: GatedAudioTrack
    audio: AudioProbe = field(default_factory=AudioProbe)
    state: str = "connecting"  # connecting | connected | failed | closed
    latest: av.VideoFrame | None = None
    frames: int = 0
    last_frame_at: float | None = None
    offered_at: float = 0.0
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def take_frame(self) -> av.VideoFrame | None:
        """The newest frame not yet taken (None when nothing new arrived)."""
        frame, self.latest = self.latest, None
        return frame


class OfficerMedia:
    def __init__(self, send_sdp: SendSdp, voice: AudioSource | None = None) -> None:
        self.send_sdp = send_sdp
        self.voice_source: AudioSource = voice or SilenceSource()
        self.links: dict[str, BoothLink] = {}
        self.on_air: str | None = None
        self._closing = False

    async def ensure(self, visit: str) -> BoothLink:
        """Make sure a link to this visit's booth exists (offer sent), and return it."""
        link = self.links.get(visit)
        if link is not None and link.state != "failed":
            return link
        if link is not None:
            await self.drop(visit)
        pc = new_peer_connection()
        voice = GatedAudioTrack(self.voice_source, open=(visit == self.on_air))
        link = BoothLink(visit, pc, voice)
        self.links[visit] = link
        pc.addTransceiver(voice, direction="sendrecv")
        pc.addTransceiver("video", direction="recvonly")

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
            log.info("event=link_state visit=%s state=%s", visit, pc.connectionState)
            if pc.connectionState == "connected":
                link.state = "connected"
            elif pc.connectionState == "failed":
                link.state = "failed"

        await pc.setLocalDescription(await pc.createOffer())
        link.offered_at = time.monotonic()
        await self.send_sdp(visit, pc.localDescription.type, pc.localDescription.sdp)
        log.info("event=offered visit=%s", visit)
        return link

    async def on_answer(self, visit: str, sdp: str) -> None:
        link = self.links.get(visit)
        if link is None or link.pc.signalingState != "have-local-offer":
            log.warning("event=stray_answer visit=%s", visit)
            return
        await link.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    def needs_offer(self, visit: str, now: float | None = None) -> bool:
        """A link that failed, or got no answer in time, should be offered again."""
        link = self.links.get(visit)
        if link is None or link.state == "failed":
            return True
        now = time.monotonic() if now is None else now
        return (
            link.state == "connecting"
            and link.pc.signalingState == "have-local-offer"
            and now - link.offered_at > ANSWER_TIMEOUT_S
        )

    def set_on_air(self, visit: str | None) -> None:
        """Open the officer's voice to the on-air booth only (the server's focus event)."""
        self.on_air = visit
        for link in self.links.values():
            link.voice.open = link.visit == visit

    async def drop(self, visit: str) -> None:
        link = self.links.pop(visit, None)
        if link is None:
            return
        link.state = "closed"
        await cancel_tasks(link.tasks)
        await close_peers([link.pc])
        link.voice.stop()

    async def close(self) -> None:
        self._closing = True
        links = list(self.links)
        await asyncio.gather(*(self.drop(v) for v in links))

    async def _read_video(self, link: BoothLink, track: MediaStreamTrack) -> None:
        """Keep only the newest frame: the remote track's queue must never grow."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            link.latest = frame
            link.frames += 1
            link.last_frame_at = time.monotonic()
