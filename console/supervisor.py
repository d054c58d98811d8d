"""The supervisor's view: the officer's tiles, read-only (no mutating key is bound at all),
the office overview and a desk picker; and the supervisor's voice on the watched desk
(``l`` listen only, ``c`` coach, ``b`` barge), as far as the token's grants allow."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from textual.binding import BindingType

from lapak.console.app import LapakConsole
from lapak.console.commands import FAILURES
from lapak.console.escalations import EscalationsMixin
from lapak.console.i18n import t
from lapak.console.keys import SUPERVISOR_KEYS, KeySpec, make_bindings
from lapak.console.screens import OfficeOverview, PickScreen, figures_from
from lapak.media.desk_session import DeskChange
from lapak.media.officer import SupervisorMedia
from lapak.media.supervisor_voice import MODES
from lapak.signaling.messages import OfficeFigures as ServerFigures
from lapak.signaling.protocol import SupervisionMode

log = logging.getLogger("lapak.console")


class SupervisorConsole(EscalationsMixin, LapakConsole, inherit_bindings=False):
    """The same tiles, read-only: no mutating key is bound at all."""

    KEYS: ClassVar[tuple[KeySpec, ...]] = SUPERVISOR_KEYS
    BINDINGS: ClassVar[list[BindingType]] = make_bindings(SUPERVISOR_KEYS)

    def __init__(
        self,
        url: str | None,
        token: str,
        desk: str | None = None,
        *,
        media: bool = True,
        audio_in: str = "none",
        audio_out: str = "none",
        **kwargs: Any,
    ) -> None:
        """``audio_in``: the supervisor's microphone for coach and barge (``none``, ``tone``,
        a recording); ``audio_out``: where booths (and the desk) are heard."""
        self.audio_in = audio_in
        self.audio_out = audio_out
        super().__init__(url, token, read_only=True, desk=desk, media=media, **kwargs)
        self.office_stats: ServerFigures | None = None  # the last office_stats answer

    async def action_overview(self) -> None:
        try:
            self.office_stats = (await self.session.office_stats()).figures()
        except (*FAILURES, ValueError) as exc:
            self.office_stats = None
            log.info("event=office_stats_unavailable error=%s", exc)
        self.open_overview()

    def open_overview(self) -> None:
        """Desks, load, on-air booth, the queue and today's figures; pick a desk."""
        models = self.session.models
        booth_of = {v.visit: v.booth for m in models.values() for v in m.visits.values()}
        welcome = self.session.welcome
        office = welcome.office if welcome else self.model.office or "-"
        figures = figures_from(office, models, self.office_stats, booth_of)
        self.push_screen(OfficeOverview(figures), self._switch_desk)

    def action_pick_desk(self) -> None:
        welcome = self.session.welcome
        desks = sorted(set(welcome.desks if welcome else []) | set(self.session.models))
        self.push_screen(
            PickScreen(t("overview.pick"), [(d, d) for d in desks], id="desk-picker"),
            self._switch_desk,
        )

    def _switch_desk(self, desk: str | None) -> None:
        if desk is None or desk == self.session.desk:
            return
        self.desk_screen.select(1)
        self.run_worker(self._watch(desk), group="actions")

    async def _watch(self, desk: str) -> None:
        """Follow ``desk``; on a cluster the session moves to the node serving it (issue
        14). A desk that cannot be watched (its node is down, refused) is one error line;
        the console stays on the desk it had."""
        if self.supervision != "monitor":  # a voice stays with the desk it was meant for
            await self.action_supervise("monitor")
        try:
            await self.session.watch(desk)
        except FAILURES as exc:
            log.info("event=watch_failed desk=%s error=%s", desk, exc)
            self.say(t("watch.failed", desk=desk, error=exc), "error")
        self.redraw(DeskChange(desk=True, connection=True))

    # -- the supervisor's voice: monitor, coach, barge ------------------------------------

    def _make_engine(self, enabled: bool, voice: Any, options: Any) -> SupervisorMedia | None:
        if not enabled:
            return None
        return SupervisorMedia(audio_out=self.audio_out, audio_in=self.audio_in, voice=voice)

    async def action_supervise(self, mode: str) -> None:
        """Listen only, coach or barge the watched desk. The server decides (the token's
        grants): a refusal is shown as it says, and nothing changes."""
        if mode not in MODES:
            return
        desk = self.session.desk
        if desk is None:
            self.say(t("supervise.no_desk"), "warning")
            return
        chosen = MODES[MODES.index(mode)]  # the literal, checked against MODES
        try:
            await self.session.supervise(desk, chosen)
        except FAILURES as exc:
            self.say(t("supervise.refused", mode=t(f"mode.{mode}"), error=exc), "error")
            return
        self.say(t("supervise.now", desk=desk, mode=t(f"mode.{mode}")))
        self._show_supervision()

    @property
    def supervision(self) -> SupervisionMode:
        """What the server last accepted (monitor again after a lost connection)."""
        mode: SupervisionMode = self.session.supervising
        return mode

    def _show_supervision(self) -> None:
        desk = self.session.desk or "…"
        if self.supervision == "monitor":
            self.desk_screen.show_banner(t("banner.read_only", desk=desk))
        else:
            self.desk_screen.show_banner(t(f"banner.{self.supervision}", desk=desk))

    def _show_connection(self) -> None:
        super()._show_connection()
        self._show_supervision()
        session = self.session
        if session.connected and session.node != self.url and session.desk is not None:
            welcome = session.welcome  # moved to another node of a cluster: say which
            status = t("status.connected", role=welcome.role if welcome else "-",
                       sub=welcome.sub if welcome else "-",
                       office=welcome.office if welcome else "-", desk=session.desk)  # fmt: skip
            self.desk_screen.show_status(t("status.on_node", status=status, node=session.node))
