"""The booth's side of recording: the officer's media as the claimant received them, relayed.

The booth reads the officer's audio and picture anyway (to play them while on air). A
``TeeTrack`` wraps each received officer track: every frame it returns to the booth's player
is also published to a ``RelayHub`` while the booth is on air, and each recorder peer sends
what the hub publishes through its own ``RelayTrack`` (re-stamped with continuous timestamps,
so a rebuilt officer link does not send time backwards). Recorders get, for audio, what the
booth's speaker played (``OfficerRelay.heard``: the officer with a barging supervisor mixed
in, or a resolving supervisor alone during an escalation). Off air nothing of the officer is
relayed, so the recording holds the officer only for the on-air periods, exactly as the
claimant heard them, and the officer's PC does no recording work at all."""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable, Iterable
from typing import Any

import av
import numpy as np
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from lapak.media.peer import rtc_ice_servers
from lapak.signaling.messages import IceServer

VIDEO_CLOCK = fractions.Fraction(1, 90000)
AUDIO_RATE = 48000


class RelayHub:
    """Frames of one kind handed to every subscriber's small drop-oldest queue."""

    def __init__(self, kind: str, depth: int) -> None:
        self.kind = kind
        self.depth = depth
        self.published = 0
        self._subscribers: set[asyncio.Queue[av.frame.Frame]] = set()

    def subscribe(self) -> asyncio.Queue[av.frame.Frame]:
        q: asyncio.Queue[av.frame.Frame] = asyncio.Queue(self.depth)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[av.frame.Frame]) -> None:
        self._subscribers.discard(q)

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscribers)

    def publish(self, frame: av.frame.Frame) -> None:
        if not self._subscribers:
            return
        self.published += 1
        for q in list(self._subscribers):
            if q.full():
                q.get_nowait()
            q.put_nowait(frame)


class TeeTrack(MediaStreamTrack):
    """A received track read by one consumer; its frames also go to ``hub`` while ``gate()``."""

    def __init__(self, inner: MediaStreamTrack, hub: RelayHub, gate: Callable[[], bool]) -> None:
        super().__init__()
        self.kind = inner.kind
        self._inner = inner
        self._hub = hub
        self._gate = gate

    async def recv(self) -> av.frame.Frame:
        frame = await self._inner.recv()
        if isinstance(frame, av.AudioFrame | av.VideoFrame) and self._gate():
            self._hub.publish(frame)
        return frame  # type: ignore[return-value]  # a remote track yields frames

    def stop(self) -> None:
        super().stop()
        self._inner.stop()


class RelayTrack(MediaStreamTrack):
    """One recorder peer's copy of what a ``RelayHub`` publishes, with its own timestamps:
    audio counts samples, video runs on the monotonic clock (a 90 kHz RTP clock)."""

    def __init__(self, hub: RelayHub) -> None:
        super().__init__()
        self.kind = hub.kind
        self._hub = hub
        self._queue = hub.subscribe()
        self._samples = 0
        self._t0: float | None = None

    async def recv(self) -> av.frame.Frame:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if isinstance(frame, av.AudioFrame):
            data: Any = np.ascontiguousarray(frame.to_ndarray())
            out = av.AudioFrame.from_ndarray(
                data, format=frame.format.name, layout=frame.layout.name
            )
            out.sample_rate = frame.sample_rate
            out.pts = self._samples
            out.time_base = fractions.Fraction(1, frame.sample_rate)
            self._samples += frame.samples
            return out
        assert isinstance(frame, av.VideoFrame)
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        video = av.VideoFrame.from_ndarray(frame.to_ndarray(format="yuv420p"), format="yuv420p")
        video.pts = round((now - self._t0) * 90000)
        video.time_base = VIDEO_CLOCK
        return video

    def stop(self) -> None:
        super().stop()
        self._hub.unsubscribe(self._queue)


def new_recording_peer(ice_servers: Iterable[IceServer] = ()) -> RTCPeerConnection:
    """A peer connection for a recording link (both ends). Its four transceivers, two per kind,
    must share one transport: under aiortc's default ``balanced`` policy the second transceiver
    of a kind stays on a transport that BUNDLE then discards, and never sends (aiortc 1.x)."""
    return RTCPeerConnection(
        RTCConfiguration(
            iceServers=rtc_ice_servers(ice_servers), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
        )
    )


def stop_relays(pc: RTCPeerConnection) -> None:
    """A recorder link is closing: its relay tracks leave their hubs."""
    for sender in pc.getSenders():
        if isinstance(sender.track, RelayTrack):
            sender.track.stop()


class OfficerRelay:
    """The booth's hubs and the gate (on air): ``audio`` is the officer's voice alone (for
    supervisors: they must not hear their own barge echoed back), ``heard`` is everything the
    booth played to the claimant (the officer mixed with a barging supervisor, or a resolving
    supervisor alone; for recorders), ``video`` the officer's picture."""

    def __init__(self, on_air: Callable[[], bool]) -> None:
        self.on_air = on_air
        self.audio = RelayHub("audio", depth=25)
        self.heard = RelayHub("audio", depth=25)
        self.video = RelayHub("video", depth=2)

    def publish_heard(self, mono: np.ndarray, rate: int) -> None:
        """One frame of what the booth's speaker played (float mono in [-1, 1])."""
        if not self.heard.has_subscribers:
            return
        pcm = np.clip(np.round(np.asarray(mono) * 32767.0), -32768, 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        self.heard.publish(frame)

    def tee(self, track: MediaStreamTrack) -> MediaStreamTrack:
        """What the booth's player should read instead of the received officer track."""
        hub = self.audio if track.kind == "audio" else self.video
        return TeeTrack(track, hub, self.on_air)

    def officer_track(self) -> RelayTrack:
        """A supervisor peer's track of the officer's voice alone (on air only)."""
        return RelayTrack(self.audio)

    def tracks(self) -> tuple[RelayTrack, RelayTrack]:
        """A recorder peer's audio (what the claimant heard) and video (the officer)."""
        return RelayTrack(self.heard), RelayTrack(self.video)
