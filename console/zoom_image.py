"""The zoomed tile in real pixels: each new frame encoded for the terminal's graphics protocol
and written through the console's own driver after Textual's refresh, at the tile's place.

Textual knows nothing of the picture: the tile's ``VideoView`` is ``covered`` (it paints
blank cells, once) so Textual never draws half-blocks over it, and each frame goes out as
cursor position + image. kitty keeps one image id, so a frame replaces the last one, and the
image is deleted by id when the zoom ends, another tile is selected, or a dialog opens
(an image would stay above the dialog). Sixel pixels are erased by the text Textual repaints
once the tile is uncovered.

Encoding runs in a worker thread, one frame at a time: a 640x480 sixel costs tens of ms, which
on the event loop delayed every other tile's paint and the keys. A frame that comes while one
is being encoded waits as the next one, replacing any older one waiting (late is worse than
missing); one that comes after the zoom moved or ended is thrown away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import av
from av.video.reformatter import VideoReformatter

from lapak.console.graphics import GraphicsMode, Placement, encode, kitty_delete, place
from lapak.console.video import VideoView

log = logging.getLogger(__name__)

IMAGE_ID = 1717
"""The kitty image id of the zoomed tile (one zoomed tile at a time)."""

SAVE, RESTORE = "\x1b7", "\x1b8"


class ZoomImage:
    """Draws frames over one covered ``VideoView`` at a time; ``write`` reaches the terminal."""

    def __init__(
        self,
        mode: GraphicsMode,
        cell: tuple[int, int],
        write: Callable[[str], None] | None = None,
    ) -> None:
        self.mode = mode
        self.cell = cell
        self.write = write
        self.video: VideoView | None = None
        self.frames_drawn = 0
        self.frames_encoded = 0
        self.frames_dropped = 0
        """Frames replaced by a newer one while waiting for the encoder."""
        self._generation = 0  # moves on each clear: encodings begun before are thrown away
        self._busy = False
        self._next: _Job | None = None
        self._reformatter = VideoReformatter()  # keeps its swscale context: one job at a time

    @property
    def enabled(self) -> bool:
        return self.mode != "blocks"

    def draw(self, video: VideoView, frame: av.VideoFrame) -> bool:
        """Cover ``video`` and have ``frame`` encoded and drawn over it after a refresh; True
        when it was taken (it may still be replaced by a newer frame before it is encoded)."""
        if self.video is not video:
            self.clear()
            self.video = video
            video.covered = True
        video.last_frame = frame
        region = video.region
        if region.width < 1 or region.height < 1 or frame.width < 1 or frame.height < 1:
            return False
        spot = place(
            frame.width, frame.height, region.width, region.height, self.cell,
            scales=self.mode == "kitty",
        )  # fmt: skip
        at = f"\x1b[{region.y + spot.y + 1};{region.x + spot.x + 1}H"
        if self._next is not None:
            self.frames_dropped += 1
        self._next = _Job(video, frame, spot, at, self._generation)
        if not self._busy:
            self._start()
        return True

    def _start(self) -> None:
        job, self._next = self._next, None
        if job is None:
            return
        self._busy = True
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(None, self._encode, job.frame, job.spot)
        work.add_done_callback(lambda done: self._encoded(job, done))

    def _encoded(self, job: _Job, done: asyncio.Future[str]) -> None:
        self._busy = False
        try:
            data = done.result()
        except Exception:
            log.exception("event=zoom_encode_failed mode=%s", self.mode)
        else:
            self.frames_encoded += 1
            if job.generation == self._generation and self.video is job.video:
                job.video.call_after_refresh(
                    self._send, job.video, f"{SAVE}{job.at}{data}{RESTORE}", job.generation
                )
        self._start()

    def _encode(self, frame: av.VideoFrame, spot: Placement) -> str:
        """In the worker thread: scale to the placement, then the protocol's encoding."""
        rgb = self._reformatter.reformat(
            frame, width=spot.width, height=spot.height, format="rgb24"
        ).to_ndarray()
        return encode(rgb, self.mode, spot, IMAGE_ID)

    def _send(self, video: VideoView, data: str, generation: int) -> None:
        if self.video is not video or generation != self._generation or self.write is None:
            return  # uncovered meanwhile: the image must not come back
        self.write(data)
        self.frames_drawn += 1

    def clear(self) -> None:
        """Take the picture away; the tile paints half-blocks again."""
        self._generation += 1
        self._next = None
        video, self.video = self.video, None
        if video is None:
            return
        video.covered = False
        if self.mode == "kitty" and self.write is not None:
            self.write(kitty_delete(IMAGE_ID))


@dataclass(frozen=True)
class _Job:
    """A frame to encode for a tile, where it goes, and the zoom it belongs to."""

    video: VideoView
    frame: av.VideoFrame
    spot: Placement
    at: str
    generation: int
