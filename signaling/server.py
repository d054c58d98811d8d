"""The asyncio shell around ``Hub``: websockets in, durable log, websockets out.

It owns the I/O the core must not do: sockets, the event log, HTTP health and metrics,
per-connection send queues, clocks and signals. Outputs of a frame are delivered only after
its events are durable, and deliveries happen in commit order. It also bounds what one
process can be made to hold: connections below the file-descriptor limit, a hello deadline,
text frames only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import http
import json
import logging
import signal
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from lapak.signaling import protocol as p
from lapak.signaling.config import WIRE_MAX_FRAME_BYTES, ServerConfig, listen_backlog
from lapak.signaling.datadir import DataDir, open_data_dir
from lapak.signaling.eventlog import EventLog, LogError, load
from lapak.signaling.hub import Hub, Result
from lapak.signaling.metrics import ServerMetrics
from lapak.signaling.protocol import CloseCode
from lapak.signaling.signing import Signer
from lapak.signaling.tokens import KeyRing, key_id

log = logging.getLogger("lapak.signal")

SEND_BUFFER_LIMIT = 1024 * 1024  # unread bytes before a client counts as a slow consumer
LIMIT_LOG_EVERY_S = 10.0  # at most one line per this many seconds about refused connections
GC_AFTER_CLOSED = 1000  # closed sockets (at least) between two full collections
SHUTDOWN_CLOSE_CODE = 1001  # going away: sent after every committed answer has been written


@dataclass
class _Peer:
    ws: ServerConnection
    dropping: bool = False  # being closed: send nothing more, read nothing more
    hello_timer: asyncio.TimerHandle | None = None


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
    ) -> None:
        self.data_dir = data_dir
        self.keys = keys
        self.host = host
        self.port = port
        self.clock = clock  # wall clock: event times, token expiry
        self.mono = mono  # monotonic clock: durations (grace periods, rates)
        self.config = config or ServerConfig()
        self.ssl_context = ssl_context
        self.tune_gc = tune_gc
        self.secret_file = secret_file  # re-read on SIGHUP (key rotation without restart)
        self.signer = signer  # signs the log's checkpoints (None: unsigned, e.g. tests)
        self.datadir: DataDir | None = None
        self.ticks = 0
        self.draining = False  # shutting down: frames are no longer read
        self.limit = self.config.connection_limit
        self._tcp: set[ServerConnection] = set()  # accepted sockets, handshaken or not
        self._refused = 0
        self._closed_since_gc = 0
        self._refused_logged_at = -LIMIT_LOG_EVERY_S
        self._origins: set[str] = set()
        self._previous_handler: Any = None
        self._ticker: asyncio.Task[None] | None = None
        self._closers: set[asyncio.Task[None]] = set()
        self.metrics = ServerMetrics()
        self.hub: Hub | None = None
        self.log: EventLog | None = None
        self._server: Server | None = None
        self._peers: dict[int, _Peer] = {}
        self._stop_reading: set[int] = set()  # refused and about to be closed
        self._fatal: asyncio.Future[BaseException] | None = None

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://{self.host}:{self.port}/ws"

    async def start(self) -> None:
        # Checked, private and locked before anything else (signaling/datadir.py).
        self.datadir = await asyncio.to_thread(open_data_dir, self.data_dir, self.signer)
        path = self.datadir.log_path
        started = time.perf_counter()
        public = self.signer.public if self.signer else None
        try:
            loaded = await asyncio.to_thread(load, path, public)
        except BaseException:
            self.datadir.close()
            raise
        log.info(
            "event=replayed events=%d from_snapshot=%d visits=%d ms=%.1f",
            loaded.replayed,
            loaded.from_snapshot,
            len(loaded.state.visits),
            (time.perf_counter() - started) * 1000,
        )
        self.hub = Hub(self.keys, loaded.state, self.config, now=self.clock(), mono=self.mono())
        self.log = await asyncio.to_thread(
            EventLog, path, loaded, self.config.snapshot_every, self.config.snapshot_min_s,
            signer=self.signer, marker=self.datadir.marker_path,
        )  # fmt: skip
        del loaded
        if self.tune_gc:
            _freeze_loaded_state()
        self.log.start()
        self._fatal = asyncio.get_running_loop().create_future()
        bootstrap = self.hub.bootstrap(self.clock())
        if bootstrap:
            await self.log.append(bootstrap)
        self._ticker = asyncio.create_task(self._tick(), name="hub-ticker")
        loop = asyncio.get_running_loop()
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=WIRE_MAX_FRAME_BYTES,
            compression=None,
            ping_interval=20,
            ping_timeout=20,
            ssl=self.ssl_context,
            backlog=listen_backlog(),
            create_connection=_counted(self),
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._origins = self._own_origins() | self.config.configured_origins()
        log.info(
            "event=listening host=%s port=%d data_dir=%s max_connections=%d",
            self.host, self.port, self.data_dir, self.limit,
        )  # fmt: skip

    async def wait_fatal(self) -> BaseException:
        assert self._fatal is not None
        return await self._fatal

    async def _tick(self) -> None:
        """Once a second, let the hub give up places whose grace period ran out (measured
        on the monotonic clock: a wall-clock step must not abandon anybody)."""
        assert self.hub is not None and self.log is not None
        while True:
            await asyncio.sleep(1.0)
            result = self.hub.tick(self.clock(), self.mono())
            self.ticks += 1
            if self.tune_gc:
                self._collect_dead_connections()
            if result.events or result.outputs or result.closes:
                self._count(result)
                fut = self.log.append(result.events)
                fut.add_done_callback(lambda f, r=result: self._deliver(f, r, 0))

    async def close(self) -> None:
        """Drain, then stop: accept nothing and read nothing more, wait until every event
        already decided is durable and its answers are written, then close every
        connection with 1001 (after those answers, on the same TCP stream)."""
        self.draining = True
        log.info("event=draining connections=%d", len(self._peers))
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
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
        for task in list(self._closers):
            task.cancel()
        await asyncio.gather(*self._closers, return_exceptions=True)
        if self.log is not None:
            await self.log.close()  # final snapshot and checkpoint
            self.log = None
        if self.datadir is not None:
            self.datadir.close()
            self.datadir = None
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().set_exception_handler(self._previous_handler)
        log.info("event=stopped")

    def _failed(self) -> bool:
        """Did the log fail? (``run_server`` cancels its waiter, which cancels the future.)"""
        fatal = self._fatal
        return fatal is not None and fatal.done() and not fatal.cancelled()

    def reload_keys(self) -> bool:
        """Re-read the secret file (SIGHUP): new tokens are checked against the new ring at
        once; connections already authenticated keep going until their token expires."""
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

    # -- bounds on what one process holds ------------------------------------------------

    def _tcp_opened(self, conn: ServerConnection, transport: asyncio.BaseTransport) -> bool:
        """Count an accepted socket; refuse it with 503 at ``max_connections`` (kept below
        the descriptor limit, where accept() itself would start failing in a loop)."""
        if len(self._tcp) >= self.limit or self.draining:
            self._refused += 1
            self.metrics.refused.labels("limit" if not self.draining else "draining").inc()
            now = time.monotonic()
            if not self.draining and now - self._refused_logged_at >= LIMIT_LOG_EVERY_S:
                self._refused_logged_at = now
                log.warning(
                    "event=connection_limit max_connections=%d refused_total=%d",
                    self.limit, self._refused,
                )  # fmt: skip
            with contextlib.suppress(Exception):
                transport.write(_BUSY)  # type: ignore[attr-defined]
            transport.close()
            return False
        self._tcp.add(conn)
        return True

    def _tcp_closed(self, conn: ServerConnection) -> None:
        self._tcp.discard(conn)
        self._closed_since_gc += 1

    def _collect_dead_connections(self) -> None:
        """A closed connection is a cycle (connection, protocol, tasks) that outlives the
        young generations; with full collections made rare (``_freeze_loaded_state``) they
        would pile up. Collect once every ``max(GC_AFTER_CLOSED, open connections)`` closes
        (the pause, proportional to what is alive, is paid once per that many: measured
        50-130 ms with 2,000 clients connected on a busy 2-core machine, i.e. some 50 us
        per close), and when the last connection has gone (then there is little to walk)."""
        closed = self._closed_since_gc
        if not closed or (self._tcp and closed < max(GC_AFTER_CLOSED, len(self._tcp))):
            return
        started = time.perf_counter()
        found = gc.collect()
        self._closed_since_gc = 0
        if not self._tcp:
            _trim_heap()
        log.debug(
            "event=gc closed=%d collected=%d ms=%.1f",
            closed, found, (time.perf_counter() - started) * 1000,
        )  # fmt: skip

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """accept() out of descriptors logs one line per 10 s, not a traceback per retry."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and "accept" in str(context.get("message", "")):
            now = time.monotonic()
            if now - self._refused_logged_at >= LIMIT_LOG_EVERY_S:
                self._refused_logged_at = now
                log.error("event=accept_failed error=%s connections=%d", exc, len(self._tcp))
            return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    def _hello_overdue(self, conn_id: int) -> None:
        """No hello within ``hello_timeout_s``: say so and close with 1008."""
        assert self.hub is not None and self.log is not None
        conn = self.hub.conns.get(conn_id)
        peer = self._peers.get(conn_id)
        if conn is None or peer is None or conn.claims is not None:
            return
        if peer.dropping or conn_id in self._stop_reading:
            return
        message = f"no hello within {self.config.hello_timeout_s:g} s"
        self._refuse(conn_id, peer, p.ErrorCode.HELLO_REQUIRED, message, CloseCode.POLICY)

    def _refuse(
        self, conn_id: int, peer: _Peer, code: p.ErrorCode, message: str, close: int
    ) -> None:
        """Answer with an error, then close: in commit order, after the answers already due."""
        assert self.log is not None
        result = Result(outputs=[(conn_id, p.error(code, message))], close=(close, message))
        self.metrics.errors.labels(str(code)).inc()
        log.info("event=refused code=%s conn=%d close=%d", code, conn_id, close)
        self.log.append([]).add_done_callback(lambda f, r=result, c=conn_id: self._deliver(f, r, c))
        self._stop_reading.add(conn_id)  # _deliver closes it; until then nothing is read
        if peer.hello_timer is not None:
            peer.hello_timer.cancel()

    # -- HTTP on the same port ---------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            if not self._origin_allowed(connection, request):
                self.metrics.errors.labels("bad_origin").inc()
                log.warning(
                    "event=refused code=bad_origin origin=%s", request.headers.get("Origin")
                )
                return connection.respond(http.HTTPStatus.FORBIDDEN, "origin not allowed\n")
            return None
        if request.method != "GET":
            return connection.respond(http.HTTPStatus.METHOD_NOT_ALLOWED, "GET only\n")
        if path == "/booth" or path.startswith("/booth/"):
            from lapak.signaling import kiosk

            return kiosk.respond(connection, path)
        assert self.hub is not None
        if path == "/healthz":
            health = self.health()
            ok = health["status"] == "ok"
            status = http.HTTPStatus.OK if ok else http.HTTPStatus.SERVICE_UNAVAILABLE
            response = connection.respond(status, json.dumps(health) + "\n")
            _set_type(response.headers, "application/json")
            return response
        if path == "/metrics":
            text = self.metrics.render(self.hub.role_counts(), self.hub.visit_counts())
            response = connection.respond(http.HTTPStatus.OK, text.decode())
            _set_type(response.headers, "text/plain; version=0.0.4; charset=utf-8")
            return response
        return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")

    def _origin_allowed(self, connection: ServerConnection, request: Request) -> bool:
        """Browsers send Origin: only this server's own origins (its listen address,
        localhost, ``public_url``) and ``allowed_origins`` may open the websocket, compared
        as exact strings. The Host header is never trusted: a DNS-rebinding page sends
        ``Host: evil:PORT`` with ``Origin: http://evil:PORT``. Machine clients send no
        Origin and are let through (they authenticate with their token like everyone).
        The address the client reached us at also counts (a kiosk page loaded from
        ``http://192.168.1.5:PORT``): a rebinding page's Origin is a name, not our address."""
        origin = request.headers.get("Origin")
        if origin is None or origin in self._origins:
            return True
        sockname = connection.transport.get_extra_info("sockname") if connection.transport else None
        if not sockname:
            return False
        scheme = "https" if self.ssl_context else "http"
        default = 443 if self.ssl_context else 80
        suffix = "" if sockname[1] == default else f":{sockname[1]}"
        address = str(sockname[0]).removeprefix("::ffff:")  # IPv4 reached over a dual stack
        return origin == f"{scheme}://{_bracket(address)}{suffix}"

    def _own_origins(self) -> set[str]:
        """The origins a browser shows for pages served by this server at its listen
        address; for a wildcard listen address, also this machine's name and addresses."""
        scheme = "https" if self.ssl_context else "http"
        hosts = {"localhost", "127.0.0.1", "[::1]"}
        if self.host in ("", "0.0.0.0", "::"):
            name = socket.gethostname()
            hosts.add(name.lower())
            with contextlib.suppress(OSError):
                for info in socket.getaddrinfo(name, None):
                    hosts.add(_bracket(str(info[4][0])))
        else:
            hosts.add(_bracket(self.host.lower()))
        default = 443 if self.ssl_context else 80
        suffix = "" if self.port == default else f":{self.port}"
        return {f"{scheme}://{h}{suffix}" for h in hosts}

    def health(self) -> dict[str, Any]:
        assert self.hub is not None
        problem = self.log.problem() if self.log is not None else "event log closed"
        return {
            "status": "failing" if problem else "ok",
            **({"problem": problem} if problem else {}),
            "connections": dict(self.hub.role_counts()),
            "visits": dict(self.hub.visit_counts()),
            "desks": len(self.hub.state.desks),
            "queued": sum(len(q) for q in self.hub.state.queues.values()),
            "events": self.hub.state.events_applied,
            "away": len(self.hub.away),
            "sockets": len(self._tcp),
            "max_connections": self.limit,
        }

    # -- websocket connections ---------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert self.hub is not None and self.log is not None
        conn_id = self.hub.connect()
        peer = self._peers[conn_id] = _Peer(ws)
        peer.hello_timer = asyncio.get_running_loop().call_later(
            self.config.hello_timeout_s, self._hello_overdue, conn_id
        )
        log.info("event=connected conn=%d remote=%s", conn_id, _remote(ws))
        try:
            async for frame in ws:
                if self.draining or peer.dropping or conn_id in self._stop_reading:
                    continue  # closing: a frame read now would never be answered
                if isinstance(frame, bytes):
                    self._refuse(
                        conn_id, peer, p.ErrorCode.INVALID_MESSAGE,
                        "binary frames are refused: send JSON text", CloseCode.POLICY,
                    )  # fmt: skip
                    continue
                result = self.hub.receive(conn_id, frame, self.clock(), self.mono())
                self._count(result)
                fut = self.log.append(result.events)
                fut.add_done_callback(lambda f, r=result, c=conn_id: self._deliver(f, r, c))
        except ConnectionClosed:
            pass
        finally:
            if peer.hello_timer is not None:
                peer.hello_timer.cancel()
            self._stop_reading.discard(conn_id)
            self._peers.pop(conn_id, None)
            gone = self.hub.disconnect(conn_id, self.clock(), self.mono())
            if gone.outputs:
                self.log.append([]).add_done_callback(
                    lambda f, r=gone, c=conn_id: self._deliver(f, r, c)
                )
            log.info("event=disconnected conn=%d code=%s", conn_id, ws.close_code)

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

    def _deliver(self, fut: asyncio.Future[None], result: Result, conn_id: int) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            # State in memory is ahead of the log now: refuse to run on.
            log.critical("event=log_failed error=%r", exc)
            if self._fatal is not None and not self._fatal.done():
                self._fatal.set_result(exc)
            return
        encoded: dict[int, str] = {}  # a delta goes to every watcher: encode it once
        for target, message in result.outputs:
            text = encoded.get(id(message))
            if text is None:
                text = encoded[id(message)] = p.encode(message)
            self._send(target, text)
        closes = list(result.closes)
        if result.close is not None:
            closes.insert(0, (conn_id, *result.close))
        for target, code, reason in closes:
            peer = self._peers.get(target)
            if peer is not None and not peer.dropping:
                peer.dropping = True
                self._close_later(peer.ws, code, reason)

    def _send(self, conn_id: int, text: str) -> None:
        """Write now, in commit order, without waiting (the way websockets' broadcast does);
        a client that leaves more than SEND_BUFFER_LIMIT bytes unread is closed."""
        peer = self._peers.get(conn_id)
        if peer is None or peer.dropping:
            return
        transport = peer.ws.transport
        if transport is not None and transport.get_write_buffer_size() > SEND_BUFFER_LIMIT:
            peer.dropping = True
            log.warning("event=slow_consumer conn=%d", conn_id)
            self.metrics.errors.labels("slow_consumer").inc()
            self._close_later(peer.ws, CloseCode.SLOW_CONSUMER, "slow consumer")
            return
        broadcast([peer.ws], text)

    def _close_later(self, ws: ServerConnection, code: int, reason: str) -> None:
        task = asyncio.get_running_loop().create_task(ws.close(code, reason))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)


def _freeze_loaded_state() -> None:
    """Once, after the state is loaded: collect, then move what survived (the replayed
    state, modules) out of the collector's reach, so full collections do not walk it while
    the loop waits (20-120 ms at 2,000 clients, measured by bench/signaling.py), and make
    full collections rarer.

    Never on a timer: ``gc.freeze()`` also freezes cyclic garbage not yet collected, and
    under connection churn that kept every dead connection for good (RSS 43 -> 242 MB after
    30,000 half-open upgrades, never returned).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 1000)


def _trim_heap() -> None:
    """Give freed heap pages back to the system (glibc keeps them after a burst of
    connections: their read buffers are malloc'd, not pooled). Cheap when idle; a no-op
    where there is no glibc."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 19\r\nConnection: close\r\n\r\ntoo many connections"
)


def _counted(server: SignalServer) -> type[ServerConnection]:
    """A connection class that reports each accepted socket to ``server`` (which may refuse
    it at once) and each closed one, handshaken or not."""

    class Counted(ServerConnection):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            server._tcp_opened(self, transport)

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            server._tcp_closed(self)

    return Counted


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _set_type(headers: Headers, content_type: str) -> None:
    del headers["Content-Type"]
    headers["Content-Type"] = content_type


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
    SIGHUP re-reads the key ring."""
    await server.start()
    loop = asyncio.get_running_loop()
    hup = False
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, server.reload_keys)
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
