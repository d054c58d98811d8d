"""A widget that paints live video as half-block cells.

Each row arrives from ``CellRenderer`` as one finished ANSI string and is handed to Textual
as a single unstyled segment with an explicit cell length, so Textual writes it verbatim
instead of building a Style per cell (see docs/architecture.md). Only changed rows are
refreshed. Nothing may be drawn over this widget while video plays: a cut raw row would
corrupt the line, so overlays pause the video (``paused``).

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

from console.render import HALF_BLOCK, CellRenderer, ColourMode
from media.frames import FrameScaler

_STYLES: dict[tuple[int, int, int, int, int, int], Style] = {}


def _cell_style(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Style:
    key = (*top, *bottom)
    style = _STYLES.get(key)
    if style is None:
        style = Style.from_color(Color.from_rgb(*top), Color.from_rgb(*bottom))
        _STYLES[key] = style
    return style


class VideoView(Widget):
    """Shows the newest frame handed to ``show``; says so when there is none."""

    placeholder: reactive[str] = reactive("no video")
    paused: reactive[bool] = reactive(False)

    def __init__(
        self, colour_mode: ColourMode = "truecolor", *, raw: bool = True, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self._scaler = FrameScaler(8, 4)
        self._renderer = CellRenderer(8, 4, colour_mode)
        self._rows: list[str] = []
        self.raw = raw
        self.last_rgb: np.ndarray | None = None
        self.last_frame: av.VideoFrame | None = None
        self.frames_painted = 0
        self.painted_at = 0.0  # monotonic time of the last paint (the app caps the rate)

    def get_line_filters(self) -> tuple[()]:  # type: ignore[override]
        return ()  # filters would restyle our raw rows; they cost ~6% CPU too

    def on_resize(self) -> None:
        cols, rows = self.size.width, self.size.height
        if cols >= 1 and rows >= 1:
            self._scaler.resize(cols, rows)
            self._renderer.resize(cols, rows)
            if self.last_frame is not None and not self.paused:
                self.show(self.last_frame)  # repaint the still picture at the new size
                return
        self._rows = []
        self.refresh()

    def clear(self, placeholder: str) -> None:
        self._rows = []
        self.last_rgb = None
        self.last_frame = None
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
        if (self._scaler.cols, self._scaler.rows) != (cols, rows):
            self._scaler.resize(cols, rows)
            self._renderer.resize(cols, rows)
            self._rows = []
        rgb = self._scaler.scale(frame)
        self.last_rgb = rgb
        if self.paused:
            return False
        rendered = self._renderer.render(rgb)
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

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if self.paused or not self._rows or y >= len(self._rows):
            if y == self.size.height // 2 and (self.paused or not self._rows):
                text = self.placeholder.center(width)[:width]
                return Strip([Segment(text, self.rich_style)], width)
            return Strip.blank(width, self.rich_style)
        if not self.raw:
            return self._styled_line(y, width)
        return Strip([Segment(self._rows[y])], width)

    def _styled_line(self, y: int, width: int) -> Strip:
        rgb = self.last_rgb
        if rgb is None or rgb.shape[1] != width or 2 * y + 1 >= rgb.shape[0]:
            return Strip.blank(width, self.rich_style)
        top = rgb[2 * y].tolist()
        bottom = rgb[2 * y + 1].tolist()
        return Strip(
            [
                Segment(HALF_BLOCK, _cell_style(tuple(a), tuple(b)))  # type: ignore[arg-type]
                for a, b in zip(top, bottom, strict=True)
            ],
            width,
        )
