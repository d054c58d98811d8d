"""Start-up: the state from the newest good snapshot plus a replay of the events after it,
every replayed row checked the way ``lapak audit verify`` checks it (signaling/logverify.py);
then the sealed personal data of the visits in memory is opened with their keys
(signaling/visitkeys.py).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from lapak.signaling.domain import State, apply
from lapak.signaling.logformat import (
    ROWS,
    SCHEMA_VERSION,
    ChainBroken,
    connect,
    log_id,
)
from lapak.signaling.logsnapshots import snapshot_start
from lapak.signaling.logverify import check_rows
from lapak.signaling.visitkeys import SqliteKeyStore, reveal


@dataclass
class Loaded:
    state: State
    last_seq: int
    last_hash: str
    replayed: int
    from_snapshot: int
    log_id: str = ""
    last_checkpoint: int = 0


def load(source: Path | sqlite3.Connection, public: Ed25519PublicKey | None = None) -> Loaded:
    """Latest good snapshot plus the events after it; ``ChainBroken`` at the first row that
    does not check out. ``source`` is a path (opened and closed here) or a connection the
    caller keeps (the server's one, opened by signaling/datadir.py).

    With ``public``, a snapshot is used only if a checkpoint signed by that key vouches
    for its hash."""
    if isinstance(source, sqlite3.Connection):
        return _replay(source, public)
    conn = connect(source)
    try:
        return _replay(conn, public)
    finally:
        conn.close()


def _replay(conn: sqlite3.Connection, public: Ed25519PublicKey | None) -> Loaded:
    state, start_seq, start_hash = snapshot_start(conn, public)
    previous, seq_before, replayed = start_hash, start_seq, 0
    rows = conn.execute(ROWS + " WHERE seq > ? ORDER BY seq", (start_seq,))
    for seq, row_hash, event, problems in check_rows(
        rows, SCHEMA_VERSION, start_hash, start_seq + 1
    ):
        if problems or seq is None or row_hash is None or event is None:
            raise ChainBroken(seq or seq_before + 1, problems[0] if problems else "unreadable")
        apply(state, event)
        previous, seq_before, replayed = row_hash, seq, replayed + 1
    reveal(state, SqliteKeyStore(conn))  # memory holds the clear text, as before the restart
    marks = conn.execute("SELECT coalesce(max(seq), 0) FROM checkpoints").fetchone()[0]
    return Loaded(state, seq_before, previous, replayed, start_seq, log_id(conn), marks)
