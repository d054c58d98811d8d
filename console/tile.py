"""One booth slot on the officer's screen: who, how long, video, audio, checklist, link.

The tile only shows; ``TileInfo`` carries everything it needs (console/tile_view.py makes it
from the desk model and the media link), so the text is the same whatever feeds it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static

from lapak.console.i18n import STRINGS, step_label, t
from lapak.console.render import ColourMode
from lapak.console.video import VideoView

STATUS_MARK = {
    "approved": "✔",
    "rejected": "✘",
    "sending": "…",
    "refused": "!",
    "pending": "·",
}


def elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


@dataclass
class TileInfo:
    """What one tile shows besides the video."""

    visit: str | None  # None: the slot is empty
    steps: list[tuple[str, str]] = field(default_factory=list)  # (step name, display status)
    current_step: int | None = None  # the server's: the first step still pending
    booth: str = ""
    name: str = ""
    membership_no: str = ""
    claim_type: str = ""
    on_air: bool = False
    in_visit_s: float = 0.0
    silent_s: float | None = None  # since last spoken to; 0 on air
    silence_level: str = ""  # "" | "amber" | "red"
    link_state: str = "none"
    grade: str | None = None
    rtt_ms: float | None = None
    audio_dbfs: float = -100.0
    away_since: float | None = None  # the booth's connection is down since (server's clock)


def clock_time(at: float) -> str:
    """HH:MM:SS in the console's local time."""
    return time.strftime("%H:%M:%S", time.localtime(at))


class BoothTile(Vertical):
    """A slot; empty until a visit is routed into it.

    Its parts are created with the tile and held by reference, so the app (and its paint timer)
    can reach them before they are mounted: painting an unmounted tile is a no-op, not a crash.
    """

    selected: reactive[bool] = reactive(False)

    def __init__(self, slot: int, colour_mode: ColourMode = "truecolor", raw: bool = True) -> None:
        super().__init__(id=f"slot-{slot}", classes="tile empty")
        self.slot = slot
        self.info = TileInfo(None)
        self.title_line = Static(id="title", classes="title")
        self.who_line = Static(id="who", classes="who")
        self.video = VideoView(colour_mode, raw=raw, id="video")
        self.steps_line = Static(id="steps", classes="steps")
        self.meta_line = Static(id="meta", classes="meta")
        self._texts: dict[Static, str] = {}  # what each line was last set to

    def compose(self) -> ComposeResult:
        yield self.title_line
        yield self.who_line
        yield self.video
        yield self.steps_line
        yield self.meta_line

    @property
    def visit_id(self) -> str | None:
        return self.info.visit

    def on_mount(self) -> None:
        self.video.paused_text = t("tile.paused")
        if self.info.visit is None:
            self.video.placeholder = t("tile.empty")
        self.refresh_text()

    def on_resize(self) -> None:
        self.refresh_text()  # narrow tiles use the compact text

    def watch_selected(self, selected: bool) -> None:
        self.set_class(selected, "selected")

    def update_info(self, info: TileInfo) -> None:
        changed = info.visit != self.visit_id
        self.info = info
        self.set_class(info.visit is None, "empty")
        self.set_class(info.on_air, "on-air")
        self.set_class(info.silence_level == "amber", "amber")
        self.set_class(info.silence_level == "red", "red")
        self.set_class(info.away_since is not None, "away")
        placeholder = self._placeholder(info, changed)
        video = self.video
        if placeholder is not None and not (
            video.placeholder == placeholder and video.last_frame is None
        ):  # once per change: the housekeeping tick calls this every second
            video.clear(placeholder)
        self.refresh_text()

    @staticmethod
    def _placeholder(info: TileInfo, changed: bool) -> str | None:
        """What the video area says instead of a picture now, or None to keep the picture."""
        if info.visit is not None and info.away_since is not None:
            return t("tile.away", at=clock_time(info.away_since))
        if info.visit is not None and info.link_state in ("reconnecting", "failed"):
            return t(f"tile.{info.link_state}")
        if changed:
            return t("tile.connecting") if info.visit else t("tile.empty")
        return None

    def refresh_text(self) -> None:
        if not self.is_mounted:
            return
        info = self.info
        title, who, steps, meta = self.title_line, self.who_line, self.steps_line, self.meta_line
        if info.visit is None:
            self._put(title, f"[b]{self.slot}[/b]  {t('tile.empty')}")
            for widget in (who, steps, meta):
                self._put(widget, "")
            return
        mark = f" [b reverse]● {t('tile.on_air')}[/]" if info.on_air else ""
        width = self.content_size.width  # inside the border
        compact = 0 < width < 42
        if compact:
            # Narrow: the claimant's name in the title, the membership number first on the next
            # line (both are what the officer checks); the booth's name goes last, cut first.
            name = f"[b]{self.slot}[/b] [b]{escape(info.name)}[/b]"
            if info.on_air and _plain_len(name + mark) > width:
                mark = " [b reverse]●[/]"  # the heavy green border says it too
            self._put(title, name + mark)
            self._put(
                who,
                f"{escape(info.membership_no)} · {escape(info.claim_type)} · {escape(info.booth)}",
            )
        else:
            self._put(title, f"[b]{self.slot}[/b] {escape(info.booth)}{mark}")
            self._put(
                who,
                f"[b]{escape(info.name)}[/b] · {escape(info.membership_no)} · "
                f"{escape(info.claim_type)}",
            )
        full = checklist(info.steps, info.current_step)
        fits = width <= 0 or _plain_len(full) <= width
        self._put(steps, full if fits else checklist_compact(info.steps, info.current_step))
        line = meta_line(info, compact=compact)
        if compact and _plain_len(line) > width:
            line = meta_line(info, compact=True, audio=False)  # the link matters more
        self._put(meta, line)

    def _put(self, line: Static, text: str) -> None:
        """Set one text line if it changed, without a layout pass: the lines are one row high
        and as wide as the tile (console.tcss), so their text never moves anything. The
        housekeeping tick sets every tile's lines each second; re-parsing unchanged markup and
        reflowing the screen each time cost the console a few percent of a core (py-spy)."""
        if self._texts.get(line) != text:
            self._texts[line] = text
            line.update(text, layout=False)


def _plain_len(markup: str) -> int:
    return len(Text.from_markup(markup).plain)


def checklist(steps: list[tuple[str, str]], current: int | None) -> str:
    """Short step labels with their marks; the current step (the server's) in reverse
    video, with ▶."""
    parts = []
    for i, (name, status) in enumerate(steps):
        label = f"{STATUS_MARK.get(status, '?')}{step_label(name, short=True)}"
        parts.append(f"[reverse]▶{label}[/reverse]" if i == current else label)
    return " ".join(parts)


def checklist_compact(steps: list[tuple[str, str]], current: int | None) -> str:
    """One mark per step, then the current step's short label: fits a narrow tile."""
    marks = "".join(STATUS_MARK.get(status, "?") for _, status in steps)
    done = sum(1 for _, status in steps if status == "approved")
    label = (
        f" [reverse]▶{step_label(steps[current][0], short=True)}[/reverse]"
        if current is not None and current < len(steps)
        else ""
    )
    return f"{marks} {done}/{len(steps)}{label}"


def link_text(info: TileInfo) -> str:
    if info.away_since is not None:
        return t("tile.away", at=clock_time(info.away_since))
    if info.grade:
        link = t(f"grade.{info.grade}")
        if info.rtt_ms is not None:
            link += f" {info.rtt_ms:.0f}ms"
        return link
    key = f"link.{info.link_state}"
    return t(key) if key in STRINGS else info.link_state


def meta_line(info: TileInfo, compact: bool = False, audio: bool = True) -> str:
    """Time in visit, time since last spoken to, link, audio; ``compact`` for narrow tiles
    (``audio=False``: without the meter, for the narrowest)."""
    spoke = (
        t("tile.on_air")
        if info.on_air
        else t("tile.never")
        if info.silent_s is None
        else elapsed(info.silent_s)
    )
    if info.silence_level:
        mark = "!" if info.silence_level == "amber" else "!!"
        spoke = f"[b]{spoke}{mark}[/b]"
    if compact:
        level = f" {meter(info.audio_dbfs, 3)}" if audio else ""
        return f"{elapsed(info.in_visit_s)} {t('tile.quiet')} {spoke}{level} {link_text(info)}"
    link = link_text(info)
    return (
        f"{t('tile.visit')} {elapsed(info.in_visit_s)} · {t('tile.spoke')} "
        f"{spoke} · {t('tile.link')} {link} · {meter(info.audio_dbfs)}"
    )


def meter(dbfs: float, width: int = 6) -> str:
    """Audio level as a bar: -60 dBFS empty, 0 dBFS full."""
    filled = round(max(0.0, min(1.0, (dbfs + 60) / 60)) * width)
    return "▮" * filled + "▯" * (width - filled)
