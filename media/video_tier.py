"""What a booth sends as the server's ``booth_state.video`` says: full video on air, a thumbnail
off air.

aiortc has no simulcast and no way to ask its encoder for less, so the booth sends less itself:
off air each frame is scaled down to a tile's worth (``THUMBNAIL_WIDTH`` wide) and only
``THUMBNAIL_FPS`` frames a second pass. aiortc's VP8/H.264 encoders restart when the frame size
changes, so the first frame after a switch is a keyframe and the officer's decoder follows at
once, with no renegotiation. An officer's tile is 64x48 pixels, so a thumbnail loses nothing it
shows; the zoomed or on-air booth gets every pixel.
"""

from __future__ import annotations

from collections.abc import Callable

import av
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import MediaStreamTrack

from lapak.signaling.messages import VideoTier

THUMBNAIL_WIDTH = 160
THUMBNAIL_FPS = 5.0
BITS_PER_PIXEL = 3
"""The most a frame size may cost per second: 58 kbps for a 160x120 thumbnail, 922 kbps for
640x480 (above aiortc's 500 kbps start, so full video is not held back)."""


def thumbnail_size(width: int, height: int, target: int = THUMBNAIL_WIDTH) -> tuple[int, int]:
    """The thumbnail's size: ``target`` wide (never wider than the source), the source's aspect,
    both even (4:2:0 chroma)."""
    w = min(width, target)
    h = max(2, round(height * w / width))
    return w - w % 2, h - h % 2


class ThumbnailGate:
    """Which frames pass off air: at most ``fps`` a second, by the frames' own times (pure)."""

    def __init__(self, fps: float = THUMBNAIL_FPS) -> None:
        self.interval = 1.0 / fps
        self._kept_at: float | None = None

    def keep(self, at: float) -> bool:
        # A little slack: a 15 fps source spaced 66.7 ms keeps every third frame, not every fourth.
        if self._kept_at is not None and 0 <= at - self._kept_at < self.interval * 0.9:
            return False
        self._kept_at = at
        return True

    def reset(self) -> None:
        self._kept_at = None


class TieredVideoTrack(MediaStreamTrack):
    """Passes ``source``'s frames as they are while ``tier()`` is ``full``; thumbnails otherwise."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack, tier: Callable[[], VideoTier]) -> None:
        super().__init__()
        self.source = source
        self.tier = tier
        self.gate = ThumbnailGate()
        self.sent: dict[VideoTier, int] = {"full": 0, "thumbnail": 0}

    async def recv(self) -> av.VideoFrame:
        while True:
            frame = await self.source.recv()
            assert isinstance(frame, av.VideoFrame), "a video track yields video frames"
            if self.tier() == "full":
                self.gate.reset()
                self.sent["full"] += 1
                return frame
            at = frame.time if frame.time is not None else 0.0
            if not self.gate.keep(at):
                continue
            width, height = thumbnail_size(frame.width, frame.height)
            small = frame.reformat(width=width, height=height, format="yuv420p")
            small.pts, small.time_base = frame.pts, frame.time_base
            self.sent["thumbnail"] += 1
            return small

    def stop(self) -> None:
        self.source.stop()
        super().stop()


FULL_FPS = 15.0  # the booths' default rate (lapak booth --fps)


def fps_scale(frame_size: tuple[int, int] | None) -> float:
    """The share of the full frame rate a link delivers on purpose, judged by what it receives:
    a thumbnail-sized frame means 5 of 15 fps (``links.grade`` scales its fps rule by it)."""
    if frame_size is not None and frame_size[0] <= THUMBNAIL_WIDTH:
        return THUMBNAIL_FPS / FULL_FPS
    return 1.0


def bitrate_cap(width: int, height: int) -> int:
    return width * height * BITS_PER_PIXEL


class SizedVp8Encoder(Vp8Encoder):
    """aiortc's VP8 encoder with its bit rate capped by the frame's size.

    aiortc runs libvpx in CBR at the receiver's estimate (500 kbps to start, 100 kbps at the
    least here), whatever the size of the picture: a thumbnail then costs ~155 kbps of tiny
    quantizers nobody sees (bench/console.py). Capped by its size it costs ~50 kbps; full-size
    frames keep the estimate. The encoder restarts at a size change, so the cap follows the tier.
    """

    _pixels: tuple[int, int] = (640, 480)

    def encode(
        self, frame: av.frame.Frame, force_keyframe: bool = False
    ) -> tuple[list[bytes], int]:
        assert isinstance(frame, av.VideoFrame)
        self._pixels = (frame.width, frame.height)
        return super().encode(frame, force_keyframe)

    @property
    def target_bitrate(self) -> int:
        estimate = int(Vp8Encoder.target_bitrate.fget(self))  # type: ignore[attr-defined]
        return min(estimate, bitrate_cap(*self._pixels))

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        Vp8Encoder.target_bitrate.fset(self, bitrate)  # type: ignore[attr-defined]
