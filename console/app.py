"""The officer's console (and, read-only, the supervisor's view of a desk).

The app is a thin shell: desk state comes from the server (``DeskModel``), media from
``OfficerMedia``; keys turn into protocol requests. A decision is shown as sent until the
server acknowledges it, and rolled back with the server's message if refused.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.widgets import Footer, Static

from console.desk import MAX_SLOTS, DeskModel
from console.tile import BoothTile
from media.officer import OfficerMedia
from media.tones import AudioSource
from signaling.client import RequestError, SignalClient

log = logging.getLogger("lapak.console")

VIDEO_FPS = 15


class LapakConsole(App[None]):
    CSS_PATH = Path(__file__).with_name("console.tcss")
    TITLE = "Lapak"

    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(str(n), f"focus_slot({n})", f"On air {n}", show=n == 1, key_display="1-6")
            for n in range(1, MAX_SLOTS + 1)
        ),
        Binding("tab", "select(1)", "Next", show=False, priority=True),
        Binding("shift+tab", "select(-1)", "Previous", show=False, priority=True),
        Binding("a", "approve", "Approve step"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        url: str,
        token: str,
        *,
        read_only: bool = False,
        desk: str | None = None,
        voice: AudioSource | None = None,
        media: bool = True,
    ) -> None:
        super().__init__()
        self.url = url
        self.token = token
        self.read_only = read_only
        self.watch_desk = desk
        self.model = DeskModel()
        self.client = SignalClient(url, token, self._on_server_message)
        self.media: OfficerMedia | None = (
            OfficerMedia(self._send_sdp, voice) if media and not read_only else None
        )
        self.selected_slot = 1
        self.connected = asyncio.Event()
        self._link_tasks: set[asyncio.Task[Any]] = set()

    # -- layout -----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("READ-ONLY · supervisor view", id="banner")
        with Container(id="grid"):
            for slot in range(1, MAX_SLOTS + 1):
                yield BoothTile(slot)
        yield Static("connecting…", id="status")
        yield Footer()

    def tile(self, slot: int) -> BoothTile:
        return self.query_one(f"#slot-{slot}", BoothTile)

    async def on_mount(self) -> None:
        if self.read_only:
            self.query_one("#banner").add_class("read-only")
        self.tile(self.selected_slot).selected = True
        self.run_worker(self._session(), name="session", exclusive=True)
        self.set_interval(1 / VIDEO_FPS, self._paint_video)
        self.set_interval(1.0, self._housekeeping)

    # -- session ----------------------------------------------------------------------

    async def _session(self) -> None:
        try:
            welcome = await self.client.connect()
        except (OSError, RequestError, TimeoutError) as exc:
            self._status(f"cannot connect to {self.url}: {exc}")
            return
        role = welcome["role"]
        if role != "officer":
            desk = self.watch_desk or (welcome["desks"] or [None])[0]
            if desk is None:
                self._status("no desk to watch in this office yet")
                return
            await self.client.request({"type": "watch", "desk": desk})
        self.connected.set()
        self._status(f"{role} {welcome['sub']} · office {welcome['office']}")

    def _status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    async def _send_sdp(self, visit: str, sdp_type: str, sdp: str) -> None:
        try:
            await self.client.request(
                {"type": "sdp", "visit": visit, "sdp_type": sdp_type, "sdp": sdp}
            )
        except RequestError as exc:
            log.info("event=offer_refused visit=%s code=%s", visit, exc.code)

    async def _on_server_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "snapshot":
            self.model.load_snapshot(message)
            self._sync()
        elif kind == "delta":
            if not self.model.apply_delta(message):
                log.warning("event=seq_gap desk=%s", message.get("desk"))
                await self.client.send({"type": "watch", "desk": self.model.desk})
            self._sync()
        elif kind == "sdp" and message.get("sdp_type") == "answer" and self.media:
            await self.media.on_answer(message["visit"], message["sdp"])

    def _sync(self) -> None:
        """Make tiles and media links match the desk model."""
        by_slot = self.model.by_slot()
        for slot in range(1, MAX_SLOTS + 1):
            visit = by_slot.get(slot)
            tile = self.tile(slot)
            steps = []
            if visit is not None:
                steps = [
                    (s["name"], self.model.step_status(visit["visit"], i))
                    for i, s in enumerate(visit["steps"])
                ]
            tile.set_visit(visit, steps)
            tile.on_air = visit is not None and visit["visit"] == self.model.on_air
        if self.media is not None:
            self.media.set_on_air(self.model.on_air)
            wanted = set(self.model.visits)
            for visit_id in wanted:
                if visit_id not in self.media.links:
                    self._spawn(self.media.ensure(visit_id))
            for visit_id in set(self.media.links) - wanted:
                self._spawn(self.media.drop(visit_id))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._link_tasks.add(task)
        task.add_done_callback(self._link_tasks.discard)

    def _housekeeping(self) -> None:
        """Re-offer links that failed or got no answer; refresh clocks and meters."""
        if self.media is not None:
            for visit_id in self.model.visits:
                if self.media.needs_offer(visit_id):
                    self._spawn(self.media.ensure(visit_id))
        for slot, visit in self.model.by_slot().items():
            tile = self.tile(slot)
            link = self.media.links.get(visit["visit"]) if self.media else None
            tile.link_state = link.state if link else "-"
            tile.audio_dbfs = link.audio.level_dbfs if link else -100.0
            tile.refresh_text()

    def _paint_video(self) -> None:
        if self.media is None:
            return
        for slot, visit in self.model.by_slot().items():
            link = self.media.links.get(visit["visit"])
            if link is None:
                continue
            frame = link.take_frame()
            if frame is not None:
                self.tile(slot).video.show(frame)

    # -- actions ----------------------------------------------------------------------

    def _select(self, slot: int) -> None:
        self.tile(self.selected_slot).selected = False
        self.selected_slot = slot
        self.tile(slot).selected = True

    def action_select(self, step: int) -> None:
        self._select((self.selected_slot - 1 + step) % MAX_SLOTS + 1)

    async def action_focus_slot(self, slot: int) -> None:
        self._select(slot)
        visit = self.model.visit_in_slot(slot)
        if visit is None:
            self.notify(f"slot {slot} is empty", severity="warning")
            return
        try:
            await self.client.request({"type": "focus", "visit": visit["visit"]})
        except (RequestError, ConnectionError, TimeoutError) as exc:
            self.notify(f"focus refused: {exc}", severity="error")

    async def action_approve(self) -> None:
        await self._decide("approve")

    async def _decide(self, decision: str, reason: str | None = None) -> None:
        visit = self.model.visit_in_slot(self.selected_slot)
        if visit is None:
            self.notify("no visit in the selected slot", severity="warning")
            return
        visit_id = visit["visit"]
        step = self.model.next_step(visit_id)
        if step is None:
            self.notify("every step is decided", severity="information")
            return
        self.model.mark_pending(visit_id, step, decision)
        self._sync()
        message = {"type": "decide", "visit": visit_id, "step": step, "decision": decision}
        if reason:
            message["reason"] = reason
        try:
            await self.client.request(message)
        except (RequestError, ConnectionError, TimeoutError) as exc:
            self.model.refuse(visit_id, step, str(exc))
            self.notify(f"decision refused: {exc}", severity="error")
        else:
            self.model.acknowledged(visit_id, step)
        self._sync()

    async def on_unmount(self) -> None:
        await self.shutdown()

    async def shutdown(self) -> None:
        for task in list(self._link_tasks):
            task.cancel()
        await asyncio.gather(*self._link_tasks, return_exceptions=True)
        if self.media is not None:
            await self.media.close()
        await self.client.close()


class SupervisorConsole(LapakConsole):
    """The same tiles, read-only: no mutating key is bound at all."""

    inherit_bindings = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "select(1)", "Next", show=False, priority=True),
        Binding("shift+tab", "select(-1)", "Previous", show=False, priority=True),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, url: str, token: str, desk: str | None = None) -> None:
        super().__init__(url, token, read_only=True, desk=desk, media=False)
