"""The booth agent: one kiosk's signalling session and its media peer.

It says hello with its booth token, starts (or resumes) a visit, answers the officer's
offers with its camera and microphone (synthetic ones in the simulator), and listens to
what the officer sends. It never decides anything: the server's ``booth_state`` says
whether it is queued, connected or on air.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole

from media.audio_tracks import AudioProbe, SourceAudioTrack
from media.peer import cancel_tasks, close_peers, new_peer_connection
from media.testcard import TestCardTrack
from media.tones import OFFICER_FREQUENCY, ToneBurstSource, booth_frequency
from signaling.client import SignalClient

log = logging.getLogger("lapak.booth")


@dataclass
class BoothMediaConfig:
    width: int = 640
    height: int = 480
    fps: int = 15


@dataclass
class ClaimantInfo:
    name: str
    membership_no: str
    claim_type: str = "JHT"


@dataclass
class BoothAgent:
    """A simulated booth (synthetic camera and voice) speaking the real protocol."""

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
        self._pc: RTCPeerConnection | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sinks: list[MediaBlackhole] = []
        self.offers_answered = 0

    @property
    def on_air(self) -> bool:
        return bool(self.status.get("on_air"))

    @property
    def state(self) -> str:
        """What the claimant's screen shows: queued, connected, on_air or finished."""
        visit_state = self.status.get("state")
        if visit_state == "ended":
            return "finished"
        if visit_state == "queued":
            return "queued"
        if visit_state == "active":
            return "on_air" if self.on_air else "connected"
        return "starting"

    def hears_officer(self, within: float = 0.5) -> bool:
        return self.officer_audio.heard_within(OFFICER_FREQUENCY, within)

    async def start(self) -> str:
        await self.client.connect()
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

    async def close(self) -> None:
        await cancel_tasks(self._tasks)
        if self._pc is not None:
            await close_peers([self._pc])
            self._pc = None
        for sink in self._sinks:
            await sink.stop()
        self._sinks.clear()
        await self.client.close()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "booth_state":
            previous = self.state
            self.status = message
            if self.state != previous:
                log.info(
                    "event=booth_state booth=%s visit=%s state=%s position=%s",
                    self.name,
                    message.get("visit"),
                    self.state,
                    message.get("position"),
                )
            if self.on_change is not None:
                self.on_change(self)
        elif kind == "sdp" and message.get("sdp_type") == "offer":
            self._spawn(self._answer(message), f"answer-{self.name}")

    async def _answer(self, message: dict[str, Any]) -> None:
        """Answer an offer with a fresh peer; an old one (a rebuilt link) is closed first."""
        if self._pc is not None:
            old, self._pc = self._pc, None
            await close_peers([old])
        pc = new_peer_connection()
        self._pc = pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._spawn(self.officer_audio.run(track), f"officer-audio-{self.name}")
            else:
                sink = MediaBlackhole()  # officer video is shown in a later step; never leak
                sink.addTrack(track)
                self._sinks.append(sink)
                self._spawn(sink.start(), f"officer-video-{self.name}")

        await pc.setRemoteDescription(
            RTCSessionDescription(sdp=message["sdp"], type=message["sdp_type"])
        )
        pc.addTrack(
            TestCardTrack(
                self.name,
                self.index,
                width=self.media.width,
                height=self.media.height,
                fps=self.media.fps,
            )
        )
        pc.addTrack(SourceAudioTrack(ToneBurstSource(booth_frequency(self.index))))
        await pc.setLocalDescription(await pc.createAnswer())
        local = pc.localDescription
        await self.client.send(
            {"type": "sdp", "visit": message["visit"], "sdp_type": local.type, "sdp": local.sdp}
        )
        self.offers_answered += 1
        log.info("event=answered booth=%s visit=%s", self.name, message["visit"])
