"""One booth slot on the officer's screen: who, how long, video, audio, checklist."""

from __future__ import annotations

import time
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static

from console.video import VideoView
from signaling.workflows import STEP_LABELS

STATUS_MARK = {
    "approved": "✔",
    "rejected": "✘",
    "sending": "…",
    "refused": "!",
    "pending": "·",
}


def _elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


class BoothTile(Vertical):
    """A slot; empty until a visit is routed into it."""

    selected: reactive[bool] = reactive(False)
    on_air: reactive[bool] = reactive(False)

    def __init__(self, slot: int) -> None:
        super().__init__(id=f"slot-{slot}", classes="tile")
        self.slot = slot
        self.visit: dict[str, Any] | None = None
        self.link_state = "-"
        self.audio_dbfs = -100.0
        self.steps_text: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        yield Static(id="title", classes="title")
        yield VideoView(id="video")
        yield Static(id="info", classes="info")

    @property
    def video(self) -> VideoView:
        return self.query_one(VideoView)

    def on_mount(self) -> None:
        self.refresh_text()

    def watch_selected(self, selected: bool) -> None:
        self.set_class(selected, "selected")

    def watch_on_air(self, on_air: bool) -> None:
        self.set_class(on_air, "on-air")
        self.refresh_text()

    def set_visit(self, visit: dict[str, Any] | None, steps: list[tuple[str, str]]) -> None:
        changed = (visit or {}).get("visit") != (self.visit or {}).get("visit")
        self.visit = visit
        self.steps_text = steps
        self.set_class(visit is None, "empty")
        if changed:
            self.video.clear("connecting…" if visit else "empty slot")
        self.refresh_text()

    def refresh_text(self) -> None:
        if not self.is_mounted:
            return
        title = self.query_one("#title", Static)
        info = self.query_one("#info", Static)
        if self.visit is None:
            title.update(f"[b]{self.slot}[/b]  empty slot")
            info.update("")
            return
        v = self.visit
        mark = " [b reverse] ON AIR [/]" if self.on_air else ""
        title.update(
            f"[b]{self.slot}[/b] {v['booth']}{mark}  {v['name']} · {v['membership_no']} · "
            f"{v['claim_type']} · {_elapsed(time.time() - v['started_at'])}"
        )
        meter = _meter(self.audio_dbfs)
        checklist = " ".join(
            f"{'[reverse]' if i == _current(self.steps_text) else ''}"
            f"{STATUS_MARK.get(status, '?')}{STEP_LABELS.get(name, name).split(' ')[0]}"
            f"{'[/reverse]' if i == _current(self.steps_text) else ''}"
            for i, (name, status) in enumerate(self.steps_text)
        )
        info.update(f"{checklist}\nlink {self.link_state}  audio {meter}")


def _current(steps: list[tuple[str, str]]) -> int | None:
    for i, (_, status) in enumerate(steps):
        if status in ("pending", "sending", "refused"):
            return i
    return None


def _meter(dbfs: float, width: int = 8) -> str:
    filled = round(max(0.0, min(1.0, (dbfs + 60) / 60)) * width)
    return "▮" * filled + "▯" * (width - filled)
