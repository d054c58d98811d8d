"""The officer's console (and, read-only, the supervisor's view of a desk).

The app is a thin shell: desk state comes from the server (``DeskModel``), media from
``OfficerMedia``; keys turn into protocol requests. A decision is shown as sent until the
server acknowledges it; if refused, the console asks the server for a fresh snapshot and shows
its truth with the server's message. Every decision names slot and claimant in its dialog and in
the status line, and a decision about a booth that is not on air asks first. Anything drawn
over the tiles (dialogs, help, the command palette) suspends the desk screen, which pauses
the video: raw video rows cannot be composited under an overlay.

The tiles are created with the app and held by reference (``tiles``), so the paint timer and
server messages can reach them whatever the mount order.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import io
import logging
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import av
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.widgets._footer import FooterKey

from lapak.console import i18n
from lapak.console.config import ConsoleConfig, colour_mode, default_snapshot_dir, write_private
from lapak.console.desk import MAX_SLOTS, DeskModel
from lapak.console.i18n import t
from lapak.console.layout import grid_shape, visible_slots
from lapak.console.paintlog import PaintLog, driver_for
from lapak.console.screens import (
    ConfirmQuit,
    ConfirmScreen,
    HelpScreen,
    KeyHelp,
    NoteScreen,
    OfficeOverview,
    PickScreen,
    figures_from,
)
from lapak.console.tile import BoothTile, TileInfo
from lapak.media import officer as officer_media
from lapak.media.officer import OfficerMedia
from lapak.media.tones import AudioSource
from lapak.signaling.client import FINAL_ERROR_CODES, RequestError, SignalClient

log = logging.getLogger("lapak.console")

FAILURES = (RequestError, ConnectionError, TimeoutError, OSError)
SWITCH_INTERVAL_S = 0.001
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 10.0
WRITE_BACKLOG = 2  # pending terminal writes above which a video tick is dropped
WIDE_FOOTER = 120  # narrower terminals show only the keys an officer needs to decide

# (binding id, key, action, label key, help key, shown in footer)
_OFFICER_KEYS: list[tuple[str, str, str, str, str, bool]] = [
    *(
        (f"on_air_{n}", str(n), f"focus_slot({n})", "key.on_air", "help.on_air", n == 1)
        for n in range(1, MAX_SLOTS + 1)
    ),
    ("off_air", "0", "focus_slot(0)", "key.off_air", "help.off_air", False),
    ("next", "tab", "select(1)", "key.next", "help.next", False),
    ("previous", "shift+tab", "select(-1)", "key.previous", "help.previous", False),
    ("longest", "space", "longest", "key.longest", "help.longest", True),
    ("approve", "a", "approve", "key.approve", "help.approve", True),
    ("reject", "x", "reject", "key.reject", "help.reject", True),
    ("reopen", "o", "reopen", "key.reopen", "help.reopen", True),
    ("zoom", "z", "zoom", "key.zoom", "help.zoom", True),
    ("mute", "m", "mute", "key.mute", "help.mute", True),
    ("finish", "d", "finish", "key.finish", "help.finish", True),
    ("escalate", "e", "escalate", "key.escalate", "help.escalate", True),
    ("snapshot", "s", "snapshot", "key.snapshot", "help.snapshot", True),
    ("help", "question_mark", "help", "key.help", "help.help", True),
    ("quit", "q", "quit_console", "key.quit", "help.quit", True),
]

_SUPERVISOR_KEYS: list[tuple[str, str, str, str, str, bool]] = [
    ("next", "tab", "select(1)", "key.next", "help.next", True),
    ("previous", "shift+tab", "select(-1)", "key.previous", "help.previous", False),
    ("zoom", "z", "zoom", "key.zoom", "help.zoom", True),
    ("overview", "v", "overview", "key.overview", "help.overview", True),
    ("desks", "w", "pick_desk", "key.desks", "help.desks", True),
    ("help", "question_mark", "help", "key.help", "help.help", True),
    ("quit", "q", "quit_console", "key.quit", "help.quit", True),
]

BINDING_IDS = frozenset(k[0] for k in _OFFICER_KEYS + _SUPERVISOR_KEYS)

ESSENTIAL_ACTIONS = frozenset(
    {"focus_slot(1)", "approve", "reject", "finish", "help", "quit_console", "select(1)", "zoom",
     "overview", "pick_desk"}
)  # fmt: skip
"""The footer keys kept on a narrow terminal (the rest are in help and the palette)."""

MUTATING_ACTIONS = frozenset(
    {"focus_slot", "longest", "approve", "reject", "reopen", "mute", "finish", "escalate",
     "snapshot"}
)  # fmt: skip


def make_bindings(table: list[tuple[str, str, str, str, str, bool]]) -> list[BindingType]:
    """The bindings of a key table in the current language."""
    return [
        Binding(
            key,
            action,
            t(label),
            show=show,
            id=binding_id,
            key_display="1-6" if binding_id == "on_air_1" else None,
            priority=key in ("tab", "shift+tab"),
            tooltip=t(help_key),
        )
        for binding_id, key, action, label, help_key, show in table
    ]


class DeskFooter(Footer):
    """The footer; below ``WIDE_FOOTER`` columns only the essential keys, so that help and
    quit never fall off the edge."""

    _narrow: bool | None = None

    def compose(self) -> ComposeResult:
        narrow = self.app.size.width < WIDE_FOOTER
        self._narrow = narrow
        for widget in super().compose():
            keep = (
                not narrow
                or not isinstance(widget, FooterKey)
                or widget.action in ESSENTIAL_ACTIONS
                or widget.has_class("-command-palette")
            )
            if keep:
                yield widget

    def on_resize(self) -> None:
        if self._narrow is not None and self._narrow != (self.app.size.width < WIDE_FOOTER):
            self.call_after_refresh(self.recompose)


class DeskScreen(Screen[None]):
    """The tiles. Suspended (video paused) whenever another screen is on top.

    Its lines are held by reference, like the tiles: the app writes to them whether or not
    they are mounted yet.
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.banner = Static("", id="banner")
        self.grid = Container(id="grid")
        self.status = Static(t("status.connecting"), id="status")
        self.message = Static("", id="message")
        self.mic = Static("", id="mic")

    def compose(self) -> ComposeResult:
        app = self.app
        assert isinstance(app, LapakConsole)
        yield self.banner
        with self.grid:
            yield from app.tiles.values()
        with Horizontal(id="statusbar"):
            yield self.status
            yield self.message
            yield self.mic
        yield DeskFooter()

    def on_mount(self) -> None:
        app = self.app
        assert isinstance(app, LapakConsole)
        app.desk_mounted()

    def on_screen_suspend(self) -> None:
        app = self.app
        assert isinstance(app, LapakConsole)
        for tile in app.tiles.values():
            tile.video.paused = True  # the tile says "video paused", not "connecting…"

    def on_screen_resume(self) -> None:
        app = self.app
        assert isinstance(app, LapakConsole)
        for tile in app.tiles.values():
            tile.video.paused = False

    def on_resize(self) -> None:
        app = self.app
        if isinstance(app, LapakConsole):
            app.relayout()


class LapakConsole(App[None]):
    CSS_PATH = Path(__file__).with_name("console.tcss")
    TITLE = "Lapak"
    ENABLE_COMMAND_PALETTE = True

    KEYS = _OFFICER_KEYS
    BINDINGS: ClassVar[list[BindingType]] = make_bindings(_OFFICER_KEYS)

    def __init__(
        self,
        url: str | None,
        token: str,
        *,
        read_only: bool = False,
        desk: str | None = None,
        voice: AudioSource | None = None,
        media: bool = True,
        media_options: Any = None,
        config: ConsoleConfig | None = None,
        language: str | None = None,
        raw_video: bool = True,
        clock: Callable[[], float] = time.time,
        confirm_quit: bool = True,
        request_timeout: float = 10.0,
    ) -> None:
        self.config = config or ConsoleConfig()
        self.confirm_quit = confirm_quit
        i18n.set_language(language or self.config.language or i18n.default_language())
        self.paint_log = PaintLog.from_env()
        # The terminal writer and the video decoders are threads: with Python's default 5 ms
        # GIL switch interval a finished paint waits ~5-10 ms for the writer to get the GIL.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        super().__init__(driver_class=driver_for(self.paint_log) if self.paint_log else None)
        for binding in make_bindings(self.KEYS):  # labels in the chosen language
            self._bindings.key_to_bindings[binding.key] = [binding]
        if self.config.keys:
            self.set_keymap(self.config.keys)
        self.url = url
        self.token = token
        self.read_only = read_only
        self.watch_desk = desk
        self.clock = clock
        self.raw_video = raw_video
        self.colour_mode = colour_mode(self.config.colour)  # type: ignore[assignment]
        self.models: dict[str, DeskModel] = {}
        self.current_desk: str | None = None
        self._spare_model = DeskModel()
        self.request_timeout = request_timeout
        self.client = self._new_client()
        self.sessions = 0  # connections opened (1 + reconnects)
        self.fatal: str | None = None  # why the console stopped for good (printed by the CLI)
        self.ended: str | None = None  # "replaced" or "refused": the CLI turns it into an exit code
        self.tiles: dict[int, BoothTile] = {
            slot: BoothTile(slot, self.colour_mode, raw=raw_video)  # type: ignore[arg-type]
            for slot in range(1, MAX_SLOTS + 1)
        }
        self.media: Any = self._make_media(media, voice, media_options)
        self.selected_slot = 1
        self.zoomed = False
        self.connected = asyncio.Event()
        self.welcome: dict[str, Any] = {}
        self.office_stats: dict[str, Any] | None = None
        self.messages: list[tuple[str, str]] = []  # (severity, text), newest last
        self.snapshots: list[tuple[Path, str]] = []
        self._link_tasks: set[asyncio.Task[Any]] = set()
        self._ensuring: set[str] = set()  # visits with an ``ensure`` task not finished yet
        self.desk_screen = DeskScreen(id="desk")

    def _make_media(self, enabled: bool, voice: AudioSource | None, options: Any) -> Any:
        if not enabled:
            return None
        if self.read_only:
            cls = getattr(officer_media, "SupervisorMedia", None)
            return cls(self._send_sdp) if cls is not None else None
        params = inspect.signature(OfficerMedia).parameters
        if "options" in params:
            opts_cls = getattr(officer_media, "OfficerMediaOptions", None)
            if options is None and voice is not None and opts_cls is not None:
                fields = inspect.signature(opts_cls).parameters
                options = opts_cls(voice=voice) if "voice" in fields else None
            return OfficerMedia(self._send_sdp, options)
        return OfficerMedia(self._send_sdp, voice)

    def get_default_screen(self) -> Screen[Any]:
        return self.desk_screen

    def _new_client(self) -> SignalClient:
        # The console runs its own reconnect loop (``_session``): one client per connection.
        return SignalClient(
            self.url or "",
            self.token,
            self._on_server_message,
            reconnect=False,
            request_timeout=self.request_timeout,
        )

    # -- model ------------------------------------------------------------------------

    @property
    def model(self) -> DeskModel:
        if self.current_desk is None:
            return self._spare_model
        return self.models.setdefault(self.current_desk, DeskModel())

    def tile(self, slot: int) -> BoothTile:
        return self.tiles[slot]

    def load_snapshot(self, message: dict[str, Any]) -> None:
        """Apply a desk snapshot (what the server sends on hello and watch)."""
        desk = message["state"]["desk"]
        if self.current_desk is None:
            self.current_desk = desk
        self.models.setdefault(desk, DeskModel()).load_snapshot(message, now=self.clock())
        if desk == self.current_desk:
            self._sync()

    def desk_mounted(self) -> None:
        """The tiles exist: show them, then connect and start the video and clock timers."""
        screen = self.desk_screen
        banner = screen.banner
        if self.read_only:
            banner.add_class("read-only")
            banner.update(t("banner.read_only", desk=self.watch_desk or "…"))
        self.tile(self.selected_slot).selected = True
        self.relayout()
        self._sync()
        self._show_mic()
        if self.url:
            self.run_worker(self._session(), name="session", exclusive=True)
        # Poll for new frames faster than they come: a frame waits at most one poll.
        self.set_interval(1 / (4 * max(1.0, self.config.fps)), self._paint_video)
        self.set_interval(1.0, self._housekeeping)

    # -- session ----------------------------------------------------------------------

    async def _session(self) -> None:
        """Connect, and reconnect with back-off whenever the connection drops.

        After a reconnect the server sends a fresh snapshot; requests that were in flight when
        the connection dropped were shown as not confirmed, never as done. A refused or
        expired token (4001) and a takeover by another console (4002) end the console instead.
        """
        delay = RECONNECT_MIN_S
        while True:
            try:
                if not await self._connect_once():
                    return
                delay = RECONNECT_MIN_S
                await self.client.closed.wait()
                if self.client.ended is not None:
                    self._stop_for_good(self.client.ended, self.client.close_code)
                    return
                self._status(t("status.lost", url=self.url))
                log.warning("event=connection_lost url=%s", self.url)
            except RequestError as exc:
                if exc.code in FINAL_ERROR_CODES:
                    self._stop_for_good(str(exc), 4002 if exc.code == "replaced" else 4001)
                    return
                self._status(t("status.cannot_connect", url=self.url, error=exc))
            except FAILURES as exc:
                self._status(t("status.cannot_connect", url=self.url, error=exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
            await self.client.close()
            self.client = self._new_client()

    def _stop_for_good(self, error: str, close_code: int | None) -> None:
        """The server will not take this token back: one clear line, a non-zero exit."""
        if close_code == 4002 or error.startswith("replaced"):
            self.fatal, self.ended = t("fatal.replaced", error=error), "replaced"
        else:
            self.fatal, self.ended = t("fatal.refused", error=error), "refused"
        log.error("event=session_ended reason=%r", self.fatal)
        self.exit(return_code=1)

    async def _connect_once(self) -> bool:
        """One connection: hello, then watch (supervisors). False: nothing to watch."""
        self.sessions += 1
        welcome = await self.client.connect()
        self.welcome = welcome
        role = welcome["role"]
        desk = welcome.get("desk")
        if role != "officer" and not self.read_only:
            self.fatal, self.ended = t("fatal.wrong_role", role=role), "refused"
            self.exit(return_code=1)
            return False
        if role != "officer":
            desks = list(welcome.get("desks") or [])
            desk = self.current_desk or self.watch_desk or (desks[0] if desks else None)
            if desk is None:
                self._status(t("status.no_desk"))
                return False
            self.current_desk = desk
            self._set_banner(desk)
            for other in [desk, *(d for d in desks if d != desk)]:
                try:  # answered by the desk's snapshot (signaling.client waits for it)
                    await self.client.request({"type": "watch", "desk": other})
                except RequestError as exc:
                    log.info("event=watch_refused desk=%s error=%s", other, exc)
        self.connected.set()
        self._status(
            t("status.connected", role=role, sub=welcome["sub"], office=welcome["office"],
              desk=desk or "-")
        )  # fmt: skip
        return True

    def _set_banner(self, desk: str) -> None:
        if self.read_only:
            self.desk_screen.banner.update(t("banner.read_only", desk=desk))

    def _status(self, text: str) -> None:
        self.desk_screen.status.update(text)

    def say(self, text: str, severity: str = "information") -> None:
        """Messages go to the status bar, never to a toast over the video."""
        self.messages.append((severity, text))
        del self.messages[:-50]
        log.info("event=message severity=%s text=%r", severity, text)
        message = self.desk_screen.message
        message.update(text)
        message.set_classes(severity)

    def _show_mic(self) -> None:
        muted = bool(getattr(self.media, "muted", False))
        mic = self.desk_screen.mic
        mic.update("" if self.read_only else t("status.muted") if muted else t("status.live"))
        mic.set_class(muted, "muted")

    async def _send_sdp(
        self, visit: str, sdp_type: str, sdp: str, offer_id: str | None = None
    ) -> None:
        """An offer for the media engine; a refusal raises ``RequestError`` back to it (it
        decides when to offer again: ``not_connected`` means the booth is away)."""
        message: dict[str, Any] = {"type": "sdp", "visit": visit, "sdp_type": sdp_type, "sdp": sdp}
        if offer_id is not None:
            message["offer_id"] = offer_id
        await self.client.request(message)

    async def _on_server_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "snapshot":
            self.load_snapshot(message)
        elif kind == "delta":
            desk = message.get("desk")
            model = self.models.get(desk or "")
            if model is None:
                return
            if not model.apply_delta(message, now=self.clock()):
                log.warning("event=seq_gap desk=%s", desk)
                await self.client.send({"type": "watch", "desk": desk})
            if desk == self.current_desk:
                self._tell_departures(model)
                self._sync()
        elif kind == "sdp" and message.get("sdp_type") == "answer" and self.media:
            await self.media.on_answer(message["visit"], message["sdp"], message.get("offer_id"))

    def _tell_departures(self, model: DeskModel) -> None:
        """A visit that left because its booth did not come back: the officer is told."""
        departed, model.departed = model.departed, []
        for before, after in departed:
            if after.get("outcome") == "abandoned" and not self.read_only:
                self.say(t("msg.abandoned", who=self.who(before)), "warning")

    # -- tiles ------------------------------------------------------------------------

    def relayout(self) -> None:
        """Show as many tiles as the desk needs, in a grid that fits the screen."""
        screen = self.desk_screen
        if not screen.is_mounted:
            return
        occupied = set(self.model.by_slot())
        count = visible_slots(occupied | {self.selected_slot}, self.model.capacity)
        grid = screen.grid
        if self.zoomed:
            cols, rows = 1, 1
        else:
            cols, rows = grid_shape(count, screen.size.width, screen.size.height)
        grid.styles.grid_size_columns = cols
        grid.styles.grid_size_rows = rows
        for slot in range(1, MAX_SLOTS + 1):
            shown = slot == self.selected_slot if self.zoomed else slot <= count
            self.tile(slot).display = shown

    def _tile_info(self, slot: int, visit: dict[str, Any] | None, now: float) -> TileInfo:
        if visit is None:
            return TileInfo(None)
        model = self.model
        visit_id = visit["visit"]
        steps = [(s["name"], model.step_status(visit_id, i)) for i, s in enumerate(visit["steps"])]
        silent = model.silent_for(visit_id, now)
        level = ""
        if silent is not None and visit_id != model.on_air:
            if silent >= self.config.red_after_s:
                level = "red"
            elif silent >= self.config.amber_after_s:
                level = "amber"
        info = TileInfo(
            visit,
            steps,
            on_air=visit_id == model.on_air,
            in_visit_s=now - visit["started_at"],
            silent_s=silent,
            silence_level=level,
        )
        if visit.get("booth_present") is False:  # the server's presence, not a media glitch
            info.away_since = visit.get("booth_away_since") or now
        link = self.media.links.get(visit_id) if self.media is not None else None
        if link is not None:
            info.link_state = getattr(link, "state", "connecting")
            stats = getattr(link, "stats", None)
            if stats is not None and info.link_state == "connected":
                info.grade = getattr(stats, "grade", None)
                info.rtt_ms = getattr(stats, "rtt_ms", None)
            audio = getattr(link, "audio", None)
            info.audio_dbfs = float(getattr(audio, "level_dbfs", -100.0))
        return info

    def _sync(self) -> None:
        """Make tiles and media links match the desk model."""
        if not self.desk_screen.is_mounted:
            return
        now = self.clock()
        by_slot = self.model.by_slot()
        for slot in range(1, MAX_SLOTS + 1):
            self.tile(slot).update_info(self._tile_info(slot, by_slot.get(slot), now))
        self.relayout()
        if self.media is not None:
            if hasattr(self.media, "set_on_air"):
                self.media.set_on_air(self.model.on_air)
            wanted = set(self.model.visits)
            for visit_id in wanted:
                if hasattr(self.media, "set_booth_present"):  # offer again when it is back
                    present = self.model.visits[visit_id].get("booth_present")
                    self.media.set_booth_present(visit_id, present)
                if visit_id not in self.media.links:
                    self._ensure(visit_id)
            for visit_id in set(self.media.links) - wanted:
                self._spawn(self.media.drop(visit_id))

    def _ensure(self, visit_id: str) -> None:
        """One ``ensure`` per visit at a time: several syncs in one loop turn (a snapshot and
        its deltas) all see the link missing until the first ``ensure`` task has run."""
        if visit_id in self._ensuring:
            return
        self._ensuring.add(visit_id)

        async def ensure() -> None:
            try:
                await self.media.ensure(visit_id)
            finally:
                self._ensuring.discard(visit_id)

        self._spawn(ensure())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._link_tasks.add(task)
        task.add_done_callback(self._link_tasks.discard)

    def _housekeeping(self) -> None:
        """Re-offer links that failed or got no answer; refresh clocks and meters."""
        if not self.desk_screen.is_mounted:
            return
        if self.media is not None and hasattr(self.media, "needs_offer"):
            for visit_id in self.model.visits:
                if self.media.needs_offer(visit_id):
                    self._ensure(visit_id)
        now = self.clock()
        for slot, visit in self.model.by_slot().items():
            self.tile(slot).update_info(self._tile_info(slot, visit, now))
        self._show_mic()

    def _terminal_backlog(self) -> int:
        writer = getattr(self._driver, "_writer_thread", None)
        queue = getattr(writer, "_queue", None)
        return queue.qsize() if queue is not None else 0

    def _paint_video(self) -> None:
        """Paint each tile's newest frame; drop the tick when the terminal is behind."""
        stack = self.screen_stack  # empty while the app shuts down
        if self.media is None or not stack or stack[-1] is not self.desk_screen:
            return
        if self._terminal_backlog() > WRITE_BACKLOG:
            return  # frames stay unread and are replaced by newer ones: dropped, not queued
        now = time.monotonic()
        # At most twice video.fps per tile: a frame that arrives early after a late one is
        # painted at once (waiting to space them out would only add latency).
        min_gap = 0.5 / max(1.0, self.config.fps)
        for slot, visit in self.model.by_slot().items():
            link = self.media.links.get(visit["visit"])
            if link is None:
                continue
            video = self.tiles[slot].video  # by reference: no lookup that can miss
            if now - video.painted_at < min_gap:
                continue
            frame = link.take_frame()
            if frame is None:
                continue
            video.painted_at = now
            if not video.show(frame):
                continue
            if self.paint_log is not None and video.last_rgb is not None:
                self.paint_log.painted(slot, video.last_rgb, getattr(link, "last_frame_at", None))

    def _display(self, screen: Screen[Any], renderable: Any) -> None:
        super()._display(screen, renderable)
        if self.paint_log is not None and renderable is not None and self._driver is not None:
            marker = self.paint_log.marker()
            if marker is not None:
                self._driver.write(marker)

    def show_frame(self, slot: int, frame: av.VideoFrame) -> None:
        """Paint a frame in a slot (snapshots and screenshots use a fixed test frame)."""
        self.tile(slot).video.show(frame)

    # -- commands and help ------------------------------------------------------------

    def key_help(self) -> list[KeyHelp]:
        rows = []
        keymap = self._keymap
        for binding_id, key, _action, label, help_key, _show in self.KEYS:
            if binding_id.startswith("on_air_") and binding_id != "on_air_1":
                continue
            keys = keymap.get(binding_id, key)
            if binding_id == "on_air_1":
                keys = (
                    "1-6"
                    if not any(f"on_air_{n}" in keymap for n in range(1, 7))
                    else ",".join(keymap.get(f"on_air_{n}", str(n)) for n in range(1, 7))
                )
            rows.append(KeyHelp(self.get_key_display(Binding(keys, "")) if "," not in keys
                                else keys, t(label), t(help_key)))  # fmt: skip
        return rows

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Every key's action is also a command in the palette (ctrl+p)."""
        for binding_id, _key, action, label, help_key, _show in self.KEYS:
            title = t(label)
            if binding_id.startswith("on_air_"):
                title = t("key.on_air_n", n=binding_id.rsplit("_", 1)[1])
            yield SystemCommand(title, t(help_key), self._runner(action))

    def _runner(self, action: str) -> Callable[[], Any]:
        async def run() -> None:
            await self.run_action(action)

        return run

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.read_only and action in MUTATING_ACTIONS)

    # -- actions ----------------------------------------------------------------------

    def _go(self, work: Any) -> None:
        """Requests run as workers: keys keep working while the server answers."""
        self.run_worker(work, group="actions")

    def who(self, visit: dict[str, Any] | None) -> str:
        """ "slot 2 · Budi Santoso": how every dialog and status message names a claimant."""
        if visit is None:
            return t("who.nobody")
        return t("who", slot=visit.get("slot") or "-", name=visit.get("name") or visit["visit"])

    def _select(self, slot: int) -> None:
        self.tile(self.selected_slot).selected = False
        self.selected_slot = slot
        self.tile(slot).selected = True
        if self.zoomed:
            self.relayout()

    def action_select(self, step: int) -> None:
        count = visible_slots(set(self.model.by_slot()), self.model.capacity)
        self._select((self.selected_slot - 1 + step) % count + 1)

    def action_zoom(self) -> None:
        self.zoomed = not self.zoomed
        self.relayout()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_help()))

    def action_focus_slot(self, slot: int) -> None:
        """``1``-``6``: that slot on air (and selected); ``0``: nobody on air.

        An empty slot's key says so and changes nothing, not even the selection.
        """
        if slot == 0:
            self._go(self._focus(None))
            return
        visit = self.model.visit_in_slot(slot)
        if visit is None:
            self.say(t("msg.slot_empty", n=slot), "warning")
            return
        self._select(slot)
        self._go(self._focus(visit))

    async def _focus(self, visit: dict[str, Any] | None) -> None:
        what, who = t("what.focus"), self.who(visit)
        self.say(t("msg.sending", who=who, what=what))
        try:
            await self.client.request({"type": "focus", "visit": visit["visit"] if visit else None})
        except FAILURES as exc:
            self.say(t("msg.refused", who=who, what=what, error=exc), "error")
        else:
            self.say(t("msg.off_air") if visit is None else t("msg.done", who=who, what=what))

    def action_longest(self) -> None:
        visit_id = self.model.longest_waiting(self.clock())
        if visit_id is None:
            self.say(t("msg.nobody_waiting"), "warning")
            return
        visit = self.model.visits[visit_id]
        if visit.get("slot"):
            self._select(visit["slot"])
        self._go(self._focus(visit))

    def _selected_visit(self) -> dict[str, Any] | None:
        visit = self.model.visit_in_slot(self.selected_slot)
        if visit is None:
            self.say(t("msg.no_visit"), "warning")
        return visit

    def _on_air_or_ask(self, visit: dict[str, Any], what: str, then: Callable[[], None]) -> None:
        """Decide at once about the claimant on air; about anyone else, ask first.

        The officer speaks to the booth on air, so a key meant for it must not land on the
        selected tile unseen (``tab`` moves the selection, not the air).
        """
        if visit["visit"] == self.model.on_air:
            then()
            return
        who = self.who(visit)
        on_air = self.who(self.model.visits.get(self.model.on_air or ""))

        def answered(choice: str | None) -> None:
            if choice == "yes":
                then()
            else:
                self.say(t("msg.cancelled", who=who, what=what))

        self.push_screen(
            ConfirmScreen(
                t("dialog.not_on_air", who=who, booth=visit.get("booth", "?"), on_air=on_air,
                  what=what.capitalize(), name=visit.get("name", "?")),
                t("dialog.go_ahead", what=what, who=who),
                id="confirm-not-on-air",
            ),
            answered,
        )  # fmt: skip

    def action_approve(self) -> None:
        visit = self._selected_visit()
        if visit is None:
            return
        step = self.model.next_step(visit["visit"])
        if step is None:
            self.say(t("msg.all_decided"))
            return
        self._on_air_or_ask(
            visit, t("what.approve"), lambda: self._go(self._decide(visit, step, "approve"))
        )

    def action_reject(self) -> None:
        visit = self._selected_visit()
        if visit is None:
            return
        step = self.model.next_step(visit["visit"])
        if step is None:
            self.say(t("msg.all_decided"))
            return
        self._on_air_or_ask(visit, t("what.reject"), lambda: self._pick_reason(visit, step))

    def _pick_reason(self, visit: dict[str, Any], step: int) -> None:
        name = visit["steps"][step]["name"]
        reasons = self.config.reject_reasons(self.welcome.get("reasons"))

        def picked(reason: str | None) -> None:
            if reason is not None:
                self._go(self._decide(visit, step, "reject", reason))
            else:
                self.say(t("msg.cancelled", who=self.who(visit), what=t("what.reject")))

        self.push_screen(
            PickScreen(
                t("dialog.reason", who=self.who(visit), step=i18n.step_label(name)),
                [(r, i18n.reason_label(r)) for r in reasons],
                id="reasons",
            ),
            picked,
        )

    def action_reopen(self) -> None:
        visit = self._selected_visit()
        if visit is None:
            return
        step = self.model.last_decided(visit["visit"])
        if step is None:
            self.say(t("msg.nothing_to_reopen"), "warning")
            return
        self._on_air_or_ask(
            visit, t("what.reopen"), lambda: self._go(self._decide(visit, step, "reopen"))
        )

    async def _decide(
        self, visit: dict[str, Any], step: int, decision: str, reason: str | None = None
    ) -> None:
        """Pending until the server's ack; refused: the server's truth and its message."""
        what, who, visit_id = t(f"what.{decision}"), self.who(visit), visit["visit"]
        label = i18n.step_label(visit["steps"][step]["name"], short=True)
        what = f"{what} ({label})"
        model = self.model
        model.mark_pending(visit_id, step, decision)
        self._sync()
        self.say(t("msg.sending", who=who, what=what))
        message: dict[str, Any] = {
            "type": "decide", "visit": visit_id, "step": step, "decision": decision,
        }  # fmt: skip
        if reason:
            message["reason"] = reason
        try:
            await self.client.request(message)
        except RequestError as exc:
            model.refuse(visit_id, step, str(exc))
            self.say(t("msg.refused", who=who, what=what, error=exc), "error")
            self._sync()
            await self._resync()
        except FAILURES as exc:
            model.refuse(visit_id, step, str(exc))
            self.say(t("msg.lost", who=who, what=what, error=exc), "error")
        else:
            model.acknowledged(visit_id, step)
            self.say(t("msg.done", who=who, what=what))
        self._sync()

    async def _resync(self) -> None:
        """Ask the server for the desk as it is (after a refusal: our copy was wrong)."""
        desk = self.current_desk
        if desk is None:
            return
        try:
            await self.client.request({"type": "watch", "desk": desk})
        except FAILURES as exc:
            log.warning("event=resync_failed desk=%s error=%s", desk, exc)

    def outcome_problem(self, visit: dict[str, Any], outcome: str) -> str | None:
        """Why the server would refuse this outcome (``outcome_mismatch``), or None.

        Completed needs every step approved, rejected needs a rejected step, unless the server
        says ``strict_outcomes: false`` in ``welcome``.
        """
        if self.welcome.get("strict_outcomes") is False:
            return None
        approved, total, rejected = self.model.approved_count(visit["visit"])
        if outcome == "completed" and approved < total:
            return t("why.completed", approved=approved, total=total)
        if outcome == "rejected" and not rejected:
            return t("why.rejected")
        return None

    def action_finish(self) -> None:
        visit = self._selected_visit()
        if visit is None:
            return
        self._on_air_or_ask(visit, t("what.finish"), lambda: self._pick_outcome(visit))

    def _pick_outcome(self, visit: dict[str, Any]) -> None:
        who = self.who(visit)
        outcomes = ("completed", "rejected", "abandoned")
        problems = {o: self.outcome_problem(visit, o) for o in outcomes}
        choices = [
            (o, t(f"outcome.{o}") if problems[o] is None
             else t("outcome.blocked", label=t(f"outcome.{o}"), why=problems[o]))
            for o in outcomes
        ]  # fmt: skip

        def picked(outcome: str | None) -> None:
            if outcome is None:
                self.say(t("msg.cancelled", who=who, what=t("what.finish")))
            else:
                self._go(self._end(visit, outcome, ""))

        self.push_screen(
            PickScreen(
                t("dialog.outcome", who=who),
                choices,
                id="outcomes",
                disabled=frozenset(i for i, o in enumerate(outcomes) if problems[o]),
            ),
            picked,
        )

    def action_escalate(self) -> None:
        visit = self._selected_visit()
        if visit is None:
            return
        self._on_air_or_ask(visit, t("what.escalate"), lambda: self._ask_note(visit))

    def _ask_note(self, visit: dict[str, Any]) -> None:
        def noted(note: str | None) -> None:
            if note:
                self._go(self._end(visit, "escalated", note))
            else:
                self.say(t("msg.cancelled", who=self.who(visit), what=t("what.escalate")))

        self.push_screen(NoteScreen(t("dialog.note", who=self.who(visit))), noted)

    async def _end(self, visit: dict[str, Any], outcome: str, note: str) -> None:
        what = t("what.escalate" if outcome == "escalated" else "what.finish")
        what = f"{what} ({t(f'outcome.{outcome}')})"
        who = self.who(visit)
        self.say(t("msg.sending", who=who, what=what))
        try:
            await self.client.request(
                {"type": "end_visit", "visit": visit["visit"], "outcome": outcome, "note": note}
            )
        except RequestError as exc:
            self.say(t("msg.refused", who=who, what=what, error=exc), "error")
            await self._resync()
        except FAILURES as exc:
            self.say(t("msg.lost", who=who, what=what, error=exc), "error")
        else:
            self.say(t("msg.done", who=who, what=what))

    async def action_mute(self) -> None:
        set_muted = getattr(self.media, "set_muted", None)
        if set_muted is None:
            self.say(t("msg.no_mute"), "warning")
            return
        muted = not bool(getattr(self.media, "muted", False))
        outcome = set_muted(muted)
        if inspect.isawaitable(outcome):
            await outcome
        self._show_mic()
        self.say(t("msg.muted" if muted else "msg.unmuted"))

    def action_snapshot(self) -> None:
        visit = self._selected_visit()
        if visit is None:
            return
        frame = self.tile(self.selected_slot).video.last_frame
        if frame is None:
            self.say(t("msg.no_frame"), "warning")
            return
        self._go(self._snapshot(visit, frame, self.model.next_step(visit["visit"])))

    async def _snapshot(
        self, visit: dict[str, Any], frame: av.VideoFrame, step: int | None
    ) -> None:
        folder = self.config.snapshot_dir or default_snapshot_dir()
        visit_id, who = visit["visit"], self.who(visit)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(self.clock()))
        path = folder / f"{visit_id}-{stamp}-{int(self.clock() * 1000) % 1000:03d}.png"
        try:
            digest = await asyncio.to_thread(_save_png, frame, path)
        except OSError as exc:
            self.say(f"{who}: {t('what.snapshot')}: {exc}", "error")
            return
        self.snapshots.append((path, digest))
        saved = f"{who}: " + t("msg.snapshot_saved", path=path, sha=digest[:12])
        self.say(saved)
        what = t("what.snapshot")
        try:
            await self.client.request(
                {"type": "snapshot_taken", "visit": visit_id, "sha256": digest, "step": step}
            )
        except FAILURES as exc:
            self.say(saved + " · " + t("msg.refused", who=who, what=what, error=exc), "error")
        else:
            self.say(saved + " · " + t("msg.done", who=who, what=what))

    def action_quit_console(self) -> None:
        """``q``, ``ctrl+q`` and ``ctrl+c``: with open visits, ask first."""
        if isinstance(self.screen, ConfirmQuit):
            self.exit()  # asked already: a second quit key means yes
            return
        open_visits = 0 if self.read_only or not self.confirm_quit else len(self.model.visits)
        if not open_visits:
            self.exit()
            return

        def answered(choice: str | None) -> None:
            if choice == "yes":
                self.exit()

        self.push_screen(ConfirmQuit(open_visits), answered)

    async def action_quit(self) -> None:
        """Textual's ``ctrl+q``: the same question as ``q``."""
        self.action_quit_console()

    def action_help_quit(self) -> None:
        """Textual's ``ctrl+c`` (a toast over the video by default): the quit question."""
        self.action_quit_console()

    # -- supervisor -------------------------------------------------------------------

    async def action_overview(self) -> None:
        try:
            self.office_stats = await self.client.request({"type": "office_stats"}, timeout=3)
        except FAILURES as exc:
            self.office_stats = None
            log.info("event=office_stats_unavailable error=%s", exc)
        self.open_overview()

    def open_overview(self) -> None:
        booth_of = {v["visit"]: v["booth"] for m in self.models.values() for v in m.visits.values()}
        figures = figures_from(
            self.welcome.get("office") or self.model.office or "-",
            self.models,
            self.office_stats,
            booth_of,
        )
        self.push_screen(OfficeOverview(figures), self._switch_desk)

    def action_pick_desk(self) -> None:
        desks = sorted(set(self.welcome.get("desks") or []) | set(self.models))
        self.push_screen(
            PickScreen(t("overview.pick"), [(d, d) for d in desks], id="desk-picker"),
            self._switch_desk,
        )

    def _switch_desk(self, desk: str | None) -> None:
        if desk is None or desk == self.current_desk:
            return
        self.current_desk = desk
        self._set_banner(desk)
        self._select(1)
        self._sync()

    # -- shutdown ---------------------------------------------------------------------

    async def on_unmount(self) -> None:
        await self.shutdown()

    async def shutdown(self) -> None:
        for task in list(self._link_tasks):
            task.cancel()
        await asyncio.gather(*self._link_tasks, return_exceptions=True)
        if self.media is not None:
            await self.media.close()
        await self.client.close()
        if self.paint_log is not None:
            self.paint_log.close()


def _save_png(frame: av.VideoFrame, path: Path) -> str:
    """Write the frame as PNG (0600: it shows a claimant's face and documents); return the
    SHA-256 of exactly the bytes written."""
    buffer = io.BytesIO()
    frame.to_image().save(buffer, format="PNG")
    data = buffer.getvalue()
    write_private(path, data)
    return hashlib.sha256(data).hexdigest()


class SupervisorConsole(LapakConsole, inherit_bindings=False):
    """The same tiles, read-only: no mutating key is bound at all."""

    KEYS = _SUPERVISOR_KEYS
    BINDINGS: ClassVar[list[BindingType]] = make_bindings(_SUPERVISOR_KEYS)

    def __init__(
        self,
        url: str | None,
        token: str,
        desk: str | None = None,
        *,
        media: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(url, token, read_only=True, desk=desk, media=media, **kwargs)
