"""Which stream of the PostgreSQL event log an event belongs to: its office.

The PostgreSQL store keeps one ordered, hash-chained stream per office (signaling/pglog.py),
so that an office can later be owned, fenced and replayed on its own. Every event names its
office, a visit or a desk; visits and desks are mapped to their office as their opening
events go by (and from the state at start-up). What belongs to no single office (a
``WorkflowSet`` for ``office = "*"``, or an event naming something unknown) goes to the
``"*"`` stream. Pure: no I/O, no clock.
"""

from __future__ import annotations

import logging

from lapak.signaling.domain import State
from lapak.signaling.events import (
    DeskConfigured,
    DeskOpened,
    Event,
    VisitEnded,
    VisitStarted,
    WorkflowSet,
)

log = logging.getLogger("lapak.streams")

GLOBAL_STREAM = "*"


class StreamRouter:
    """Office of each event, in log order (``route`` must see every event once, in order)."""

    def __init__(self, state: State | None = None) -> None:
        self.visits: dict[str, str] = {}
        self.desks: dict[str, str] = {}
        if state is not None:
            self.learn(state)

    def learn(self, state: State, office: str | None = None) -> None:
        """The offices of ``state``'s visits and desks (only ``office``'s, when given: an
        office adopted from another node's snapshot)."""
        self.visits.update(
            {vid: v.office for vid, v in state.visits.items() if office in (None, v.office)}
        )
        self.desks.update(
            {did: d.office for did, d in state.desks.items() if office in (None, d.office)}
        )

    def route(self, event: Event) -> str:
        if isinstance(event, DeskOpened | DeskConfigured):
            self.desks[event.desk] = event.office
            return event.office
        if isinstance(event, WorkflowSet):
            return event.office or GLOBAL_STREAM
        if isinstance(event, VisitStarted):
            self.visits[event.visit] = event.office
            return event.office
        visit = getattr(event, "visit", None)
        office = self.visits.get(visit) if isinstance(visit, str) else None
        if isinstance(event, VisitEnded):
            self.visits.pop(event.visit, None)  # nothing names an ended visit again
        if office is None:
            desk = getattr(event, "desk", None)
            office = self.desks.get(desk) if isinstance(desk, str) else None
        if office is None:
            log.warning("event=stream_unknown kind=%s stream=*", type(event).__name__)
            return GLOBAL_STREAM
        return office
