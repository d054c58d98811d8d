"""Durable, append-only, hash-chained event log on SQLite (WAL) with group commit.

One writer thread owns the connection. ``append`` queues a batch and returns a future
that resolves only after the batch's transaction has committed; every batch waiting when
the writer wakes goes into one transaction, so durability costs one fsync per loop turn,
not one per event. Empty batches act as ordering barriers.

Each row carries ``hash = sha256(previous hash, seq, at, kind, body)``: every stored
column is covered, so editing, reordering or removing any event breaks the chain
(``lapak audit verify``). The writer keeps its own replica of the state, applying each
committed event, and writes it as a snapshot (with the hash of its bytes) so that startup
replays only the tail — all of that off the event loop. Every ``checkpoint_every`` events
or ``checkpoint_interval_s`` seconds, with every snapshot and at shutdown, the chain head
is written as a checkpoint row, signed when the log has a signing key, and mirrored to a
file outside the database (see signaling/datadir.py) so that a truncated or emptied log
is noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import queue
import sqlite3
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from lapak.signaling import signing
from lapak.signaling.domain import State, apply
from lapak.signaling.events import Event, decode_event, encode_event, event_kind
from lapak.signaling.signing import Checkpoint, Signer

log = logging.getLogger("lapak.eventlog")

GENESIS = "0" * 64
SCHEMA_VERSION = 2
SCHEMA = """
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
CHECKPOINT_EVERY = 5_000
CHECKPOINT_INTERVAL_S = 10.0

_STOP = object()
_HEAD = struct.Struct(">qd")
_state_encoder = msgspec.json.Encoder()
_state_decoder = msgspec.json.Decoder(State)


class LogError(Exception):
    """The log cannot be used as it is; the message is for the operator, no traceback."""


class ChainBroken(LogError):
    def __init__(self, seq: int, message: str) -> None:
        super().__init__(f"event {seq}: {message}")
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


OLD_FORMAT = (
    "{path} is an event log of schema 1 (its hash chain does not cover seq, at and kind); "
    "this server writes schema 2. Keep it for the record (`lapak audit verify` and "
    "`lapak audit export` still read it) and start this server on a new --data-dir"
)


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
    """Open (creating when empty) a schema-2 log; LogError for an old or unknown format."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
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
    except BaseException:
        conn.close()
        raise
    return conn


def connect_readonly(path: Path) -> sqlite3.Connection:
    """For audits: never creates, never changes the file (the server may be running)."""
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


@dataclass
class Loaded:
    state: State
    last_seq: int
    last_hash: str
    replayed: int
    from_snapshot: int
    log_id: str = ""
    last_checkpoint: int = 0


def _sql_type(value: object) -> str:
    names = {str: "TEXT", int: "INTEGER", float: "REAL", type(None): "NULL"}
    return names.get(type(value), type(value).__name__)


def _row_error(seq: object, at: object, kind: object, body: object, row_hash: object) -> str:
    """What is wrong with a row's stored types (a sqlite-shell edit stores TEXT), or ''."""
    if not isinstance(seq, int):
        return "seq is not an integer"
    if not isinstance(body, bytes):
        return f"body is stored as {_sql_type(body)}, not BLOB (edited by hand)"
    if not isinstance(at, float | int):
        return "at is not a number (edited by hand)"
    if not isinstance(kind, str) or not isinstance(row_hash, str):
        return "kind or hash is not text (edited by hand)"
    return ""


def _snapshot_start(
    conn: sqlite3.Connection, public: Ed25519PublicKey | None
) -> tuple[State, int, str]:
    """The newest snapshot that checks out, else the empty state (with a warning)."""
    row = conn.execute(
        "SELECT seq, hash, state_hash, body FROM snapshots ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return State(), 0, GENESIS
    seq, snap_hash, snap_state_hash, body = row
    reason = ""
    at = conn.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
    if at is None or at[0] != snap_hash:
        reason = "chain_mismatch"
    elif not isinstance(body, bytes) or state_hash(body) != snap_state_hash:
        reason = "state_hash_mismatch"
    elif public is not None:
        signed = checkpoints(conn, at_seq=seq)
        if not signed or not signing.is_valid(signed[0], public):
            reason = "no_signed_checkpoint"
        elif signed[0].state_hash != snap_state_hash or signed[0].hash != snap_hash:
            reason = "checkpoint_mismatch"
    if not reason:
        try:
            return _state_decoder.decode(body), seq, snap_hash
        except msgspec.DecodeError:
            reason = "does_not_decode"
    log.warning("event=snapshot_ignored seq=%d reason=%s action=full_replay", seq, reason)
    return State(), 0, GENESIS


def load(path: Path, public: Ed25519PublicKey | None = None) -> Loaded:
    """Latest good snapshot plus the events after it; checks the chain over what it replays.

    With ``public``, a snapshot is used only if a checkpoint signed by that key vouches
    for its hash."""
    conn = connect(path)
    try:
        state, start_seq, start_hash = _snapshot_start(conn, public)
        previous, seq_before, replayed = start_hash, start_seq, 0
        rows = conn.execute(
            "SELECT seq, at, kind, body, hash FROM events WHERE seq > ? ORDER BY seq",
            (start_seq,),
        )
        for seq, at, kind, body, row_hash in rows:
            damaged = _row_error(seq, at, kind, body, row_hash)
            if damaged:
                raise ChainBroken(seq, damaged)
            if seq != seq_before + 1:
                raise ChainBroken(seq, f"gap after {seq_before}")
            if chain(previous, seq, at, kind, body) != row_hash:
                raise ChainBroken(seq, "hash does not match its row and predecessor")
            try:
                apply(state, decode_event(body))
            except msgspec.DecodeError as exc:
                raise ChainBroken(seq, f"does not decode: {exc}") from None
            previous, seq_before, replayed = row_hash, seq, replayed + 1
        marks = conn.execute("SELECT coalesce(max(seq), 0) FROM checkpoints").fetchone()[0]
        return Loaded(state, seq_before, previous, replayed, start_seq, log_id(conn), marks)
    finally:
        conn.close()


def iter_rows(path: Path) -> Iterator[tuple[int, float, str, bytes, str]]:
    conn = connect_readonly(path)
    try:
        yield from conn.execute("SELECT seq, at, kind, body, hash FROM events ORDER BY seq")
    finally:
        conn.close()


def read_events(path: Path) -> Iterator[Event]:
    """Every event in the log, in order."""
    if not path.exists():
        return
    for _, _, _, body, _ in iter_rows(path):
        yield decode_event(body)


@dataclass
class Verification:
    count: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    last_seq: int = 0
    hashes: dict[int, str] = field(default_factory=dict)  # seq -> hash, at checkpoints


def _check_row(
    version: int, previous: str, row: tuple[object, ...], report: Verification
) -> str | None:
    """The row's own checks; returns its stored hash (None when the row is unreadable)."""
    seq, at, kind, body, row_hash = row
    damaged = _row_error(seq, at, kind, body, row_hash)
    if damaged:
        report.problems.append(f"event {seq}: {damaged}")
        return row_hash if isinstance(row_hash, str) else None
    assert isinstance(seq, int) and isinstance(body, bytes) and isinstance(kind, str)
    assert isinstance(at, float | int)
    expected = chain(previous, seq, at, kind, body) if version >= 2 else chain_v1(previous, body)
    if expected != row_hash:
        report.problems.append(f"event {seq} ({kind}) was edited or its predecessor removed")
    try:
        event = decode_event(body)
    except msgspec.DecodeError as exc:
        report.problems.append(f"event {seq} does not decode: {exc}")
        return row_hash  # type: ignore[return-value]
    if event_kind(event) != kind or float(event.at) != float(at):
        report.problems.append(f"event {seq}: its kind/at columns differ from its body")
    return row_hash  # type: ignore[return-value]


def verify_rows(conn: sqlite3.Connection, version: int, wanted: set[int]) -> Verification:
    """Check the whole chain, row by row; damaged rows are named, never raised."""
    report = Verification()
    previous, expected = GENESIS, 1
    for row in conn.execute("SELECT seq, at, kind, body, hash FROM events ORDER BY seq"):
        seq = row[0]
        if isinstance(seq, int) and seq != expected:
            report.problems.append(f"event {expected}..{seq - 1} missing")
        row_hash = _check_row(version, previous, row, report)
        previous = row_hash or previous
        if isinstance(seq, int):
            expected = seq + 1
            report.last_seq = seq
            if seq in wanted and row_hash:
                report.hashes[seq] = row_hash
        report.count += 1
    return report


class EventLog:
    def __init__(
        self,
        path: Path,
        loaded: Loaded | None = None,
        snapshot_every: int = 10_000,
        snapshot_min_s: float = 0.0,
        *,
        signer: Signer | None = None,
        marker: Path | None = None,
        checkpoint_every: int = CHECKPOINT_EVERY,
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
    ) -> None:
        self.path = path
        self.snapshot_every = snapshot_every
        self.snapshot_min_s = snapshot_min_s
        self.signer = signer
        self.marker = marker
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval_s = checkpoint_interval_s
        self._last_snapshot = time.monotonic()  # startup just loaded one or replayed all
        self._last_checkpoint_t = time.monotonic()
        loaded = loaded or Loaded(State(), 0, GENESIS, 0, 0)
        self._replica = msgspec.json.decode(_state_encoder.encode(loaded.state), type=State)
        self._seq = loaded.last_seq
        self._hash = loaded.last_hash
        self._log_id = loaded.log_id
        self._since_snapshot = loaded.last_seq - loaded.from_snapshot
        self._checkpoint_seq = loaded.last_checkpoint
        self._replica_ok = True
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._inode: int | None = None
        self.failure: LogWriteFailed | None = None
        self.appended = 0
        self.commits = 0
        self.snapshots = 0
        self.checkpoints = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        conn = connect(self.path)  # fail fast on a bad path, before accepting clients
        self._log_id = self._log_id or log_id(conn)
        self._inode = os.stat(self.path).st_ino
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="lapak-eventlog", daemon=True
        )
        self._thread.start()

    def append(self, events: list[Event]) -> asyncio.Future[None]:
        """Queue events; the future resolves once they (and all before them) are durable."""
        assert self._loop is not None, "EventLog.start() first"
        fut: asyncio.Future[None] = self._loop.create_future()
        if self._closed or self.failure is not None:
            fut.set_exception(self.failure or LogError("the event log is closed"))
            return fut
        self._queue.put((events, fut))
        return fut

    async def close(self) -> None:
        """Write what is queued (its futures resolve first), then a final snapshot and a
        checkpoint, so the next start replays nothing and the head is signed."""
        if self._thread is None:
            return
        self._closed = True
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join, 30)
        self._thread = None

    def problem(self) -> str | None:
        """Why the log is not healthy now (for /healthz), or None."""
        if self.failure is not None:
            return f"event log write failed: {self.failure}"
        try:
            st = os.stat(self.path)
        except OSError:
            return f"{self.path} is gone"
        if self._inode is not None and st.st_ino != self._inode:
            return f"{self.path} was replaced"
        if st.st_size == 0 and self._seq > 0:
            return f"{self.path} was truncated to 0 bytes"
        return None

    def _resolve(self, futures: list[asyncio.Future[None]], exc: BaseException | None) -> None:
        for fut in futures:
            if fut.done():
                continue
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)

    def _write(self, conn: sqlite3.Connection, events: list[Event]) -> Checkpoint | None:
        rows = []
        seq, previous = self._seq, self._hash
        for event in events:
            body = encode_event(event)
            seq += 1
            kind = event_kind(event)
            previous = chain(previous, seq, event.at, kind, body)
            rows.append((seq, event.at, kind, body, previous))
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO events (seq, at, kind, body, hash) VALUES (?, ?, ?, ?, ?)", rows
            )
            self._advance_replica(events, seq)
            self._since_snapshot += len(events)
            snap = self._snapshot(conn, seq, previous) if self._snapshot_due() else ""
            mark = None
            if snap or self._checkpoint_due(seq):
                mark = self._checkpoint(conn, seq, previous, snap)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            self._replica_ok = False  # it may hold events that were rolled back
            raise
        self._seq, self._hash = seq, previous
        self.appended += len(rows)
        self.commits += 1
        return mark

    def _advance_replica(self, events: list[Event], seq: int) -> None:
        if not self._replica_ok:
            return
        try:
            for event in events:
                apply(self._replica, event)
        except Exception:  # a bug, never a reason to stop writing: lose snapshots only
            log.exception("event=replica_failed seq=%d snapshots=off", seq)
            self._replica_ok = False

    def _snapshot_due(self) -> bool:
        """Every ``snapshot_every`` events, but not more often than ``snapshot_min_s``:
        encoding the state holds the GIL, so under heavy load snapshots go by time."""
        return (
            self._replica_ok
            and self._since_snapshot >= self.snapshot_every
            and time.monotonic() - self._last_snapshot >= self.snapshot_min_s
        )

    def _checkpoint_due(self, seq: int) -> bool:
        unsigned = seq - self._checkpoint_seq
        return unsigned > 0 and (
            unsigned >= self.checkpoint_every
            or time.monotonic() - self._last_checkpoint_t >= self.checkpoint_interval_s
        )

    def _snapshot(self, conn: sqlite3.Connection, seq: int, seq_hash: str) -> str:
        """Written in the same transaction as the batch it follows (no extra fsync);
        returns the hash of the state's bytes, which the checkpoint then signs."""
        started = time.perf_counter()
        body = _state_encoder.encode(self._replica)
        digest = state_hash(body)
        conn.execute(
            "INSERT OR REPLACE INTO snapshots (seq, hash, state_hash, body) VALUES (?, ?, ?, ?)",
            (seq, seq_hash, digest, body),
        )
        conn.execute("DELETE FROM snapshots WHERE seq < ?", (seq,))
        self._since_snapshot = 0
        self._last_snapshot = time.monotonic()
        self.snapshots += 1
        log.info(
            "event=snapshot seq=%d bytes=%d ms=%.1f",
            seq,
            len(body),
            (time.perf_counter() - started) * 1000,
        )
        return digest

    def _checkpoint(
        self, conn: sqlite3.Connection, seq: int, seq_hash: str, snap: str
    ) -> Checkpoint:
        mark = Checkpoint(self._log_id, seq, seq_hash, snap, round(time.time(), 3))
        if self.signer is not None:
            mark = self.signer.sign(mark)
        conn.execute(
            "INSERT OR REPLACE INTO checkpoints "
            "(seq, hash, state_hash, at, log_id, signature, key_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (mark.seq, mark.hash, mark.state_hash, mark.at, mark.log_id, mark.signature,
             mark.key_id),
        )  # fmt: skip
        self._checkpoint_seq = seq
        self._last_checkpoint_t = time.monotonic()
        self.checkpoints += 1
        return mark

    def _publish(self, mark: Checkpoint | None) -> None:
        """Mirror a committed checkpoint outside the database (after the commit: the file
        is never ahead of the log)."""
        if mark is not None and self.marker is not None:
            signing.write_file(self.marker, mark)

    def _idle_checkpoint(self, conn: sqlite3.Connection) -> None:
        """Sign the head once the log has been quiet for ``checkpoint_interval_s``."""
        if self._seq > self._checkpoint_seq:
            self._final(conn, snapshot=False)

    def _final(self, conn: sqlite3.Connection, snapshot: bool = True) -> None:
        snap_due = snapshot and self._replica_ok and self._since_snapshot > 0
        if not snap_due and self._seq <= self._checkpoint_seq:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            snap = self._snapshot(conn, self._seq, self._hash) if snap_due else ""
            mark = self._checkpoint(conn, self._seq, self._hash, snap)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        self._publish(mark)

    def _timeout(self) -> float | None:
        """How long the writer may sleep: until the unsigned tail is due for signing."""
        if self._seq <= self._checkpoint_seq or self.failure is not None:
            return None
        waited = time.monotonic() - self._last_checkpoint_t
        return max(0.0, self.checkpoint_interval_s - waited)

    def _next_batch(self, conn: sqlite3.Connection) -> list[object]:
        while True:
            try:
                batch = [self._queue.get(timeout=self._timeout())]
                break
            except queue.Empty:
                self._idle_checkpoint(conn)
        while True:  # drain everything already waiting: one transaction for all
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                return batch

    def _fail(self, err: BaseException) -> LogWriteFailed:
        failure = LogWriteFailed(err)
        self.failure = failure
        reason = "disk_full" if failure.disk_full else "error"
        log.error("event=log_write_failed reason=%s error=%r", reason, str(err))
        return failure

    def _run(self, conn: sqlite3.Connection) -> None:
        assert self._loop is not None
        stopping = False
        try:
            while not stopping:
                batch = self._next_batch(conn)
                events: list[Event] = []
                futures: list[asyncio.Future[None]] = []
                for entry in batch:
                    if entry is _STOP:
                        stopping = True
                        continue
                    entry_events, fut = entry  # type: ignore[misc]
                    events.extend(entry_events)
                    futures.append(fut)
                exc: BaseException | None = None
                mark = None
                if events:
                    try:
                        mark = self._write(conn, events)
                        self._publish(mark)
                    except (sqlite3.Error, OSError) as err:
                        exc = self._fail(err)
                if futures:
                    try:
                        self._loop.call_soon_threadsafe(self._resolve, futures, exc)
                    except RuntimeError:  # loop closed while we were writing
                        return
                if exc is not None:
                    return  # memory is ahead of the disk now: take no more writes
            self._final(conn)
        except (sqlite3.Error, OSError) as err:
            self._fail(err)
        finally:
            conn.close()
            self._refuse_queued()

    def _refuse_queued(self) -> None:
        """The writer is gone: fail whatever is still queued instead of leaving it hanging."""
        assert self._loop is not None
        self._closed = True
        futures = []
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is not _STOP:
                futures.append(entry[1])  # type: ignore[index]
        if futures:
            exc = self.failure or LogError("the event log is closed")
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                self._loop.call_soon_threadsafe(self._resolve, futures, exc)


def _rollback(conn: sqlite3.Connection) -> None:
    """SQLite may already have rolled back (a full disk does that): never let the rollback's
    own error ("no transaction is active") hide the original one."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("event=rollback_failed error=%r", str(exc))
