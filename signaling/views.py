"""What clients see of the state: visit and desk views (messages.py structs) and the wait
estimate. Booth presence is not in the log: the caller (the hub) supplies it."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import cast

from lapak.signaling.messages import DeskView, StepStatus, StepView, VisitState, VisitView
from lapak.signaling.protocol import Outcome
from lapak.signaling.state import State, Visit

# Is the visit's booth connected, and if not, since when (wall clock) is it away.
Presence = Callable[[Visit], tuple[bool, float | None]]


def nobody(visit: Visit) -> tuple[bool, float | None]:
    """Presence when no connection is known (tests, tools): every booth away, since never."""
    return False, None


def visit_view(visit: Visit, presence: Presence = nobody) -> VisitView:
    present, away_since = presence(visit)
    return VisitView(
        visit=visit.id,
        booth=visit.booth,
        name=visit.name,
        membership_no=visit.membership_no,
        claim_type=visit.claim_type,
        state=cast(VisitState, visit.state),
        desk=visit.desk,
        slot=visit.slot,
        started_at=visit.started_at,
        routed_at=visit.routed_at,
        last_on_air_at=visit.last_on_air_at,
        on_air_since=visit.on_air_since,
        outcome=cast("Outcome | None", visit.outcome),  # a string: no typing union per call
        current_step=visit.current_step,
        steps=[StepView(s.name, cast(StepStatus, s.status), s.reason) for s in visit.steps],
        booth_present=present,
        booth_away_since=None if present else away_since,
    )


def desk_view(state: State, desk_id: str, presence: Presence = nobody) -> DeskView:
    desk = state.desks[desk_id]
    return DeskView(
        desk=desk.id,
        office=desk.office,
        officer=desk.officer,
        capacity=desk.capacity,
        closed=desk.closed,
        vacant=desk.vacant,
        on_air=desk.on_air,
        visits=[visit_view(state.visits[v], presence) for _, v in sorted(desk.slots.items())],
        queue=len(state.queues.get(desk.office, [])),
    )


def estimated_wait_s(state: State, visit: Visit, default_visit_s: float) -> float | None:
    """Position × typical visit length ÷ slots in the office (None when seated)."""
    queue = state.queues.get(visit.office, [])
    if visit.id not in queue:
        return None
    position = queue.index(visit.id) + 1
    durations = state.ended_durations.get(visit.office)
    typical = statistics.median(durations) if durations else default_visit_s
    slots = sum(
        d.capacity for d in state.desks.values() if d.office == visit.office and not d.closed
    )
    return position * typical / max(slots, 1)
