"""The SQLite ``KeyStore`` (signaling/personal_data.py): visit keys in a ``visit_keys``
table of the event log's own database, outside the hash chain.

Why the same database and not a key file: a key is inserted in the very transaction that
logs its ``visit_started`` (and deleted in the one that logs ``visit_purged``), so no crash
leaves an event without its key or a purge logged with its key still there; ``lapak
backup`` (SQLite's backup API) copies keys and events as one commit, and a restore is the
same two files as before. Why not in the chain: a destroyed key must leave no trace the
chain depends on; the chain covers only the ciphertext.

Destroying a key overwrites the row, deletes it (``secure_delete`` is on, so SQLite zeroes
the freed bytes) and then checkpoints the WAL with TRUNCATE, so the key's bytes are in
neither ``events.sqlite3`` nor ``events.sqlite3-wal`` (if a reader holds an old snapshot,
as soon as it lets go: ``scrub``). Backups taken before a purge still
hold the key: they must be rotated within the retention period.
"""

from __future__ import annotations

import logging
import sqlite3

from lapak.signaling.personal_data import (
    KEY_BYTES,
    KeyStore,
    PersonalDataError,
    open_sealed,
    recording_key,
)
from lapak.signaling.state import State

log = logging.getLogger("lapak.personal_data")

ROWS_PER_STATEMENT = 250  # 500 parameters, far below SQLite's limit


class SqliteKeyStore:
    """Visit keys on a connection the caller owns (the log's writer, in its transaction)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def put(self, visit: str, key: bytes) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO visit_keys (visit, key) VALUES (?, ?)", (visit, key)
        )

    def put_many(self, keys: dict[str, bytes]) -> None:
        """Several visits' keys, up to ``ROWS_PER_STATEMENT`` in one statement (the writer's
        batch: every SQLite call lets go of the GIL and waits to take it back)."""
        pairs = list(keys.items())
        for start in range(0, len(pairs), ROWS_PER_STATEMENT):
            chunk = pairs[start : start + ROWS_PER_STATEMENT]
            values = ", ".join(["(?, ?)"] * len(chunk))
            flat = [item for pair in chunk for item in pair]
            self.conn.execute(
                f"INSERT OR REPLACE INTO visit_keys (visit, key) VALUES {values}", flat
            )

    def get(self, visit: str) -> bytes | None:
        try:
            row = self.conn.execute(
                "SELECT key FROM visit_keys WHERE visit = ?", (visit,)
            ).fetchone()
        except sqlite3.OperationalError:  # a log from before sealing: no table, no keys
            return None
        return bytes(row[0]) if row else None

    def destroy(self, visit: str) -> bool:
        self.conn.execute(
            "UPDATE visit_keys SET key = zeroblob(?) WHERE visit = ?", (KEY_BYTES, visit)
        )
        return self.conn.execute("DELETE FROM visit_keys WHERE visit = ?", (visit,)).rowcount > 0


def scrub(conn: sqlite3.Connection) -> bool:
    """After a purge committed: move every page into the database file and empty the WAL,
    so the destroyed key's old page versions are gone from both files. False when a reader
    (a backup, an audit) kept the checkpoint from finishing: it does not wait for it; the
    writer tries again after its next batch and at shutdown."""
    try:
        waited = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        conn.execute("PRAGMA busy_timeout = 0")  # never stall the writer behind a reader
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(waited)}")
    except sqlite3.Error as exc:  # the purge is committed; only the scrubbing waits
        log.warning("event=purge_checkpoint_failed error=%r", str(exc))
        return False
    if busy:
        log.warning("event=purge_checkpoint_busy action=retry_at_next_purge")
    return not busy


def reveal(state: State, store: KeyStore) -> int:
    """Open the sealed personal data of the visits in memory (after replay): the officer
    sees names as before, and a recorder can get an open visit's recording key. Returns
    how many could not be opened (key missing or wrong)."""
    missing = 0
    for visit in state.visits.values():
        if visit.sealed is None:
            continue
        key = store.get(visit.id)
        try:
            if key is None:
                raise PersonalDataError(f"visit {visit.id}: no key")
            visit.name, visit.membership_no = open_sealed(key, visit.id, visit.sealed)
            visit.recording_key = recording_key(key, visit.id)
        except PersonalDataError as exc:
            missing += 1
            log.error("event=personal_data_unreadable visit=%s error=%s", visit.id, exc)
    return missing
