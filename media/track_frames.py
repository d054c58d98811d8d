"""Read a remote track until it ends: the loop every receiver here runs.

A remote track must be drained (an unread one buffers without bound), and it ends by raising
``MediaStreamError`` from ``recv``; aiortc's type says a track may also yield packets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

__all__ = ["track_frames"]

F = TypeVar("F", bound=av.frame.Frame)


async def track_frames(track: MediaStreamTrack, kind: type[F]) -> AsyncIterator[F]:
    """The track's frames of type ``kind`` (others are read and dropped) until it ends."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if isinstance(frame, kind):
            yield frame
