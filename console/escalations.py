"""The supervisor's alerts and escalations: what needs looking at in the office, each with
where it is and one key to go there; waiting escalations with their note and wait, one key
to take the selected one, and the resolver's keys on a visit they took (approve or reject
its current step, finish it).

Everything shown is the server's (``office_stats``: ``alerts`` and ``escalations``, computed
in signaling/alerts.py); the console asks again every ``ALERT_POLL_S`` and says so when a new
escalation arrives. The server decides every request (grant ``resolve``, already taken...):
a refusal is shown as it says.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from lapak.console.claimant_view import ClaimantPicture
from lapak.console.commands import FAILURES
from lapak.console.config import colour_mode
from lapak.console.desk_screen import WRITE_BACKLOG
from lapak.console.i18n import reason_label, step_label, t
from lapak.console.render import ColourMode
from lapak.console.screens import PickScreen
from lapak.console.zoom_image import ZoomImage
from lapak.media.officer import SupervisorMedia
from lapak.signaling.messages import Ack, Alert, EscalationEntry, OfficeFigures
from lapak.signaling.protocol import Outcome

if TYPE_CHECKING:
    from lapak.console.supervisor import SupervisorConsole

log = logging.getLogger("lapak.console")

ALERT_POLL_S = 5.0
"""How often the supervisor's console asks for the office's alerts."""

RESOLVER_OUTCOMES: tuple[Outcome, ...] = ("completed", "rejected", "abandoned")


@dataclass(frozen=True)
class Jump:
    """Where an alert is: a desk (and its slot), or the office overview (the queue)."""

    desk: str | None
    slot: int | None = None


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def where(alert: Alert) -> str:
    if alert.desk is not None and alert.slot is not None:
        return t("alerts.at_slot", desk=alert.desk, slot=alert.slot)
    if alert.desk is not None:
        return t("alerts.at_desk", desk=alert.desk)
    return t("alerts.in_queue") if alert.kind == "queue_wait" else t("alerts.booth_only")


def alert_target(alert: Alert) -> Jump:
    """An alert at a desk jumps to that desk's slot; the others to the office overview."""
    if alert.kind in ("not_spoken_to", "booth_away", "poor_link") and alert.desk and alert.slot:
        return Jump(alert.desk, alert.slot)
    return Jump(None)


class AlertsScreen(Screen[Jump | None]):
    """Alerts (enter: go there) and escalations (``t``: take the selected one; on one you
    took: ``a`` approve, ``x`` reject the current step, ``d`` finish). The escalation you
    took shows its claimant's picture beside the link's line (console/claimant_view.py)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "close", t("key.close")),
        Binding("enter", "go", t("alerts.go"), show=True),
        Binding("t", "take", t("key.take"), show=True),
        Binding("a", "resolve('approve')", t("key.approve"), show=True),
        Binding("x", "resolve('reject')", t("key.reject"), show=True),
        Binding("d", "finish", t("key.finish"), show=True),
        Binding("q", "app.quit", t("key.quit")),
    ]

    def __init__(
        self,
        figures: OfficeFigures,
        me: str,
        *,
        colour_mode: ColourMode = "truecolor",
        raw: bool = True,
        zoom_image: ZoomImage | None = None,
        fps: float = 15.0,
    ) -> None:
        """``colour_mode``, ``raw``, ``zoom_image`` and ``fps``: as the desk's tiles paint
        (the console passes its own), so the claimant is drawn the way the officer sees them."""
        super().__init__(id="alerts")
        self.figures = figures
        self.me = me  # the supervisor's sub: "taken by me"
        self.picture = ClaimantPicture(colour_mode, raw=raw, zoom_image=zoom_image)
        self.fps = max(1.0, fps)

    def compose(self) -> ComposeResult:
        yield Static(t("banner.alerts"), id="banner", classes="read-only")
        yield Static(f"[b]{t('alerts.title', office=self.figures.office)}[/b]", id="alerts-title")
        alerts: DataTable[str] = DataTable(id="alert-rows", cursor_type="row")
        alerts.add_columns(t("alerts.kind"), t("alerts.where"), t("alerts.booth"), t("alerts.for"))
        yield alerts
        yield Static(f"[b]{t('escalations.title')}[/b]", id="escalations-title")
        escalations: DataTable[str] = DataTable(id="escalation-rows", cursor_type="row")
        escalations.add_columns(
            t("alerts.booth"), t("escalations.from"), t("escalations.note"),
            t("escalations.waiting"), t("escalations.taken_by"), t("escalations.step"),
        )  # fmt: skip
        yield escalations
        yield self.picture
        yield Footer()

    def on_mount(self) -> None:
        self.show(self.figures)
        self.set_interval(1.0, self.show_link)
        # Polled faster than frames come, as the desk's paint timer: a frame waits one poll.
        self.set_interval(1 / (4 * self.fps), self.paint_picture)
        table = self.query_one("#escalation-rows", DataTable)
        first = self.query_one("#alert-rows", DataTable)
        (first if first.row_count or not table.row_count else table).focus()

    def show(self, figures: OfficeFigures) -> None:
        """The latest figures (the console's poll); the cursors stay on their rows."""
        self.figures = figures
        alerts = self.query_one("#alert-rows", DataTable)
        kept = alerts.cursor_row
        alerts.clear()
        for i, alert in enumerate(figures.alerts):
            alerts.add_row(
                t(f"alert.{alert.kind}"), where(alert), alert.booth or "-",
                _minutes(alert.seconds), key=str(i),
            )  # fmt: skip
        alerts.move_cursor(row=min(kept, max(alerts.row_count - 1, 0)))
        table = self.query_one("#escalation-rows", DataTable)
        kept = table.cursor_row
        table.clear()
        for entry in figures.escalations:
            table.add_row(
                entry.booth, entry.desk or "-", entry.note, _minutes(entry.waiting_s),
                entry.taken_by or t("escalations.nobody"), self._step_text(entry),
                key=entry.visit,
            )  # fmt: skip
        table.move_cursor(row=min(kept, max(table.row_count - 1, 0)))
        self.show_link()

    def _link(self) -> tuple[EscalationEntry | None, Any]:
        """The selected escalation and, when this supervisor took it, its booth's link."""
        entry = self.selected_escalation()
        engine = getattr(self.app, "engine", None)
        if entry is None or entry.taken_by != self.me or engine is None:
            return entry, None
        return entry, engine.links.get(entry.visit)

    def show_link(self) -> None:
        """The link to the booth of the selected escalation this supervisor took: the
        claimant's picture, and beside it its state, the frames received and how loud the
        claimant is heard."""
        entry, link = self._link()
        if entry is None or link is None:
            self.picture.follow(None)
            self.picture.say(t("resolver.none"))
            return
        away = bool(link.booth_away) or not entry.booth_present
        self.picture.follow(entry.visit, link.state, booth_away=away)
        text = t("resolver.link", booth=entry.booth, state=link.state, frames=link.frames,
                 level=link.audio.level_dbfs)  # fmt: skip
        if away:
            text += "\n" + t("resolver.away_relink", booth=entry.booth)
        self.picture.say(text)

    def paint_picture(self) -> None:
        """The claimant's newest frame into the picture, while this screen is on top (a
        dialog above it pauses it) and the terminal keeps up."""
        stack = self.app.screen_stack
        if not stack or stack[-1] is not self:
            return
        terminal = getattr(self.app, "terminal", None)
        if terminal is not None and terminal.backlog() > WRITE_BACKLOG:
            return  # the frame stays unread and is replaced by a newer one
        _, link = self._link()
        self.picture.paint(link, 0.5 / self.fps)

    def on_screen_suspend(self) -> None:
        self.picture.pause(True)

    def on_screen_resume(self) -> None:
        self.picture.pause(False)

    def on_unmount(self) -> None:
        self.picture.uncover()

    def _step_text(self, entry: EscalationEntry) -> str:
        view = entry.visit_view
        if view.current_step is None:
            return t("escalations.all_decided")
        return step_label(view.steps[view.current_step].name, short=True)

    # -- which row ---------------------------------------------------------------------

    def selected_escalation(self) -> EscalationEntry | None:
        table = self.query_one("#escalation-rows", DataTable)
        if not table.row_count or not 0 <= table.cursor_row < len(self.figures.escalations):
            return None
        return self.figures.escalations[table.cursor_row]

    def select_escalation(self, visit: str) -> None:
        table = self.query_one("#escalation-rows", DataTable)
        for i, entry in enumerate(self.figures.escalations):
            if entry.visit == visit:
                table.move_cursor(row=i)
                table.focus()

    @property
    def console(self) -> SupervisorConsole:
        from lapak.console.supervisor import SupervisorConsole

        assert isinstance(self.app, SupervisorConsole)
        return self.app

    # -- keys ----------------------------------------------------------------------------

    def action_close(self) -> None:
        self.dismiss(None)

    def action_go(self) -> None:
        """On an alert: go where it is (an escalation: its row here); on an escalation: take
        it when it waits."""
        alerts = self.query_one("#alert-rows", DataTable)
        if alerts.has_focus and alerts.row_count:
            self._go_to(self.figures.alerts[alerts.cursor_row])
            return
        self.action_take()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """enter on a row (the table's own key): the same as ``action_go``."""
        event.stop()
        if event.data_table.id == "alert-rows":
            if 0 <= event.cursor_row < len(self.figures.alerts):
                self._go_to(self.figures.alerts[event.cursor_row])
        else:
            self.action_take()

    def _go_to(self, alert: Alert) -> None:
        if alert.kind == "escalation_waiting" and alert.visit is not None:
            self.select_escalation(alert.visit)
            return
        self.dismiss(alert_target(alert))

    def action_take(self) -> None:
        entry = self.selected_escalation()
        if entry is None:
            self.console.say(t("escalations.none_selected"), "warning")
            return
        self.app.run_worker(self.console.take_escalation(entry.visit), group="actions")

    def _mine(self) -> EscalationEntry | None:
        entry = self.selected_escalation()
        if entry is None or entry.taken_by != self.me:
            self.console.say(t("escalations.take_first"), "warning")
            return None
        return entry

    def action_resolve(self, decision: str) -> None:
        entry = self._mine()
        if entry is None:
            return
        step = entry.visit_view.current_step
        if step is None:
            self.console.say(t("msg.all_decided"), "warning")
            return
        if decision == "approve":
            self.app.run_worker(self.console.resolve_step(entry, step, "approve", None))
            return
        reasons = self.console.session.welcome.reasons if self.console.session.welcome else []

        def picked(reason: str | None) -> None:
            if reason:
                self.app.run_worker(self.console.resolve_step(entry, step, "reject", reason))

        choices = [(r, reason_label(r)) for r in reasons]
        self.app.push_screen(
            PickScreen(
                t(
                    "dialog.reason",
                    who=entry.booth,
                    step=step_label(entry.visit_view.steps[step].name),
                ),
                choices,
                id="reasons",
            ),
            picked,
        )

    def action_finish(self) -> None:
        entry = self._mine()
        if entry is None:
            return

        def picked(outcome: str | None) -> None:
            chosen = next((o for o in RESOLVER_OUTCOMES if o == outcome), None)
            if chosen is not None:
                self.app.run_worker(self.console.finish_escalation(entry, chosen))

        choices: list[tuple[str, str]] = [(o, t(f"outcome.{o}")) for o in RESOLVER_OUTCOMES]
        self.app.push_screen(
            PickScreen(t("dialog.outcome", who=entry.booth), choices, id="outcomes"), picked
        )


class EscalationsMixin:
    """The supervisor console's alerts: polled, announced, shown (``n``) and acted on.
    Mixed into ``SupervisorConsole`` (Textual calls each class's ``on_mount``)."""

    office_stats: OfficeFigures | None
    session: Any

    def on_mount(self) -> None:
        self.set_interval(ALERT_POLL_S, self._poll_alerts)  # type: ignore[attr-defined]

    def _poll_alerts(self) -> None:
        if self.session.connected:
            self.run_worker(  # type: ignore[attr-defined]
                self.refresh_alerts(), group="alerts", exclusive=True
            )

    async def refresh_alerts(self) -> OfficeFigures | None:
        """Ask the server; announce escalations that were not waiting before."""
        try:
            ack: Ack = await self.session.office_stats()
            figures = ack.figures()
        except (*FAILURES, ValueError) as exc:
            log.info("event=alerts_unavailable error=%s", exc)
            return None
        before = self.office_stats
        waiting_before = {e.visit for e in (before.escalations if before else []) if not e.taken_by}
        fresh = [e for e in figures.escalations if not e.taken_by and e.visit not in waiting_before]
        self.office_stats = figures
        engine = self.session.engine
        if isinstance(engine, SupervisorMedia):  # a taken visit that ended elsewhere: unlink
            open_now = {e.visit for e in figures.escalations}
            for visit in sorted(engine.resolving - open_now):
                await engine.unresolve(visit)
            for entry in figures.escalations:  # a booth back from away is linked again
                engine.resolver_booth_present(entry.visit, entry.booth_present)
        if fresh and before is not None:
            self.say(t("alerts.new_escalation", booth=fresh[0].booth, n=len(fresh)), "warning")  # type: ignore[attr-defined]
        screen = self.screen  # type: ignore[attr-defined]
        if isinstance(screen, AlertsScreen):
            screen.show(figures)
        return figures

    @property
    def me(self) -> str:
        welcome = self.session.welcome
        return welcome.sub if welcome is not None else ""

    async def action_alerts(self) -> None:
        figures = await self.refresh_alerts()
        if figures is None:
            self.say(t("alerts.unavailable"), "error")  # type: ignore[attr-defined]
            return
        desk = self.desk_screen  # type: ignore[attr-defined]
        screen = AlertsScreen(
            figures,
            self.me,
            colour_mode="256" if colour_mode(self.config.colour) == "256" else "truecolor",  # type: ignore[attr-defined]
            raw=desk.tiles[1].video.raw,
            zoom_image=desk.zoom_image,
            fps=self.config.fps,  # type: ignore[attr-defined]
        )
        self.push_screen(screen, self._jump)  # type: ignore[attr-defined]

    def _jump(self, target: Jump | None) -> None:
        if target is None:
            return
        if target.desk is None:
            self.open_overview()  # type: ignore[attr-defined]
            return
        self.run_worker(self._jump_to(target), group="actions")  # type: ignore[attr-defined]

    async def _jump_to(self, target: Jump) -> None:
        assert target.desk is not None
        if target.desk != self.session.desk:
            await self._watch(target.desk)  # type: ignore[attr-defined]
        if target.slot is not None:
            self.desk_screen.select(target.slot)  # type: ignore[attr-defined]

    async def take_escalation(self, visit: str) -> None:
        try:
            await self.session.take_escalation(visit)
        except FAILURES as exc:
            self.say(t("escalations.refused", visit=visit, error=exc), "error")  # type: ignore[attr-defined]
            return
        self.say(t("escalations.taken", visit=visit))  # type: ignore[attr-defined]
        engine = self.session.engine
        if isinstance(engine, SupervisorMedia):
            entry = next((e for e in self._escalations() if e.visit == visit), None)
            if entry is not None and not entry.booth_present:
                engine.set_booth_present(visit, False)  # offered when the booth is back
            await engine.resolve(visit)  # the supervisor's voice to the booth, the claimant back
        await self.refresh_alerts()

    def _escalations(self) -> list[EscalationEntry]:
        return self.office_stats.escalations if self.office_stats is not None else []

    async def resolve_step(
        self, entry: EscalationEntry, step: int, decision: str, reason: str | None
    ) -> None:
        what = t("what.approve" if decision == "approve" else "what.reject")
        try:
            await self.session.decide(entry.visit, step, decision, reason)
        except FAILURES as exc:
            self.say(t("msg.refused", who=entry.booth, what=what, error=exc), "error")  # type: ignore[attr-defined]
            return
        self.say(t("msg.done", who=entry.booth, what=what))  # type: ignore[attr-defined]
        await self.refresh_alerts()

    async def finish_escalation(self, entry: EscalationEntry, outcome: Outcome) -> None:
        what = f"{t('what.finish')} ({t(f'outcome.{outcome}')})"
        try:
            await self.session.end_visit(entry.visit, outcome, None)
        except FAILURES as exc:
            self.say(t("msg.refused", who=entry.booth, what=what, error=exc), "error")  # type: ignore[attr-defined]
            return
        self.say(t("msg.done", who=entry.booth, what=what))  # type: ignore[attr-defined]
        engine = self.session.engine
        if isinstance(engine, SupervisorMedia):
            await engine.unresolve(entry.visit)
        await self.refresh_alerts()
