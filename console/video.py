"""A widget that paints live video as half-block cells.

Each row arrives from ``CellRenderer`` as one finished ANSI string and is handed to Textual
as a single unstyled segment with an explicit cell length, so Textual writes it verbatim
instead of building a Style per cell (see docs/architecture.md). Only changed rows are
refreshed. Nothing may be drawn over this widget while video plays: a cut raw row would
corrupt the line, so overlays pause the video (``paused``).
"""

from __future__ import annotations

import av
import numpy as np
from rich.segment import Segment
from textual.geometry import Region
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from console.render import CellRenderer, ColourMode
from media.frames import FrameScaler


class VideoView(Widget):
    """Shows the newest frame handed to ``show``; says so when there is none."""

    placeholder: reactive[str] = reactive("no video")
    paused: reactive[bool] = reactive(False)

    def __init__(self, colour_mode: ColourMode = "truecolor", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._scaler = FrameScaler(8, 4)
        self._renderer = CellRenderer(8, 4, colour_mode)
        self._rows: list[str] = []
        self.last_rgb: np.ndarray | None = None
        self.frames_painted = 0

    def get_line_filters(self) -> tuple[()]:  # type: ignore[override]
        return ()  # filters would restyle our raw rows; they cost ~6% CPU too

    def on_resize(self) -> None:
        cols, rows = self.size.width, self.size.height
        if cols >= 1 and rows >= 1:
            self._scaler.resize(cols, rows)
            self._renderer.resize(cols, rows)
        self._rows = []
        self.refresh()

    def clear(self, placeholder: str) -> None:
        self._rows = []
        self.last_rgb = None
        self.placeholder = placeholder
        self.refresh()

    def watch_paused(self, paused: bool) -> None:
        if not paused:
            self._renderer.invalidate()
        self.refresh()

    def show(self, frame: av.VideoFrame) -> None:
        """Scale, render and refresh only the rows that changed."""
        cols, rows = self.size.width, self.size.height
        if cols < 1 or rows < 1 or not self.display:
            return
        rgb = self._scaler.scale(frame)
        self.last_rgb = rgb
        if self.paused:
            return
        rendered = self._renderer.render(rgb)
        first = not self._rows
        self._rows = rendered.rows
        self.frames_painted += 1
        if first:
            self.refresh()
            return
        for y, changed in enumerate(rendered.changed):
            if changed:
                self.refresh(Region(0, y, cols, 1))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if self.paused or not self._rows or y >= len(self._rows):
            if y == self.size.height // 2 and not self._rows:
                text = self.placeholder.center(width)[:width]
                return Strip([Segment(text, self.rich_style)], width)
            return Strip.blank(width, self.rich_style)
        return Strip([Segment(self._rows[y])], width)
