"""The event log on PostgreSQL (``lapak signal --store postgresql://...``), behind the same
interface as the SQLite one (signaling/eventlog.py): ``append(events, then=f)`` resolves
after the commit, in commit order; ``close()`` writes a final snapshot and checkpoint.

One ordered, hash-chained stream per office (signaling/streams.py says which): rows are
keyed ``(stream, seq)`` and chained per stream with the same row hash as SQLite
(``logformat.chain``) and checked by the same code (``logverify.check_rows``). ``pos``, an
identity column, is the order this node committed them in: start-up replays in ``pos``
order, so state equals the live state exactly, cross-office fields included.

Group commit without a thread: asyncpg runs on the server's loop; one writer task takes
everything queued while the previous transaction was in flight and writes it in one
transaction (one ``INSERT ... SELECT FROM unnest(...)``, one WAL flush). When this node
writes under leases (signaling/leases.py), the same transaction reads each office's epoch
``FOR SHARE`` and the batch is refused (``Fenced``: no ack) if any moved.

Snapshots hold this node's whole state, with the head ``(seq, hash)`` of every stream
they cover; checkpoints sign each stream's head (``log_id`` ``<log id>:<stream>``), and
a snapshot carries its own signature over its state hash and heads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from lapak.signaling import signing
from lapak.signaling.domain import State, apply
from lapak.signaling.events import Event, VisitPurged, encode_event, event_kind
from lapak.signaling.logformat import (
    GENESIS,
    SCHEMA_VERSION,
    ChainBroken,
    LogError,
    LogWriteFailed,
    chain,
    state_hash,
)
from lapak.signaling.logsnapshots import (
    CHECKPOINT_EVERY,
    CHECKPOINT_INTERVAL_S,
    MarkFigures,
    Marks,
)
from lapak.signaling.logverify import check_rows
from lapak.signaling.signing import Checkpoint, Signer
from lapak.signaling.state import forget_office, take_office
from lapak.signaling.streams import StreamRouter
from lapak.signaling.visitkeys import reveal

log = logging.getLogger("lapak.pglog")

SCHEMES = ("postgresql://", "postgres://")
SCHEMA = """
CREATE TABLE IF NOT EXISTS lapak_meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS lapak_events (
    stream text NOT NULL,
    seq bigint NOT NULL,
    pos bigint GENERATED ALWAYS AS IDENTITY,
    at double precision NOT NULL,
    kind text NOT NULL,
    body bytea NOT NULL,
    hash text NOT NULL,
    PRIMARY KEY (stream, seq)
);
CREATE INDEX IF NOT EXISTS lapak_events_pos ON lapak_events (pos);
CREATE TABLE IF NOT EXISTS lapak_snapshots (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node text NOT NULL,
    pos bigint NOT NULL,
    heads text NOT NULL,
    state_hash text NOT NULL,
    body bytea NOT NULL,
    at double precision NOT NULL,
    signature text NOT NULL,
    key_id text NOT NULL
);
CREATE TABLE IF NOT EXISTS lapak_checkpoints (
    stream text NOT NULL,
    seq bigint NOT NULL,
    hash text NOT NULL,
    at double precision NOT NULL,
    log_id text NOT NULL,
    signature text NOT NULL,
    key_id text NOT NULL,
    PRIMARY KEY (stream, seq)
);
CREATE TABLE IF NOT EXISTS lapak_offices (
    office text PRIMARY KEY,
    owner_node text,
    epoch bigint NOT NULL DEFAULT 0,
    lease_until double precision NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS lapak_visit_keys (
    visit text PRIMARY KEY,
    key bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS lapak_nodes (
    node text PRIMARY KEY,
    url text NOT NULL,
    heartbeat double precision NOT NULL
);
ALTER TABLE lapak_nodes ADD COLUMN IF NOT EXISTS offices text[] NOT NULL DEFAULT '{}';
"""
SCHEMA_LOCK = 0x1A9A4  # pg_advisory_xact_lock key: two nodes creating the schema at once
_INSERT = """
INSERT INTO lapak_events (stream, seq, at, kind, body, hash)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::text[], $5::bytea[], $6::text[])
"""
_state_encoder = msgspec.json.Encoder()
_state_decoder = msgspec.json.Decoder(State)

Durable = Callable[["asyncio.Future[None]"], None]
Heads = dict[str, tuple[int, str]]  # stream -> (seq, hash) of its last row


class Fenced(LogError):
    """An office's epoch moved under this node: another node owns it now. The batch was
    not written (no ack); the node must drop the office."""

    def __init__(self, offices: list[str]) -> None:
        super().__init__(f"lease lost for {', '.join(offices)}: another node owns it now")
        self.offices = offices


def is_url(store: str | None) -> bool:
    return bool(store) and str(store).startswith(SCHEMES)


def redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


STORE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError, asyncpg.InterfaceError, OSError, ConnectionError,
)  # fmt: skip
"""What a lost or refusing PostgreSQL raises."""
CONNECT_ERRORS: tuple[type[BaseException], ...] = (*STORE_ERRORS, TimeoutError, ValueError)


async def connect_pool(url: str, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    """A pool on ``url`` with the schema in place; LogError saying why not."""
    try:
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, timeout=10)
    except CONNECT_ERRORS as exc:
        raise LogError(f"cannot connect to the store {redact(url)}: {exc}") from None
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
            await conn.execute(SCHEMA)
            await conn.execute(
                "INSERT INTO lapak_meta (key, value) VALUES ('schema_version', $1), "
                "('log_id', $2) ON CONFLICT (key) DO NOTHING",
                str(SCHEMA_VERSION), uuid.uuid4().hex,
            )  # fmt: skip
            version = await conn.fetchval(
                "SELECT value FROM lapak_meta WHERE key = 'schema_version'"
            )
        if version != str(SCHEMA_VERSION):
            raise LogError(f"{redact(url)} holds a lapak log of schema {version}, not 2")
    except BaseException as exc:
        await pool.close()
        if isinstance(exc, STORE_ERRORS):
            raise LogError(f"cannot use the store {redact(url)}: {exc}") from None
        raise
    return pool


async def get_log_id(conn: Any) -> str:
    return str(await conn.fetchval("SELECT value FROM lapak_meta WHERE key = 'log_id'") or "")


def heads_digest(heads: Heads) -> str:
    """What a snapshot's signature covers of the chain: every stream's head."""
    text = json.dumps({s: list(h) for s, h in sorted(heads.items())}, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def snapshot_mark(identity: str, pos: int, heads: Heads, digest: str, at: float) -> Checkpoint:
    """The signed statement of a snapshot: its state hash at these stream heads."""
    return Checkpoint(f"{identity}:snapshot", pos, heads_digest(heads), digest, at)


@dataclass
class PgLoaded:
    """What start-up read: the state, every stream's head, and what it cost."""

    state: State
    heads: Heads = field(default_factory=dict)
    checkpointed: dict[str, int] = field(default_factory=dict)  # stream -> last signed seq
    replayed: int = 0
    from_snapshot: int = 0  # events the snapshot covered
    log_id: str = ""
    count: int = 0  # events in the log (for the snapshot and checkpoint policy)


async def load_pg(
    pool: asyncpg.Pool,
    public: Ed25519PublicKey | None = None,
    node: str | None = None,
    streams: set[str] | None = None,
) -> PgLoaded:
    """The newest snapshot that checks out (of ``node`` when given), then every row after
    the heads it covers, in commit (``pos``) order, each checked as ``audit verify`` does;
    ``ChainBroken`` at the first that does not check out. ``streams``: only these offices'
    (a node under leases loads the offices it holds; a snapshot naming others is not used)."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        identity = await get_log_id(conn)
        state, heads, covered, since_pos = await _snapshot_start(conn, identity, public, node)
        if streams is not None and not set(heads) <= streams:
            log.info("event=snapshot_ignored reason=other_offices action=full_replay")
            state, heads, covered, since_pos = State(), {}, 0, 0
        rows = await conn.fetch(  # streams the snapshot does not cover: from their start
            "SELECT stream, seq, at, kind, body, hash FROM lapak_events "
            "WHERE pos > $1 OR NOT (stream = ANY($2::text[])) ORDER BY pos",
            since_pos, list(heads),
        )  # fmt: skip
        marks = await conn.fetch("SELECT stream, max(seq) AS seq FROM lapak_checkpoints GROUP BY 1")
    replayed = 0
    for row in rows:
        stream = row["stream"]
        if streams is not None and stream not in streams:
            continue
        seq_before, previous = heads.get(stream, (0, GENESIS))
        if row["seq"] <= seq_before:
            continue  # covered by the snapshot
        one = [(row["seq"], row["at"], row["kind"], row["body"], row["hash"])]
        for seq, row_hash, event, problems in check_rows(
            one, SCHEMA_VERSION, previous, seq_before + 1
        ):
            if problems or seq is None or row_hash is None or event is None:
                detail = problems[0] if problems else "unreadable"
                raise ChainBroken(seq or seq_before + 1, f"stream {stream}: {detail}")
            apply(state, event)
            heads[stream] = (seq, row_hash)
            replayed += 1
    async with pool.acquire() as conn:
        await reveal_pg(conn, state)  # memory holds the clear text, as before the restart
    checkpointed = {r["stream"]: int(r["seq"]) for r in marks}
    count = covered + replayed
    return PgLoaded(state, heads, checkpointed, replayed, covered, identity, count)


_SNAPSHOT_COLUMNS = (
    "SELECT pos, heads, state_hash, body, at, signature, key_id FROM lapak_snapshots"
)


async def _snapshot_start(
    conn: Any, identity: str, public: Ed25519PublicKey | None, node: str | None
) -> tuple[State, Heads, int, int]:
    """(state, heads, events covered, pos covered) of the newest snapshot that checks out,
    else the empty state (with a warning)."""
    query, args = _SNAPSHOT_COLUMNS, []
    if node is not None:
        query += " WHERE node = $1"
        args.append(node)
    row = await conn.fetchrow(query + " ORDER BY id DESC LIMIT 1", *args)
    if row is None:
        return State(), {}, 0, 0
    checked = await _checked_snapshot(conn, row, identity, public)
    if isinstance(checked, str):
        log.warning(
            "event=snapshot_ignored pos=%d reason=%s action=full_replay", row["pos"], checked
        )
        return State(), {}, 0, 0
    state, heads = checked
    return state, heads, sum(seq for seq, _ in heads.values()), int(row["pos"])


async def _office_snapshot(
    conn: Any, identity: str, public: Ed25519PublicKey | None, office: str
) -> tuple[State, State, tuple[int, str]] | None:
    """The newest snapshot, of any node, that covers ``office`` and checks out: its state
    twice (the hub's copy and the writer's replica's: ``take_office`` takes its objects)
    and the office's head in it (what adopting the office starts from), else None."""
    row = await conn.fetchrow(
        _SNAPSHOT_COLUMNS + " WHERE heads::jsonb ? $1 ORDER BY id DESC LIMIT 1", office
    )
    if row is None:
        return None
    checked = await _checked_snapshot(conn, row, identity, public, [office])
    if isinstance(checked, str):
        log.warning(
            "event=snapshot_ignored pos=%d office=%s reason=%s action=stream_replay",
            row["pos"], office, checked,
        )  # fmt: skip
        return None
    state, heads = checked
    return state, _state_decoder.decode(row["body"]), heads[office]


async def _checked_snapshot(
    conn: Any,
    row: Any,
    identity: str,
    public: Ed25519PublicKey | None,
    streams: list[str] | None = None,
) -> tuple[State, Heads] | str:
    """A snapshot row's state and heads if it checks out (the heads of ``streams``, else of
    all, are the stored rows' hashes; the body its hash; the signature, with ``public``),
    else the reason it does not."""
    try:
        heads: Heads = {s: (int(h[0]), str(h[1])) for s, h in json.loads(row["heads"]).items()}
    except (ValueError, TypeError, IndexError, AttributeError):
        return "heads_unreadable"
    for stream in heads if streams is None else streams:
        seq, head = heads[stream]
        stored = await conn.fetchval(
            "SELECT hash FROM lapak_events WHERE stream = $1 AND seq = $2", stream, seq
        )
        if stored != head:
            return "chain_mismatch"
    if state_hash(row["body"]) != row["state_hash"]:
        return "state_hash_mismatch"
    if public is not None:
        mark = snapshot_mark(identity, row["pos"], heads, row["state_hash"], row["at"])
        mark = dataclasses.replace(mark, signature=row["signature"], key_id=row["key_id"])
        if not signing.is_valid(mark, public):
            return "no_signed_checkpoint"
    try:
        return _state_decoder.decode(row["body"]), heads
    except msgspec.DecodeError:
        return "does_not_decode"


class _Policy(Marks):
    """The SQLite log's snapshot and checkpoint policy (when each is due), counted in events
    this node has in its log; the writing itself is PostgreSQL's (below)."""

    def took_snapshot(self) -> None:
        self.since_snapshot = 0
        self._last_snapshot = time.monotonic()
        self.snapshots += 1

    def took_checkpoint(self, count: int) -> None:
        self.checkpoint_seq = count
        self._last_checkpoint_t = time.monotonic()
        self.checkpoints += 1

    def snapshot_due(self) -> bool:
        return self._snapshot_due()

    def checkpoint_due(self, count: int) -> bool:
        return self._checkpoint_due(count)


Entry = tuple[list[Event], "asyncio.Future[None]", float, Durable | None, dict[str, bytes]]
_PUT_KEYS = """
INSERT INTO lapak_visit_keys (visit, key) SELECT * FROM unnest($1::text[], $2::bytea[])
ON CONFLICT (visit) DO UPDATE SET key = EXCLUDED.key
"""


class _FetchedKeys:
    """Visit keys read from ``lapak_visit_keys`` (a read-only ``KeyStore`` for ``reveal``)."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        self.keys = keys

    def put(self, visit: str, key: bytes) -> None:
        self.keys[visit] = key

    def get(self, visit: str) -> bytes | None:
        return self.keys.get(visit)

    def destroy(self, visit: str) -> bool:
        return self.keys.pop(visit, None) is not None


async def reveal_pg(conn: Any, state: State) -> int:
    """Open the sealed personal data of the visits in ``state`` with the keys the store
    holds (the SQLite path's ``visitkeys.reveal``); purged visits have no key left."""
    sealed = [v.id for v in state.visits.values() if v.sealed is not None]
    if not sealed:
        return 0
    rows = await conn.fetch(
        "SELECT visit, key FROM lapak_visit_keys WHERE visit = ANY($1::text[])", sealed
    )
    return reveal(state, _FetchedKeys({r["visit"]: bytes(r["key"]) for r in rows}))


class PgLog(MarkFigures):
    """The store's writer for one node. ``fence``: office -> epoch this node holds (leases
    on): every transaction checks them."""

    marks: _Policy

    def __init__(
        self,
        pool: asyncpg.Pool,
        loaded: PgLoaded,
        snapshot_every: int = 10_000,
        snapshot_min_s: float = 0.0,
        *,
        node: str = "single",
        signer: Signer | None = None,
        checkpoint_every: int = CHECKPOINT_EVERY,
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
        on_commit: Callable[[float], None] | None = None,
        fence: dict[str, int] | None = None,
    ) -> None:
        self.pool = pool
        self.node = node
        self.on_commit = on_commit
        self.fence = fence
        self.heads: Heads = dict(loaded.heads)
        self.signed: dict[str, int] = dict(loaded.checkpointed)
        self.router = StreamRouter(loaded.state)
        self.log_id = loaded.log_id
        self._count = loaded.count
        self.marks = _Policy(
            loaded.state, loaded.log_id, loaded.count - loaded.from_snapshot,
            loaded.count if self._all_signed() else 0, snapshot_every=snapshot_every,
            snapshot_min_s=snapshot_min_s, signer=signer, checkpoint_every=checkpoint_every,
            checkpoint_interval_s=checkpoint_interval_s,
        )  # fmt: skip
        self.signer = signer
        self._pending: list[Entry] = []
        self._wake = asyncio.Event()
        self._writing = asyncio.Lock()  # a transaction in flight, or an adoption applying
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.failure: LogError | None = None
        self.on_fenced: Callable[[Fenced], None] | None = None
        self.appended = 0
        self.commits = 0
        self.last_commit_ms = 0.0

    def _all_signed(self) -> bool:
        return all(self.signed.get(s, 0) >= seq for s, (seq, _) in self.heads.items())

    def _interval_changed(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lapak-pglog")

    def append(
        self,
        events: list[Event],
        then: Durable | None = None,
        keys: dict[str, bytes] | None = None,
    ) -> asyncio.Future[None]:
        """Queue events; the future resolves once they (and all before them) are committed;
        ``then(future)`` runs right after, in commit order. ``keys`` (visit -> key) go into
        ``lapak_visit_keys`` in the transaction of the events; a ``visit_purged`` event
        deletes its visit's key in its own (as the SQLite log does)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._closed or self.failure is not None or self._task is None:
            fut.set_exception(self.failure or LogError("the event log is closed"))
            if then is not None:
                fut.add_done_callback(then)
            return fut
        self._pending.append((events, fut, time.perf_counter(), then, keys or {}))
        self._wake.set()
        return fut

    async def close(self) -> None:
        """Write what is queued, then a final snapshot and checkpoint."""
        if self._task is None:
            return
        self._closed = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 30)
        except TimeoutError:
            self._task.cancel()
        self._task = None

    def problem(self) -> str | None:
        if self.failure is not None:
            return f"event log write failed: {self.failure}"
        return None

    # -- the writer task ---------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                if not self._pending:
                    if self._closed:
                        break
                    self._wake.clear()
                    timeout = self.marks.timeout(self._count)
                    try:
                        await asyncio.wait_for(self._wake.wait(), timeout)
                    except TimeoutError:  # quiet: sign the heads
                        await self._final(snapshot=False)
                    continue
                batch, self._pending = self._pending, []
                if not await self._commit(batch):
                    break  # memory is ahead of the store now: take no more writes
            if self.failure is None:
                await self._final(snapshot=True)
        except STORE_ERRORS as exc:
            self._fail(exc)
        finally:
            self._refuse_pending()

    async def _commit(self, batch: list[Entry]) -> bool:
        """Write a batch and resolve its futures. Fenced: the entries that touch an office
        this node lost fail (no ack); the rest are written again without them."""
        routes = [[self.router.route(e) for e in entry[0]] for entry in batch]
        exc: LogError | None = None
        failed: dict[int, LogError] = {}
        todo = [i for i, entry in enumerate(batch) if entry[0]]
        while todo:
            events = [e for i in todo for e in batch[i][0]]
            streams = [s for i in todo for s in routes[i]]
            keys = {v: k for i in todo for v, k in batch[i][4].items()}
            try:
                await self._write(events, streams, keys)
                break
            except Fenced as fenced:
                log.error("event=fenced offices=%s", ",".join(fenced.offices))
                lost = set(fenced.offices)
                for i in todo:
                    if lost & set(routes[i]):
                        failed[i] = fenced
                todo = [i for i in todo if i not in failed]
                if self.on_fenced is not None:
                    self.on_fenced(fenced)
            except STORE_ERRORS as err:
                exc = self._fail(err)
                break
        done = time.perf_counter()
        for i, (_, fut, _, then, _) in enumerate(batch):
            if fut.done():
                continue
            refused = exc or failed.get(i)
            if refused is None:
                fut.set_result(None)
            else:
                fut.set_exception(refused)
            if then is not None:
                try:
                    then(fut)
                except Exception:
                    log.exception("event=commit_callback_failed")
        if exc is not None:
            return False
        if self.on_commit is not None:
            for entry in batch:
                if entry[0]:
                    self.on_commit(done - entry[2])
        return True

    async def _write(
        self, events: list[Event], routes: list[str], keys: dict[str, bytes] | None = None
    ) -> None:
        async with self._writing:
            await self._write_now(events, routes, keys)

    async def _write_now(
        self, events: list[Event], routes: list[str], keys: dict[str, bytes] | None = None
    ) -> None:
        """One transaction: the fence check, the rows, a snapshot/checkpoint if due."""
        started = time.perf_counter()
        heads = dict(self.heads)
        cols: tuple[list[Any], ...] = ([], [], [], [], [], [])
        for event, stream in zip(events, routes, strict=True):
            body = encode_event(event)
            kind = event_kind(event)
            seq, previous = heads.get(stream, (0, GENESIS))
            seq += 1
            row_hash = chain(previous, seq, event.at, kind, body)
            heads[stream] = (seq, row_hash)
            for col, value in zip(cols, (stream, seq, event.at, kind, body, row_hash), strict=True):
                col.append(value)
        streams = sorted(set(cols[0]))
        count = self._count + len(events)
        async with self.pool.acquire() as conn, conn.transaction():
            if self.fence is not None:
                await self._check_fence(conn, streams)
            await conn.execute(_INSERT, *cols)
            if keys:
                await conn.execute(_PUT_KEYS, list(keys), list(keys.values()))
            purged = [e.visit for e in events if isinstance(e, VisitPurged)]
            if purged:  # the key goes in the transaction that logs its purge
                await conn.execute(
                    "DELETE FROM lapak_visit_keys WHERE visit = ANY($1::text[])", purged
                )
            self.marks.advance(events, count)
            try:
                await self._marks_if_due(conn, count, heads)
            except BaseException:
                self.marks.replica_ok = False  # it holds events that were rolled back
                raise
        self.heads, self._count = heads, count
        self.appended += len(events)
        self.commits += 1
        self.last_commit_ms = (time.perf_counter() - started) * 1000

    async def _check_fence(self, conn: Any, streams: list[str]) -> None:
        assert self.fence is not None
        rows = await conn.fetch(
            "SELECT office, epoch, owner_node FROM lapak_offices WHERE office = ANY($1::text[]) "
            "FOR SHARE",
            streams,
        )
        found = {r["office"]: (int(r["epoch"]), r["owner_node"]) for r in rows}
        lost = [
            s for s in streams
            if s not in self.fence or found.get(s) != (self.fence[s], self.node)
        ]  # fmt: skip
        if lost:
            for office in lost:
                self.fence.pop(office, None)
            raise Fenced(lost)

    async def _marks_if_due(self, conn: Any, count: int, heads: Heads) -> None:
        snap = ""
        if self.marks.snapshot_due():
            snap = await self._snapshot(conn, heads)
        if snap or self.marks.checkpoint_due(count):
            await self._checkpoint(conn, count, heads)

    async def _final(self, snapshot: bool) -> None:
        async with self._writing:
            await self._final_now(snapshot)

    async def _final_now(self, snapshot: bool) -> None:
        if not self.marks.final_due(self._count, snapshot):
            return
        async with self.pool.acquire() as conn, conn.transaction():
            if self.fence is not None:
                owned = [s for s in self.heads if s in self.fence]
                try:
                    await self._check_fence(conn, owned)
                except Fenced:
                    return  # not ours to sign any more
            if snapshot and self.marks.replica_ok and self.marks.since_snapshot > 0:
                await self._snapshot(conn, self.heads)
            await self._checkpoint(conn, self._count, self.heads)

    async def _snapshot(self, conn: Any, heads: Heads) -> str:
        started = time.perf_counter()
        body = _state_encoder.encode(self.marks.replica)
        digest = state_hash(body)
        at = round(time.time(), 3)
        pos = int(await conn.fetchval("SELECT coalesce(max(pos), 0) FROM lapak_events"))
        mark = snapshot_mark(self.log_id, pos, heads, digest, at)
        if self.signer is not None:
            mark = self.signer.sign(mark)
        text = json.dumps({s: list(h) for s, h in heads.items()})
        await conn.execute(
            "INSERT INTO lapak_snapshots (node, pos, heads, state_hash, body, at, signature, "
            "key_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            self.node, pos, text, digest, body, at, mark.signature, mark.key_id,
        )  # fmt: skip
        await conn.execute(
            "DELETE FROM lapak_snapshots WHERE node = $1 AND id < "
            "(SELECT max(id) FROM lapak_snapshots WHERE node = $1)",
            self.node,
        )
        self.marks.took_snapshot()
        log.info(
            "event=snapshot pos=%d streams=%d bytes=%d ms=%.1f",
            pos, len(heads), len(body), (time.perf_counter() - started) * 1000,
        )  # fmt: skip
        return digest

    async def _checkpoint(self, conn: Any, count: int, heads: Heads) -> None:
        """Sign the head of every stream that moved since its last checkpoint."""
        at = round(time.time(), 3)
        rows = []
        for stream, (seq, head) in sorted(heads.items()):
            if self.signed.get(stream, 0) >= seq:
                continue
            if self.fence is not None and stream not in self.fence:
                continue
            mark = Checkpoint(f"{self.log_id}:{stream}", seq, head, "", at)
            if self.signer is not None:
                mark = self.signer.sign(mark)
            rows.append((stream, seq, head, at, mark.log_id, mark.signature, mark.key_id))
        if rows:
            await conn.executemany(
                "INSERT INTO lapak_checkpoints (stream, seq, hash, at, log_id, signature, "
                "key_id) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                rows,
            )
            for stream, seq, *_ in rows:
                self.signed[stream] = seq
        self.marks.took_checkpoint(count)

    async def adopt(self, office: str, state: State) -> int:
        """An office this node just took (its lease and epoch already ours): bring ``state``
        (the hub's) and the writer's replica up to the stream's head, checked as at
        start-up. An office this node does not know starts from the newest snapshot that
        covers it (any node's: the previous owner's, usually), then the rows after it; else
        from the stream's first row. The number of rows applied."""
        started = time.perf_counter()
        covered = 0
        base: tuple[State, State, tuple[int, str]] | None = None
        async with self.pool.acquire() as conn:
            seq_before, previous = self.heads.get(office, (0, GENESIS))
            if office not in self.heads:
                public = self.signer.public if self.signer is not None else None
                base = await _office_snapshot(conn, self.log_id, public, office)
                if base is not None:
                    seq_before, previous = base[2]
                    covered = seq_before
            rows = await conn.fetch(
                "SELECT seq, at, kind, body, hash FROM lapak_events WHERE stream = $1 "
                "AND seq > $2 ORDER BY seq",
                office, seq_before,
            )  # fmt: skip
            signed = await conn.fetchval(
                "SELECT coalesce(max(seq), 0) FROM lapak_checkpoints WHERE stream = $1", office
            )
        events: list[Event] = []
        head = (seq_before, previous)
        for seq, row_hash, event, problems in check_rows(
            stream_rows(rows), SCHEMA_VERSION, previous, seq_before + 1
        ):
            if problems or seq is None or row_hash is None or event is None:
                detail = problems[0] if problems else "unreadable"
                raise ChainBroken(seq or seq_before + 1, f"stream {office}: {detail}")
            events.append(event)
            head = (seq, row_hash)
        # No await from here to the end of the block: the writer's transaction (which reads
        # and replaces the heads, the count and the replica) cannot run in between.
        async with self._writing:
            if base is not None:
                take_office(state, base[0], office)
                take_office(self.marks.replica, base[1], office)
                self.router.learn(base[0], office)
            for event in events:
                self.router.route(event)
                apply(state, event)
            if base is not None or events:
                self.heads[office] = head
            self._count += covered + len(events)
            self.marks.advance(events, self._count)
            for held in (state, self.marks.replica):  # retention walks them oldest end first
                held.keyed = dict(sorted(held.keyed.items(), key=lambda kv: kv[1].ended_at))
            self.signed[office] = max(self.signed.get(office, 0), int(signed))
        async with self.pool.acquire() as conn:
            await reveal_pg(conn, state)
        log.info(
            "event=office_adopted office=%s events=%d from_snapshot=%d ms=%.1f",
            office, len(events), covered, (time.perf_counter() - started) * 1000,
        )  # fmt: skip
        return len(events)

    def forget(self, office: str) -> asyncio.Future[None]:
        """This node no longer owns ``office`` and forgot it (``state.forget_office``): once
        every batch queued before now is written (in commit order, so none of them can put
        the office back), its stream's head, visits and desks go too, so that taking it
        again adopts the stream from its first row. Resolves then."""
        return self.append([], then=lambda _: self._forget_now(office))

    def _forget_now(self, office: str) -> None:
        self.heads.pop(office, None)
        self.router.visits = {v: o for v, o in self.router.visits.items() if o != office}
        self.router.desks = {d: o for d, o in self.router.desks.items() if o != office}
        forget_office(self.marks.replica, office)
        log.info("event=office_forgotten office=%s", office)

    def _fail(self, err: BaseException) -> LogWriteFailed:
        failure = LogWriteFailed(err)
        self.failure = failure
        log.error("event=log_write_failed reason=store error=%r", str(err))
        return failure

    def _refuse_pending(self) -> None:
        self._closed = True
        batch, self._pending = self._pending, []
        exc = self.failure or LogError("the event log is closed")
        for _, fut, _, then, _ in batch:
            if not fut.done():
                fut.set_exception(exc)
                if then is not None:
                    then(fut)


def stream_rows(rows: Iterable[Any]) -> list[tuple[object, ...]]:
    """asyncpg records as the tuples ``check_rows`` reads (seq, at, kind, body, hash)."""
    return [(r["seq"], r["at"], r["kind"], r["body"], r["hash"]) for r in rows]
