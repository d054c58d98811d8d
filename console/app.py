"""The officer's console: a thin shell over one desk session.

Desk state and media come from the session (``session_factory``, a real connection by
default, a fake one in the key tests); keys turn into its requests (console/commands.py).
The session reports each change as a ``DeskChange``; the app posts it to itself as a
``DeskChanged`` message, and a burst of them merges into one (``can_replace``), so the tiles
are redrawn once per change, and only the tiles whose visits changed.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol

from textual.app import SystemCommand
from textual.binding import BindingType
from textual.message import Message
from textual.screen import Screen

from lapak.console import i18n
from lapak.console.commands import DeskCommands, who
from lapak.console.config import ConsoleConfig, colour_mode
from lapak.console.desk_screen import DeskScreen, FrameSource
from lapak.console.graphics_detect import TerminalGraphics
from lapak.console.i18n import t
from lapak.console.keys import (
    BINDING_IDS,
    MUTATING_ACTIONS,
    OFFICER_KEYS,
    make_bindings,
    palette_commands,
)
from lapak.console.paintlog import PaintLog
from lapak.console.render import ColourMode
from lapak.console.terminal import TerminalDriver, driver_class
from lapak.console.tile import BoothTile
from lapak.console.tile_view import tile_info
from lapak.console.zoom_image import ZoomImage
from lapak.media.desk_session import DeskChange, DeskSession, Engine
from lapak.media.officer import OfficerMedia, OfficerMediaOptions, SupervisorMedia
from lapak.media.tones import AudioSource
from lapak.signaling.client import RequestError

__all__ = ["BINDING_IDS", "DeskChanged", "LapakConsole"]

log = logging.getLogger("lapak.console")

SWITCH_INTERVAL_S = 0.001


class SessionFactory(Protocol):
    """How the app gets its desk session (tests pass a fake one)."""

    def __call__(
        self,
        url: str,
        token: str,
        *,
        engine: Engine | None,
        watch: str | None,
        on_change: Callable[[DeskChange], None],
        clock: Callable[[], float],
        read_only: bool,
        watch_all: bool,
        request_timeout: float,
    ) -> DeskSession: ...


class DeskChanged(Message):
    """The session's model changed. Queued ones merge: the newest absorbs the older."""

    def __init__(self, change: DeskChange) -> None:
        super().__init__()
        self.change = change

    def can_replace(self, message: Message) -> bool:
        if isinstance(message, DeskChanged):
            message.change = self.change | message.change
            return True
        return False


class LapakConsole(DeskCommands):
    CSS_PATH = Path(__file__).with_name("console.tcss")
    TITLE = "Lapak"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS: ClassVar[list[BindingType]] = make_bindings(OFFICER_KEYS)

    def __init__(
        self,
        url: str | None,
        token: str,
        *,
        read_only: bool = False,
        desk: str | None = None,
        voice: AudioSource | None = None,
        media: bool = True,
        media_options: OfficerMediaOptions | None = None,
        config: ConsoleConfig | None = None,
        language: str | None = None,
        raw_video: bool = True,
        clock: Callable[[], float] = time.time,
        confirm_quit: bool = True,
        request_timeout: float = 10.0,
        session_factory: SessionFactory = DeskSession,
        graphics: TerminalGraphics | None = None,
    ) -> None:
        self.config = config or ConsoleConfig()
        self.confirm_quit = confirm_quit
        i18n.set_language(language or self.config.language or i18n.default_language())
        self.paint_log = PaintLog.from_env()
        # The terminal writer and the video decoders are threads: with Python's default 5 ms
        # GIL switch interval a finished paint waits ~5-10 ms for the writer to get the GIL.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.terminal: TerminalDriver | None = None  # set when the terminal driver starts
        super().__init__(driver_class=driver_class(self.paint_log, self._terminal_started))
        if self.config.keys:
            self.set_keymap(self.config.keys)
        self.url = url
        self.read_only = read_only
        self.clock = clock
        self.fatal: str | None = None  # why the console stopped for good (printed by the CLI)
        self.ended: str | None = None  # "replaced" or "refused": the CLI turns it into an exit code
        self.messages: list[tuple[str, str]] = []  # (severity, text), newest last
        self.snapshots: list[tuple[Path, str]] = []
        mode: ColourMode = "256" if colour_mode(self.config.colour) == "256" else "truecolor"
        graphics = graphics or TerminalGraphics("blocks", (10, 20), "default")
        zoom = ZoomImage(graphics.mode, graphics.cell, self._write_terminal)
        self.desk_screen = DeskScreen(mode, raw=raw_video, zoom_image=zoom)
        self.engine: Engine | None = self._make_engine(media, voice, media_options)
        self.session = session_factory(
            url or "",
            token,
            engine=self.engine,
            watch=desk,
            on_change=self._on_session_change,
            clock=clock,
            read_only=read_only,
            watch_all=read_only,  # the supervisor's overview counts every desk
            request_timeout=request_timeout,
        )

    def _make_engine(
        self, enabled: bool, voice: AudioSource | None, options: OfficerMediaOptions | None
    ) -> Engine | None:
        """The media engine the session drives (it attaches its own ``send_sdp``)."""
        if not enabled:
            return None
        if self.read_only:
            return SupervisorMedia()
        return OfficerMedia(None, options, voice=voice)

    def _on_session_change(self, change: DeskChange) -> None:
        self.post_message(DeskChanged(change))

    def get_default_screen(self) -> Screen[Any]:
        return self.desk_screen

    @property
    def media(self) -> Engine | None:
        """The media engine (its ``links`` by visit)."""
        return self.engine

    def tile(self, slot: int) -> BoothTile:
        return self.desk_screen.tiles[slot]

    # -- start and end --------------------------------------------------------------------

    def on_mount(self) -> None:
        """The tiles exist: show them, then connect and start the video and clock timers."""
        if self.read_only:
            self.desk_screen.show_banner(t("banner.read_only", desk=self.session.desk or "…"))
        self.redraw(DeskChange(desk=True, connection=True))
        self.show_mic()
        if self.url:
            self.run_worker(self._start(), name="session", exclusive=True)
        self.desk_screen.start_painting(
            self.config.fps, self._frame_sources, self._terminal_backlog, self.paint_log
        )
        self.clock_timer = self.set_interval(1.0, self._housekeeping)

    async def _start(self) -> None:
        """Connect (a server not up yet is tried again); a refused token ends the console
        through the session's ``ended``, like any other end."""
        try:
            await self.session.start(retry=True)
        except RequestError as exc:
            log.info("event=start_refused error=%s", exc)
        except OSError as exc:  # an untrusted certificate: waiting does not help
            log.error("event=cannot_connect url=%s error=%s", self.url, exc)
            self.desk_screen.show_status(t("status.cannot_connect", url=self.url, error=exc))
            return
        self.redraw(DeskChange(desk=True, connection=True))

    def on_desk_changed(self, message: DeskChanged) -> None:
        self.redraw(message.change)

    def redraw(self, change: DeskChange) -> None:
        """Show one change: the connection line, the desk, or only the visits it names."""
        session = self.session
        if change.connection:
            if session.ended is not None:
                if self.ended is None:
                    self._end_for_good()
                return
            self._show_connection()
            welcome = session.welcome
            if welcome is not None and not welcome.resumed:
                self.zoom_told = None  # a new server session has zoomed nothing
        if change.desk or change.connection:
            self._show_supervised()
        model = self.model
        self._tell_departures()
        by_slot = model.by_slot()
        now = self.clock()
        if change.desk:
            slots = set(range(1, len(self.desk_screen.tiles) + 1))
        else:
            slots = {s for s, v in by_slot.items() if v.visit in change.visits}
            slots |= {s for s, tile in self.desk_screen.tiles.items()
                      if tile.visit_id in change.visits}  # fmt: skip
        infos = {s: tile_info(model, by_slot.get(s), now, self.config, self.engine) for s in slots}
        self.desk_screen.show(infos, set(by_slot), model.capacity)
        self.sync_zoom()

    def _end_for_good(self) -> None:
        """The server will not take this token back: one clear line, a non-zero exit.

        The one place that turns the session's ``ended`` into ``app.ended`` (the CLI's exit
        code) and ``app.fatal`` (its line on stderr).
        """
        session = self.session
        detail = session.end_detail or ""
        if session.ended == "replaced":
            self.fatal, self.ended = t("fatal.replaced", error=detail), "replaced"
        elif session.ended == "wrong_role":
            role = session.welcome.role if session.welcome else "?"
            self.fatal, self.ended = t("fatal.wrong_role", role=role), "refused"
        else:
            self.fatal, self.ended = t("fatal.refused", error=detail), "refused"
        log.error("event=session_ended reason=%r", self.fatal)
        self.exit(return_code=1)

    def _show_connection(self) -> None:
        """The status line: connected (who, where), lost, or why it cannot connect."""
        session, screen, welcome = self.session, self.desk_screen, self.session.welcome
        if self.read_only and session.desk:
            screen.show_banner(t("banner.read_only", desk=session.desk))
        if session.connected and welcome is not None:
            if session.watcher and session.desk is None:
                screen.show_status(t("status.no_desk"))
                return
            screen.show_status(
                t("status.connected", role=welcome.role, sub=welcome.sub, office=welcome.office,
                  desk=session.desk or "-")
            )  # fmt: skip
        elif session.last_failure is not None:
            error = session.last_failure
            screen.show_status(t("status.cannot_connect", url=self.url, error=error))
        elif welcome is not None:
            screen.show_status(t("status.lost", url=self.url))

    def _show_supervised(self) -> None:
        """The officer's line while a supervisor coaches or barges this desk (the server's
        ``supervision``, kept by the session). Nothing is shown while not connected: the
        server tells again after the reconnect what is still on."""
        if self.read_only:
            return  # a watcher is never told of supervision: its own banner says its part
        session = self.session
        now = sorted(session.supervisions.values(), key=lambda s: (s.mode != "barge", s.sub))
        if not session.connected or not now:
            self.desk_screen.show_supervised("", None)
            return
        text = " · ".join(t(f"supervised.{s.mode}", sub=s.sub) for s in now)
        self.desk_screen.show_supervised(text, now[0].mode)

    def _tell_departures(self) -> None:
        """A visit that left because its booth did not come back: the officer is told (the
        other desks a supervisor watches are emptied too, so their lists never grow)."""
        model = self.model
        departed, model.departed = model.departed, []
        for other in self.session.models.values():
            other.departed.clear()
        for before, after in departed:
            if after.outcome == "abandoned" and not self.read_only:
                self.say(t("msg.abandoned", who=who(before)), "warning")

    def _housekeeping(self) -> None:
        """Re-offer links that failed or got no answer; refresh clocks and meters."""
        self.session.reconcile()
        self.redraw(DeskChange(frozenset(self.model.visits)))
        self.show_mic()

    def _frame_sources(self) -> Iterator[tuple[int, FrameSource]]:
        if self.engine is None:
            return
        for slot, visit in self.model.by_slot().items():
            link = self.engine.links.get(visit.visit)
            if link is not None:
                yield slot, link

    def _terminal_started(self, driver: TerminalDriver) -> None:
        self.terminal = driver

    def _write_terminal(self, data: str) -> None:
        """Bytes Textual does not know of (the zoomed tile's pixels), through its writer."""
        if self.terminal is not None:
            self.terminal.write(data)

    def _terminal_backlog(self) -> int:
        """Terminal writes not done yet (none under a test's headless driver)."""
        return self.terminal.backlog() if self.terminal is not None else 0

    async def on_unmount(self) -> None:
        await self.session.close()
        if self.paint_log is not None:
            self.paint_log.close()

    # -- keys -----------------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Every key's action is also a command in the palette (ctrl+p)."""
        return palette_commands(self.KEYS, self._runner)

    def _runner(self, action: str) -> Callable[[], Any]:
        async def run() -> None:
            await self.run_action(action)

        return run

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.read_only and action in MUTATING_ACTIONS)
