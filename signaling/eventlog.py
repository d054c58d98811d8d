"""Durable, append-only, hash-chained event log on SQLite (WAL) with group commit.

One writer thread owns the connection. ``append`` queues a batch and returns a future
that resolves only after the batch's transaction has committed; every batch waiting when
the writer wakes goes into one transaction, so durability costs one fsync per loop turn,
not one per event. Empty batches act as ordering barriers.

Each row carries ``hash = sha256(previous hash + body)``, so editing or removing any event
breaks the chain (``lapak audit verify``). The writer keeps its own replica of the state,
applying each committed event, and every ``snapshot_every`` events writes it as a snapshot
so that startup replays only the tail — all of that off the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from signaling.domain import State, apply
from signaling.events import Event, decode_event, encode_event, event_kind

log = logging.getLogger("lapak.eventlog")

GENESIS = "0" * 64
SCHEMA = """
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
    body BLOB NOT NULL
);
"""

_STOP = object()
_state_encoder = msgspec.json.Encoder()
_state_decoder = msgspec.json.Decoder(State)


def chain(previous: str, body: bytes) -> str:
    return hashlib.sha256(previous.encode() + body).hexdigest()


def connect(path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.executescript(SCHEMA)
    return conn


@dataclass
class Loaded:
    state: State
    last_seq: int
    last_hash: str
    replayed: int
    from_snapshot: int


class ChainBroken(Exception):
    def __init__(self, seq: int, message: str) -> None:
        super().__init__(f"event {seq}: {message}")
        self.seq = seq


def load(path: Path) -> Loaded:
    """Latest snapshot plus the events after it; checks the chain over what it replays."""
    conn = connect(path)
    try:
        state = State()
        start_seq, start_hash = 0, GENESIS
        row = conn.execute(
            "SELECT seq, hash, body FROM snapshots ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if row is not None:
            seq, snap_hash, body = row
            at = conn.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
            if at is not None and at[0] == snap_hash:
                state = _state_decoder.decode(body)
                start_seq, start_hash = seq, snap_hash
            else:
                log.warning("event=snapshot_ignored seq=%d reason=hash_mismatch", seq)
        previous, last_seq, replayed = start_hash, start_seq, 0
        rows = conn.execute(
            "SELECT seq, body, hash FROM events WHERE seq > ? ORDER BY seq", (start_seq,)
        )
        for seq, body, row_hash in rows:
            if seq != last_seq + 1:
                raise ChainBroken(seq, f"gap after {last_seq}")
            if chain(previous, body) != row_hash:
                raise ChainBroken(seq, "hash does not match its body and predecessor")
            apply(state, decode_event(body))
            previous, last_seq, replayed = row_hash, seq, replayed + 1
        return Loaded(state, last_seq, previous, replayed, start_seq)
    finally:
        conn.close()


def iter_rows(path: Path) -> Iterator[tuple[int, float, str, bytes, str]]:
    conn = connect(path)
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


def verify(path: Path) -> tuple[int, list[str]]:
    """Check the whole chain; returns (events checked, problems found)."""
    problems: list[str] = []
    previous, expected, count = GENESIS, 1, 0
    for seq, _, kind, body, row_hash in iter_rows(path):
        if seq != expected:
            problems.append(f"event {expected}..{seq - 1} missing")
        if chain(previous, body) != row_hash:
            problems.append(f"event {seq} ({kind}) was edited or its predecessor removed")
        try:
            decode_event(body)
        except msgspec.DecodeError as exc:
            problems.append(f"event {seq} does not decode: {exc}")
        previous, expected, count = row_hash, seq + 1, count + 1
    return count, problems


class EventLog:
    def __init__(
        self,
        path: Path,
        loaded: Loaded | None = None,
        snapshot_every: int = 10_000,
        snapshot_min_s: float = 0.0,
    ) -> None:
        self.path = path
        self.snapshot_every = snapshot_every
        self.snapshot_min_s = snapshot_min_s
        self._last_snapshot = time.monotonic()  # startup just loaded one or replayed all
        loaded = loaded or Loaded(State(), 0, GENESIS, 0, 0)
        self._replica = msgspec.json.decode(_state_encoder.encode(loaded.state), type=State)
        self._seq = loaded.last_seq
        self._hash = loaded.last_hash
        self._since_snapshot = loaded.last_seq - loaded.from_snapshot
        self._replica_ok = True
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.appended = 0
        self.commits = 0
        self.snapshots = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        conn = connect(self.path)  # fail fast on a bad path, before accepting clients
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="lapak-eventlog", daemon=True
        )
        self._thread.start()

    def append(self, events: list[Event]) -> asyncio.Future[None]:
        """Queue events; the future resolves once they (and all before them) are durable."""
        assert self._loop is not None, "EventLog.start() first"
        fut: asyncio.Future[None] = self._loop.create_future()
        self._queue.put((events, fut))
        return fut

    async def close(self) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join, 10)
        self._thread = None

    def _resolve(self, futures: list[asyncio.Future[None]], exc: BaseException | None) -> None:
        for fut in futures:
            if fut.done():
                continue
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)

    def _write(self, conn: sqlite3.Connection, events: list[Event]) -> None:
        rows = []
        seq, previous = self._seq, self._hash
        for event in events:
            body = encode_event(event)
            seq += 1
            previous = chain(previous, body)
            rows.append((seq, event.at, event_kind(event), body, previous))
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO events (seq, at, kind, body, hash) VALUES (?, ?, ?, ?, ?)", rows
            )
            self._advance_replica(events, seq)
            if self._snapshot_due(len(events)):
                self._snapshot(conn, seq, previous)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self._replica_ok = False  # it may hold events that were rolled back
            raise
        self._seq, self._hash = seq, previous
        self.appended += len(rows)
        self.commits += 1

    def _advance_replica(self, events: list[Event], seq: int) -> None:
        if not self._replica_ok:
            return
        try:
            for event in events:
                apply(self._replica, event)
        except Exception:  # a bug, never a reason to stop writing: lose snapshots only
            log.exception("event=replica_failed seq=%d snapshots=off", seq)
            self._replica_ok = False

    def _snapshot_due(self, added: int) -> bool:
        """Every ``snapshot_every`` events, but not more often than ``snapshot_min_s``:
        encoding the state holds the GIL, so under heavy load snapshots go by time."""
        self._since_snapshot += added
        return (
            self._replica_ok
            and self._since_snapshot >= self.snapshot_every
            and time.monotonic() - self._last_snapshot >= self.snapshot_min_s
        )

    def _snapshot(self, conn: sqlite3.Connection, seq: int, seq_hash: str) -> None:
        """Written in the same transaction as the batch it follows (no extra fsync)."""
        started = time.perf_counter()
        body = _state_encoder.encode(self._replica)
        conn.execute(
            "INSERT OR REPLACE INTO snapshots (seq, hash, body) VALUES (?, ?, ?)",
            (seq, seq_hash, body),
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

    def _run(self, conn: sqlite3.Connection) -> None:
        assert self._loop is not None
        stopping = False
        try:
            while not stopping:
                batch = [self._queue.get()]
                while True:  # drain everything already waiting: one transaction for all
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
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
                if events:
                    try:
                        self._write(conn, events)
                    except sqlite3.Error as err:
                        log.error("event=log_write_failed error=%r", err)
                        exc = err
                if futures:
                    try:
                        self._loop.call_soon_threadsafe(self._resolve, futures, exc)
                    except RuntimeError:  # loop closed while we were writing
                        return
                if exc is not None:
                    return  # memory is ahead of the disk now: take no more writes
        finally:
            conn.close()
