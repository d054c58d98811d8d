"""Screens drawn over the tiles: help, pickers, the escalation note, quit, office overview.

All keyboard-only. While any of them is up the desk screen is suspended and its video paused
(raw video rows cannot be composited under an overlay; see console/video.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from lapak.console.i18n import t
from lapak.console.keys import KeyHelp
from lapak.media.desk_model import DeskModel
from lapak.signaling.messages import OfficeFigures as ServerFigures


class HelpScreen(ModalScreen[None]):
    """Every key, as bound now (the config file may have changed them)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", show=False),
    ]

    def __init__(self, rows: list[KeyHelp]) -> None:
        super().__init__(id="help")
        self.rows = rows

    def compose(self) -> ComposeResult:
        # A rich table wraps long descriptions instead of cutting them, at any width.
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(style="bold", no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(ratio=1)
        for row in self.rows:
            table.add_row(row.keys, row.label, row.help)
        with Vertical(id="help-box", classes="dialog"):
            # The keys hint sits in the title: on a short terminal the rows scroll, the hint
            # stays visible.
            yield Static(
                f"[b]{t('help.title')}[/b]  [dim]{t('help.close')}[/dim]", classes="dialog-title"
            )
            with VerticalScroll(id="help-rows"):
                yield Static(table, id="help-table")

    def on_mount(self) -> None:
        self.query_one("#help-rows", VerticalScroll).focus()  # arrows scroll a long list


class PickScreen(ModalScreen[str | None]):
    """Pick one of a list with the arrow keys (or its number) and enter; esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", show=False),
        *(Binding(str(n), f"pick({n - 1})", show=False) for n in range(1, 10)),
    ]

    def __init__(
        self,
        title: str,
        choices: list[tuple[str, str]],
        *,
        id: str,
        disabled: frozenset[int] = frozenset(),
    ) -> None:
        """``choices`` are (value, label) pairs; ``disabled`` indexes are shown, not pickable."""
        super().__init__(id=id)
        self.title_text = title
        self.choices = choices
        self.blocked = disabled

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"[b]{self.title_text}[/b]", classes="dialog-title")
            yield OptionList(
                *(
                    Option(f"{n}  {label}", id=str(n - 1), disabled=n - 1 in self.blocked)
                    for n, (_, label) in enumerate(self.choices, 1)
                ),
            )
            yield Static(t("dialog.keys"), classes="dialog-keys")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        pickable = [i for i in range(len(self.choices)) if i not in self.blocked]
        options.highlighted = pickable[0] if pickable else None
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_pick(int(event.option.id or 0))

    def action_pick(self, index: int) -> None:
        if 0 <= index < len(self.choices) and index not in self.blocked:
            self.dismiss(self.choices[index][0])

    def action_cancel(self) -> None:
        self.dismiss(None)


class NoteScreen(ModalScreen[str | None]):
    """One line of text (the escalation note); enter sends, esc cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", show=False)]

    def __init__(self, title: str) -> None:
        super().__init__(id="note")
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"[b]{self.title_text}[/b]", classes="dialog-title")
            yield Input(placeholder=t("dialog.note_placeholder"), max_length=500)
            yield Static(t("dialog.keys"), classes="dialog-keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        note = event.value.strip()
        if note:
            self.dismiss(note)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(PickScreen):
    """A yes/no question about one claimant; "no" is first and highlighted."""

    def __init__(self, title: str, yes: str, *, id: str = "confirm") -> None:
        super().__init__(title, [("no", t("dialog.cancel")), ("yes", yes)], id=id)


class ConfirmQuit(PickScreen):
    """Open visits: quit only on a second answer (``2``, or ``q`` again)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "pick(1)", show=False)]

    def __init__(self, open_visits: int) -> None:
        super().__init__(
            t("dialog.quit", n=open_visits),
            [("no", t("dialog.no")), ("yes", t("dialog.yes"))],
            id="confirm-quit",
        )


@dataclass
class DeskSummary:
    desk: str
    officer: str | None
    load: int
    capacity: int
    on_air: str | None  # booth on air


@dataclass
class OfficeFigures:
    """What the overview shows; the figures are None when the server cannot give them."""

    office: str
    desks: list[DeskSummary]
    queue_count: int
    queue: list[tuple[str, float]] | None = None  # (visit, waiting seconds)
    median_wait_s: float | None = None
    visits_per_hour: float | None = None
    outcomes: dict[str, int] | None = None


def _minutes(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


class OfficeOverview(Screen[str | None]):
    """Supervisor: desks, load, on-air booth, the queue and today's figures; pick a desk."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,v", "close", t("key.overview"), id="overview_close"),
        Binding("enter", "watch", t("overview.pick"), show=True),
        Binding("q", "app.quit", t("key.quit")),
    ]

    def __init__(self, figures: OfficeFigures) -> None:
        super().__init__(id="overview")
        self.figures = figures

    def compose(self) -> ComposeResult:
        f = self.figures
        yield Static(t("banner.overview"), id="banner", classes="read-only")
        yield Static(f"[b]{t('overview.title', office=f.office)}[/b]", classes="overview-title")
        table: DataTable[str] = DataTable(id="desks", cursor_type="row")
        table.add_columns(
            t("overview.desk"), t("overview.officer"), t("overview.load"), t("overview.on_air")
        )
        for d in f.desks:
            table.add_row(
                d.desk,
                d.officer or "-",
                f"{d.load}/{d.capacity}",
                d.on_air or t("overview.none"),
                key=d.desk,
            )
        yield table
        yield Static(self._figures_text(), id="figures")
        yield Footer()

    def _figures_text(self) -> str:
        f = self.figures
        lines = [f"[b]{t('overview.queue')}[/b]  {t('overview.in_queue', n=f.queue_count)}"]
        if f.queue:
            lines.append(
                "  ".join(f"{v} {t('overview.waiting')} {_minutes(w)}" for v, w in f.queue[:8])
            )
        if f.median_wait_s is None:
            lines.append(t("overview.no_stats"))
        else:
            lines.append(f"{t('overview.median_wait')}: {_minutes(f.median_wait_s)}")
            lines.append(f"{t('overview.per_hour')}: {f.visits_per_hour or 0:.1f}")
            outcomes = f.outcomes or {}
            lines.append(
                f"{t('overview.outcomes')}: "
                + ", ".join(f"{t('outcome.' + k)} {n}" for k, n in sorted(outcomes.items()))
            )
        return "\n".join(lines)

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_watch(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
            self.dismiss(str(key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.dismiss(str(event.row_key.value))


def figures_from(
    office: str,
    desks: dict[str, DeskModel],
    stats: ServerFigures | None,
    booth_of: dict[str, str],
) -> OfficeFigures:
    """Build the overview from the desks watched, or from ``office_stats`` when the server
    gave it (``booth_of`` maps visit to booth name)."""
    summaries = [
        DeskSummary(
            desk=desk_id,
            officer=model.officer,
            load=len(model.visits),
            capacity=model.capacity,
            on_air=booth_of.get(model.on_air or "", model.on_air),
        )
        for desk_id, model in sorted(desks.items())
    ]
    queue_count = max((model.queue for model in desks.values()), default=0)
    figures = OfficeFigures(office=office, desks=summaries, queue_count=queue_count)
    if stats is not None:
        figures.desks = [
            DeskSummary(
                desk=d.desk,
                officer=d.officer,
                load=d.load,
                capacity=d.capacity,
                on_air=d.on_air_booth or d.on_air,
            )
            for d in stats.desks
        ]
        figures.queue = [(q.booth or q.visit, q.waiting_s) for q in stats.queue]
        figures.queue_count = len(stats.queue)
        figures.median_wait_s = stats.median_wait_s
        figures.visits_per_hour = stats.visits_per_hour
        figures.outcomes = stats.outcomes
    return figures
