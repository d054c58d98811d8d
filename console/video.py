"""A widget that paints live video as half-block cells.

Each row arrives from ``CellRenderer`` as one finished ANSI string and is handed to Textual
as a single unstyled segment with an explicit cell length, so Textual writes it verbatim
instead of building a Style per cell (see docs/architecture.md). Only changed rows are
refreshed. Nothing may be drawn over this widget while video plays: a cut raw row would
corrupt the line, so overlays pause the video (``paused``).

The picture keeps the source's aspect ratio: it is scaled to fit the tile and centred on black
bars (letterbox). A half-block cell is one pixel wide and two pixel rows tall, and a terminal cell
is about twice as tall as wide, so each pixel is about square.

``raw=False`` draws the same cells as ordinary styled segments (one cached ``Style`` per colour
pair): slow, but safe anywhere; used for SVG screenshots and snapshot tests.
"""

from __future__ import annotations

import av
import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from lapak.console.render import HALF_BLOCK, CellRenderer, ColourMode
from lapak.media.frames import FrameScaler

_STYLES: dict[tuple[int, int, int, int, int, int], Style] = {}


def _cell_style(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Style:
    key = (*top, *bottom)
    style = _STYLES.get(key)
    if style is None:
        style = Style.from_color(Color.from_rgb(*top), Color.from_rgb(*bottom))
        _STYLES[key] = style
    return style


def fit(src_w: int, src_h: int, cols: int, rows: int) -> tuple[int, int]:
    """The (cols, rows) of cells a ``src_w`` x ``src_h`` picture takes inside a ``cols`` x ``rows``
    tile without being stretched (pixels are square: a cell is 1 pixel wide, 2 tall)."""
    if src_w < 1 or src_h < 1:
        return cols, rows
    scale = min(cols / src_w, 2 * rows / src_h)
    return max(1, min(cols, round(src_w * scale))), max(1, min(rows, round(src_h * scale / 2)))


class VideoView(Widget):
    """Shows the newest frame handed to ``show``; says so when there is none."""

    placeholder: reactive[str] = reactive("no video")
    paused: reactive[bool] = reactive(False)
    covered: reactive[bool] = reactive(False)  # real pixels drawn over it (zoom_image.py)
    paused_text = "video paused"  # shown instead of the placeholder while paused

    def __init__(
        self, colour_mode: ColourMode = "truecolor", *, raw: bool = True, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self._scaler = FrameScaler(8, 4)
        self._renderer = CellRenderer(8, 4, colour_mode)
        self._rows: list[str] = []
        self.raw = raw
        self.last_rgb: np.ndarray | None = None  # the picture as scaled, without the bars
        self.canvas: np.ndarray | None = None  # what is painted: the picture on black bars
        self._picture: tuple[int, int, int, int] = (0, 0, 0, 0)  # x, y (cells), cols, rows
        self.last_frame: av.VideoFrame | None = None
        self.frames_painted = 0
        self.painted_at = 0.0  # monotonic time of the last paint (the app caps the rate)

    def get_line_filters(self) -> tuple[()]:
        return ()  # filters would restyle our raw rows; they cost ~6% CPU too

    def on_resize(self) -> None:
        cols, rows = self.size.width, self.size.height
        if cols >= 1 and rows >= 1:
            self._renderer.resize(cols, rows)
            self.canvas = None
            if self.last_frame is not None and not self.paused:
                self.show(self.last_frame)  # repaint the still picture at the new size
                return
        self._rows = []
        self.refresh()

    def clear(self, placeholder: str) -> None:
        self._rows = []
        self.last_rgb = None
        self.last_frame = None
        self.canvas = None
        self.placeholder = placeholder
        self.refresh()

    def watch_paused(self, paused: bool) -> None:
        if not paused:
            self._renderer.invalidate()
            if self.last_frame is not None:
                self.show(self.last_frame)
        self.refresh()

    def show(self, frame: av.VideoFrame) -> bool:
        """Scale, render and refresh only the rows that changed; True when painted."""
        self.last_frame = frame
        cols, rows = self.size.width, self.size.height
        if cols < 1 or rows < 1 or not self.display:
            return False
        if (self._renderer.cols, self._renderer.rows) != (cols, rows):
            self._renderer.resize(cols, rows)
            self.canvas = None
            self._rows = []
        canvas = self._letterbox(frame, cols, rows)
        if self.paused:
            return False
        rendered = self._renderer.render(canvas)
        first = not self._rows
        self._rows = rendered.rows
        self.frames_painted += 1
        if first or not self.raw:
            self.refresh()
            return True
        for y, changed in enumerate(rendered.changed):
            if changed:
                self.refresh(Region(0, y, cols, 1))
        return True

    def _letterbox(self, frame: av.VideoFrame, cols: int, rows: int) -> np.ndarray:
        """Scale the frame to fit, keep its shape, and place it centred on black bars."""
        w, h = fit(frame.width, frame.height, cols, rows)
        x, y = (cols - w) // 2, (rows - h) // 2
        if self.canvas is None or self._picture != (x, y, w, h):
            self.canvas = np.zeros((rows * 2, cols, 3), dtype=np.uint8)
            self._picture = (x, y, w, h)
            self._scaler.resize(w, h)
        rgb = self._scaler.scale(frame)
        self.last_rgb = rgb
        self.canvas[2 * y : 2 * (y + h), x : x + w] = rgb
        return self.canvas

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if self.covered:
            return Strip.blank(width, self.rich_style)  # Textual must not draw over the image
        if self.paused or not self._rows or y >= len(self._rows):
            if y == self.size.height // 2 and (self.paused or not self._rows):
                text = (self.paused_text if self.paused else self.placeholder).center(width)
                text = text[:width]
                return Strip([Segment(text, self.rich_style)], width)
            return Strip.blank(width, self.rich_style)
        if not self.raw:
            return self._styled_line(y, width)
        return Strip([Segment(self._rows[y])], width)

    def _styled_line(self, y: int, width: int) -> Strip:
        rgb = self.canvas
        if rgb is None or rgb.shape[1] != width or 2 * y + 1 >= rgb.shape[0]:
            return Strip.blank(width, self.rich_style)
        top = rgb[2 * y].tolist()
        bottom = rgb[2 * y + 1].tolist()
        return Strip(
            [
                Segment(HALF_BLOCK, _cell_style(tuple(a), tuple(b)))
                for a, b in zip(top, bottom, strict=True)
            ],
            width,
        )
