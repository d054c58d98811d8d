"""The audit trail: verify the hash chain, export who decided what, when, in which role."""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from lapak.signaling import signing
from lapak.signaling.datadir import LOG_NAME, MARKER_NAME
from lapak.signaling.events import (
    VisitEnded,
    VisitEscalated,
    VisitPurged,
    VisitQueued,
    VisitRouted,
    VisitStarted,
    decode_event,
)
from lapak.signaling.logformat import (
    GENESIS,
    checkpoints,
    connect_readonly,
    iter_rows,
    log_id,
    schema_version,
    state_hash,
)
from lapak.signaling.logverify import Verification, verify_rows
from lapak.signaling.personal_data import PURGED
from lapak.signaling.signing import Checkpoint

FIELDS = ("seq", "time", "kind", "visit", "desk", "by", "role", "detail", "hash")


def verify_dir(data_dir: Path, public: Ed25519PublicKey | None = None) -> Verification:
    """Every check an auditor can make on a data directory; never raises on a damaged log.

    Without ``public`` the chain proves only that rows agree with each other (anyone who
    can write the file can recompute it); with it, the signed checkpoints prove the
    history up to the newest one is the server's and that nothing after it was cut."""
    path, marker_path = data_dir / LOG_NAME, data_dir / MARKER_NAME
    report = Verification()
    try:
        marker = signing.read_file(marker_path)
    except (ValueError, OSError) as exc:
        report.problems.append(f"{MARKER_NAME} is damaged: {exc}")
        marker = None
    if not path.exists() or path.stat().st_size == 0:
        said = f" but {MARKER_NAME} says it held {marker.seq} events" if marker else ""
        report.problems.append(f"{LOG_NAME} is missing or empty (0 bytes){said}: truncated?")
        return report
    try:
        conn = connect_readonly(path)
    except sqlite3.Error as exc:
        report.problems.append(f"{LOG_NAME} cannot be opened: {exc}")
        return report
    try:
        _verify_db(conn, marker, public, report)
    except sqlite3.DatabaseError as exc:
        report.problems.append(f"{LOG_NAME} is damaged: {exc}")
    finally:
        conn.close()
    return report


def _verify_db(
    conn: sqlite3.Connection,
    marker: Checkpoint | None,
    public: Ed25519PublicKey | None,
    report: Verification,
) -> None:
    version = schema_version(conn)
    if version == 0:
        report.problems.append(f"{LOG_NAME} holds no tables: it was emptied")
        return
    if version == 1:
        report.notes.append(
            "schema 1 log: its hashes cover the body only (not seq, at, kind) and it has "
            "no signed checkpoints"
        )
    marks = checkpoints(conn) if version >= 2 else []
    snaps = (
        conn.execute("SELECT seq, hash, state_hash, body FROM snapshots").fetchall()
        if version >= 2
        else []
    )
    wanted = {c.seq for c in marks} | {int(s[0]) for s in snaps if isinstance(s[0], int)}
    if marker is not None:
        wanted.add(marker.seq)
    rows = verify_rows(conn, version, wanted)
    report.count, report.last_seq, report.hashes = rows.count, rows.last_seq, rows.hashes
    report.problems += rows.problems
    vouched = {c.seq: c.state_hash for c in marks if c.state_hash}
    for seq, snap_hash, snap_state, body in snaps:
        if not isinstance(body, bytes) or state_hash(body) != snap_state:
            report.problems.append(f"snapshot at event {seq}: its state was edited")
        elif vouched.get(seq, snap_state) != snap_state:
            report.problems.append(f"snapshot at event {seq} differs from its checkpoint")
        elif rows.hashes.get(seq) != snap_hash:
            report.problems.append(f"snapshot at event {seq} does not match the chain")
    if version >= 2:
        _verify_checkpoints(log_id(conn), marks, marker, public, report)


def _verify_checkpoints(
    identity: str,
    marks: list[Checkpoint],
    marker: Checkpoint | None,
    public: Ed25519PublicKey | None,
    report: Verification,
) -> None:
    if marker is None:
        report.problems.append(f"{MARKER_NAME} is missing (deleted with the log's tail?)")
    named = [(f"checkpoint at event {c.seq}", c) for c in marks]
    if marker is not None:
        named.append((f"{MARKER_NAME} (event {marker.seq})", marker))
    signed = 0
    for name, mark in named:
        if mark.log_id != identity:
            report.problems.append(f"{name} belongs to another log ({mark.log_id})")
        if mark.seq > report.last_seq:
            report.problems.append(
                f"{name} is ahead of the log, which ends at event {report.last_seq}: "
                "events were removed from the tail"
            )
        elif report.hashes.get(mark.seq, GENESIS if mark.seq == 0 else None) != mark.hash:
            report.problems.append(f"{name} differs from the chain: the history was rewritten")
        if public is None:
            continue
        if signing.is_valid(mark, public):
            signed = max(signed, mark.seq)
        elif mark.signature:
            report.problems.append(
                f"{name}: bad signature for this public key (forged, or key {mark.key_id})"
            )
        else:
            report.problems.append(f"{name} is not signed")
    if public is None:
        report.notes.append(
            "no --public-key: the chain is consistent, but whoever can write the file "
            "could have recomputed it"
        )
    elif report.count and not signed:
        report.problems.append("no checkpoint signed by this key vouches for the log")
    elif signed < report.last_seq:
        report.notes.append(
            f"events {signed + 1}..{report.last_seq} come after the newest signed checkpoint "
            "(signed at the next checkpoint; a crash leaves them unsigned)"
        )


def _local_day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts))


def personal_data_status(event: VisitStarted) -> str:
    """What an export says instead of a claimant's personal data: ``sealed`` (encrypted,
    its key held; ``purged`` once a later ``visit_purged`` destroys the key) or ``in
    clear`` (logged before sealing; the export leaves it out all the same)."""
    return "sealed" if event.sealed is not None else "in clear"


def records(
    data_dir: Path | Iterable[tuple[Any, float, str, bytes, str]],
    visit: str | None = None,
    day: str | None = None,
) -> list[dict[str, Any]]:
    """Audit records, oldest first; personal data (claimant names) is left out on purpose:
    ``name`` and ``membership_no`` say ``purged``, ``sealed`` or ``in clear`` instead.
    ``data_dir`` may instead be the rows themselves, in log order (the PostgreSQL store's,
    signaling/pgaudit.py, whose ``seq`` is ``<office>:<seq>``)."""
    out: list[dict[str, Any]] = []
    booths: dict[str, str] = {}
    desks: dict[str, str | None] = {}  # visit -> the desk it sits at now (as of this row)
    started: dict[str, dict[str, Any]] = {}  # visit -> the detail of its exported start
    rows = iter_rows(data_dir / LOG_NAME) if isinstance(data_dir, Path) else data_dir
    for seq, at, kind, body, row_hash in rows:
        event = decode_event(body)
        fields = msgspec.structs.asdict(event)
        if isinstance(event, VisitStarted):
            booths[event.visit] = event.booth
            status = personal_data_status(event)
            fields = {"visit": event.visit, "office": event.office, "booth": event.booth,
                      "name": status, "membership_no": status,
                      "claim_type": event.claim_type, "steps": event.steps}  # fmt: skip
            if event.sealed is not None:  # a later visit_purged marks it purged
                started[event.visit] = fields
        elif isinstance(event, VisitPurged) and event.visit in started:
            started[event.visit].update(name=PURGED, membership_no=PURGED)
        event_visit = fields.pop("visit", None)
        desk = fields.pop("desk", None) or desks.get(event_visit or "")
        _track_desk(desks, event)
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
                "desk": desk,
                "by": by,
                "role": role or "system",
                "detail": fields,
                "hash": row_hash,
            }
        )
    return out


def _track_desk(desks: dict[str, str | None], event: object) -> None:
    """Follow each visit's seat the way replay does: routed sits it, queued or ended
    unseats it (the row itself still shows the desk it was decided or ended at)."""
    if isinstance(event, VisitRouted):
        desks[event.visit] = event.desk
    elif isinstance(event, VisitQueued | VisitEscalated):  # escalated: it left the desk
        desks[event.visit] = None
    elif isinstance(event, VisitEnded):
        desks.pop(event.visit, None)


def export(
    data_dir: Path | Iterable[tuple[Any, float, str, bytes, str]],
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
