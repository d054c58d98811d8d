"""The desk screen: the tiles, the status bar and the footer, the selection and zoom, and the
paint timer that copies each link's newest frame into its tile.

Everything is created with the screen and held by reference (``tiles``, ``message``...), so
the app and the timer reach them whatever the mount order: painting an unmounted tile is a
no-op, not a crash. While another screen is on top (dialogs, help, the palette) the desk is
suspended and its video paused: raw video rows cannot be composited under an overlay.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import av
from textual.app import ComposeResult
from textual.binding import ActiveBinding
from textual.containers import Container, Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static

from lapak.console.footer import DeskFooter, is_narrow
from lapak.console.i18n import t
from lapak.console.keys import presented
from lapak.console.layout import MAX_SLOTS, grid_shape, visible_slots
from lapak.console.paintlog import PaintLog
from lapak.console.render import ColourMode
from lapak.console.tile import BoothTile, TileInfo
from lapak.console.zoom_image import ZoomImage

WRITE_BACKLOG = 2
"""Pending terminal writes above which a video tick is dropped."""


class FrameSource(Protocol):
    """A media link as the paint timer reads it: the newest frame, once."""

    def take_frame(self) -> av.VideoFrame | None: ...


class DeskScreen(Screen[None]):
    """The tiles of one desk. ``selected_slot`` is where decisions go; ``zoomed`` shows it
    alone."""

    def __init__(
        self, colour_mode: ColourMode, *, raw: bool = True, zoom_image: ZoomImage | None = None
    ) -> None:
        super().__init__(id="desk")
        # The zoomed tile in real pixels (kitty, sixel), or half-blocks like the others.
        self.zoom_image = zoom_image or ZoomImage("blocks", (10, 20))
        self.tiles: dict[int, BoothTile] = {
            slot: BoothTile(slot, colour_mode, raw=raw) for slot in range(1, MAX_SLOTS + 1)
        }
        self.banner = Static("", id="banner")
        self.supervised = Static("", id="supervised")  # an officer's: who coaches or barges
        self.grid = Container(id="grid")
        self.status = Static(t("status.connecting"), id="status")
        self.message = Static("", id="message")
        self.mic = Static("", id="mic")
        self.selected_slot = 1
        self.zoomed = False
        self.occupied: set[int] = set()
        self.capacity = MAX_SLOTS
        self.paint_timer: Timer | None = None
        self.tiles[1].selected = True

    def compose(self) -> ComposeResult:
        yield self.banner
        yield self.supervised
        with self.grid:
            yield from self.tiles.values()
        with Horizontal(id="statusbar"):
            yield self.status
            yield self.message
            yield self.mic
        yield DeskFooter()

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """As the footer shows them: in the console's language, fewer when narrow."""
        return presented(super().active_bindings, narrow=is_narrow(self.app.size.width))

    def on_screen_suspend(self) -> None:
        self.zoom_image.clear()  # an image would stay above the dialog
        for tile in self.tiles.values():
            tile.video.paused = True  # the tile says "video paused", not "connecting…"

    def on_screen_resume(self) -> None:
        for tile in self.tiles.values():
            tile.video.paused = False

    def on_resize(self) -> None:
        self.relayout()

    # -- tiles ----------------------------------------------------------------------------

    def show(self, infos: dict[int, TileInfo], occupied: set[int], capacity: int) -> None:
        """New text for the given tiles; the grid follows the slots occupied."""
        for slot, info in infos.items():
            self.tiles[slot].update_info(info)
        if occupied != self.occupied or capacity != self.capacity:
            self.occupied, self.capacity = occupied, capacity
            self.relayout()

    def visible_count(self) -> int:
        return visible_slots(self.occupied | {self.selected_slot}, self.capacity)

    def relayout(self) -> None:
        """Show as many tiles as the desk needs, in a grid that fits the screen."""
        if not self.is_mounted:
            return
        count = self.visible_count()
        if self.zoomed:
            cols, rows = 1, 1
        else:
            cols, rows = grid_shape(count, self.size.width, self.size.height)
        self.grid.styles.grid_size_columns = cols
        self.grid.styles.grid_size_rows = rows
        for slot, tile in self.tiles.items():
            tile.display = slot == self.selected_slot if self.zoomed else slot <= count

    def select(self, slot: int) -> None:
        if slot != self.selected_slot:
            self.zoom_image.clear()
        self.tiles[self.selected_slot].selected = False
        self.selected_slot = slot
        self.tiles[slot].selected = True
        if self.zoomed:
            self.relayout()

    def step_selection(self, step: int) -> None:
        """``tab``/``shift+tab``: the next or previous visible slot, wrapping around."""
        count = visible_slots(self.occupied, self.capacity)
        self.select((self.selected_slot - 1 + step) % count + 1)

    def toggle_zoom(self) -> None:
        self.zoomed = not self.zoomed
        if not self.zoomed:
            self.zoom_image.clear()
        self.relayout()

    # -- lines ----------------------------------------------------------------------------

    def say(self, text: str, severity: str = "information") -> None:
        self.message.update(text)
        self.message.set_classes(severity)

    def show_status(self, text: str) -> None:
        self.status.update(text)

    def show_banner(self, text: str) -> None:
        self.banner.add_class("read-only")
        self.banner.update(text)

    def show_supervised(self, text: str, mode: str | None) -> None:
        """The officer's line above the tiles while a supervisor coaches or barges (``mode``
        ``coach`` or ``barge``, styled apart: a barge is heard by the claimant); ``None``
        hides it, so nobody supervising leaves the desk as it always was."""
        self.supervised.update(text)
        self.supervised.set_class(mode == "coach", "coach")
        self.supervised.set_class(mode == "barge", "barge")

    def show_mic(self, text: str, muted: bool) -> None:
        self.mic.update(text)
        self.mic.set_class(muted, "muted")

    # -- video ----------------------------------------------------------------------------

    def start_painting(
        self,
        fps: float,
        links: Callable[[], Iterable[tuple[int, FrameSource]]],
        backlog: Callable[[], int],
        paint_log: PaintLog | None = None,
    ) -> None:
        """Poll for new frames faster than they come: a frame waits at most one poll."""
        min_gap = 0.5 / max(1.0, fps)

        def paint() -> None:
            self.paint(links(), backlog(), min_gap, paint_log)

        self.paint_timer = self.set_interval(1 / (4 * max(1.0, fps)), paint)

    def paint(
        self,
        links: Iterable[tuple[int, FrameSource]],
        backlog: int,
        min_gap: float,
        paint_log: PaintLog | None = None,
    ) -> None:
        """Paint each tile's newest frame; drop the tick when the terminal is behind.

        At most twice video.fps per tile: a frame that arrives early after a late one is
        painted at once (waiting to space them out would only add latency).
        """
        stack = self.app.screen_stack  # empty while the app shuts down
        if not stack or stack[-1] is not self or backlog > WRITE_BACKLOG:
            return  # frames stay unread and are replaced by newer ones: dropped, not queued
        now = time.monotonic()
        for slot, link in links:
            if paint_log is not None:
                paint_log.seen(slot, link)
            video = self.tiles[slot].video  # by reference: no lookup that can miss
            if now - video.painted_at < min_gap:
                continue
            frame = link.take_frame()
            if frame is None:
                continue
            video.painted_at = now
            if self.zoomed and slot == self.selected_slot and self.zoom_image.enabled:
                self.zoom_image.draw(video, frame)
                continue
            if not video.show(frame):
                continue
            if paint_log is not None and video.last_rgb is not None:
                arrived: Any = getattr(link, "last_frame_at", None)
                paint_log.painted(slot, video.last_rgb, arrived, frame.width)
