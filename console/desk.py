"""What the console knows about its desk: the server's snapshot plus deltas, and the
officer's decisions still waiting for the server's acknowledgement.

Pure (no Textual, no I/O) so that the rules a screen shows are tested without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_SLOTS = 6


@dataclass
class DeskModel:
    desk: str | None = None
    office: str | None = None
    officer: str | None = None
    capacity: int = MAX_SLOTS
    seq: int = 0
    on_air: str | None = None
    queue: int = 0
    visits: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: dict[tuple[str, int], str] = field(default_factory=dict)  # (visit, step) -> decision
    refused: dict[tuple[str, int], str] = field(default_factory=dict)  # (visit, step) -> message
    synced: bool = False
    # visits that left the desk since the app last looked: (the last view it had, the final view)
    departed: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)

    def load_snapshot(self, message: dict[str, Any], now: float | None = None) -> None:
        """Replace everything with the server's truth (refusals shown so far are cleared)."""
        state = message["state"]
        self.on_air = state["on_air"]
        self.desk = state["desk"]
        self.office = state["office"]
        self.officer = state["officer"]
        self.capacity = state["capacity"]
        self.queue = state["queue"]
        self.seq = message["seq"]
        self.visits = {v["visit"]: v for v in state["visits"]}
        self.refused.clear()
        self.synced = True

    def apply_delta(self, message: dict[str, Any], now: float | None = None) -> bool:
        """Apply one delta; False means a gap in ``seq`` (the caller must resync)."""
        if not self.synced or message["desk"] != self.desk:
            return True
        if message["seq"] <= self.seq:
            return True  # already contained in the snapshot
        if message["seq"] != self.seq + 1:
            self.synced = False
            return False
        self.seq = message["seq"]
        self.on_air = message["on_air"]
        self.queue = message["queue"]
        for visit in message["visits"]:
            if visit["state"] == "active" and visit["desk"] == self.desk:
                self.visits[visit["visit"]] = visit
            else:
                before = self.visits.pop(visit["visit"], None)
                if before is not None:
                    self.departed.append((before, visit))
            for key in [k for k in self.pending if k[0] == visit["visit"]]:
                step = visit["steps"][key[1]] if key[1] < len(visit["steps"]) else None
                if step is None or step["status"] != "pending":
                    self.pending.pop(key, None)
        return True

    def by_slot(self) -> dict[int, dict[str, Any]]:
        return {v["slot"]: v for v in self.visits.values() if v.get("slot")}

    def visit_in_slot(self, slot: int) -> dict[str, Any] | None:
        return self.by_slot().get(slot)

    # -- decisions waiting for the server ---------------------------------------------

    def mark_pending(self, visit: str, step: int, decision: str) -> None:
        self.pending[(visit, step)] = decision
        self.refused.pop((visit, step), None)

    def acknowledged(self, visit: str, step: int) -> None:
        """The server made the decision durable: only now is it shown as decided."""
        decision = self.pending.pop((visit, step), None)
        record = self.visits.get(visit)
        if decision is not None and record is not None and step < len(record["steps"]):
            status = {"approve": "approved", "reject": "rejected", "reopen": "pending"}[decision]
            record["steps"][step]["status"] = status

    def refuse(self, visit: str, step: int, message: str) -> None:
        """The server refused: roll back to what it says, keep the reason visible."""
        self.pending.pop((visit, step), None)
        self.refused[(visit, step)] = message

    def step_status(self, visit: str, step: int) -> str:
        if (visit, step) in self.pending:
            return "sending"
        if (visit, step) in self.refused:
            return "refused"
        record = self.visits.get(visit)
        if record is None or step >= len(record["steps"]):
            return "unknown"
        return str(record["steps"][step]["status"])

    def next_step(self, visit: str) -> int | None:
        """The first step neither decided nor waiting for an answer."""
        record = self.visits.get(visit)
        if record is None:
            return None
        for i, step in enumerate(record["steps"]):
            if step["status"] == "pending" and (visit, i) not in self.pending:
                return i
        return None

    def last_decided(self, visit: str) -> int | None:
        """The decided step a reopen would clear: the last one approved or rejected."""
        record = self.visits.get(visit)
        if record is None:
            return None
        for i in range(len(record["steps"]) - 1, -1, -1):
            decided = record["steps"][i]["status"] in ("approved", "rejected")
            if decided and (visit, i) not in self.pending:
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
        if record.get("on_air_since") is not None:
            return 0.0
        since = record.get("last_on_air_at") or record.get("routed_at") or record["started_at"]
        return max(0.0, now - since)

    def spoken_to(self, visit: str) -> bool:
        """The officer has spoken to this claimant at some point (server's record)."""
        record = self.visits.get(visit) or {}
        return visit == self.on_air or record.get("last_on_air_at") is not None

    def approved_count(self, visit: str) -> tuple[int, int, bool]:
        """(steps approved, steps, some step rejected) as the server last said."""
        steps = (self.visits.get(visit) or {}).get("steps", [])
        approved = sum(1 for s in steps if s["status"] == "approved")
        return approved, len(steps), any(s["status"] == "rejected" for s in steps)

    def longest_waiting(self, now: float) -> str | None:
        """The visit (not on air) that has waited longest since it was last spoken to."""
        waits = [
            (self.silent_for(v, now) or 0.0, -(record.get("slot") or 0), v)
            for v, record in self.visits.items()
            if v != self.on_air
        ]
        return max(waits)[2] if waits else None
