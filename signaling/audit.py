"""The audit trail: verify the hash chain, export who decided what, when, in which role."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any, TextIO

import msgspec

from signaling.eventlog import iter_rows, verify
from signaling.events import VisitStarted, decode_event

FIELDS = ("seq", "time", "kind", "visit", "desk", "by", "role", "detail", "hash")


def verify_dir(data_dir: Path) -> tuple[int, list[str]]:
    return verify(data_dir / "events.sqlite3")


def _local_day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts))


def records(
    data_dir: Path, visit: str | None = None, day: str | None = None
) -> list[dict[str, Any]]:
    """Audit records, oldest first; personal data (claimant names) is left out on purpose."""
    out: list[dict[str, Any]] = []
    booths: dict[str, str] = {}
    for seq, at, kind, body, row_hash in iter_rows(data_dir / "events.sqlite3"):
        event = decode_event(body)
        fields = msgspec.structs.asdict(event)
        if isinstance(event, VisitStarted):
            booths[event.visit] = event.booth
            fields = {"visit": event.visit, "office": event.office, "booth": event.booth,
                      "claim_type": event.claim_type, "steps": event.steps}  # fmt: skip
        event_visit = fields.pop("visit", None)
        if visit is not None and event_visit != visit:
            continue
        if day is not None and _local_day(at) != day:
            continue
        by = fields.pop("by", None) or fields.get("officer")
        role = fields.pop("role", None)
        if role is None and kind in ("focus_changed", "snapshot_taken"):
            role = "officer"
        if role is None and kind in ("desk_configured", "desk_closed", "workflow_set"):
            role = "admin" if by != "config" else "system"
        if role is None and kind == "visit_started":
            by, role = booths.get(event_visit or ""), "booth"
        fields.pop("at", None)
        out.append(
            {
                "seq": seq,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(at)),
                "kind": kind,
                "visit": event_visit,
                "desk": fields.pop("desk", None),
                "by": by,
                "role": role or "system",
                "detail": fields,
                "hash": row_hash,
            }
        )
    return out


def export(
    data_dir: Path,
    out: TextIO,
    fmt: str = "jsonl",
    visit: str | None = None,
    day: str | None = None,
) -> int:
    rows = records(data_dir, visit, day)
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "detail": json.dumps(row["detail"], ensure_ascii=False)})
    return len(rows)
