"""The pure domain core: offices, desks, visits, routing, focus and step decisions.

No I/O, no clocks: callers pass ``now``. Commands check the current state and return the
events that express the change; ``apply`` is the only code that mutates state, and it is
what replay runs, so state after a restart is exactly the replay of the log.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lapak.signaling.events import (
    DeskClosed,
    DeskConfigured,
    DeskOpened,
    DeskVacated,
    Event,
    FocusChanged,
    SnapshotTaken,
    StepDecided,
    VisitEnded,
    VisitQueued,
    VisitRouted,
    VisitStarted,
    WorkflowSet,
)
from lapak.signaling.protocol import ErrorCode
from lapak.signaling.workflows import default_workflows

MAX_CAPACITY = 6
KEEP_ENDED_S = 24 * 3600  # ended visits stay in memory a day (the log keeps them forever)
KEEP_FOCUS_RECORDS = 10_000
OUTCOMES = ("completed", "rejected", "escalated", "abandoned")


class DomainError(Exception):
    """A command the state does not allow; the code goes back to the client."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Rules:
    """Configuration the commands consult (never replay: events carry their outcome)."""

    workflows: dict[str, list[str]] = field(default_factory=default_workflows)
    reasons: tuple[str, ...] = ()
    pins: dict[str, str] = field(default_factory=dict)
    default_visit_s: float = 600.0
    strict_outcomes: bool = True  # completed needs every step approved, rejected one rejected


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
    note: str | None = None
    routed_at: float | None = None
    ended_at: float | None = None
    on_air_since: float | None = None
    last_on_air_at: float | None = None  # when the officer last stopped speaking to them
    on_air_total_s: float = 0.0
    snapshots: int = 0

    @property
    def current_step(self) -> int | None:
        """Index of the first step still pending, or None when all are decided."""
        for i, step in enumerate(self.steps):
            if step.status == "pending":
                return i
        return None

    def waiting_since(self) -> float:
        """Since when the claimant has waited for the officer's voice."""
        return self.last_on_air_at or self.routed_at or self.started_at


@dataclass
class Desk:
    id: str
    office: str
    officer: str | None
    capacity: int
    slots: dict[int, str] = field(default_factory=dict)
    on_air: str | None = None
    closed: bool = False
    vacant: bool = False  # officer gone past the grace period

    def free_slot(self) -> int | None:
        if self.closed or self.vacant:
            return None
        for slot in range(1, self.capacity + 1):
            if slot not in self.slots:
                return slot
        return None


@dataclass
class FocusRecord:
    desk: str
    visit: str
    at: float
    waited_s: float  # how long this claimant had waited since last spoken to


@dataclass
class State:
    desks: dict[str, Desk] = field(default_factory=dict)
    visits: dict[str, Visit] = field(default_factory=dict)
    queues: dict[str, list[str]] = field(default_factory=dict)  # office -> visit ids, FIFO
    # office -> booth -> open visit id: booth names are only unique within an office
    open_by_booth: dict[str, dict[str, str]] = field(default_factory=dict)
    # office (or "*" for every office) -> claim type -> steps, set by admins
    workflows: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    focus_history: list[FocusRecord] = field(default_factory=list)
    ended_durations: dict[str, list[float]] = field(default_factory=dict)  # office -> seconds
    ended_order: list[str] = field(default_factory=list)  # ended visits, oldest first
    visit_counter: int = 0
    events_applied: int = 0


def open_visit(state: State, office: str, booth: str) -> str | None:
    """The open visit of ``booth`` in ``office`` (booth ids are scoped by office)."""
    return state.open_by_booth.get(office, {}).get(booth)


def _unseat(state: State, visit: Visit, now: float) -> None:
    if visit.desk is not None and visit.slot is not None:
        desk = state.desks[visit.desk]
        if desk.slots.get(visit.slot) == visit.id:
            del desk.slots[visit.slot]
        if desk.on_air == visit.id:
            desk.on_air = None
            _off_air(visit, now)
    visit.desk, visit.slot = None, None


def _off_air(visit: Visit, now: float) -> None:
    if visit.on_air_since is not None:
        visit.on_air_total_s += now - visit.on_air_since
        visit.on_air_since = None
        visit.last_on_air_at = now


def apply(state: State, event: Event) -> None:
    """Mutate ``state`` by one event. Must stay deterministic: it is what replay runs."""
    state.events_applied += 1
    match event:
        case DeskOpened():
            desk = state.desks.get(event.desk)
            if desk is None:
                state.desks[event.desk] = Desk(
                    event.desk, event.office, event.officer, event.capacity
                )
            else:
                desk.officer, desk.closed, desk.vacant = event.officer, False, False
        case DeskVacated():
            state.desks[event.desk].vacant = True
        case DeskConfigured():
            desk = state.desks.get(event.desk)
            if desk is None:
                state.desks[event.desk] = Desk(event.desk, event.office, None, event.capacity)
            else:
                desk.office, desk.capacity, desk.closed = event.office, event.capacity, False
        case DeskClosed():
            state.desks[event.desk].closed = True
        case WorkflowSet():
            state.workflows.setdefault(event.office, {})[event.claim_type] = list(event.steps)
        case VisitStarted():
            _forget_old(state, event.at)
            state.visit_counter += 1
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
            state.open_by_booth.setdefault(event.office, {})[event.booth] = event.visit
        case VisitQueued():
            visit = state.visits[event.visit]
            _unseat(state, visit, event.at)
            visit.state = "queued"
            queue = state.queues.setdefault(visit.office, [])
            if event.head:
                queue.insert(0, visit.id)
            else:
                queue.append(visit.id)
        case VisitRouted():
            visit = state.visits[event.visit]
            queue = state.queues.get(visit.office, [])
            if visit.id in queue:
                queue.remove(visit.id)
            visit.state, visit.desk, visit.slot = "active", event.desk, event.slot
            visit.routed_at = event.at
            state.desks[event.desk].slots[event.slot] = visit.id
        case FocusChanged():
            desk = state.desks[event.desk]
            if desk.on_air is not None and desk.on_air in state.visits:
                _off_air(state.visits[desk.on_air], event.at)
            desk.on_air = event.visit
            if event.visit is not None:
                visit = state.visits[event.visit]
                state.focus_history.append(
                    FocusRecord(event.desk, visit.id, event.at, event.at - visit.waiting_since())
                )
                if len(state.focus_history) > KEEP_FOCUS_RECORDS:
                    del state.focus_history[: -KEEP_FOCUS_RECORDS // 2]
                visit.on_air_since = event.at
        case StepDecided():
            step = state.visits[event.visit].steps[event.step]
            if event.decision == "reopen":
                step.status, step.reason = "pending", None
            else:
                step.status = {"approve": "approved", "reject": "rejected"}[event.decision]
                step.reason = event.reason
            step.by, step.at = event.by, event.at
        case SnapshotTaken():
            state.visits[event.visit].snapshots += 1
        case VisitEnded():
            visit = state.visits[event.visit]
            _unseat(state, visit, event.at)
            queue = state.queues.get(visit.office, [])
            if visit.id in queue:
                queue.remove(visit.id)
            visit.state, visit.outcome, visit.note = "ended", event.outcome, event.note
            visit.ended_at = event.at
            state.ended_order.append(visit.id)
            booths = state.open_by_booth.get(visit.office, {})
            if booths.get(visit.booth) == visit.id:
                del booths[visit.booth]
                if not booths:
                    del state.open_by_booth[visit.office]
            if event.outcome != "abandoned":
                durations = state.ended_durations.setdefault(visit.office, [])
                durations.append(event.at - visit.started_at)
                del durations[:-50]  # recent visits tell the wait best


def _forget_old(state: State, now: float) -> None:
    """Keep memory bounded: drop visits that ended over a day before ``now`` (by event time,
    so replay forgets exactly the same ones)."""
    order = state.ended_order
    cut = 0
    while cut < len(order):
        visit = state.visits.get(order[cut])
        if visit is not None and (visit.ended_at or now) > now - KEEP_ENDED_S:
            break
        state.visits.pop(order[cut], None)
        cut += 1
    if cut:
        del order[:cut]


class Domain:
    """Commands over a State. Each returns the events it produced, already applied."""

    def __init__(self, state: State | None = None, rules: Rules | None = None) -> None:
        self.state = state or State()
        self.rules = rules or Rules()

    def _emit(self, events: list[Event], event: Event) -> None:
        apply(self.state, event)
        events.append(event)

    def _new_visit_id(self) -> str:
        return f"V{self.state.visit_counter + 1:06d}"

    def _workflows(self, office: str) -> dict[str, list[str]]:
        """Configured workflows, overridden by admins' for every office, then this office's."""
        own = self.state.workflows.get(office, {}) if office != "*" else {}
        return {**self.rules.workflows, **self.state.workflows.get("*", {}), **own}

    def steps_for(self, claim_type: str, office: str) -> list[str]:
        table = self._workflows(office)
        if claim_type not in table:
            raise DomainError(ErrorCode.INVALID_MESSAGE, f"unknown claim type {claim_type!r}")
        return list(table[claim_type])

    def claim_types(self, office: str) -> list[str]:
        return sorted(self._workflows(office))

    # -- routing ---------------------------------------------------------------------

    def _least_loaded_desk(self, office: str) -> Desk | None:
        candidates = [d for d in self.state.desks.values() if d.office == office and d.free_slot()]
        if not candidates:
            return None
        return min(candidates, key=lambda d: (len(d.slots) / d.capacity, len(d.slots), d.id))

    def _desk_for(self, visit: Visit) -> Desk | None:
        """The booth's pinned desk when it has room, else the least-loaded desk."""
        pinned = self.state.desks.get(self.rules.pins.get(visit.booth, ""))
        if pinned is not None and pinned.office == visit.office and pinned.free_slot():
            return pinned
        return self._least_loaded_desk(visit.office)

    def _seat(self, visit: Visit, now: float, events: list[Event]) -> bool:
        desk = self._desk_for(visit)
        if desk is None:
            return False
        slot = desk.free_slot()
        assert slot is not None
        self._emit(events, VisitRouted(visit.id, desk.id, slot, now))
        return True

    def _drain_queue(self, office: str, now: float, events: list[Event]) -> None:
        """Pull queued visits into free slots at once, oldest first."""
        queue = self.state.queues.get(office, [])
        while queue:
            if not self._seat(self.state.visits[queue[0]], now, events):
                return

    def estimated_wait_s(self, visit: Visit) -> float | None:
        """Position × typical visit length ÷ slots in the office (None when seated)."""
        queue = self.state.queues.get(visit.office, [])
        if visit.id not in queue:
            return None
        position = queue.index(visit.id) + 1
        durations = self.state.ended_durations.get(visit.office)
        typical = statistics.median(durations) if durations else self.rules.default_visit_s
        slots = sum(
            d.capacity
            for d in self.state.desks.values()
            if d.office == visit.office and not d.closed
        )
        return position * typical / max(slots, 1)

    # -- desks -----------------------------------------------------------------------

    def open_desk(
        self, desk: str, office: str, officer: str, now: float, capacity: int = MAX_CAPACITY
    ) -> list[Event]:
        """An officer sits down at a desk: create or reopen it, then fill it from the queue."""
        events: list[Event] = []
        existing = self.state.desks.get(desk)
        if existing is not None:
            if existing.office != office:
                raise DomainError(ErrorCode.FORBIDDEN, f"desk {desk} belongs to another office")
            if existing.officer == officer and not existing.closed and not existing.vacant:
                self._drain_queue(office, now, events)  # back from an absence: refill
                return events
            capacity = existing.capacity
        if not 1 <= capacity <= MAX_CAPACITY:
            raise DomainError(ErrorCode.INVALID_MESSAGE, "capacity must be 1..6")
        self._emit(events, DeskOpened(desk, office, officer, capacity, now))
        self._drain_queue(office, now, events)
        return events

    def configure_desk(
        self, desk: str, office: str, capacity: int, by: str, now: float
    ) -> list[Event]:
        if not 1 <= capacity <= MAX_CAPACITY:
            raise DomainError(ErrorCode.INVALID_MESSAGE, "capacity must be 1..6")
        existing = self.state.desks.get(desk)
        if existing is not None and existing.office != office and existing.slots:
            raise DomainError(ErrorCode.CONFLICT, f"desk {desk} has visits in another office")
        if existing is not None and len(existing.slots) > capacity:
            raise DomainError(ErrorCode.CONFLICT, f"desk {desk} seats more than {capacity} now")
        if existing is not None and any(s > capacity for s in existing.slots):
            raise DomainError(ErrorCode.CONFLICT, f"desk {desk} has a visit beyond slot {capacity}")
        events: list[Event] = []
        self._emit(events, DeskConfigured(desk, office, capacity, by, now))
        self._drain_queue(office, now, events)
        return events

    def close_desk(self, desk_id: str, by: str, now: float) -> list[Event]:
        """Close a desk: its seated visits go back to the head of the queue, in slot order."""
        desk = self.state.desks.get(desk_id)
        if desk is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"no desk {desk_id}")
        events: list[Event] = []
        if desk.closed:
            return events
        seated = [desk.slots[s] for s in sorted(desk.slots)]
        self._emit(events, DeskClosed(desk_id, by, now))
        for visit_id in reversed(seated):  # reversed inserts at the head keep slot order
            self._emit(events, VisitQueued(visit_id, now, head=True))
        self._drain_queue(desk.office, now, events)
        return events

    def vacate_desk(self, desk_id: str, now: float) -> list[Event]:
        """The officer is gone past the grace period: their visits go back to the queue head
        (other desks may take them) and the desk waits for its officer."""
        desk = self.state.desks.get(desk_id)
        if desk is None or desk.vacant or desk.closed:
            return []
        events: list[Event] = []
        seated = [desk.slots[s] for s in sorted(desk.slots)]
        self._emit(events, DeskVacated(desk_id, now))
        for visit_id in reversed(seated):  # reversed inserts at the head keep slot order
            self._emit(events, VisitQueued(visit_id, now, head=True))
        self._drain_queue(desk.office, now, events)
        return events

    def set_workflow(
        self, claim_type: str, steps: list[str], by: str, now: float, office: str = "*"
    ) -> list[Event]:
        """Set a claim type's steps for ``office`` (``*``: every office without its own)."""
        if not claim_type or not steps or len(set(steps)) != len(steps):
            raise DomainError(ErrorCode.INVALID_MESSAGE, "steps must be non-empty and distinct")
        if not office:
            raise DomainError(ErrorCode.INVALID_MESSAGE, "office must not be empty")
        events: list[Event] = []
        self._emit(events, WorkflowSet(claim_type, list(steps), by, now, office))
        return events

    # -- visits ----------------------------------------------------------------------

    def start_visit(
        self, booth: str, office: str, name: str, membership_no: str, claim_type: str, now: float
    ) -> tuple[str, list[Event]]:
        """Start a visit at a booth; a booth with an open visit resumes it instead."""
        open_id = open_visit(self.state, office, booth)
        if open_id is not None:
            return open_id, []
        if not name.strip() or not membership_no.strip():
            raise DomainError(ErrorCode.INVALID_MESSAGE, "name and membership_no are required")
        steps = self.steps_for(claim_type, office)
        events: list[Event] = []
        visit_id = self._new_visit_id()
        self._emit(
            events,
            VisitStarted(visit_id, office, booth, name, membership_no, claim_type, steps, now),
        )
        if not self._seat(self.state.visits[visit_id], now, events):
            self._emit(events, VisitQueued(visit_id, now))
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
        status = visit.steps[step].status
        if decision == "reopen":
            if status == "pending":
                raise DomainError(ErrorCode.STEP_NOT_DECIDED, f"step {step} is not decided")
            reason = None
        elif status != "pending":
            raise DomainError(
                ErrorCode.STEP_NOT_PENDING, f"step {visit.steps[step].name} is already {status}"
            )
        if decision == "reject":
            if not reason:
                raise DomainError(ErrorCode.INVALID_MESSAGE, "a rejection needs a reason")
            if self.rules.reasons and reason not in self.rules.reasons:
                raise DomainError(ErrorCode.BAD_REASON, f"reason {reason!r} is not in the list")
        events: list[Event] = []
        self._emit(events, StepDecided(visit_id, step, decision, reason, by, role, now))
        return events

    def record_snapshot(
        self, desk: str, visit_id: str, sha256: str, step: int | None, by: str, now: float
    ) -> list[Event]:
        visit = self._visit_at_desk(desk, visit_id)
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise DomainError(ErrorCode.INVALID_MESSAGE, "sha256 must be 64 lowercase hex digits")
        if step is not None and not 0 <= step < len(visit.steps):
            raise DomainError(ErrorCode.NOT_FOUND, f"visit {visit_id} has no step {step}")
        events: list[Event] = []
        self._emit(events, SnapshotTaken(visit_id, sha256, step, by, now))
        return events

    def end_visit(
        self,
        visit_id: str,
        outcome: str,
        note: str | None,
        by: str,
        now: float,
        role: str = "officer",
    ) -> list[Event]:
        visit = self.state.visits.get(visit_id)
        if visit is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"no visit {visit_id}")
        if visit.state == "ended":
            raise DomainError(ErrorCode.VISIT_NOT_ACTIVE, f"visit {visit_id} already ended")
        if outcome not in OUTCOMES:
            raise DomainError(ErrorCode.INVALID_MESSAGE, f"outcome must be one of {OUTCOMES}")
        if outcome == "escalated" and not (note and note.strip()):
            raise DomainError(ErrorCode.INVALID_MESSAGE, "an escalation needs a note")
        if self.rules.strict_outcomes:
            _check_outcome(visit, outcome)
        events: list[Event] = []
        self._emit(events, VisitEnded(visit_id, outcome, note, by, now, role))
        self._drain_queue(visit.office, now, events)
        return events


def _check_outcome(visit: Visit, outcome: str) -> None:
    """No outcome may contradict the steps: ``completed`` needs every step approved,
    ``rejected`` a rejected step (``escalated`` and ``abandoned`` are always allowed)."""
    statuses = [s.status for s in visit.steps]
    if outcome == "completed" and any(s != "approved" for s in statuses):
        undecided = sum(s != "approved" for s in statuses)
        raise DomainError(
            ErrorCode.OUTCOME_MISMATCH,
            f"completed needs every step approved; {undecided} of {len(statuses)} are not",
        )
    if outcome == "rejected" and "rejected" not in statuses:
        raise DomainError(ErrorCode.OUTCOME_MISMATCH, "rejected needs a rejected step")


def replay(events: list[Event], state: State | None = None) -> State:
    state = state or State()
    for event in events:
        apply(state, event)
    return state


# -- views sent to clients -------------------------------------------------------------


Presence = Callable[[Visit], tuple[bool, float | None]]


def _nobody(visit: Visit) -> tuple[bool, float | None]:
    return False, None


def visit_view(visit: Visit, presence: Presence = _nobody) -> dict[str, Any]:
    """What clients see of a visit; ``presence`` says whether its booth is connected and,
    if not, since when it is away (the hub knows; the log does not)."""
    present, away_since = presence(visit)
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
        "routed_at": visit.routed_at,
        "last_on_air_at": visit.last_on_air_at,
        "on_air_since": visit.on_air_since,
        "outcome": visit.outcome,
        "current_step": visit.current_step,
        "steps": [{"name": s.name, "status": s.status, "reason": s.reason} for s in visit.steps],
        "booth_present": present,
        "booth_away_since": None if present else away_since,
    }


def desk_view(state: State, desk_id: str, presence: Presence = _nobody) -> dict[str, Any]:
    desk = state.desks[desk_id]
    return {
        "desk": desk.id,
        "office": desk.office,
        "officer": desk.officer,
        "capacity": desk.capacity,
        "closed": desk.closed,
        "vacant": desk.vacant,
        "on_air": desk.on_air,
        "visits": [visit_view(state.visits[v], presence) for _, v in sorted(desk.slots.items())],
        "queue": len(state.queues.get(desk.office, [])),
    }


def queue_position(state: State, visit: Visit) -> int | None:
    queue = state.queues.get(visit.office, [])
    return queue.index(visit.id) + 1 if visit.id in queue else None
