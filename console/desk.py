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

    def load_snapshot(self, message: dict[str, Any]) -> None:
        state = message["state"]
        self.desk = state["desk"]
        self.office = state["office"]
        self.officer = state["officer"]
        self.capacity = state["capacity"]
        self.on_air = state["on_air"]
        self.queue = state["queue"]
        self.seq = message["seq"]
        self.visits = {v["visit"]: v for v in state["visits"]}
        self.synced = True

    def apply_delta(self, message: dict[str, Any]) -> bool:
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
                self.visits.pop(visit["visit"], None)
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
            status = {"approve": "approved", "reject": "rejected"}[decision]
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
