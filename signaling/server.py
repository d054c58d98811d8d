"""The asyncio shell around ``Hub``: websockets in, durable log, websockets out.

It owns the I/O the core must not do: sockets, the event log, per-connection sends,
clocks and signals. Outputs of a frame are delivered only after its events are durable,
and deliveries happen in commit order. HTTP routes, the Origin check, the connection bound,
the garbage-collection policy, the tick and TLS reload live in their own modules
(http_routes, origins, admission, gc_policy, ticker, tls).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from lapak.signaling import protocol as p
from lapak.signaling import tls
from lapak.signaling.admission import Admission
from lapak.signaling.config import WIRE_MAX_FRAME_BYTES, ServerConfig, listen_backlog
from lapak.signaling.datadir import DataDir, open_data_dir
from lapak.signaling.delivery import Outbox, Peer
from lapak.signaling.direct_read import DirectTextServerConnection
from lapak.signaling.domain import State
from lapak.signaling.enrolment import ENROLMENTS_FILE, EnrolDesk, Enrolment
from lapak.signaling.eventlog import EventLog, LogError, load
from lapak.signaling.gc_policy import (
    YOUNG_EVERY_S,
    DeadConnections,
    collect_young,
    freeze_loaded_state,
)
from lapak.signaling.host import HostZone, new_session_id, random_bytes
from lapak.signaling.http_routes import HttpRoutes
from lapak.signaling.hub import Clock, Hub, Result
from lapak.signaling.ice import load_ice
from lapak.signaling.messages import Error, Moved
from lapak.signaling.metrics import ServerMetrics, StoreGauges
from lapak.signaling.origins import OriginCheck, own_origins
from lapak.signaling.protocol import CloseCode
from lapak.signaling.revocation import REVOKED_FILE, RevocationWatch
from lapak.signaling.signing import Signer
from lapak.signaling.state import forget_office
from lapak.signaling.ticker import Ticker
from lapak.signaling.tokens import KeyRing, key_id

if TYPE_CHECKING:
    import sqlite3

    import asyncpg

    from lapak.signaling.leases import Leases
    from lapak.signaling.pglog import Fenced, PgLog
    from lapak.signaling.pgoverview import Overviews

log = logging.getLogger("lapak.signal")

SHUTDOWN_CLOSE_CODE = 1001  # going away: sent after every committed answer has been written
LEASE_LOST_CLOSE_CODE = CloseCode.MOVED  # the office's lease is lost or held elsewhere
NO_OFFICE = ""  # served-offices entry no token matches: a node holding no lease serves none


class SignalServer:
    def __init__(
        self,
        data_dir: Path,
        keys: KeyRing,
        host: str = "127.0.0.1",
        port: int = 8765,
        clock: Callable[[], float] = time.time,
        config: ServerConfig | None = None,
        ssl_context: ssl.SSLContext | None = None,
        tune_gc: bool = False,
        secret_file: Path | None = None,
        mono: Callable[[], float] = time.monotonic,
        signer: Signer | None = None,
        tls_files: tls.CertFiles | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.keys = keys
        self.host = host
        self.port = port
        self.clock = clock  # wall clock: event times, token expiry
        self.mono = mono  # monotonic clock: durations (grace periods, rates)
        self.config = config or ServerConfig()
        self.tls_files = tls_files  # re-read on SIGHUP (certificate renewal without restart)
        if ssl_context is None and tls_files is not None:
            ssl_context = tls_files.context()
        self.ssl_context = ssl_context
        self.tune_gc = tune_gc
        self.secret_file = secret_file  # re-read on SIGHUP (key rotation without restart)
        self.signer = signer  # signs the log's checkpoints (None: unsigned, e.g. tests)
        self.datadir: DataDir | None = None
        self.draining = False  # shutting down: frames are no longer read
        self.metrics = ServerMetrics()
        self.dead = DeadConnections()
        self.admission = Admission(
            self.config.connection_limit, self.metrics, self.dead.connection_closed
        )
        self.origins = OriginCheck(set(), tls=ssl_context is not None)
        self.enrol = EnrolDesk(data_dir / ENROLMENTS_FILE, self._enrolled, clock)
        self.routes = HttpRoutes(
            self.origins, self.metrics, self.health, self._metrics_text, self.enrol
        )
        self.ticker = Ticker(self._tick)
        self.young_gc = Ticker(collect_young, YOUNG_EVERY_S, name="young-gc")  # tune_gc
        self.revocations = RevocationWatch(data_dir / REVOKED_FILE)  # polled each tick
        self.hub: Hub | None = None
        self.log: EventLog | PgLog | None = None
        self.node = "single"  # this node's name in the store (its URL under leases)
        self._conn: sqlite3.Connection | None = None  # the SQLite log's, until it starts
        self._pool: asyncpg.Pool | None = None  # the PostgreSQL store's
        self.leases: Leases | None = None  # with node_url: the offices this node owns
        self._wanted: list[str] = []  # offices it serves: it owns those placement gives it
        self._serving: set[str] = set()  # held and adopted: hellos admitted
        self._evicting: set[str] = set()  # being handed over or dropped: neither served nor taken
        self._evictions: set[asyncio.Task[None]] = set()
        self._handover: asyncio.Task[None] | None = None  # one hand-over at a time
        self._lease_task: asyncio.Task[None] | None = None
        self._owners: dict[str, str] = {}  # office -> URL of the other node that owns it
        self._preferred: dict[str, str] = {}  # office -> URL of the node placement gives it
        self._renewed_at: float | None = None  # monotonic time of the last lease renewal
        self.overviews: Overviews | None = None  # with node_url: offices' figures in the store
        self._overview_task: asyncio.Task[None] | None = None
        self._server: Server | None = None
        self.outbox = Outbox(self.metrics, self._log_failed)
        self._peers = self.outbox.peers  # conn id -> its socket and state
        self._fatal: asyncio.Future[BaseException] | None = None

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://{self.host}:{self.port}/ws"

    @property
    def limit(self) -> int:
        return self.admission.limit

    @property
    def ticks(self) -> int:
        return self.ticker.ticks

    async def start(self) -> None:
        if self.config.launch.store:
            state = await self._open_store(self.config.launch.store)
        else:
            state = await self._open_sqlite()
        if self.leases is not None:  # taking the leases at start was their first renewal
            self._renewed_at = self.mono()
        self.hub = Hub(
            self.keys, state, self.config, clock=Clock(self.clock, self.mono),
            new_session_id=new_session_id, tz=HostZone(), ice=load_ice(self.config.ice),
            random_bytes=random_bytes,
        )  # fmt: skip
        del state
        if self.tune_gc:
            freeze_loaded_state()
            self.young_gc.start()
        if isinstance(self.log, EventLog):
            self.log.start(self._conn)
            self._conn = None
            self.log.on_resolved = self.outbox.flush_writes  # one write per client per commit
            self.outbox.batching = True
        elif self.log is not None:
            self.log.start()
        loop = asyncio.get_running_loop()
        self._fatal = loop.create_future()
        self.check_revocations(force=True)
        bootstrap = self.hub.bootstrap()
        if bootstrap:
            assert self.log is not None
            await self.log.append(bootstrap)
        self.ticker.start()
        self.admission.install(loop)
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self.routes,
            max_size=WIRE_MAX_FRAME_BYTES,
            compression=None,
            ping_interval=20,
            ping_timeout=20,
            ssl=self.ssl_context,
            backlog=listen_backlog(),
            create_connection=self.admission.connection_class(),
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        tls_on = self.ssl_context is not None
        self.origins.allowed = own_origins(self.host, self.port, tls_on)
        self.origins.allowed |= self.config.configured_origins()
        log.info(
            "event=listening host=%s port=%d data_dir=%s max_connections=%d",
            self.host, self.port, self.data_dir, self.limit,
        )  # fmt: skip

    async def _open_sqlite(self) -> State:
        """The SQLite log in the data directory: checked, locked, replayed."""
        # Checked, private and locked before anything else (signaling/datadir.py); the one
        # connection it opened is then replayed from and handed to the log's writer.
        self.datadir = await asyncio.to_thread(open_data_dir, self.data_dir, self.signer)
        conn = self.datadir.take_connection()
        started = time.perf_counter()
        public = self.signer.public if self.signer else None
        try:
            loaded = await asyncio.to_thread(load, conn, public)
        except BaseException:
            conn.close()
            self.datadir.close()
            raise
        log.info(
            "event=replayed events=%d from_snapshot=%d visits=%d ms=%.1f",
            loaded.replayed,
            loaded.from_snapshot,
            len(loaded.state.visits),
            (time.perf_counter() - started) * 1000,
        )
        self.log = await asyncio.to_thread(
            EventLog, self.datadir.log_path, loaded, self.config.snapshot_every,
            self.config.snapshot_min_s, signer=self.signer, marker=self.datadir.marker_path,
            on_commit=self.metrics.commit_latency.observe,
        )  # fmt: skip
        self._conn = conn
        return loaded.state

    async def _open_store(self, url: str) -> State:
        """The PostgreSQL store (signaling/pglog.py): a pool, then a replay of its streams.
        The data directory still holds enrolments and the revocation list."""
        from lapak.signaling.leases import Leases
        from lapak.signaling.pglog import PgLog, connect_pool, load_pg, redact
        from lapak.signaling.placement import share

        await asyncio.to_thread(self.data_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        self._pool = await connect_pool(url)
        started = time.perf_counter()
        public = self.signer.public if self.signer else None
        launch = self.config.launch
        try:
            streams = None
            if launch.node_url:
                self.node = launch.node_url
                self._wanted = [*self.config.offices, "*"]
                self.leases = Leases(
                    self._pool, self.node, launch.node_url, launch.lease_s, self._wanted
                )
                await self.leases.heartbeat()
                mine = share(await self.leases.live(), self.node)
                for office in self._wanted:
                    if office in mine:  # the others' go to them; held ones are handed over
                        await self.leases.acquire(office)
                streams = set(self.leases.held)
                self._serving = set(streams)
                self._serve_held()
            loaded = await load_pg(self._pool, public, node=self.node, streams=streams)
        except BaseException:
            await self._pool.close()
            raise
        log.info(
            "event=replayed store=%s events=%d from_snapshot=%d visits=%d ms=%.1f",
            redact(url), loaded.replayed, loaded.from_snapshot, len(loaded.state.visits),
            (time.perf_counter() - started) * 1000,
        )  # fmt: skip
        self.log = PgLog(
            self._pool, loaded, self.config.snapshot_every, self.config.snapshot_min_s,
            node=self.node, signer=self.signer, on_commit=self.metrics.commit_latency.observe,
            fence=self.leases.held if self.leases else None,
        )  # fmt: skip
        self.log.on_fenced = self._fenced
        return loaded.state

    # -- leases (signaling/leases.py): which offices this node owns ---------------------

    def _serve_held(self) -> None:
        """Admit hellos only for the offices this node holds and has adopted, and is not
        handing over (``[server] offices`` is what ``hello`` checks; ``NO_OFFICE`` keeps an
        empty list from meaning "any")."""
        assert self.leases is not None
        held, leaving = self.leases.held, self._evicting
        served = sorted(o for o in self._serving if o != "*" and o in held and o not in leaving)
        self.config.offices[:] = served or [NO_OFFICE]

    def _drop_offices(self, offices: list[str]) -> None:
        """Another node owns these offices now (fenced, or the renewal found them taken):
        serve them no more, close their clients so that they reconnect to the owner, and
        forget them (``_evict``); placement may give them back later, adopted afresh."""
        for office in offices:
            if self.leases is not None:
                self.leases.held.pop(office, None)
            if office not in self._evicting:
                self._start_eviction(office, release=False)

    def _start_eviction(self, office: str, release: bool) -> asyncio.Task[None]:
        self._evicting.add(office)
        self._serving.discard(office)
        if self.leases is not None:
            self._serve_held()
        task = asyncio.get_running_loop().create_task(self._evict(office, release))
        self._evictions.add(task)
        task.add_done_callback(self._evictions.discard)
        return task

    async def _evict(self, office: str, release: bool) -> None:
        """Stop serving ``office``: its clients read no more frames, get the answers already
        decided (commit order), then close ``LEASE_LOST_CLOSE_CODE``; once they are gone,
        the office is forgotten in memory and in the writer (after every batch queued
        before); ``release``: then its lease ends now, for the node placement gives it.
        A fenced node never writes with the old epoch: it adopts the office again, from
        the store's first row, with a new one."""
        from lapak.signaling.pglog import STORE_ERRORS, PgLog

        assert self.hub is not None
        try:
            closes = []
            if office != "*":  # clients spanning offices are not the office's
                for conn_id, conn in self.hub.conns.items():
                    if conn.claims is None or conn.claims.office != office:
                        continue
                    peer = self._peers.get(conn_id)
                    if peer is not None:
                        peer.stop_reading = True
                    closes.append((conn_id, LEASE_LOST_CLOSE_CODE, "this office moved"))
            log.warning(
                "event=office_leaving office=%s handover=%s closed=%d",
                office, release, len(closes),
            )  # fmt: skip
            if closes and self.log is not None:
                self._commit_then_deliver(Result(closes=closes), 0)
            await self._gone([c for c, _, _ in closes])
            forget_office(self.hub.state, office)
            for place in [p for p in self.hub.away if p[1] == office]:
                del self.hub.away[place]
            if isinstance(self.log, PgLog):
                with contextlib.suppress(Exception):  # a failed log stops the node anyway
                    await self.log.forget(office)
            if release and self.leases is not None:
                await self.leases.release_one(office)
        except STORE_ERRORS as exc:  # the lease lapses by itself
            log.warning("event=handover_failed office=%s error=%r", office, str(exc))
        finally:
            self._evicting.discard(office)

    async def _gone(self, conn_ids: list[int], wait_s: float = 5.0) -> None:
        """Until these connections have left the hub: a client that does not answer the
        close within ``wait_s`` has its transport cut."""
        assert self.hub is not None
        hub = self.hub
        deadline = self.mono() + wait_s
        while any(c in hub.conns for c in conn_ids):
            if self.mono() >= deadline:
                for conn_id in conn_ids:
                    peer = self._peers.get(conn_id)
                    if peer is not None and peer.ws.transport is not None:
                        peer.ws.transport.abort()
                deadline = self.mono() + wait_s
            await asyncio.sleep(0.05)

    def _adopted(self, office: str) -> None:
        """An office just adopted: its open booths and occupied desks are away from now
        (as after a restart), so the grace period gives up those that never come back, and
        the sessions the previous owner gave resume here within it (signaling/resume.py)."""
        assert self.hub is not None
        self.hub.adopted(office)
        self._serving.add(office)
        self._serve_held()

    async def _lease_round(self) -> None:
        """Each tick: heartbeat, renew, drop what was lost; read the live nodes and the
        placement (signaling/placement.py); take this node's share where it is free; hand
        over at most one office that placement gives another live node (one at a time, so
        that a node joining does not drop every office at once)."""
        from lapak.signaling.pglog import STORE_ERRORS, PgLog
        from lapak.signaling.placement import place

        assert self.leases is not None and self.hub is not None
        leases = self.leases
        try:
            await leases.heartbeat()
            lost = await leases.renew()
            self._renewed_at = self.mono()
            if lost:
                self._drop_offices(lost)
            plan = place(await leases.live())
            self._preferred = {o: leases.urls[n] for o, n in plan.items() if n in leases.urls}
            for office in self._wanted:
                if plan.get(office) != self.node or office in self._evicting:
                    continue
                if office in leases.held or await leases.acquire(office) is None:
                    continue
                try:
                    if isinstance(self.log, PgLog):
                        await self.log.adopt(office, self.hub.state)
                except LogError as exc:  # a stream that does not check out: not served here
                    log.error("event=adopt_failed office=%s error=%s", office, exc)
                    await leases.release_one(office)
                    continue
                self._adopted(office)
            self._owners = await leases.owners()
            if self._handover is None or self._handover.done():
                for office in sorted(leases.held):
                    target = plan.get(office)
                    if target not in (None, self.node) and office not in self._evicting:
                        self._handover = self._start_eviction(office, release=True)
                        break
        except STORE_ERRORS as exc:
            log.warning("event=lease_round_failed error=%r", str(exc))

    # -- every office's overview for "*" supervisors (signaling/overview.py) -------------

    async def _overview_round(self) -> None:
        """Each tick: publish this node's offices' figures, read the other nodes' back."""
        from lapak.signaling.overview import RemoteOffices
        from lapak.signaling.pglog import STORE_ERRORS
        from lapak.signaling.pgoverview import Overviews

        assert self.hub is not None and self.leases is not None and self._pool is not None
        if self.overviews is None:
            self.overviews = Overviews(self._pool, self.node)
        ours = sorted(o for o in self.leases.held if o != "*")
        try:
            await self.overviews.publish(self.hub.office_digests(ours))
            digests = await self.overviews.read()
        except STORE_ERRORS as exc:
            log.warning("event=overview_round_failed error=%r", str(exc))
            return
        local = {o for o in self.leases.held if o != "*"}
        theirs = {o: d for o, d in digests.items() if o not in local}
        self.hub.remote = RemoteOffices(local=local, digests=theirs, owners=dict(self._owners))

    async def wait_fatal(self) -> BaseException:
        assert self._fatal is not None
        return await self._fatal

    def _tick(self) -> None:
        assert self.hub is not None
        self.check_revocations()
        if self.leases is not None and (self._lease_task is None or self._lease_task.done()):
            self._lease_task = asyncio.get_running_loop().create_task(self._lease_round())
        if self.leases is not None and (self._overview_task is None or self._overview_task.done()):
            self._overview_task = asyncio.get_running_loop().create_task(self._overview_round())
        result = self.hub.tick()
        if self.tune_gc:
            self.dead.collect_if_due(len(self.admission.sockets))
        if result.events or result.outputs or result.closes:
            self._count(result)
            self._commit_then_deliver(result, 0)

    async def close(self) -> None:
        """Drain, then stop: accept nothing and read nothing more, wait until every event
        already decided is durable and its answers are written, then close every
        connection with 1001 (after those answers, on the same TCP stream)."""
        self.draining = self.admission.draining = True
        log.info("event=draining connections=%d", len(self._peers))
        await self.ticker.stop()
        await self.young_gc.stop()
        if self._server is not None:
            self._server.server.close()  # stop accepting; open connections stay
            if self.log is not None and not self._failed():
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(30):
                        await self.log.append([])  # commit order: everything before is out
                log.info("event=drained")
            self._server.close(code=SHUTDOWN_CLOSE_CODE, reason="server shutting down")
            with contextlib.suppress(TimeoutError):  # each close handshake waits <= 10 s
                async with asyncio.timeout(15):
                    await self._server.wait_closed()
            self._server = None
        await self.outbox.cancel_closers()
        if self._overview_task is not None:  # before the pool closes under it
            self._overview_task.cancel()
            with contextlib.suppress(BaseException):
                await self._overview_task
        if self.log is not None:
            await self.log.close()  # final snapshot and checkpoint
            self.log = None
        for task in [self._lease_task, *self._evictions]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if self.leases is not None and self._pool is not None:
            with contextlib.suppress(Exception):  # a lost store: the leases lapse by themselves
                await self.leases.release()  # hand the offices over at once
                await self.leases.leave()  # and the others re-plan without this node now
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self.datadir is not None:
            self.datadir.close()
            self.datadir = None
        self.admission.uninstall()
        log.info("event=stopped")

    def _failed(self) -> bool:
        """Did the log fail? (``run_server`` cancels its waiter, which cancels the future.)"""
        fatal = self._fatal
        return fatal is not None and fatal.done() and not fatal.cancelled()

    def reload(self) -> None:
        """SIGHUP: re-read the key ring and the TLS certificate files."""
        self.reload_keys()
        self.check_revocations(force=True)
        if self.tls_files is not None and self.ssl_context is not None:
            tls.reload(self.ssl_context, self.tls_files)

    def check_revocations(self, force: bool = False) -> None:
        """A changed revocation list goes to the hub; connections it names are closed."""
        revoked = self.revocations.poll(force)
        if revoked is None or self.hub is None:
            return
        result = self.hub.revoke(revoked)
        if result.closes:
            log.info("event=revoked_closed connections=%d", len(result.closes))
            self._commit_then_deliver(result, 0)

    def _enrolled(self, enrolment: Enrolment) -> str:
        """The booth token an enrolment code is exchanged for (the role's longest lifetime)."""
        office, booth = enrolment.office, enrolment.booth
        ttl = self.config.ttl_max("booth")
        token = self.keys.issue("booth", booth, office, booth=booth, ttl=ttl, now=self.clock())
        log.info("event=enrolled office=%s booth=%s ttl_s=%g", office, booth, ttl)
        return token

    def reload_keys(self) -> bool:
        """Re-read the secret file: new tokens are checked against the new ring at once;
        connections already authenticated keep going until their token expires."""
        if self.secret_file is None:
            log.warning("event=keys_not_reloaded reason=no_secret_file")
            return False
        try:
            keys = KeyRing.from_file(self.secret_file)
        except (OSError, ValueError) as exc:
            log.error("event=keys_reload_failed path=%s error=%s", self.secret_file, exc)
            return False
        self.keys = keys
        if self.hub is not None:
            self.hub.keys = keys
        kids = ",".join(key_id(k) for k in keys.keys)
        log.info(
            "event=keys_reloaded path=%s keys=%d kids=%s", self.secret_file, len(keys.keys), kids
        )
        return True

    def health(self) -> dict[str, Any]:
        assert self.hub is not None
        problem = self.log.problem() if self.log is not None else "event log closed"
        return {
            "status": "failing" if problem else "ok",
            "store": "postgresql" if self._pool is not None else "sqlite",
            **self._store_health(),
            **({"problem": problem} if problem else {}),
            "connections": dict(self.hub.role_counts()),
            "visits": dict(self.hub.visit_counts()),
            "desks": len(self.hub.state.desks),
            "queued": sum(len(q) for q in self.hub.state.queues.values()),
            "events": self.hub.state.events_applied,
            "away": len(self.hub.away),
            "sockets": len(self.admission.sockets),
            "max_connections": self.limit,
        }

    def _store_health(self) -> dict[str, Any]:
        """On the PostgreSQL store: the last commit's time; with leases, the offices this
        node owns and how long ago it last renewed them."""
        from lapak.signaling.pglog import PgLog

        out: dict[str, Any] = {}
        if isinstance(self.log, PgLog):
            out["store_commit_ms"] = round(self.log.last_commit_ms, 2)
        if self.leases is not None:
            out["offices_owned"] = sorted(self.leases.held)
            renewed = self._renewed_at
            ago = None if renewed is None else round(self.mono() - renewed, 2)
            out["lease_renewed_s_ago"] = ago
        return out

    def _store_gauges(self) -> StoreGauges:
        """The /healthz store figures for /metrics (without leases: the store's only)."""
        from lapak.signaling.pglog import PgLog

        commit = None  # before the first commit there is no figure
        if isinstance(self.log, PgLog) and self.log.commits:
            commit = self.log.last_commit_ms / 1000
        if self.leases is None:
            return StoreGauges(self.node, commit, None)
        held = tuple(sorted(o for o in self.leases.held))
        renewed = None if self._renewed_at is None else self.mono() - self._renewed_at
        return StoreGauges(self.node, commit, held, self.leases.lease_s, renewed)

    def _fenced(self, fenced: Fenced) -> None:
        """A batch refused by the fence (signaling/pglog.py): counted, its offices dropped."""
        self.metrics.fenced.labels(self.node).inc()
        self._drop_offices(fenced.offices)

    def _metrics_text(self) -> bytes:
        assert self.hub is not None
        return self.metrics.render(
            self.hub.role_counts(), self.hub.visit_counts(), self.hub.office_gauges(),
            self._store_gauges(),
        )  # fmt: skip

    # -- websocket connections ---------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert self.hub is not None and self.log is not None
        assert isinstance(ws, DirectTextServerConnection)  # admission.connection_class()
        conn_id = self.hub.connect()
        peer = self._peers[conn_id] = Peer(ws)
        peer.hello_timer = asyncio.get_running_loop().call_later(
            self.config.hello_timeout_s, self._hello_overdue, conn_id
        )
        log.info("event=connected conn=%d remote=%s", conn_id, _remote(ws))
        on_frame = functools.partial(self._on_frame, conn_id, peer)
        ws.on_text = on_frame  # text frames from now on, in the pass that reads them
        try:
            async for frame in ws:  # those that came before, and any websockets keeps
                on_frame(frame)
        except ConnectionClosed:
            pass
        finally:
            ws.on_text = None
            if peer.hello_timer is not None:
                peer.hello_timer.cancel()
            self._peers.pop(conn_id, None)
            gone = self.hub.disconnect(conn_id)
            if gone.outputs or gone.events:  # a supervisor leaving ends coach/barge: logged
                self._commit_then_deliver(gone, conn_id)
            log.info("event=disconnected conn=%d code=%s", conn_id, ws.close_code)

    def _on_frame(self, conn_id: int, peer: Peer, frame: str | bytes) -> None:
        """One message of a connection, in the order they came."""
        assert self.hub is not None
        if self.draining or peer.dropping or peer.stop_reading:
            return  # closing: a frame read now would never be answered
        if isinstance(frame, bytes):
            self._refuse(
                conn_id, peer, p.ErrorCode.INVALID_MESSAGE,
                "binary frames are refused: send JSON text", CloseCode.POLICY,
            )  # fmt: skip
            return
        received = time.perf_counter()
        result = self.hub.receive(conn_id, frame)
        if result.error_code == p.ErrorCode.WRONG_OFFICE and self.leases is not None:
            result = self._moved(conn_id, frame, result)
        self._count(result)
        self._commit_then_deliver(result, conn_id, received)

    def _moved(self, conn_id: int, frame: str, refused: Result) -> Result:
        """A hello for an office another node owns: ``moved {url}``, then close 4012. For
        an office of this cluster that no live node owns right now (a failover under way)
        ``url`` is this node's own: the client says hello again after a back-off."""
        try:
            hello = msgspec.json.decode(frame)
            claims = self.keys.verify(hello["token"], now=self.clock())
        except Exception:  # not a readable hello with a good token: the refusal stands
            return refused
        office, own = claims.office, self.config.launch.node_url
        preferred = self._preferred.get(office)
        if preferred == own:  # placement gives it to this node: ask again here shortly
            url: str | None = own
        elif office in self._evicting:  # handed over: to the node placement gives it
            url = preferred or own
        else:
            url = self._owners.get(office) or preferred
        if url is None and office in self._wanted:
            url = own  # between owners (failover): ask again here
        if url is None:
            return refused
        request = hello.get("id")
        moved = Moved(re=request if isinstance(request, int) else None, office=claims.office,
                      url=url)  # fmt: skip
        log.info("event=moved conn=%d office=%s url=%s", conn_id, claims.office, url)
        peer = self._peers.get(conn_id)
        if peer is not None:
            peer.stop_reading = True
        return Result(
            outputs=[(conn_id, moved)],
            closes=[(conn_id, LEASE_LOST_CLOSE_CODE, "office on another node")],
            message_type="hello",
        )

    def _hello_overdue(self, conn_id: int) -> None:
        """No hello within ``hello_timeout_s``: say so and close with 1008."""
        assert self.hub is not None
        conn = self.hub.conns.get(conn_id)
        peer = self._peers.get(conn_id)
        if conn is None or peer is None or conn.claims is not None:
            return
        if peer.dropping or peer.stop_reading:
            return
        message = f"no hello within {self.config.hello_timeout_s:g} s"
        self._refuse(conn_id, peer, p.ErrorCode.HELLO_REQUIRED, message, CloseCode.POLICY)

    def _refuse(
        self, conn_id: int, peer: Peer, code: p.ErrorCode, message: str, close: int
    ) -> None:
        """Answer with an error, then close: in commit order, after the answers already due."""
        refusal = Error(re=None, code=code, message=message)
        result = Result(outputs=[(conn_id, refusal)], closes=[(conn_id, close, message)])
        self.metrics.errors.labels(str(code)).inc()
        log.info("event=refused code=%s conn=%d close=%d", code, conn_id, close)
        self._commit_then_deliver(result, conn_id)
        peer.stop_reading = True  # delivery closes it; until then nothing is read
        if peer.hello_timer is not None:
            peer.hello_timer.cancel()

    def _count(self, result: Result) -> None:
        if result.message_type:
            self.metrics.messages.labels(result.message_type).inc()
        if result.error_code:
            self.metrics.errors.labels(result.error_code).inc()
            log.info("event=refused code=%s type=%s", result.error_code, result.message_type)
        if result.events:
            self.metrics.events.inc(len(result.events))
            if log.isEnabledFor(logging.DEBUG):  # the durable log has them all anyway
                for event in result.events:
                    log.debug("event=%s %s", type(event).__struct_config__.tag, _kv(event))

    def _commit_then_deliver(
        self, result: Result, conn_id: int, received: float | None = None
    ) -> None:
        """Hand the events to the log; deliver the outputs once they are durable (an empty
        batch still waits its turn: deliveries stay in commit order)."""
        assert self.log is not None
        deliver = functools.partial(
            self.outbox.deliver, result=result, conn_id=conn_id, received=received
        )
        self.log.append(result.events, then=deliver, keys=result.keys)  # as the commit is known

    def _log_failed(self, exc: BaseException) -> None:
        """State in memory is ahead of the log now: refuse to run on. A fenced batch (its
        office's lease moved, signaling/leases.py) is not a failure of this node: the
        office is dropped, its answers never sent, the other offices go on."""
        if self.leases is not None and getattr(exc, "offices", None) is not None:
            log.info("event=answers_withheld reason=fenced")
            return
        log.critical("event=log_failed error=%r", exc)
        if self._fatal is not None and not self._fatal.done():
            self._fatal.set_result(exc)


def _remote(ws: ServerConnection) -> str:
    addr = ws.remote_address
    return f"{addr[0]}:{addr[1]}" if addr else "-"


def _kv(event: object) -> str:
    fields = getattr(event, "__struct_fields__", ())
    parts = []
    for name in fields:
        value = getattr(event, name)
        if name in ("name", "membership_no", "steps"):
            continue  # personal data stays out of the logs
        parts.append(f"{name}={value}")
    return " ".join(parts)


async def run_server(server: SignalServer, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set or the log fails; close cleanly (drained) either way.
    SIGHUP re-reads the key ring and the TLS certificate."""
    await server.start()
    loop = asyncio.get_running_loop()
    hup = False
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, server.reload)
        hup = True
    fatal = asyncio.ensure_future(server.wait_fatal())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({fatal, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (fatal, stopper):
            task.cancel()
        if hup:
            loop.remove_signal_handler(signal.SIGHUP)
        await server.close()
    if fatal.done() and not fatal.cancelled():
        failure = fatal.result()
        if isinstance(failure, LogError):  # says what happened (e.g. disk full) by itself
            raise failure
        raise RuntimeError(f"event log failed: {failure!r}")
