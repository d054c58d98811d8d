"""How many sockets one server holds: at most ``max_connections``, the rest refused at accept.

The bound sits below the file-descriptor limit, where asyncio's accept loop would spin
logging a traceback per retry; over it a socket gets HTTP 503 and is closed at once,
logged once per ``LIMIT_LOG_EVERY_S``. Sockets count from accept, handshaken or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection

from lapak.signaling.direct_read import DirectTextServerConnection
from lapak.signaling.metrics import ServerMetrics

log = logging.getLogger("lapak.signal")

LIMIT_LOG_EVERY_S = 10.0  # at most one line per this many seconds about refused connections

BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 19\r\nConnection: close\r\n\r\ntoo many connections"
)

ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


class Admission:
    def __init__(
        self, limit: int, metrics: ServerMetrics, on_closed: Callable[[], None] | None = None
    ) -> None:
        self.limit = limit
        self.metrics = metrics
        self.on_closed = on_closed
        self.draining = False  # shutting down: every new socket is refused
        self.sockets: set[ServerConnection] = set()  # accepted, handshaken or not
        self.refused = 0
        self._logged_at = -LIMIT_LOG_EVERY_S
        self._previous: ExceptionHandler | None = None

    def opened(self, conn: ServerConnection, transport: asyncio.BaseTransport) -> bool:
        """Count an accepted socket; refuse it with 503 at the limit or while draining."""
        if len(self.sockets) >= self.limit or self.draining:
            self.refused += 1
            self.metrics.refused.labels("draining" if self.draining else "limit").inc()
            if not self.draining and self._may_log():
                log.warning(
                    "event=connection_limit max_connections=%d refused_total=%d",
                    self.limit, self.refused,
                )  # fmt: skip
            if isinstance(transport, asyncio.WriteTransport):
                with contextlib.suppress(Exception):
                    transport.write(BUSY)
            transport.close()
            return False
        self.sockets.add(conn)
        return True

    def closed(self, conn: ServerConnection) -> None:
        self.sockets.discard(conn)
        if self.on_closed is not None:
            self.on_closed()

    def _may_log(self) -> bool:
        now = time.monotonic()
        if now - self._logged_at < LIMIT_LOG_EVERY_S:
            return False
        self._logged_at = now
        return True

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)

    def uninstall(self) -> None:
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().set_exception_handler(self._previous)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """accept() out of descriptors logs one line per 10 s, not a traceback per retry."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and "accept" in str(context.get("message", "")):
            if self._may_log():
                log.error("event=accept_failed error=%s connections=%d", exc, len(self.sockets))
            return
        if self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def connection_class(self) -> type[DirectTextServerConnection]:
        """A connection class that reports each accepted socket (which may be refused at
        once) and each closed one, handshaken or not."""
        admission = self

        class Counted(DirectTextServerConnection):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                admission.opened(self, transport)

            def connection_lost(self, exc: Exception | None) -> None:
                super().connection_lost(exc)
                admission.closed(self)

        return Counted
