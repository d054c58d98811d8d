"""The event log's on-disk format: tables, the row hash chain, and opening the database.

Each row carries ``hash = sha256(previous hash, seq, at, kind, body)``: every stored column
is covered, so editing, reordering or removing any event breaks the chain. Schema 1 (before
2026-12) hashed the body only; it is still read by audits, never written.
"""

from __future__ import annotations

import errno
import hashlib
import sqlite3
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

from lapak.signaling.events import Event, decode_event
from lapak.signaling.signing import Checkpoint

GENESIS = "0" * 64
# Visit keys (signaling/visitkeys.py): outside the chain. Added to schema 2 without a new
# version (the chain's format is unchanged): a log opened read-write gains the empty table.
KEYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS visit_keys (
    visit TEXT PRIMARY KEY,
    key BLOB NOT NULL
);
"""
SCHEMA_VERSION = 2
SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    seq INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    state_hash TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    state_hash TEXT NOT NULL,
    at REAL NOT NULL,
    log_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    key_id TEXT NOT NULL
);
"""
    + KEYS_SCHEMA
)
ROWS = "SELECT seq, at, kind, body, hash FROM events"
OLD_FORMAT = (
    "{path} is an event log of schema 1 (its hash chain does not cover seq, at and kind); "
    "this server writes schema 2. Keep it for the record (`lapak audit verify` and "
    "`lapak audit export` still read it) and start this server on a new --data-dir"
)

_HEAD = struct.Struct(">qd")


class LogError(Exception):
    """The log cannot be used as it is; the message is for the operator, no traceback."""


class ChainBroken(LogError):
    """A row that does not check out; the message names it (``event 7: ...``)."""

    def __init__(self, seq: int, message: str) -> None:
        super().__init__(message)
        self.seq = seq


class LogWriteFailed(LogError):
    """A write did not reach the disk; ``disk_full`` says whether the disk was full."""

    def __init__(self, cause: BaseException) -> None:
        self.disk_full = is_disk_full(cause)
        detail = str(cause) or type(cause).__name__
        super().__init__(f"disk full ({detail})" if self.disk_full else detail)
        self.cause = cause


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or (
            "disk is full" in str(exc)
        )
    return False


def chain(previous: str, seq: int, at: float, kind: str, body: bytes) -> str:
    """The row hash: every stored column (and the row before it) is covered."""
    head = _HEAD.pack(seq, at)
    return hashlib.sha256(
        b"".join((previous.encode(), head, kind.encode(), b"\0", body))
    ).hexdigest()


def chain_v1(previous: str, body: bytes) -> str:
    """Schema 1 (before 2026-12): body only; kept so old logs can still be verified."""
    return hashlib.sha256(previous.encode() + body).hexdigest()


def state_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def schema_version(conn: sqlite3.Connection) -> int:
    """0: an empty database; 1: the old format (no meta table); else the stored version."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return 0
    if "meta" not in tables:
        return 1 if "events" in tables else -1
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    try:
        return int(row[0]) if row else -1
    except ValueError:
        return -1


def connect(path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
    """Open (creating when empty) a schema-2 log; LogError for an old or unknown format.
    Usable from another thread than the opener's (the log's writer thread takes it over)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA secure_delete=ON")  # a destroyed visit key's bytes are zeroed
        version = schema_version(conn)
        if version == 0:
            conn.executescript(SCHEMA)
            conn.executemany(  # a racing second creator keeps the first one's id
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)), ("log_id", uuid.uuid4().hex)],
            )
        elif version == 1:
            raise LogError(OLD_FORMAT.format(path=path))
        elif version != SCHEMA_VERSION:
            raise LogError(f"{path} is not a lapak event log of schema {SCHEMA_VERSION}")
        else:
            conn.executescript(KEYS_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def connect_readonly(path: Path) -> sqlite3.Connection:
    """For audits and backups: never creates, never changes the file (the server may be
    running)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)


def log_id(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = 'log_id'").fetchone()
    return str(row[0]) if row else ""


def last_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])


def checkpoints(conn: sqlite3.Connection, at_seq: int | None = None) -> list[Checkpoint]:
    """Every checkpoint in order, or only those taken at ``at_seq`` (start-up needs one seq,
    not the whole table, which grows by a row every few seconds of activity)."""
    query = "SELECT log_id, seq, hash, state_hash, at, signature, key_id FROM checkpoints"
    if at_seq is None:
        rows = conn.execute(query + " ORDER BY seq")
    else:
        rows = conn.execute(query + " WHERE seq = ? ORDER BY seq", (at_seq,))
    return [Checkpoint(*row) for row in rows]


def iter_rows(path: Path) -> Iterator[tuple[int, float, str, bytes, str]]:
    conn = connect_readonly(path)
    try:
        yield from conn.execute(ROWS + " ORDER BY seq")
    finally:
        conn.close()


def read_events(path: Path) -> Iterator[Event]:
    """Every event in the log, in order."""
    if not path.exists():
        return
    for _, _, _, body, _ in iter_rows(path):
        yield decode_event(body)
