"""One booth's media link as the officer's engine keeps it, and the rules that say when a
link is in trouble.

``BoothLink`` is what the console reads (state, latest frame, audio level, stats). Its
``state``: ``connecting`` (first offer out), ``connected``, ``reconnecting`` (being rebuilt
after a failure or stall), ``failed`` (``FAILED_AFTER`` rebuilds without success; still
retrying), ``closed``. ``trouble``/``why_rebuild`` are the recovery rules, kept apart from the
engine's I/O so they are read (and tested) in one place: a link that failed, stalled (nothing
at all arrives for ``stall_s``), or got no answer is rebuilt, unless its offer is still being
made or the server says its booth is away.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import RTCPeerConnection

from lapak.media.audio_tracks import AudioProbe, GatedAudioTrack
from lapak.media.links import Counters, LinkStats
from lapak.media.video_tracks import GatedVideoTrack

ANSWER_TIMEOUT_S = 8.0
CONNECT_TIMEOUT_S = 15.0
STALL_S = 3.0
FAILED_AFTER = 5
"""Rebuilds in a row without connecting before a link reads ``failed`` (it keeps retrying)."""
AWAY_RETRY_S = ANSWER_TIMEOUT_S
"""A booth away (an offer refused ``not_connected``) whose presence the server does not report
is retried this often. With the visit view's ``booth_present`` it is never retried while away,
and re-offered as soon as it is back."""


def new_offer_id() -> str:
    """A fresh offer identity: unique per offer, 1..64 characters (docs/protocol.md)."""
    return secrets.token_hex(8)


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
    frame_size: tuple[int, int] | None = None
    """The newest frame's width and height: a booth's thumbnail or full tier, as received."""
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


def why_rebuild(link: BoothLink, now: float, stall_s: float = STALL_S) -> str | None:
    """Why the engine should rebuild the link now, or None (a link being offered, or whose
    booth is away and will be re-offered when it is back, is left alone)."""
    if link.offering:
        return None  # the offer is still being made; its clock started with it
    why = trouble(link, now, stall_s)
    if why is None or not link.booth_away:
        return why
    # Away: ``set_booth_present`` re-offers when it is back; an offer now would only be
    # refused. Only a server that never reports presence leaves us guessing.
    if link.state == "connected":
        link.state = "reconnecting"
    if link.booth_present is False or now - link.offered_at < AWAY_RETRY_S:
        return None
    return "booth_away"


def trouble(link: BoothLink, now: float, stall_s: float = STALL_S) -> str | None:
    """What is wrong with the link, if anything (it is rebuilt unless the booth is away)."""
    if link.pc.connectionState in ("failed", "closed"):
        return "failed"
    if link.state == "connected":
        # Stalled means nothing at all arrives: a squeezed link that still carries audio (or
        # a few video frames) is left alone, since rebuilding it would only make it worse.
        heard = [link.last_frame_at, link.audio.last_frame_at, link.connected_at]
        last = max((t for t in heard if t is not None), default=now)
        if now - last > stall_s:
            return "stalled"
        return None
    if link.pc.signalingState == "have-local-offer" and now - link.offered_at > min(
        ANSWER_TIMEOUT_S, CONNECT_TIMEOUT_S
    ):
        return "no_answer"
    if now - link.offered_at > CONNECT_TIMEOUT_S:
        return "connect_timeout"
    return None
