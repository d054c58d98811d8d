"""The asyncio shell around ``Hub``: websockets in, durable log, websockets out.

It owns the I/O the core must not do: sockets, the event log, HTTP health and metrics,
per-connection send queues. Outputs of a frame are delivered only after its events are
durable, and deliveries happen in commit order.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import http
import json
import logging
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

from signaling import protocol as p
from signaling.config import ServerConfig
from signaling.eventlog import EventLog, load
from signaling.hub import Hub, Result
from signaling.metrics import ServerMetrics
from signaling.protocol import CloseCode
from signaling.tokens import KeyRing

log = logging.getLogger("lapak.signal")

SEND_BUFFER_LIMIT = 1024 * 1024  # unread bytes before a client counts as a slow consumer
LISTEN_BACKLOG = 4096  # a reconnect storm of thousands must not overflow the SYN queue
WIRE_MAX_SIZE = 1024 * 1024  # beyond this websockets closes 1009; below, p.MAX_FRAME_BYTES


@dataclass
class _Peer:
    ws: ServerConnection
    dropping: bool = False  # being closed: send nothing more


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
    ) -> None:
        self.data_dir = data_dir
        self.keys = keys
        self.host = host
        self.port = port
        self.clock = clock
        self.config = config or ServerConfig()
        self.ssl_context = ssl_context
        self.tune_gc = tune_gc
        self._ticker: asyncio.Task[None] | None = None
        self._closers: set[asyncio.Task[None]] = set()
        self.metrics = ServerMetrics()
        self.hub: Hub | None = None
        self.log: EventLog | None = None
        self._server: Server | None = None
        self._peers: dict[int, _Peer] = {}
        self._fatal: asyncio.Future[BaseException] | None = None

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://{self.host}:{self.port}/ws"

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "events.sqlite3"
        started = time.perf_counter()
        loaded = await asyncio.to_thread(load, path)
        log.info(
            "event=replayed events=%d from_snapshot=%d visits=%d ms=%.1f",
            loaded.replayed,
            loaded.from_snapshot,
            len(loaded.state.visits),
            (time.perf_counter() - started) * 1000,
        )
        self.hub = Hub(self.keys, loaded.state, self.config, now=self.clock())
        self.log = await asyncio.to_thread(
            EventLog, path, loaded, self.config.snapshot_every, self.config.snapshot_min_s
        )
        if self.tune_gc:
            _freeze_long_lived(full=True)
        self.log.start()
        self._fatal = asyncio.get_running_loop().create_future()
        bootstrap = self.hub.bootstrap(self.clock())
        if bootstrap:
            await self.log.append(bootstrap)
        self._ticker = asyncio.create_task(self._tick(), name="hub-ticker")
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=WIRE_MAX_SIZE,
            compression=None,
            ping_interval=20,
            ping_timeout=20,
            ssl=self.ssl_context,
            backlog=LISTEN_BACKLOG,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        log.info("event=listening host=%s port=%d data_dir=%s", self.host, self.port, self.data_dir)

    async def wait_fatal(self) -> BaseException:
        assert self._fatal is not None
        return await self._fatal

    async def _tick(self) -> None:
        """Once a second, let the hub give up places whose grace period ran out."""
        assert self.hub is not None and self.log is not None
        beats = 0
        while True:
            await asyncio.sleep(1.0)
            beats += 1
            if self.tune_gc and beats % 10 == 0:
                _freeze_long_lived()
            result = self.hub.tick(self.clock())
            if result.events or result.outputs:
                self._count(result)
                fut = self.log.append(result.events)
                fut.add_done_callback(lambda f, r=result: self._deliver(f, r, 0))

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()
            self._server = None
        for task in list(self._closers):
            task.cancel()
        await asyncio.gather(*self._closers, return_exceptions=True)
        if self.log is not None:
            await self.log.close()
            self.log = None
        log.info("event=stopped")

    # -- HTTP on the same port ---------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            if not self._origin_allowed(request):
                self.metrics.errors.labels("bad_origin").inc()
                log.warning(
                    "event=refused code=bad_origin origin=%s", request.headers.get("Origin")
                )
                return connection.respond(http.HTTPStatus.FORBIDDEN, "origin not allowed\n")
            return None
        if request.method != "GET":
            return connection.respond(http.HTTPStatus.METHOD_NOT_ALLOWED, "GET only\n")
        if path == "/booth" or path.startswith("/booth/"):
            from signaling import kiosk

            return kiosk.respond(connection, path)
        assert self.hub is not None
        if path == "/healthz":
            body = json.dumps(self.health())
            response = connection.respond(http.HTTPStatus.OK, body + "\n")
            _set_type(response.headers, "application/json")
            return response
        if path == "/metrics":
            text = self.metrics.render(self.hub.role_counts(), self.hub.visit_counts())
            response = connection.respond(http.HTTPStatus.OK, text.decode())
            _set_type(response.headers, "text/plain; version=0.0.4; charset=utf-8")
            return response
        return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")

    def _origin_allowed(self, request: Request) -> bool:
        """Browsers send Origin: only pages this server served (same host) or configured
        origins may open the websocket. Machine clients send no Origin and are let through
        (they authenticate with their token like everyone)."""
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        if origin in self.config.allowed_origins:
            return True
        host = request.headers.get("Host", "")
        scheme = "https" if self.ssl_context else "http"
        return origin == f"{scheme}://{host}"

    def health(self) -> dict[str, Any]:
        assert self.hub is not None
        return {
            "status": "ok",
            "connections": dict(self.hub.role_counts()),
            "visits": dict(self.hub.visit_counts()),
            "desks": len(self.hub.state.desks),
            "queued": sum(len(q) for q in self.hub.state.queues.values()),
            "events": self.hub.state.events_applied,
            "away": len(self.hub.away),
        }

    # -- websocket connections ---------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert self.hub is not None and self.log is not None
        conn_id = self.hub.connect()
        self._peers[conn_id] = _Peer(ws)
        log.info("event=connected conn=%d remote=%s", conn_id, _remote(ws))
        try:
            async for frame in ws:
                result = self.hub.receive(conn_id, frame, self.clock())
                self._count(result)
                fut = self.log.append(result.events)
                fut.add_done_callback(lambda f, r=result, c=conn_id: self._deliver(f, r, c))
        except ConnectionClosed:
            pass
        finally:
            self._peers.pop(conn_id, None)
            gone = self.hub.disconnect(conn_id, self.clock())
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
        if result.close is not None:
            peer = self._peers.get(conn_id)
            if peer is not None and not peer.dropping:
                peer.dropping = True
                self._close_later(peer.ws, *result.close)

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


def _freeze_long_lived(full: bool = False) -> None:
    """Move what survived so far out of the collector's reach (at start, then every 10 s).

    The state (visits, steps, desks) and connections are long-lived and acyclic; without
    this each full collection walks all of them while the loop waits (20-120 ms at 2,000
    clients, measured by bench/signaling.py). Only the young generations are collected
    before freezing, so this never costs a full collection itself; automatic full
    collections become rare. Frozen objects are still freed by reference counting; only
    cyclic garbage that had already aged would wait for a process restart.
    """
    if full:
        gc.collect()
        gc.set_threshold(700, 10, 1000)
    else:
        gc.collect(1)
    gc.freeze()


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
    """Run until ``stop`` is set or the log fails; close cleanly either way."""
    await server.start()
    fatal = asyncio.ensure_future(server.wait_fatal())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({fatal, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (fatal, stopper):
            task.cancel()
        await server.close()
    if fatal.done() and not fatal.cancelled():
        raise RuntimeError(f"event log failed: {fatal.result()!r}")
