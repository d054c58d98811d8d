"""Domain commands: offices, desks, visits, routing, focus and step decisions.

No I/O, no clocks, no files: callers pass ``now`` and the ``Rules`` (workflows as data).
Each command takes the ``Actor`` asking, checks ownership through ``permissions`` and the
state, and returns the events that express the change, already applied (``state.apply`` is
the only mutation, and what replay runs).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from lapak.signaling import events as ev
from lapak.signaling import permissions as perm
from lapak.signaling.errors import DomainError
from lapak.signaling.events import Event
from lapak.signaling.permissions import SYSTEM, Actor
from lapak.signaling.personal_data import Sealer, recording_key
from lapak.signaling.protocol import ErrorCode
from lapak.signaling.protocol import RecordingClosed as RecordingClosedMsg
from lapak.signaling.state import (
    MAX_CAPACITY,
    OUTCOMES,
    Desk,
    State,
    Visit,
    apply,
    open_visit,
    replay,
)

__all__ = ["MAX_CAPACITY", "OUTCOMES", "Domain", "DomainError", "Rules", "State", "apply", "replay"]


@dataclass(frozen=True)
class Rules:
    """Configuration the commands consult (never replay: events carry their outcome)."""

    workflows: dict[str, list[str]] = field(default_factory=dict)  # claim type -> steps
    reasons: tuple[str, ...] = ()
    pins: dict[str, str] = field(default_factory=dict)
    default_visit_s: float = 600.0
    strict_outcomes: bool = True  # completed needs every step approved, rejected one rejected
    retention_days: float | None = None  # purge ended visits' personal data after this
    retention_offices: dict[str, float] = field(default_factory=dict)  # office -> days
    # a cluster (nodes under leases): number visits per office, ``V-<office>-000001``, so
    # that nodes owning different offices never mint the same id; else ``V000001``
    visit_ids_per_office: bool = False

    def retention_s(self, office: str) -> float | None:
        """How long ``office`` keeps an ended visit's personal data (None: for ever)."""
        days = self.retention_offices.get(office, self.retention_days)
        return None if days is None else days * 86400.0


_SAFE_OFFICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")


def office_tag(office: str) -> str:
    """The office as it appears in its visits' ids: the name itself when it is short and
    safe in a file name (recordings are named after visits), else ``_`` and 12 hex digits
    of its SHA-256 (the ``_`` keeps the two kinds apart)."""
    if _SAFE_OFFICE.fullmatch(office):
        return office
    return "_" + hashlib.sha256(office.encode()).hexdigest()[:12]


class Domain:
    """Commands over a State. Each returns the events it produced, already applied."""

    def __init__(
        self, state: State | None = None, rules: Rules | None = None, sealer: Sealer | None = None
    ) -> None:
        self.state = state or State()
        self.rules = rules or Rules()
        self.sealer = sealer  # None: personal data in clear (only the domain's unit tests)
        self.new_keys: dict[str, bytes] = {}  # visit -> key, for the shell to keep (take_keys)

    def _emit(self, events: list[Event], event: Event) -> None:
        apply(self.state, event)
        events.append(event)

    def _new_visit_id(self, office: str) -> str:
        """The next id from the state's counters (replay rebuilds them): per node on one
        store (``V000001``); per office in a cluster, where the office's single owner (its
        lease) keeps the numbering unique across nodes without asking them."""
        if not self.rules.visit_ids_per_office:
            return f"V{self.state.visit_counter + 1:06d}"
        n = self.state.office_visits.get(office, 0) + 1
        tag = office_tag(office)
        while f"V-{tag}-{n:06d}" in self.state.visits or f"V-{tag}-{n:06d}" in self.state.keyed:
            n += 1  # a snapshot from before these counters: never reuse an id it holds
        return f"V-{tag}-{n:06d}"

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
        self._emit(events, ev.VisitRouted(visit.id, desk.id, slot, now))
        return True

    def _drain_queue(self, office: str, now: float, events: list[Event]) -> None:
        """Pull queued visits into free slots at once, oldest first."""
        queue = self.state.queues.get(office, [])
        while queue:
            if not self._seat(self.state.visits[queue[0]], now, events):
                return

    def _requeue(self, desk: Desk, now: float, events: list[Event]) -> None:
        """A desk's seated visits go back to the head of the queue, in slot order; other
        desks may take them."""
        seated = [desk.slots[s] for s in sorted(desk.slots)]
        for visit_id in reversed(seated):  # reversed inserts at the head keep slot order
            self._emit(events, ev.VisitQueued(visit_id, now, head=True))
        self._drain_queue(desk.office, now, events)

    # -- desks -----------------------------------------------------------------------

    def open_desk(self, actor: Actor, now: float, capacity: int = MAX_CAPACITY) -> list[Event]:
        """An officer sits down at their desk: create or reopen it, then fill it from the
        queue."""
        events: list[Event] = []
        existing = perm.desk_in_office(self.state, actor)
        desk = perm.officer_desk(actor)
        if existing is not None:
            if existing.officer == actor.sub and not existing.closed and not existing.vacant:
                self._drain_queue(actor.office, now, events)  # back from an absence: refill
                return events
            capacity = existing.capacity
        _check_capacity(capacity)
        self._emit(events, ev.DeskOpened(desk, actor.office, actor.sub, capacity, now))
        self._drain_queue(actor.office, now, events)
        return events

    def configure_desk(
        self,
        actor: Actor,
        desk: str,
        office: str,
        capacity: int,
        now: float,
        officer_present: bool = False,
    ) -> list[Event]:
        """Create a desk or change its office and capacity; ``officer_present`` says whether
        an officer is connected to it (the hub knows; a held desk keeps its office)."""
        if office == "*":
            raise DomainError(ErrorCode.INVALID_MESSAGE, "a desk belongs to one office")
        perm.check_office(actor, office)
        existing = self.state.desks.get(desk)
        if existing is not None:
            perm.check_office(actor, existing.office)
            if existing.office != office and officer_present:
                raise DomainError(ErrorCode.CONFLICT, f"desk {desk} is in use")
        _check_capacity(capacity)
        if existing is not None and existing.office != office and existing.slots:
            raise DomainError(ErrorCode.CONFLICT, f"desk {desk} has visits in another office")
        if existing is not None and len(existing.slots) > capacity:
            raise DomainError(ErrorCode.CONFLICT, f"desk {desk} seats more than {capacity} now")
        if existing is not None and any(s > capacity for s in existing.slots):
            raise DomainError(ErrorCode.CONFLICT, f"desk {desk} has a visit beyond slot {capacity}")
        events: list[Event] = []
        self._emit(events, ev.DeskConfigured(desk, office, capacity, actor.sub, now))
        self._drain_queue(office, now, events)
        return events

    def close_desk(self, actor: Actor, desk_id: str, now: float) -> list[Event]:
        """Close a desk: its seated visits go back to the head of the queue, in slot order."""
        desk = perm.desk_named(self.state, desk_id)
        perm.check_office(actor, desk.office)
        events: list[Event] = []
        if desk.closed:
            return events
        self._emit(events, ev.DeskClosed(desk_id, actor.sub, now))
        self._requeue(desk, now, events)
        return events

    def vacate_desk(self, desk_id: str, now: float) -> list[Event]:
        """The officer is gone past the grace period: their visits go back to the queue head
        and the desk waits for its officer."""
        desk = self.state.desks.get(desk_id)
        if desk is None or desk.vacant or desk.closed:
            return []
        events: list[Event] = []
        self._emit(events, ev.DeskVacated(desk_id, now))
        self._requeue(desk, now, events)
        return events

    def set_workflow(
        self, actor: Actor, claim_type: str, steps: list[str], office: str, now: float
    ) -> list[Event]:
        """Set a claim type's steps for ``office`` (``*``: every office without its own)."""
        perm.check_office(actor, office)
        if not claim_type or not steps or len(set(steps)) != len(steps):
            raise DomainError(ErrorCode.INVALID_MESSAGE, "steps must be non-empty and distinct")
        if not office:
            raise DomainError(ErrorCode.INVALID_MESSAGE, "office must not be empty")
        events: list[Event] = []
        self._emit(events, ev.WorkflowSet(claim_type, list(steps), actor.sub, now, office))
        return events

    # -- visits ----------------------------------------------------------------------

    def start_visit(
        self, actor: Actor, name: str, membership_no: str, claim_type: str, now: float
    ) -> tuple[str, list[Event]]:
        """Start a visit at the actor's booth; a booth with an open visit resumes it."""
        _, office, booth = perm.own_booth(actor)
        open_id = open_visit(self.state, office, booth)
        if open_id is not None:
            return open_id, []
        if not name.strip() or not membership_no.strip():
            raise DomainError(ErrorCode.INVALID_MESSAGE, "name and membership_no are required")
        steps = self.steps_for(claim_type, office)
        events: list[Event] = []
        visit_id = self._new_visit_id(office)
        if self.sealer is None:
            started = ev.VisitStarted(
                visit_id, office, booth, name, membership_no, claim_type, steps, now
            )
        else:  # the log gets ciphertext only; memory (and the wire) keeps the clear text
            key = self.sealer.new_key()
            sealed = self.sealer.seal(key, visit_id, name, membership_no)
            started = ev.VisitStarted(
                visit_id, office, booth, "", "", claim_type, steps, now, sealed=sealed
            )
            self.new_keys[visit_id] = key
        self._emit(events, started)
        visit = self.state.visits[visit_id]
        visit.name, visit.membership_no = name, membership_no
        if visit_id in self.new_keys:  # a recorder asks for it (get_recording_key)
            visit.recording_key = recording_key(self.new_keys[visit_id], visit_id)
        if not self._seat(self.state.visits[visit_id], now, events):
            self._emit(events, ev.VisitQueued(visit_id, now))
        return visit_id, events

    def set_focus(self, actor: Actor, visit_id: str | None, now: float) -> list[Event]:
        """Put a visit of the officer's desk on air (None: nobody)."""
        desk = perm.desk_named(self.state, perm.officer_desk(actor))
        if visit_id is not None:
            perm.seated_here(self.state, actor, visit_id)
        events: list[Event] = []
        if desk.on_air != visit_id:
            self._emit(events, ev.FocusChanged(desk.id, visit_id, actor.sub, now))
        return events

    def decide(
        self,
        actor: Actor,
        visit_id: str,
        step: int,
        decision: str,
        reason: str | None,
        now: float,
    ) -> list[Event]:
        visit = perm.deciding_visit(self.state, actor, visit_id)
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
        decided = ev.StepDecided(visit_id, step, decision, reason, actor.sub, actor.role, now)
        self._emit(events, decided)
        return events

    def record_snapshot(
        self, actor: Actor, visit_id: str, sha256: str, step: int | None, now: float
    ) -> list[Event]:
        visit = perm.seated_here(self.state, actor, visit_id)
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise DomainError(ErrorCode.INVALID_MESSAGE, "sha256 must be 64 lowercase hex digits")
        if step is not None and not 0 <= step < len(visit.steps):
            raise DomainError(ErrorCode.NOT_FOUND, f"visit {visit_id} has no step {step}")
        events: list[Event] = []
        self._emit(events, ev.SnapshotTaken(visit_id, sha256, step, actor.sub, now))
        return events

    def end_visit(
        self, actor: Actor, visit_id: str, outcome: str, note: str | None, now: float
    ) -> list[Event]:
        visit = perm.ending_visit(self.state, actor, visit_id, outcome)
        if visit.state == "ended":
            raise DomainError(ErrorCode.VISIT_NOT_ACTIVE, f"visit {visit_id} already ended")
        if outcome not in OUTCOMES:
            raise DomainError(ErrorCode.INVALID_MESSAGE, f"outcome must be one of {OUTCOMES}")
        if outcome == "escalated" and not (note and note.strip()):
            raise DomainError(ErrorCode.INVALID_MESSAGE, "an escalation needs a note")
        if outcome == "escalated" and visit.state == "escalated":
            raise DomainError(
                ErrorCode.INVALID_MESSAGE,
                "already escalated: end it completed, rejected or abandoned",
            )
        if self.rules.strict_outcomes:
            _check_outcome(visit, outcome)
        events: list[Event] = []
        if outcome == "escalated" and actor.role == "officer":
            # A hand-off, not an end: the visit leaves the desk, stays open, waits for a
            # supervisor with ``resolve``; its slot is free for the queue at once.
            assert note is not None
            self._emit(events, ev.VisitEscalated(visit_id, note, actor.sub, actor.role, now))
        else:
            self._emit(events, ev.VisitEnded(visit_id, outcome, note, actor.sub, now, actor.role))
        self._drain_queue(visit.office, now, events)
        return events

    def take_escalation(self, actor: Actor, visit_id: str, now: float) -> list[Event]:
        """A supervisor with ``resolve`` takes a waiting escalation (again: nothing changes;
        another's: ``conflict``)."""
        visit = perm.escalated_visit(self.state, actor, visit_id)
        events: list[Event] = []
        if visit.taken_by == actor.sub:
            return events
        if visit.taken_by is not None:
            raise DomainError(ErrorCode.CONFLICT, f"visit {visit_id} is taken by {visit.taken_by}")
        self._emit(events, ev.EscalationTaken(visit_id, actor.sub, actor.role, now))
        return events

    # -- supervision (connection-bound: the hub decides, the log keeps who did it when) --

    def log_supervision(
        self, actor: Actor, desk_id: str, mode: str, peer: str, now: float
    ) -> list[Event]:
        """A supervisor's coach/barge began or ended at a desk (the hub checked the grant)."""
        desk = perm.desk_named(self.state, desk_id)
        events: list[Event] = []
        changed = ev.SupervisionChanged(
            desk_id, mode, actor.sub, actor.role, peer, desk.on_air, now
        )
        self._emit(events, changed)
        return events

    def recording_closed(self, actor: Actor, msg: RecordingClosedMsg, now: float) -> list[Event]:
        """A recorder of the visit's office closed its file: the facts go into the trail."""
        perm.recorded_visit(self.state, actor, msg.visit)
        if len(msg.sha256) != 64 or any(c not in "0123456789abcdef" for c in msg.sha256):
            raise DomainError(ErrorCode.INVALID_MESSAGE, "sha256 must be 64 lowercase hex digits")
        if "/" in msg.file or "\\" in msg.file or msg.file in (".", ".."):
            raise DomainError(ErrorCode.INVALID_MESSAGE, "file must be a bare file name")
        if any(not 0 <= start <= end for start, end in msg.gaps):
            raise DomainError(ErrorCode.INVALID_MESSAGE, "each gap is [from, to] with from <= to")
        closed = ev.RecordingClosed(
            msg.visit, msg.file, msg.sha256, msg.duration_s, msg.bytes,
            [(a, b) for a, b in msg.gaps], actor.sub, now, actor.role,
        )  # fmt: skip
        events: list[Event] = []
        self._emit(events, closed)
        return events

    def recording_notice_shown(self, actor: Actor, visit_id: str, now: float) -> list[Event]:
        """The booth showed "this visit is recorded" on its own, open visit."""
        visit = perm.booth_visit(actor, self.state.visits.get(visit_id))
        if visit.state == "ended":
            raise DomainError(ErrorCode.VISIT_NOT_ACTIVE, f"visit {visit_id} has ended")
        events: list[Event] = []
        by = actor.booth or actor.sub  # the booth, as the trail names booths
        self._emit(events, ev.RecordingNoticeShown(visit_id, by, now, actor.role))
        return events

    def recording_key_of(self, actor: Actor, visit_id: str) -> bytes:
        """The key a recorder of the visit's office encrypts its file with: only for a
        visit still open (what it records), never once purged."""
        visit = perm.recorded_visit(self.state, actor, visit_id)
        if visit.state == "ended":
            raise DomainError(ErrorCode.VISIT_NOT_ACTIVE, f"visit {visit_id} has ended")
        if visit.recording_key is None:
            raise DomainError(
                ErrorCode.CONFLICT, f"visit {visit_id} has no key (logged before sealing)"
            )
        return visit.recording_key

    # -- personal data (issue 15) ------------------------------------------------------

    def take_keys(self) -> dict[str, bytes]:
        """The keys of the visits started since the last call (the shell stores them in
        the transaction that logs their ``visit_started``)."""
        keys, self.new_keys = self.new_keys, {}
        return keys

    def purge_visit(self, actor: Actor, visit_id: str, reason: str, now: float) -> list[Event]:
        """Destroy an ended visit's personal data on request (an admin of its office)."""
        visit = self.state.visits.get(visit_id)
        keyed = self.state.keyed.get(visit_id)
        office = keyed.office if keyed is not None else visit.office if visit else None
        if office is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"no visit {visit_id} with personal data")
        perm.check_office(actor, office)
        if visit is not None and visit.purged:
            raise DomainError(ErrorCode.CONFLICT, f"visit {visit_id} is already purged")
        if visit is not None and visit.state != "ended":
            raise DomainError(ErrorCode.CONFLICT, f"visit {visit_id} is still open: end it first")
        if keyed is None:
            raise DomainError(
                ErrorCode.CONFLICT,
                f"visit {visit_id} was logged before personal data was sealed: its data is "
                "part of the hash chain and cannot be purged",
            )
        if not reason.strip():
            raise DomainError(ErrorCode.INVALID_MESSAGE, "a purge needs a reason")
        events: list[Event] = []
        self._emit(events, ev.VisitPurged(visit_id, actor.sub, actor.role, reason, now))
        return events

    def purge_expired(self, now: float, limit: int = 200) -> list[Event]:
        """Purge ended visits past their office's retention, oldest first, at most
        ``limit`` per call (the next tick takes the rest)."""
        rules = self.rules
        days = (rules.retention_days, *rules.retention_offices.values())
        configured = [d for d in days if d is not None]
        if not configured:
            return []
        shortest = min(configured) * 86400.0
        due: list[str] = []
        for visit_id, keyed in self.state.keyed.items():
            if keyed.ended_at > now - shortest or len(due) >= limit:
                break
            keep = rules.retention_s(keyed.office)
            if keep is not None and keyed.ended_at <= now - keep:
                due.append(visit_id)
        events: list[Event] = []
        for visit_id in due:
            self._emit(events, ev.VisitPurged(visit_id, SYSTEM.sub, SYSTEM.role, "retention", now))
        return events


def _check_capacity(capacity: int) -> None:
    if not 1 <= capacity <= MAX_CAPACITY:
        raise DomainError(ErrorCode.INVALID_MESSAGE, f"capacity must be 1..{MAX_CAPACITY}")


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
