"""The pure domain core: offices, desks, visits, routing, focus and step decisions.

No I/O, no clocks: callers pass ``now``. Commands check the current state and return the
events that express the change; ``apply`` is the only code that mutates state, and it is
what replay runs, so state after a restart is exactly the replay of the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from signaling.events import (
    DeskOpened,
    Event,
    FocusChanged,
    StepDecided,
    VisitEnded,
    VisitQueued,
    VisitRouted,
    VisitStarted,
)
from signaling.protocol import ErrorCode
from signaling.workflows import steps_for

MAX_CAPACITY = 6


class DomainError(Exception):
    """A command the state does not allow; the code goes back to the client."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Step:
    name: str
    status: str = "pending"  # pending | approved | rejected
    reason: str | None = None
    by: str | None = None
    at: float | None = None


@dataclass
class Visit:
    id: str
    office: str
    booth: str
    name: str
    membership_no: str
    claim_type: str
    steps: list[Step]
    started_at: float
    state: str = "queued"  # queued | active | ended
    desk: str | None = None
    slot: int | None = None
    outcome: str | None = None
    ended_at: float | None = None

    @property
    def current_step(self) -> int | None:
        """Index of the first step still pending, or None when all are decided."""
        for i, step in enumerate(self.steps):
            if step.status == "pending":
                return i
        return None


@dataclass
class Desk:
    id: str
    office: str
    officer: str
    capacity: int
    slots: dict[int, str] = field(default_factory=dict)
    on_air: str | None = None

    def free_slot(self) -> int | None:
        for slot in range(1, self.capacity + 1):
            if slot not in self.slots:
                return slot
        return None


@dataclass
class State:
    desks: dict[str, Desk] = field(default_factory=dict)
    visits: dict[str, Visit] = field(default_factory=dict)
    queues: dict[str, list[str]] = field(default_factory=dict)  # office -> visit ids, FIFO
    open_by_booth: dict[str, str] = field(default_factory=dict)  # booth -> open visit id
    events_applied: int = 0


def apply(state: State, event: Event) -> None:
    """Mutate ``state`` by one event. Must stay deterministic: it is what replay runs."""
    state.events_applied += 1
    match event:
        case DeskOpened():
            state.desks[event.desk] = Desk(event.desk, event.office, event.officer, event.capacity)
        case VisitStarted():
            state.visits[event.visit] = Visit(
                id=event.visit,
                office=event.office,
                booth=event.booth,
                name=event.name,
                membership_no=event.membership_no,
                claim_type=event.claim_type,
                steps=[Step(s) for s in event.steps],
                started_at=event.at,
            )
            state.open_by_booth[event.booth] = event.visit
        case VisitQueued():
            visit = state.visits[event.visit]
            state.queues.setdefault(visit.office, []).append(visit.id)
        case VisitRouted():
            visit = state.visits[event.visit]
            queue = state.queues.get(visit.office, [])
            if visit.id in queue:
                queue.remove(visit.id)
            visit.state, visit.desk, visit.slot = "active", event.desk, event.slot
            state.desks[event.desk].slots[event.slot] = visit.id
        case FocusChanged():
            state.desks[event.desk].on_air = event.visit
        case StepDecided():
            step = state.visits[event.visit].steps[event.step]
            step.status = {"approve": "approved", "reject": "rejected"}[event.decision]
            step.reason, step.by, step.at = event.reason, event.by, event.at
        case VisitEnded():
            visit = state.visits[event.visit]
            if visit.desk is not None and visit.slot is not None:
                desk = state.desks[visit.desk]
                desk.slots.pop(visit.slot, None)
                if desk.on_air == visit.id:
                    desk.on_air = None
            queue = state.queues.get(visit.office, [])
            if visit.id in queue:
                queue.remove(visit.id)
            visit.state, visit.outcome, visit.ended_at = "ended", event.outcome, event.at
            if state.open_by_booth.get(visit.booth) == visit.id:
                del state.open_by_booth[visit.booth]


class Domain:
    """Commands over a State. Each returns the events it produced, already applied."""

    def __init__(self, state: State | None = None) -> None:
        self.state = state or State()

    def _emit(self, events: list[Event], event: Event) -> None:
        apply(self.state, event)
        events.append(event)

    def _new_visit_id(self) -> str:
        return f"V{len(self.state.visits) + 1:06d}"

    # -- routing ---------------------------------------------------------------------

    def _least_loaded_desk(self, office: str) -> Desk | None:
        candidates = [d for d in self.state.desks.values() if d.office == office and d.free_slot()]
        if not candidates:
            return None
        return min(candidates, key=lambda d: (len(d.slots), d.id))

    def _drain_queue(self, office: str, now: float, events: list[Event]) -> None:
        """Pull queued visits into free slots at once, oldest first."""
        queue = self.state.queues.get(office, [])
        while queue:
            desk = self._least_loaded_desk(office)
            if desk is None:
                return
            slot = desk.free_slot()
            assert slot is not None
            self._emit(events, VisitRouted(queue[0], desk.id, slot, now))

    # -- commands --------------------------------------------------------------------

    def open_desk(
        self, desk: str, office: str, officer: str, now: float, capacity: int = MAX_CAPACITY
    ) -> list[Event]:
        events: list[Event] = []
        existing = self.state.desks.get(desk)
        if existing is not None:
            if existing.office != office:
                raise DomainError(ErrorCode.FORBIDDEN, f"desk {desk} belongs to another office")
            return events
        if not 1 <= capacity <= MAX_CAPACITY:
            raise DomainError(ErrorCode.INVALID_MESSAGE, "capacity must be 1..6")
        self._emit(events, DeskOpened(desk, office, officer, capacity, now))
        self._drain_queue(office, now, events)
        return events

    def start_visit(
        self, booth: str, office: str, name: str, membership_no: str, claim_type: str, now: float
    ) -> tuple[str, list[Event]]:
        """Start a visit at a booth; a booth with an open visit resumes it instead."""
        open_id = self.state.open_by_booth.get(booth)
        if open_id is not None:
            return open_id, []
        events: list[Event] = []
        visit_id = self._new_visit_id()
        self._emit(
            events,
            VisitStarted(
                visit_id,
                office,
                booth,
                name,
                membership_no,
                claim_type,
                steps_for(claim_type),
                now,
            ),
        )
        desk = self._least_loaded_desk(office)
        if desk is None:
            self._emit(events, VisitQueued(visit_id, now))
        else:
            slot = desk.free_slot()
            assert slot is not None
            self._emit(events, VisitRouted(visit_id, desk.id, slot, now))
        return visit_id, events

    def _visit_at_desk(self, desk: str, visit_id: str) -> Visit:
        visit = self.state.visits.get(visit_id)
        if visit is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"no visit {visit_id}")
        if visit.state != "active" or visit.desk != desk:
            raise DomainError(ErrorCode.VISIT_NOT_ACTIVE, f"visit {visit_id} is not at desk {desk}")
        return visit

    def set_focus(self, desk: str, visit_id: str | None, by: str, now: float) -> list[Event]:
        if desk not in self.state.desks:
            raise DomainError(ErrorCode.NOT_FOUND, f"no desk {desk}")
        if visit_id is not None:
            self._visit_at_desk(desk, visit_id)
        events: list[Event] = []
        if self.state.desks[desk].on_air != visit_id:
            self._emit(events, FocusChanged(desk, visit_id, by, now))
        return events

    def decide(
        self,
        desk: str,
        visit_id: str,
        step: int,
        decision: str,
        reason: str | None,
        by: str,
        role: str,
        now: float,
    ) -> list[Event]:
        visit = self._visit_at_desk(desk, visit_id)
        if not 0 <= step < len(visit.steps):
            raise DomainError(ErrorCode.NOT_FOUND, f"visit {visit_id} has no step {step}")
        if visit.steps[step].status != "pending":
            raise DomainError(
                ErrorCode.STEP_NOT_PENDING,
                f"step {visit.steps[step].name} is already {visit.steps[step].status}",
            )
        if decision == "reject" and not reason:
            raise DomainError(ErrorCode.INVALID_MESSAGE, "a rejection needs a reason")
        events: list[Event] = []
        self._emit(events, StepDecided(visit_id, step, decision, reason, by, role, now))
        return events

    def end_visit(
        self, visit_id: str, outcome: str, note: str | None, by: str, now: float
    ) -> list[Event]:
        visit = self.state.visits.get(visit_id)
        if visit is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"no visit {visit_id}")
        if visit.state == "ended":
            raise DomainError(ErrorCode.VISIT_NOT_ACTIVE, f"visit {visit_id} already ended")
        events: list[Event] = []
        self._emit(events, VisitEnded(visit_id, outcome, note, by, now))
        self._drain_queue(visit.office, now, events)
        return events


def replay(events: list[Event]) -> State:
    state = State()
    for event in events:
        apply(state, event)
    return state


# -- views sent to clients -------------------------------------------------------------


def visit_view(visit: Visit) -> dict[str, Any]:
    return {
        "visit": visit.id,
        "booth": visit.booth,
        "name": visit.name,
        "membership_no": visit.membership_no,
        "claim_type": visit.claim_type,
        "state": visit.state,
        "desk": visit.desk,
        "slot": visit.slot,
        "started_at": visit.started_at,
        "outcome": visit.outcome,
        "current_step": visit.current_step,
        "steps": [{"name": s.name, "status": s.status, "reason": s.reason} for s in visit.steps],
    }


def desk_view(state: State, desk_id: str) -> dict[str, Any]:
    desk = state.desks[desk_id]
    return {
        "desk": desk.id,
        "office": desk.office,
        "officer": desk.officer,
        "capacity": desk.capacity,
        "on_air": desk.on_air,
        "visits": [visit_view(state.visits[v]) for _, v in sorted(desk.slots.items())],
        "queue": len(state.queues.get(desk.office, [])),
    }


def queue_position(state: State, visit: Visit) -> int | None:
    queue = state.queues.get(visit.office, [])
    return queue.index(visit.id) + 1 if visit.id in queue else None
