"""The supervisor's view: the officer's tiles, read-only (no mutating key is bound at all),
the office overview and a desk picker."""

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
from lapak.signaling.messages import OfficeFigures as ServerFigures

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
        **kwargs: Any,
    ) -> None:
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
        await self.session.watch(desk)
        self.redraw(DeskChange(desk=True, connection=True))
