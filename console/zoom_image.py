"""The zoomed tile in real pixels: each new frame encoded for the terminal's graphics protocol
and written through the console's own driver after Textual's refresh, at the tile's place.

Textual knows nothing of the picture: the tile's ``VideoView`` is ``covered`` (it paints
blank cells, once) so Textual never draws half-blocks over it, and each frame goes out as
cursor position + image. kitty keeps one image id, so a frame replaces the last one, and the
image is deleted by id when the zoom ends, another tile is selected, or a dialog opens
(an image would stay above the dialog). Sixel pixels are erased by the text Textual repaints
once the tile is uncovered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import av

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

    @property
    def enabled(self) -> bool:
        return self.mode != "blocks"

    def draw(self, video: VideoView, frame: av.VideoFrame) -> bool:
        """Cover ``video`` and draw ``frame`` over it after the next refresh; True when sent."""
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
        data = self._encode(frame, spot)
        at = f"\x1b[{region.y + spot.y + 1};{region.x + spot.x + 1}H"
        video.call_after_refresh(self._send, video, f"{SAVE}{at}{data}{RESTORE}")
        return True

    def _encode(self, frame: av.VideoFrame, spot: Placement) -> str:
        rgb = frame.reformat(width=spot.width, height=spot.height, format="rgb24").to_ndarray()
        return encode(rgb, self.mode, spot, IMAGE_ID)

    def _send(self, video: VideoView, data: str) -> None:
        if self.video is not video or self.write is None:
            return  # uncovered meanwhile: the image must not come back
        self.write(data)
        self.frames_drawn += 1

    def clear(self) -> None:
        """Take the picture away; the tile paints half-blocks again."""
        video, self.video = self.video, None
        if video is None:
            return
        video.covered = False
        if self.mode == "kitty" and self.write is not None:
            self.write(kitty_delete(IMAGE_ID))
