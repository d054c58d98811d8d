"""Server configuration: one TOML file (``lapak signal --config FILE``), all keys optional.

```toml
[server]
offices = ["main"]        # offices this server serves; empty = any office in a valid token
grace_s = 30              # how long a dropped booth or officer keeps its place
max_frame_bytes = 65536   # larger frames get error too_big
rate_per_s = 50           # per-connection message rate (token bucket) ...
rate_burst = 100          # ... and burst; beyond it: error rate_limited
snapshot_every = 10000    # events between state snapshots in the log ...
snapshot_min_s = 300      # ... but no more often than this (encoding the state pauses the loop)
default_visit_minutes = 10  # used for wait estimates until visits have ended today
allowed_origins = []      # browser origins allowed besides the server's own (kiosk pages)

[workflows.JHT]
steps = ["identity", "membership", "family_card", "bank_book", "termination_letter", "decision"]

[reasons]
list = ["document unreadable", "document missing"]

[pins]                    # booth -> desk it is served at when that desk has a free slot
booth-01 = "desk-1"

[[desks]]                 # desks that exist before any officer arrives
id = "desk-1"
office = "main"
capacity = 6
```

Defaults for workflows and reasons come from ``signaling/workflows.toml``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signaling.workflows import default_reasons, default_workflows


@dataclass(frozen=True)
class DeskSpec:
    id: str
    office: str
    capacity: int = 6


@dataclass
class ServerConfig:
    offices: list[str] = field(default_factory=list)
    grace_s: float = 30.0
    max_frame_bytes: int = 64 * 1024
    rate_per_s: float = 50.0
    rate_burst: int = 100
    snapshot_every: int = 10_000
    snapshot_min_s: float = 300.0
    default_visit_minutes: float = 10.0
    workflows: dict[str, list[str]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    pins: dict[str, str] = field(default_factory=dict)
    desks: list[DeskSpec] = field(default_factory=list)
    allowed_origins: list[str] = field(default_factory=list)  # besides the server's own

    def __post_init__(self) -> None:
        if not self.workflows:
            self.workflows = default_workflows()
        if not self.reasons:
            self.reasons = default_reasons()

    @classmethod
    def load(cls, path: str | Path | None) -> ServerConfig:
        if path is None:
            return cls()
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ServerConfig:
        server = dict(raw.get("server", {}))
        unknown = set(server) - {
            "offices",
            "grace_s",
            "max_frame_bytes",
            "rate_per_s",
            "rate_burst",
            "snapshot_every",
            "snapshot_min_s",
            "default_visit_minutes",
            "allowed_origins",
        }
        if unknown:
            raise ValueError(f"unknown [server] keys: {sorted(unknown)}")
        workflows = {k: list(v["steps"]) for k, v in raw.get("workflows", {}).items()}
        for name, steps in workflows.items():
            if not steps or len(set(steps)) != len(steps):
                raise ValueError(f"workflow {name}: steps must be non-empty and distinct")
        desks = [DeskSpec(**d) for d in raw.get("desks", [])]
        for desk in desks:
            if not 1 <= desk.capacity <= 6:
                raise ValueError(f"desk {desk.id}: capacity must be 1..6")
        return cls(
            **server,
            workflows=workflows,
            reasons=list(raw.get("reasons", {}).get("list", [])),
            pins=dict(raw.get("pins", {})),
            desks=desks,
        )
