"""The domain's state and ``apply``: the only code that mutates it, and what replay runs.

State after a restart is exactly the replay of the log, so ``apply`` must stay
deterministic: no clocks (event times only), no configuration (events carry their outcome).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lapak.signaling.events import (
    DeskClosed,
    DeskConfigured,
    DeskOpened,
    DeskVacated,
    EscalationTaken,
    Event,
    FocusChanged,
    SnapshotTaken,
    StepDecided,
    VisitEnded,
    VisitEscalated,
    VisitPurged,
    VisitQueued,
    VisitRouted,
    VisitStarted,
    WorkflowSet,
)
from lapak.signaling.personal_data import PURGED, Sealed

MAX_CAPACITY = 6
KEEP_ENDED_S = 24 * 3600  # ended visits stay in memory a day (the log keeps them forever)
KEEP_FOCUS_RECORDS = 10_000
OUTCOMES = ("completed", "rejected", "escalated", "abandoned")


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
    state: str = "queued"  # queued | active | escalated | ended
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
    # escalation hand-off: state "escalated" from the officer's escalation until it ends
    escalated_at: float | None = None
    escalated_by: str | None = None
    escalated_from: str | None = None  # the desk it left
    taken_by: str | None = None  # the supervisor resolving it (None: waiting)
    taken_at: float | None = None
    sealed: Sealed | None = None  # the personal data as logged (name: in memory only)
    purged: bool = False
    recording_key: bytes | None = None  # memory only, like the name (never in a snapshot)

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
class Keyed:
    """An ended visit whose sealed personal data can still be read."""

    office: str
    ended_at: float


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
    escalations: dict[str, list[str]] = field(default_factory=dict)  # office -> waiting, FIFO
    ended_durations: dict[str, list[float]] = field(default_factory=dict)  # office -> seconds
    ended_order: list[str] = field(default_factory=list)  # ended visits, oldest first
    visit_counter: int = 0
    events_applied: int = 0
    # visit -> (office, ended at) of ended visits whose key is held, oldest end first:
    # what retention purges (kept past KEEP_ENDED_S, unlike ``visits``)
    keyed: dict[str, Keyed] = field(default_factory=dict)
    # office -> visits ever started there: a cluster's visit ids are numbered per office,
    # which one node at a time owns (Domain._new_visit_id); absent in older snapshots
    office_visits: dict[str, int] = field(default_factory=dict)


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
            state.office_visits[event.office] = state.office_visits.get(event.office, 0) + 1
            state.visits[event.visit] = Visit(
                id=event.visit,
                office=event.office,
                booth=event.booth,
                name=event.name,
                membership_no=event.membership_no,
                claim_type=event.claim_type,
                steps=[Step(s) for s in event.steps],
                started_at=event.at,
                sealed=event.sealed,
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
            _unqueue_escalation(state, visit)
            note = event.note if event.note is not None else visit.note  # keeps the escalation's
            visit.state, visit.outcome, visit.note = "ended", event.outcome, note
            visit.ended_at = event.at
            state.ended_order.append(visit.id)
            booths = state.open_by_booth.get(visit.office, {})
            if booths.get(visit.booth) == visit.id:
                del booths[visit.booth]
                if not booths:
                    del state.open_by_booth[visit.office]
            if visit.sealed is not None:
                state.keyed[visit.id] = Keyed(visit.office, event.at)
            if event.outcome != "abandoned":
                durations = state.ended_durations.setdefault(visit.office, [])
                durations.append(event.at - visit.started_at)
                del durations[:-50]  # recent visits tell the wait best
        case VisitEscalated():
            visit = state.visits[event.visit]
            escalated_from = visit.desk
            _unseat(state, visit, event.at)
            visit.state, visit.note = "escalated", event.note
            visit.escalated_at, visit.escalated_by = event.at, event.by
            visit.escalated_from = escalated_from
            visit.taken_by = visit.taken_at = None
            state.escalations.setdefault(visit.office, []).append(visit.id)
        case EscalationTaken():
            visit = state.visits[event.visit]
            _unqueue_escalation(state, visit)
            visit.taken_by, visit.taken_at = event.by, event.at
        case VisitPurged():
            state.keyed.pop(event.visit, None)
            purged = state.visits.get(event.visit)
            if purged is not None:
                purged.name = purged.membership_no = PURGED
                purged.sealed, purged.purged = None, True
                purged.recording_key = None


def _unqueue_escalation(state: State, visit: Visit) -> None:
    waiting = state.escalations.get(visit.office, [])
    if visit.id in waiting:
        waiting.remove(visit.id)
        if not waiting:
            del state.escalations[visit.office]


def conceal(state: State) -> None:
    """Blank the clear personal data of sealed visits (what snapshots must hold: the
    ciphertext only; start-up opens it again with the keys)."""
    for visit in state.visits.values():
        if visit.sealed is not None:
            visit.name = visit.membership_no = ""
        visit.recording_key = None


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


def replay(events: list[Event], state: State | None = None) -> State:
    state = state or State()
    for event in events:
        apply(state, event)
    return state


def queue_position(state: State, visit: Visit) -> int | None:
    queue = state.queues.get(visit.office, [])
    return queue.index(visit.id) + 1 if visit.id in queue else None


def forget_office(state: State, office: str) -> None:
    """Drop everything of ``office`` from ``state``: a cluster node that hands an office
    over (or lost it) forgets it, so that taking it again replays its stream from the
    start onto nothing stale (a fenced node's memory may hold events that were never
    written). Counters that span offices give back what the office added."""
    visits = {vid for vid, v in state.visits.items() if v.office == office}
    desks = {did for did, d in state.desks.items() if d.office == office}
    for vid in visits:
        del state.visits[vid]
    for did in desks:
        del state.desks[did]
    for per_office in (state.queues, state.open_by_booth, state.workflows, state.escalations,
                       state.ended_durations):  # fmt: skip
        per_office.pop(office, None)
    state.visit_counter -= state.office_visits.pop(office, 0)
    state.ended_order = [vid for vid in state.ended_order if vid not in visits]
    state.keyed = {vid: k for vid, k in state.keyed.items() if k.office != office}
    state.focus_history = [f for f in state.focus_history if f.desk not in desks]


def take_office(state: State, source: State, office: str) -> None:
    """Copy everything of ``office`` from ``source`` (a snapshot's state) into ``state``,
    which holds nothing of it: ``forget_office``'s inverse. A node adopting an office starts
    from the newest snapshot that covers it, not from the stream's first row. ``source``'s
    objects are taken, not copied: pass a state decoded for this call."""
    desks = {did: d for did, d in source.desks.items() if d.office == office}
    visits = {vid: v for vid, v in source.visits.items() if v.office == office}
    state.desks.update(desks)
    state.visits.update(visits)
    if office in source.queues:
        state.queues[office] = source.queues[office]
    if office in source.open_by_booth:
        state.open_by_booth[office] = source.open_by_booth[office]
    if office in source.workflows:
        state.workflows[office] = source.workflows[office]
    if office in source.escalations:
        state.escalations[office] = source.escalations[office]
    if office in source.ended_durations:
        state.ended_durations[office] = source.ended_durations[office]
    started = source.office_visits.get(office, 0)
    if started:
        state.office_visits[office] = started
        state.visit_counter += started
    state.ended_order += [vid for vid in source.ended_order if vid in visits]
    state.keyed.update({vid: k for vid, k in source.keyed.items() if k.office == office})
    state.focus_history += [f for f in source.focus_history if f.desk in desks]
