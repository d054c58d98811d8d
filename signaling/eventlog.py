"""Durable, append-only, hash-chained event log on SQLite (WAL) with group commit.

One writer thread owns the connection. ``append`` queues a batch and returns a future
that resolves only after the batch's transaction has committed; every batch waiting when
the writer wakes goes into one transaction, so durability costs one fsync per loop turn,
not one per event. Empty batches act as ordering barriers.

The writer shares the GIL with a busy event loop, and every time it lets go of it (each
SQLite call does) it may wait for the loop to let go in turn: so a batch with no snapshot
or checkpoint due is written as one multi-row ``INSERT`` in autocommit (its own
transaction, one fsync, one release of the GIL) rather than BEGIN, one INSERT per row and
COMMIT. ``append(..., then=f)`` calls ``f(future)`` on the loop as soon as the commit is
known, in commit order, instead of one loop pass later as a done callback would.

The format and the hash chain are in logformat.py, the row checks in logverify.py,
snapshots and checkpoints in logsnapshots.py, start-up replay in logload.py; this module
re-exports what callers of the log use (``EventLog``, ``load``, ``LogError``...).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from lapak.signaling import signing
from lapak.signaling.domain import State
from lapak.signaling.events import Event, VisitPurged, encode_event, event_kind
from lapak.signaling.logformat import (
    GENESIS,
    LogError,
    LogWriteFailed,
    chain,
    chain_v1,
    connect,
    log_id,
    read_events,
)
from lapak.signaling.logload import Loaded, load
from lapak.signaling.logsnapshots import (
    CHECKPOINT_EVERY,
    CHECKPOINT_INTERVAL_S,
    MarkFigures,
    Marks,
)
from lapak.signaling.signing import Checkpoint, Signer
from lapak.signaling.visitkeys import SqliteKeyStore, scrub

__all__ = [
    "GENESIS",
    "EventLog",
    "Loaded",
    "LogError",
    "LogWriteFailed",
    "chain",
    "chain_v1",
    "load",
    "read_events",
]

log = logging.getLogger("lapak.eventlog")

_STOP = object()
Durable = Callable[["asyncio.Future[None]"], None]  # called with the resolved future
# events, its future, queued at, then, the new visits' keys (kept in the same transaction)
Entry = tuple[list[Event], "asyncio.Future[None]", float, Durable | None, dict[str, bytes]]
ONE_STATEMENT_ROWS = 100  # up to this many rows in one INSERT statement (500 parameters)
_INSERT = "INSERT INTO events (seq, at, kind, body, hash) VALUES "


def _insert_sql(rows: int) -> str:
    return _INSERT + ", ".join(["(?, ?, ?, ?, ?)"] * rows)


class EventLog(MarkFigures):
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
        on_commit: Callable[[float], None] | None = None,
    ) -> None:
        self.path = path
        self.marker = marker
        self.on_commit = on_commit  # seconds from append to durable, per non-empty append
        # after each commit's callbacks ran (delivery writes its frames once per connection)
        self.on_resolved: Callable[[], None] | None = None
        loaded = loaded or Loaded(State(), 0, GENESIS, 0, 0)
        self.marks = Marks(
            loaded.state, loaded.log_id, loaded.last_seq - loaded.from_snapshot,
            loaded.last_checkpoint, snapshot_every=snapshot_every,
            snapshot_min_s=snapshot_min_s, signer=signer, checkpoint_every=checkpoint_every,
            checkpoint_interval_s=checkpoint_interval_s,
        )  # fmt: skip
        self._seq = loaded.last_seq
        self._hash = loaded.last_hash
        self._queue: queue.SimpleQueue[Entry | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._inode: int | None = None
        self.failure: LogWriteFailed | None = None
        self.unscrubbed = False  # a purge's WAL checkpoint did not finish (retried)
        self.appended = 0
        self.commits = 0

    def start(self, conn: sqlite3.Connection | None = None) -> None:
        """Start the writer on ``conn`` (the server hands over the one it opened and
        replayed from), else on a connection opened here."""
        self._loop = asyncio.get_running_loop()
        conn = conn or connect(self.path)  # fail fast on a bad path, before accepting clients
        self.marks.log_id = self.marks.log_id or log_id(conn)
        self._inode = os.stat(self.path).st_ino
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="lapak-eventlog", daemon=True
        )
        self._thread.start()

    def append(
        self,
        events: list[Event],
        then: Durable | None = None,
        keys: dict[str, bytes] | None = None,
    ) -> asyncio.Future[None]:
        """Queue events; the future resolves once they (and all before them) are durable.
        ``then(future)`` runs on the loop right after it resolves (or fails), in commit
        order, before the loop's other work. ``keys`` (visit -> key) go into the
        ``visit_keys`` table in the transaction of the events; a ``visit_purged`` event
        destroys its visit's key in its own."""
        assert self._loop is not None, "EventLog.start() first"
        fut: asyncio.Future[None] = self._loop.create_future()
        if self._closed or self.failure is not None:
            fut.set_exception(self.failure or LogError("the event log is closed"))
            if then is not None:
                fut.add_done_callback(then)
            return fut
        self._queue.put((events, fut, time.perf_counter(), then, keys or {}))
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

    def _resolve(
        self, done: list[tuple[asyncio.Future[None], Durable | None]], exc: BaseException | None
    ) -> None:
        for fut, then in done:
            if fut.done():
                continue
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)
            if then is not None:
                try:
                    then(fut)
                except Exception:  # a bug in the caller's callback: the others still run
                    log.exception("event=commit_callback_failed")
        if self.on_resolved is not None:
            self.on_resolved()

    def _write(
        self, conn: sqlite3.Connection, events: list[Event], keys: dict[str, bytes]
    ) -> Checkpoint | None:
        rows = []
        flat: list[object] = []
        seq, previous = self._seq, self._hash
        for event in events:
            body = encode_event(event)
            seq += 1
            kind = event_kind(event)
            previous = chain(previous, seq, event.at, kind, body)
            rows.append((seq, event.at, kind, body, previous))
            flat += rows[-1]
        mark = None
        purged = [e.visit for e in events if isinstance(e, VisitPurged)]
        try:
            self.marks.advance(events, seq)
            plain = not keys and not purged
            if plain and len(rows) <= ONE_STATEMENT_ROWS and not self.marks.due(seq):
                conn.execute(_insert_sql(len(rows)), flat)  # autocommit: one transaction
            else:
                conn.execute("BEGIN IMMEDIATE")
                if len(rows) <= ONE_STATEMENT_ROWS:
                    conn.execute(_insert_sql(len(rows)), flat)
                else:
                    conn.executemany(_insert_sql(1), rows)
                store = SqliteKeyStore(conn)
                store.put_many(keys)  # a new visit's key commits with its visit_started
                for visit in purged:
                    store.destroy(visit)
                mark = self.marks.after_batch(conn, seq, previous)
                conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            self.marks.replica_ok = False  # it may hold events that were rolled back
            raise
        self._seq, self._hash = seq, previous
        if purged:
            log.info("event=keys_destroyed visits=%d", len(purged))
        if purged or self.unscrubbed:  # a reader kept the last one from finishing: again
            # The destroyed keys' old page versions leave the WAL (and the file) before the
            # purge is acknowledged.
            self.unscrubbed = not scrub(conn)
        self.appended += len(rows)
        self.commits += 1
        return mark

    def _publish(self, mark: Checkpoint | None) -> None:
        """Mirror a committed checkpoint outside the database (after the commit: the file
        is never ahead of the log)."""
        if mark is not None and self.marker is not None:
            signing.write_file(self.marker, mark)

    def _final(self, conn: sqlite3.Connection, snapshot: bool = True) -> None:
        """At shutdown (snapshot and checkpoint), or when idle (sign the head)."""
        if not self.marks.final_due(self._seq, snapshot):
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            mark = self.marks.final(conn, self._seq, self._hash, snapshot)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        self._publish(mark)

    def _next_batch(self, conn: sqlite3.Connection) -> list[Entry | object]:
        while True:
            timeout = None if self.failure is not None else self.marks.timeout(self._seq)
            try:
                batch = [self._queue.get(timeout=timeout)]
                break
            except queue.Empty:  # quiet for checkpoint_interval_s: sign the head
                self._final(conn, snapshot=False)
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
                events: list[Event] = []
                keys: dict[str, bytes] = {}
                futures: list[tuple[asyncio.Future[None], Durable | None]] = []
                queued: list[float] = []
                for entry in self._next_batch(conn):
                    if not isinstance(entry, tuple):
                        stopping = True
                        continue
                    entry_events, fut, at, then, entry_keys = entry
                    events.extend(entry_events)
                    keys.update(entry_keys)
                    futures.append((fut, then))
                    if entry_events:
                        queued.append(at)
                exc: BaseException | None = None
                mark = None
                if events:
                    try:
                        mark = self._write(conn, events, keys)
                    except (sqlite3.Error, OSError) as err:
                        exc = self._fail(err)
                done = time.perf_counter()
                if futures:  # the acks first; the bookkeeping below can wait
                    try:
                        self._loop.call_soon_threadsafe(self._resolve, futures, exc)
                    except RuntimeError:  # loop closed while we were writing
                        return
                if exc is not None:
                    return  # memory is ahead of the disk now: take no more writes
                if queued and self.on_commit is not None:
                    for at in queued:
                        self.on_commit(done - at)
                self._publish(mark)  # the checkpoint file (an fsync of its own)
            self._final(conn)
            if self.unscrubbed:
                scrub(conn)
        except (sqlite3.Error, OSError) as err:
            self._fail(err)
        finally:
            conn.close()
            self._refuse_queued()

    def _refuse_queued(self) -> None:
        """The writer is gone: fail whatever is still queued instead of leaving it hanging."""
        assert self._loop is not None
        self._closed = True
        futures: list[tuple[asyncio.Future[None], Durable | None]] = []
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(entry, tuple):
                futures.append((entry[1], entry[3]))
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
