"""Durable, append-only event log on SQLite (WAL, synchronous=FULL) with group commit.

One writer thread owns the connection. ``append`` queues a batch and returns a future
that resolves only after the batch's transaction has committed; every batch waiting when
the writer wakes goes into one transaction, so durability costs one fsync per loop turn,
not one per event. Empty batches act as ordering barriers.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from signaling.events import Event, decode_event, encode_event

log = logging.getLogger("lapak.eventlog")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL
);
"""

_STOP = object()


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(SCHEMA)
    return conn


def read_events(path: Path) -> Iterator[Event]:
    """Every event in the log, in order (used at startup, before the writer runs)."""
    if not path.exists():
        return
    conn = _connect(path)
    try:
        for (body,) in conn.execute("SELECT body FROM events ORDER BY seq"):
            yield decode_event(body)
    finally:
        conn.close()


class EventLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.appended = 0
        self.commits = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        conn = _connect(self.path)  # fail fast on a bad path, before accepting clients
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="lapak-eventlog", daemon=True
        )
        self._thread.start()

    def append(self, events: list[Event]) -> asyncio.Future[None]:
        """Queue events; the future resolves once they (and all before them) are durable."""
        assert self._loop is not None, "EventLog.start() first"
        fut: asyncio.Future[None] = self._loop.create_future()
        rows = [(e.at, type(e).__struct_config__.tag, encode_event(e)) for e in events]
        self._queue.put((rows, fut))
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

    def _run(self, conn: sqlite3.Connection) -> None:
        assert self._loop is not None
        stopping = False
        try:
            while not stopping:
                item = self._queue.get()
                batch = [item]
                while True:  # drain everything already waiting: one transaction for all
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                rows: list[tuple[float, str, bytes]] = []
                futures: list[asyncio.Future[None]] = []
                for entry in batch:
                    if entry is _STOP:
                        stopping = True
                        continue
                    entry_rows, fut = entry  # type: ignore[misc]
                    rows.extend(entry_rows)
                    futures.append(fut)
                exc: BaseException | None = None
                if rows:
                    started = time.perf_counter()
                    try:
                        conn.execute("BEGIN IMMEDIATE")
                        conn.executemany(
                            "INSERT INTO events (at, kind, body) VALUES (?, ?, ?)", rows
                        )
                        conn.execute("COMMIT")
                        self.appended += len(rows)
                        self.commits += 1
                    except sqlite3.Error as err:
                        log.error("event=log_write_failed error=%r", err)
                        exc = err
                    log.debug(
                        "event=commit rows=%d ms=%.2f",
                        len(rows),
                        (time.perf_counter() - started) * 1000,
                    )
                if futures:
                    try:
                        self._loop.call_soon_threadsafe(self._resolve, futures, exc)
                    except RuntimeError:  # loop closed while we were writing
                        return
        finally:
            conn.close()
