"""The one check of the event log's rows, shared by start-up replay and ``lapak audit``.

Every row is checked the same way wherever it is read: stored types (a sqlite-shell edit
stores TEXT), no gap in ``seq``, the hash over the row and its predecessor, a body that
decodes, and ``kind``/``at`` columns that agree with the body. Replay stops at the first
problem (``ChainBroken``); an audit names every problem and goes on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import msgspec

from lapak.signaling.events import Event, decode_event, event_kind
from lapak.signaling.logformat import GENESIS, ROWS, chain, chain_v1

# (seq if it is an integer, the stored hash if it is text, the event if it decoded, problems)
Checked = tuple[int | None, str | None, Event | None, list[str]]


@dataclass
class Verification:
    count: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    last_seq: int = 0
    hashes: dict[int, str] = field(default_factory=dict)  # seq -> hash, at checkpoints


def _sql_type(value: object) -> str:
    names = {str: "TEXT", int: "INTEGER", float: "REAL", type(None): "NULL"}
    return names.get(type(value), type(value).__name__)


def _row_error(seq: object, at: object, kind: object, body: object, row_hash: object) -> str:
    """What is wrong with a row's stored types, or ''."""
    if not isinstance(seq, int):
        return "seq is not an integer"
    if not isinstance(body, bytes):
        return f"body is stored as {_sql_type(body)}, not BLOB (edited by hand)"
    if not isinstance(at, float | int):
        return "at is not a number (edited by hand)"
    if not isinstance(kind, str) or not isinstance(row_hash, str):
        return "kind or hash is not text (edited by hand)"
    return ""


def check_rows(
    rows: Iterable[tuple[object, ...]], version: int, previous: str = GENESIS, expected: int = 1
) -> Iterator[Checked]:
    """Each row with its problems, in order; ``previous`` and ``expected`` are the hash and
    seq the first row follows (a snapshot's, when replay starts from one)."""
    for seq, at, kind, body, row_hash in rows:
        problems: list[str] = []
        number = seq if isinstance(seq, int) else None
        stored = row_hash if isinstance(row_hash, str) else None
        if number is not None and number != expected:
            problems.append(f"event {expected}..{number - 1} missing")
        damaged = _row_error(seq, at, kind, body, row_hash)
        if damaged:
            problems.append(f"event {seq}: {damaged}")
            yield number, stored, None, problems
        else:
            assert isinstance(body, bytes) and isinstance(kind, str)
            assert isinstance(at, float | int)
            event = _check_body(version, previous, number or 0, at, kind, body, stored, problems)
            yield number, stored, event, problems
        previous = stored or previous
        if number is not None:
            expected = number + 1


def _check_body(
    version: int,
    previous: str,
    seq: int,
    at: float,
    kind: str,
    body: bytes,
    stored: str | None,
    problems: list[str],
) -> Event | None:
    expected = chain(previous, seq, at, kind, body) if version >= 2 else chain_v1(previous, body)
    if expected != stored:
        problems.append(f"event {seq} ({kind}) was edited or its predecessor removed")
    try:
        event = decode_event(body)
    except msgspec.DecodeError as exc:
        problems.append(f"event {seq} does not decode: {exc}")
        return None
    if event_kind(event) != kind or float(event.at) != float(at):
        problems.append(f"event {seq}: its kind/at columns differ from its body")
    return event


def verify_rows(conn: sqlite3.Connection, version: int, wanted: set[int]) -> Verification:
    """Check the whole chain, row by row; damaged rows are named, never raised. The hashes
    at the ``wanted`` seqs are kept (checkpoints and snapshots are compared with them)."""
    report = Verification()
    for seq, row_hash, _, problems in check_rows(conn.execute(ROWS + " ORDER BY seq"), version):
        report.problems += problems
        if seq is not None:
            report.last_seq = seq
            if seq in wanted and row_hash:
                report.hashes[seq] = row_hash
        report.count += 1
    return report
