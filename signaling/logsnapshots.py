"""Snapshots and checkpoints of the event log: when to take them, how they are written,
and which snapshot start-up may trust.

The writer keeps its own replica of the state, applying each committed event, and writes
it as a snapshot (with the hash of its bytes) so that start-up replays only the tail. Every
``checkpoint_every`` events or ``checkpoint_interval_s`` seconds, with every snapshot and at
shutdown, the chain head is written as a checkpoint row, signed when the log has a signing
key (and mirrored to ``checkpoint.json`` by the writer after the commit).
"""

from __future__ import annotations

import logging
import sqlite3
import time

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from lapak.signaling import signing
from lapak.signaling.domain import State, apply
from lapak.signaling.events import Event
from lapak.signaling.logformat import GENESIS, checkpoints, state_hash
from lapak.signaling.signing import Checkpoint, Signer
from lapak.signaling.state import conceal

log = logging.getLogger("lapak.eventlog")

CHECKPOINT_EVERY = 5_000
CHECKPOINT_INTERVAL_S = 10.0

_state_encoder = msgspec.json.Encoder()
_state_decoder = msgspec.json.Decoder(State)


def snapshot_start(
    conn: sqlite3.Connection, public: Ed25519PublicKey | None
) -> tuple[State, int, str]:
    """The newest snapshot that checks out, else the empty state (with a warning). With
    ``public``, only a snapshot a checkpoint signed by that key vouches for."""
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


class MarkFigures:
    """What a log shows of its snapshot and checkpoint policy (``/metrics``, the operator's
    ``checkpoint_interval_s``): read off its ``marks``, the same for both stores."""

    marks: Marks

    @property
    def snapshots(self) -> int:
        return self.marks.snapshots

    @property
    def checkpoints(self) -> int:
        return self.marks.checkpoints

    @property
    def checkpoint_interval_s(self) -> float:
        return self.marks.checkpoint_interval_s

    @checkpoint_interval_s.setter
    def checkpoint_interval_s(self, seconds: float) -> None:
        self.marks.checkpoint_interval_s = seconds
        self._interval_changed()

    def _interval_changed(self) -> None:
        """The writer reads the interval when it next goes to sleep; a store whose writer
        sleeps on an event wakes it here."""


class Marks:
    """The writer thread's snapshot and checkpoint policy, over its replica of the state.
    Every write goes into the caller's open transaction (no extra fsync)."""

    def __init__(
        self,
        state: State,
        log_id: str,
        since_snapshot: int,
        checkpoint_seq: int,
        *,
        snapshot_every: int,
        snapshot_min_s: float,
        signer: Signer | None,
        checkpoint_every: int = CHECKPOINT_EVERY,
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
    ) -> None:
        self.replica = msgspec.json.decode(_state_encoder.encode(state), type=State)
        conceal(self.replica)  # snapshots hold sealed personal data only, never the clear text
        self.replica_ok = True
        self.log_id = log_id
        self.since_snapshot = since_snapshot
        self.checkpoint_seq = checkpoint_seq
        self.snapshot_every = snapshot_every
        self.snapshot_min_s = snapshot_min_s
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval_s = checkpoint_interval_s
        self._last_snapshot = time.monotonic()  # startup just loaded one or replayed all
        self._last_checkpoint_t = time.monotonic()
        self.snapshots = 0
        self.checkpoints = 0

    def advance(self, events: list[Event], seq: int) -> None:
        """Apply a batch to the replica (inside its transaction)."""
        self.since_snapshot += len(events)
        if not self.replica_ok:
            return
        try:
            for event in events:
                apply(self.replica, event)
        except Exception:  # a bug, never a reason to stop writing: lose snapshots only
            log.exception("event=replica_failed seq=%d snapshots=off", seq)
            self.replica_ok = False

    def after_batch(self, conn: sqlite3.Connection, seq: int, head: str) -> Checkpoint | None:
        """A snapshot and/or a checkpoint at ``seq`` if one is due."""
        snap = self._snapshot(conn, seq, head) if self._snapshot_due() else ""
        if snap or self._checkpoint_due(seq):
            return self._checkpoint(conn, seq, head, snap)
        return None

    def due(self, seq: int) -> bool:
        """Would ``after_batch`` at ``seq`` write anything?"""
        return self._snapshot_due() or self._checkpoint_due(seq)

    def final(
        self, conn: sqlite3.Connection, seq: int, head: str, snapshot: bool
    ) -> Checkpoint | None:
        """At shutdown (a snapshot too) or when idle: sign the head if it is not yet."""
        if not self.final_due(seq, snapshot):
            return None
        snap = self._snapshot(conn, seq, head) if self._snapshot_pending(snapshot) else ""
        return self._checkpoint(conn, seq, head, snap)

    def final_due(self, seq: int, snapshot: bool) -> bool:
        return self._snapshot_pending(snapshot) or seq > self.checkpoint_seq

    def _snapshot_pending(self, snapshot: bool) -> bool:
        return snapshot and self.replica_ok and self.since_snapshot > 0

    def timeout(self, seq: int) -> float | None:
        """How long the writer may sleep: until the unsigned tail is due for signing."""
        if seq <= self.checkpoint_seq:
            return None
        waited = time.monotonic() - self._last_checkpoint_t
        return max(0.0, self.checkpoint_interval_s - waited)

    def _snapshot_due(self) -> bool:
        """Every ``snapshot_every`` events, but not more often than ``snapshot_min_s``:
        encoding the state holds the GIL, so under heavy load snapshots go by time."""
        return (
            self.replica_ok
            and self.since_snapshot >= self.snapshot_every
            and time.monotonic() - self._last_snapshot >= self.snapshot_min_s
        )

    def _checkpoint_due(self, seq: int) -> bool:
        unsigned = seq - self.checkpoint_seq
        return unsigned > 0 and (
            unsigned >= self.checkpoint_every
            or time.monotonic() - self._last_checkpoint_t >= self.checkpoint_interval_s
        )

    def _snapshot(self, conn: sqlite3.Connection, seq: int, head: str) -> str:
        """Returns the hash of the state's bytes, which the checkpoint then signs."""
        started = time.perf_counter()
        body = _state_encoder.encode(self.replica)
        digest = state_hash(body)
        conn.execute(
            "INSERT OR REPLACE INTO snapshots (seq, hash, state_hash, body) VALUES (?, ?, ?, ?)",
            (seq, head, digest, body),
        )
        conn.execute("DELETE FROM snapshots WHERE seq < ?", (seq,))
        self.since_snapshot = 0
        self._last_snapshot = time.monotonic()
        self.snapshots += 1
        log.info(
            "event=snapshot seq=%d bytes=%d ms=%.1f",
            seq, len(body), (time.perf_counter() - started) * 1000,
        )  # fmt: skip
        return digest

    def _checkpoint(self, conn: sqlite3.Connection, seq: int, head: str, snap: str) -> Checkpoint:
        mark = Checkpoint(self.log_id, seq, head, snap, round(time.time(), 3))
        if self.signer is not None:
            mark = self.signer.sign(mark)
        conn.execute(
            "INSERT OR REPLACE INTO checkpoints "
            "(seq, hash, state_hash, at, log_id, signature, key_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (mark.seq, mark.hash, mark.state_hash, mark.at, mark.log_id, mark.signature,
             mark.key_id),
        )  # fmt: skip
        self.checkpoint_seq = seq
        self._last_checkpoint_t = time.monotonic()
        self.checkpoints += 1
        return mark
