"""What a client knows about a desk: the server's snapshot plus its deltas, and the
officer's decisions still waiting for the server's acknowledgement.

Pure (no I/O, no clock of its own), so the rules a screen shows are tested without one. It
holds the server's ``VisitView`` structs as they came and never recomputes what the server
sends (``current_step``, ``last_on_air_at``, presence); what it adds is only what the server
cannot know yet: a decision sent and not answered ("sending"), one answered and not yet
in a delta, and one refused ("refused", with the server's message).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lapak.signaling.messages import Delta, DeskView, Snapshot, VisitView

MAX_SLOTS = 6

AFTER_ACK = {"approve": "approved", "reject": "rejected", "reopen": "pending"}
"""A step's status once the server has acknowledged this decision."""


@dataclass
class DeskModel:
    desk: str | None = None
    office: str | None = None
    officer: str | None = None
    capacity: int = MAX_SLOTS
    closed: bool = False
    vacant: bool = False
    seq: int = 0
    on_air: str | None = None
    queue: int = 0
    visits: dict[str, VisitView] = field(default_factory=dict)
    pending: dict[tuple[str, int], str] = field(default_factory=dict)  # (visit, step) -> decision
    refused: dict[tuple[str, int], str] = field(default_factory=dict)  # (visit, step) -> message
    acked: dict[tuple[str, int], str] = field(default_factory=dict)
    """(visit, step) -> status: acknowledged, not yet shown by a delta (the ack comes first)."""
    synced: bool = False
    departed: list[tuple[VisitView, VisitView]] = field(default_factory=list)
    """Visits that left the desk since the caller last looked: (the last view, the final one)."""

    def load_snapshot(self, message: Snapshot) -> None:
        """Replace everything with the server's truth (refusals shown so far are cleared)."""
        state = message.state
        self.desk = state.desk
        self.office = state.office
        self._take(state)
        self.seq = message.seq
        self.visits = {v.visit: v for v in state.visits}
        self.refused.clear()
        self.acked.clear()
        for key in [k for k in self.pending if k[0] not in self.visits]:
            del self.pending[key]
        self.synced = True

    def apply_delta(self, message: Delta) -> bool:
        """Apply one delta; False means a gap in ``seq`` (the caller must resync)."""
        if not self.synced or message.desk != self.desk:
            return True
        if message.seq <= self.seq:
            return True  # already contained in the snapshot
        if message.seq != self.seq + 1:
            self.synced = False
            return False
        self.seq = message.seq
        self._take(message)
        for view in message.visits:
            visit = view.visit
            if view.state == "active" and view.desk == self.desk:
                self.visits[visit] = view
            else:
                before = self.visits.pop(visit, None)
                if before is not None:
                    self.departed.append((before, view))
            for key in [k for k in self.acked if k[0] == visit]:
                del self.acked[key]  # the server's view now says it
            for key in [k for k in self.pending if k[0] == visit]:
                step = view.steps[key[1]] if key[1] < len(view.steps) else None
                if step is None or step.status != "pending" or visit not in self.visits:
                    del self.pending[key]
        return True

    def _take(self, desk: DeskView | Delta) -> None:
        """The desk's own fields, which a snapshot's state and a delta both carry."""
        self.officer = desk.officer
        self.capacity = desk.capacity
        self.closed = desk.closed
        self.vacant = desk.vacant
        self.on_air = desk.on_air
        self.queue = desk.queue

    def by_slot(self) -> dict[int, VisitView]:
        return {v.slot: v for v in self.visits.values() if v.slot}

    def visit_in_slot(self, slot: int) -> VisitView | None:
        return self.by_slot().get(slot)

    # -- decisions waiting for the server ---------------------------------------------

    def mark_pending(self, visit: str, step: int, decision: str) -> None:
        self.pending[(visit, step)] = decision
        self.refused.pop((visit, step), None)

    def acknowledged(self, visit: str, step: int) -> None:
        """The server made the decision durable: only now is it shown as decided."""
        decision = self.pending.pop((visit, step), None)
        if decision is not None and visit in self.visits:
            self.acked[(visit, step)] = AFTER_ACK[decision]

    def refuse(self, visit: str, step: int, message: str) -> None:
        """The server refused: roll back to what it says, keep the reason visible."""
        self.pending.pop((visit, step), None)
        self.refused[(visit, step)] = message

    def step_status(self, visit: str, step: int) -> str:
        """What a step shows: ``sending``, ``refused``, or its status."""
        if (visit, step) in self.pending:
            return "sending"
        if (visit, step) in self.refused:
            return "refused"
        return self._decided(visit, step)

    def _decided(self, visit: str, step: int) -> str:
        """The step's status as the server said it: in a view, or in an ack."""
        if (visit, step) in self.acked:
            return self.acked[(visit, step)]
        record = self.visits.get(visit)
        if record is None or step >= len(record.steps):
            return "unknown"
        return record.steps[step].status

    def next_step(self, visit: str) -> int | None:
        """The step to decide next: the server's ``current_step``, past the decisions in
        flight (a second key press decides the following step, not the same one again)."""
        record = self.visits.get(visit)
        if record is None:
            return None
        start = len(record.steps) if record.current_step is None else record.current_step
        reopened = [
            s for (v, s), status in self.acked.items() if v == visit and status == "pending"
        ]
        for i in range(min([start, *reopened]), len(record.steps)):
            if self.step_status(visit, i) == "pending":
                return i
        return None

    def last_decided(self, visit: str) -> int | None:
        """The decided step a reopen would clear: the last one approved or rejected."""
        record = self.visits.get(visit)
        if record is None:
            return None
        for i in range(len(record.steps) - 1, -1, -1):
            if self.step_status(visit, i) in ("approved", "rejected"):
                return i
        return None

    # -- who has waited longest ---------------------------------------------------------

    def silent_for(self, visit: str, now: float) -> float | None:
        """Seconds since the officer last spoke to this visit; 0 while on air.

        From the server's ``last_on_air_at`` (so it survives a console restart); a visit never
        on air has waited since it reached the desk (``routed_at``, else ``started_at``).
        """
        if visit == self.on_air:
            return 0.0
        record = self.visits.get(visit)
        if record is None:
            return None
        if record.on_air_since is not None:
            return 0.0
        since = record.last_on_air_at or record.routed_at or record.started_at
        return max(0.0, now - since)

    def spoken_to(self, visit: str) -> bool:
        """The officer has spoken to this claimant at some point (server's record)."""
        record = self.visits.get(visit)
        return visit == self.on_air or (record is not None and record.last_on_air_at is not None)

    def approved_count(self, visit: str) -> tuple[int, int, bool]:
        """(steps approved, steps, some step rejected) as the server last said."""
        record = self.visits.get(visit)
        statuses = [self._decided(visit, i) for i in range(len(record.steps) if record else 0)]
        approved = statuses.count("approved")
        return approved, len(statuses), "rejected" in statuses

    def longest_waiting(self, now: float) -> str | None:
        """The visit (not on air) that has waited longest since it was last spoken to."""
        waits = [
            (self.silent_for(v, now) or 0.0, -(record.slot or 0), v)
            for v, record in self.visits.items()
            if v != self.on_air
        ]
        return max(waits)[2] if waits else None
