"""What each key does: the console's actions over the desk session.

A decision is shown as sent until the server acknowledges it (the session keeps it pending);
refused, the session fetches the server's truth and the status line shows the server's
message. Every decision names slot and claimant in its dialog and in the status line, and a
decision about a booth that is not on air asks first. Requests run as workers, so keys keep
working while the server answers.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

import av
from textual.app import App

from lapak.console import i18n
from lapak.console.config import ConsoleConfig, default_snapshot_dir
from lapak.console.desk_screen import DeskScreen
from lapak.console.i18n import t
from lapak.console.keys import OFFICER_KEYS, KeyHelp, KeySpec, help_rows
from lapak.console.png import save_png, snapshot_path
from lapak.console.screens import ConfirmQuit, ConfirmScreen, HelpScreen, NoteScreen, PickScreen
from lapak.media.desk_model import DeskModel
from lapak.media.desk_session import DeskSession
from lapak.signaling.client import RequestError
from lapak.signaling.messages import VisitView
from lapak.signaling.protocol import Decision, Outcome

log = logging.getLogger("lapak.console")

Visit = VisitView

FAILURES = (RequestError, ConnectionError, TimeoutError, OSError)
"""What a request may end in: refused by the server, or lost on the way."""


def who(visit: Visit | None) -> str:
    """ "slot 2 · Budi Santoso": how every dialog and status message names a claimant."""
    if visit is None:
        return t("who.nobody")
    return t("who", slot=visit.slot or "-", name=visit.name or visit.visit)


class DeskCommands(App[None]):
    """The actions bound to the keys (``keys.OFFICER_KEYS``); the app provides the session,
    the desk screen and the settings."""

    session: DeskSession
    desk_screen: DeskScreen
    config: ConsoleConfig
    engine: Any
    read_only: bool
    confirm_quit: bool
    clock: Callable[[], float]
    messages: list[tuple[str, str]]
    snapshots: list[tuple[Any, str]]

    KEYS: ClassVar[tuple[KeySpec, ...]] = OFFICER_KEYS
    UNKNOWN: ClassVar[str] = "?"
    zoom_told: str | None = None
    """The zoomed visit the server was last told of (``UNKNOWN`` after a failed attempt)."""

    def key_help(self) -> list[KeyHelp]:
        """Every key of this console as bound now (the config file may have changed them)."""
        return help_rows(self.KEYS, self.desk_screen.active_bindings, self.get_key_display)

    @property
    def model(self) -> DeskModel:
        return self.session.model

    def say(self, text: str, severity: str = "information") -> None:
        """Messages go to the status bar, never to a toast over the video."""
        self.messages.append((severity, text))
        del self.messages[:-50]
        log.info("event=message severity=%s text=%r", severity, text)
        self.desk_screen.say(text, severity)

    def show_mic(self) -> None:
        muted = bool(getattr(self.engine, "muted", False))
        text = "" if self.read_only else t("status.muted") if muted else t("status.live")
        self.desk_screen.show_mic(text, muted)

    def _go(self, work: Coroutine[Any, Any, None]) -> None:
        """Requests run as workers: keys keep working while the server answers."""
        self.run_worker(work, group="actions")

    async def _request(
        self, visit: Visit | None, what: str, send: Callable[[], Coroutine[Any, Any, Any]]
    ) -> bool:
        """Send, and say what became of it (refused: the server's code; lost: not done)."""
        name = who(visit)
        self.say(t("msg.sending", who=name, what=what))
        try:
            await send()
        except RequestError as exc:
            self.say(t("msg.refused", who=name, what=what, error=exc), "error")
            return False
        except FAILURES as exc:
            self.say(t("msg.lost", who=name, what=what, error=exc), "error")
            return False
        return True

    # -- selection and air ----------------------------------------------------------------

    def action_select(self, step: int) -> None:
        self.desk_screen.step_selection(step)
        self.sync_zoom()

    def action_zoom(self) -> None:
        self.desk_screen.toggle_zoom()
        self.sync_zoom()

    def zoomed_visit(self) -> str | None:
        if not self.desk_screen.zoomed:
            return None
        visit = self.model.visit_in_slot(self.desk_screen.selected_slot)
        return visit.visit if visit is not None else None

    def sync_zoom(self) -> None:
        """Tell the server which booth is zoomed when that changes: it sends full video while
        zoomed (or on air), a thumbnail otherwise."""
        wanted = self.zoomed_visit()
        if self.read_only or wanted == self.zoom_told or not self.session.connected:
            return
        self.zoom_told = wanted
        self._go(self._tell_zoom(wanted))

    async def _tell_zoom(self, visit: str | None) -> None:
        try:
            await self.session.zoom(visit)
        except FAILURES as exc:  # the visit left meanwhile, or the link dropped: ask again later
            log.info("event=zoom_not_told visit=%s error=%r", visit, exc)
            self.zoom_told = self.UNKNOWN

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
        self.desk_screen.select(slot)
        self.sync_zoom()
        self._go(self._focus(visit))

    async def _focus(self, visit: Visit | None) -> None:
        what, name = t("what.focus"), who(visit)
        self.say(t("msg.sending", who=name, what=what))
        try:
            await self.session.focus(visit.visit if visit else None)
        except FAILURES as exc:
            self.say(t("msg.refused", who=name, what=what, error=exc), "error")
        else:
            self.say(t("msg.off_air") if visit is None else t("msg.done", who=name, what=what))

    def action_longest(self) -> None:
        visit_id = self.model.longest_waiting(self.clock())
        if visit_id is None:
            self.say(t("msg.nobody_waiting"), "warning")
            return
        visit = self.model.visits[visit_id]
        if visit.slot:
            self.desk_screen.select(visit.slot)
        self._go(self._focus(visit))

    # -- decisions ------------------------------------------------------------------------

    def _selected_visit(self) -> Visit | None:
        visit = self.model.visit_in_slot(self.desk_screen.selected_slot)
        if visit is None:
            self.say(t("msg.no_visit"), "warning")
        return visit

    def _on_air_or_ask(self, visit: Visit, what: str, then: Callable[[], None]) -> None:
        """Decide at once about the claimant on air; about anyone else, ask first.

        The officer speaks to the booth on air, so a key meant for it must not land on the
        selected tile unseen (``tab`` moves the selection, not the air).
        """
        if visit.visit == self.model.on_air:
            then()
            return
        name = who(visit)
        on_air = who(self.model.visits.get(self.model.on_air or ""))

        def answered(choice: str | None) -> None:
            if choice == "yes":
                then()
            else:
                self.say(t("msg.cancelled", who=name, what=what))

        self.push_screen(
            ConfirmScreen(
                t("dialog.not_on_air", who=name, booth=visit.booth, on_air=on_air,
                  what=what.capitalize(), name=visit.name),
                t("dialog.go_ahead", what=what, who=name),
                id="confirm-not-on-air",
            ),
            answered,
        )  # fmt: skip

    def _decision(
        self, decision: Decision, step_of: Callable[[str], int | None], empty: str
    ) -> None:
        """approve/reject/reopen: the step it applies to, on air or asked first."""
        visit = self._selected_visit()
        if visit is None:
            return
        step = step_of(visit.visit)
        if step is None:
            self.say(t(empty), "warning" if decision == "reopen" else "information")
            return
        if decision == "reject":
            self._on_air_or_ask(visit, t("what.reject"), lambda: self._pick_reason(visit, step))
        else:
            self._on_air_or_ask(
                visit, t(f"what.{decision}"), lambda: self._go(self._decide(visit, step, decision))
            )

    def action_approve(self) -> None:
        self._decision("approve", self.model.next_step, "msg.all_decided")

    def action_reject(self) -> None:
        self._decision("reject", self.model.next_step, "msg.all_decided")

    def action_reopen(self) -> None:
        self._decision("reopen", self.model.last_decided, "msg.nothing_to_reopen")

    def _pick_reason(self, visit: Visit, step: int) -> None:
        name = visit.steps[step].name
        welcome = self.session.welcome
        reasons = self.config.reject_reasons(welcome.reasons if welcome else None)

        def picked(reason: str | None) -> None:
            if reason is not None:
                self._go(self._decide(visit, step, "reject", reason))
            else:
                self.say(t("msg.cancelled", who=who(visit), what=t("what.reject")))

        self.push_screen(
            PickScreen(
                t("dialog.reason", who=who(visit), step=i18n.step_label(name)),
                [(r, i18n.reason_label(r)) for r in reasons],
                id="reasons",
            ),
            picked,
        )

    async def _decide(
        self, visit: Visit, step: int, decision: Decision, reason: str | None = None
    ) -> None:
        """Pending until the server's ack; refused: the server's truth and its message."""
        label = i18n.step_label(visit.steps[step].name, short=True)
        what = f"{t(f'what.{decision}')} ({label})"
        send = self.session.decide
        if await self._request(visit, what, lambda: send(visit.visit, step, decision, reason)):
            self.say(t("msg.done", who=who(visit), what=what))

    # -- ending a visit -------------------------------------------------------------------

    def outcome_problem(self, visit: Visit, outcome: str) -> str | None:
        """Why the server would refuse this outcome (``outcome_mismatch``), or None.

        Completed needs every step approved, rejected needs a rejected step (a server with
        ``strict_outcomes = false`` would take either; the welcome does not say so).
        """
        approved, total, rejected = self.model.approved_count(visit.visit)
        if outcome == "completed" and approved < total:
            return t("why.completed", approved=approved, total=total)
        if outcome == "rejected" and not rejected:
            return t("why.rejected")
        return None

    def _selected_on_air_or_ask(self, what: str, then: Callable[[Visit], None]) -> None:
        """A whole-visit action on the selected tile: at once on air, else asked first."""
        visit = self._selected_visit()
        if visit is not None:
            self._on_air_or_ask(visit, what, lambda: then(visit))

    def action_finish(self) -> None:
        self._selected_on_air_or_ask(t("what.finish"), self._pick_outcome)

    def _pick_outcome(self, visit: Visit) -> None:
        outcomes: tuple[Outcome, ...] = ("completed", "rejected", "abandoned")
        problems = {o: self.outcome_problem(visit, o) for o in outcomes}
        choices: list[tuple[str, str]] = [
            (o, t(f"outcome.{o}") if problems[o] is None
             else t("outcome.blocked", label=t(f"outcome.{o}"), why=problems[o]))
            for o in outcomes
        ]  # fmt: skip

        def picked(choice: str | None) -> None:
            outcome = next((o for o in outcomes if o == choice), None)
            if outcome is None:
                self.say(t("msg.cancelled", who=who(visit), what=t("what.finish")))
            else:
                self._go(self.end_visit(visit, outcome, ""))

        self.push_screen(
            PickScreen(
                t("dialog.outcome", who=who(visit)),
                choices,
                id="outcomes",
                disabled=frozenset(i for i, o in enumerate(outcomes) if problems[o]),
            ),
            picked,
        )

    def action_escalate(self) -> None:
        self._selected_on_air_or_ask(t("what.escalate"), self._ask_note)

    def _ask_note(self, visit: Visit) -> None:
        def noted(note: str | None) -> None:
            if note:
                self._go(self.end_visit(visit, "escalated", note))
            else:
                self.say(t("msg.cancelled", who=who(visit), what=t("what.escalate")))

        self.push_screen(NoteScreen(t("dialog.note", who=who(visit))), noted)

    async def end_visit(self, visit: Visit, outcome: Outcome, note: str) -> None:
        what = t("what.escalate" if outcome == "escalated" else "what.finish")
        what = f"{what} ({t(f'outcome.{outcome}')})"
        send = self.session.end_visit
        if await self._request(visit, what, lambda: send(visit.visit, outcome, note or None)):
            # escalated: handed to a supervisor (the visit stays open; the slot is free)
            done = "msg.escalated" if outcome == "escalated" else "msg.done"
            self.say(t(done, who=who(visit), what=what))

    # -- microphone and snapshot ----------------------------------------------------------

    async def action_mute(self) -> None:
        set_muted = getattr(self.engine, "set_muted", None)
        if set_muted is None:
            self.say(t("msg.no_mute"), "warning")
            return
        muted = not bool(getattr(self.engine, "muted", False))
        outcome = set_muted(muted)
        if inspect.isawaitable(outcome):
            await outcome
        self.show_mic()
        self.say(t("msg.muted" if muted else "msg.unmuted"))

    def action_snapshot(self) -> None:
        visit = self._selected_visit()
        if visit is None:
            return
        frame = self.desk_screen.tiles[self.desk_screen.selected_slot].video.last_frame
        if frame is None:
            self.say(t("msg.no_frame"), "warning")
            return
        self._go(self._snapshot(visit, frame, self.model.next_step(visit.visit)))

    async def _snapshot(self, visit: Visit, frame: av.VideoFrame, step: int | None) -> None:
        folder = self.config.snapshot_dir or default_snapshot_dir()
        path = snapshot_path(folder, visit.visit, self.clock())
        try:
            digest = await asyncio.to_thread(save_png, frame, path)
        except OSError as exc:
            self.say(f"{who(visit)}: {t('what.snapshot')}: {exc}", "error")
            return
        self.snapshots.append((path, digest))
        # The outcome before the path: at 100 columns the status line keeps ~45 characters.
        saved = t("msg.snapshot_saved", path=path, sha=digest[:12])
        self.say(f"{who(visit)}: {saved}")
        what = t("what.snapshot")
        try:
            await self.session.snapshot_taken(visit.visit, digest, step)
        except FAILURES as exc:
            refused = t("msg.refused", who=who(visit), what=what, error=exc)
            self.say(f"{refused} · {saved}", "error")
        else:
            recorded = t("msg.snapshot_recorded", path=path, sha=digest[:12])
            self.say(f"{who(visit)}: {recorded}")

    # -- quitting -------------------------------------------------------------------------

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
