"""A small asyncio client for the signalling protocol, shared by booths and consoles.

Requests get an ``id`` and await their answer: ``ack``/``error``, ``welcome`` for ``hello``,
and the ``snapshot`` carrying ``re`` for ``watch``. Every other inbound message (the answering
snapshot too) goes to the ``on_message`` callback in arrival order.

Close codes that mean "do not come back" (4001 token refused or expired, 4002 replaced by a newer
connection) stop the automatic reconnect; ``ended`` then says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("lapak.client")

MessageHandler = Callable[[dict[str, Any]], Awaitable[None] | None]

ANSWER_TYPES = frozenset({"ack", "error", "welcome", "snapshot"})
"""Messages that answer a request when their ``re`` names it (``snapshot`` answers ``watch``)."""

FINAL_CLOSE_CODES = {4001: "token refused or expired", 4002: "replaced by a newer connection"}
"""Close codes after which reconnecting with the same token cannot help."""

FINAL_ERROR_CODES = frozenset(
    {"bad_token", "bad_signature", "token_expired", "wrong_office", "replaced"}
)
"""Error codes that end the session for good (the server closes after them)."""


class RequestError(Exception):
    """The server refused a request; ``code`` is the stable error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SignalClient:
    """One signalling session. With ``reconnect=True`` a dropped connection is re-opened
    with back-off and resumed with the session id from ``welcome`` (within the server's
    grace period the client keeps its place); ``on_reconnect(welcome)`` then runs."""

    tls: ClassVar[ssl.SSLContext | None] = None
    """TLS settings for ``wss://`` (the CLI's ``--ca-file``); None: the system's CAs."""

    def __init__(
        self,
        url: str,
        token: str,
        on_message: MessageHandler | None = None,
        *,
        reconnect: bool = True,
        on_reconnect: MessageHandler | None = None,
        backoff: tuple[float, float] = (0.25, 5.0),
        request_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.token = token
        self.on_message = on_message
        self.reconnect = reconnect
        self.on_reconnect = on_reconnect
        self.backoff = backoff
        self.request_timeout = request_timeout
        self.welcome: dict[str, Any] = {}
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._closing = False
        self.closed = asyncio.Event()
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.close_code: int | None = None
        self.last_error: dict[str, Any] | None = None  # the last error without a pending request

    @property
    def ended(self) -> str | None:
        """Why the server ended this session for good (None: it may be resumed)."""
        if self.last_error is not None and self.last_error.get("code") in FINAL_ERROR_CODES:
            return f"{self.last_error.get('code')}: {self.last_error.get('message', '')}"
        if self.close_code in FINAL_CLOSE_CODES:
            return f"closed {self.close_code}: {FINAL_CLOSE_CODES[self.close_code]}"
        return None

    async def connect(self, timeout: float | None = None) -> dict[str, Any]:
        async with asyncio.timeout(timeout or self.request_timeout):
            await self._open()
        return self.welcome

    async def _open(self) -> None:
        tls = {"ssl": self.tls} if self.tls is not None and self.url.startswith("wss:") else {}
        self._ws = await connect(self.url, compression=None, max_size=1024 * 1024, **tls)
        self.closed.clear()
        self.close_code = None
        self.last_error = None
        self._reader = asyncio.create_task(self._read(), name="signal-reader")
        hello: dict[str, Any] = {"type": "hello", "token": self.token}
        if self.welcome.get("session"):
            hello["session"] = self.welcome["session"]
        self.welcome = await self.request(hello)
        self.connected.set()

    async def _reconnect_loop(self) -> None:
        delay, ceiling = self.backoff
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                async with asyncio.timeout(self.request_timeout):
                    await self._open()
            except RequestError as exc:
                if exc.code in FINAL_ERROR_CODES:
                    log.warning("event=reconnect_refused url=%s code=%s", self.url, exc.code)
                    if self._ws is not None:
                        await self._ws.close()
                    return
                log.info("event=reconnect_failed url=%s error=%r", self.url, exc)
                if self._ws is not None:
                    await self._ws.close()
                delay = min(delay * 2, ceiling)
                continue
            except (OSError, TimeoutError, ConnectionError) as exc:
                log.info("event=reconnect_failed url=%s error=%r", self.url, exc)
                if self._ws is not None:
                    await self._ws.close()
                delay = min(delay * 2, ceiling)
                continue
            self.reconnects += 1
            log.info("event=reconnected resumed=%s", self.welcome.get("resumed"))
            if self.on_reconnect is not None:
                outcome = self.on_reconnect(self.welcome)
                if asyncio.iscoroutine(outcome):
                    await outcome
            return

    async def close(self) -> None:
        self._closing = True
        if self._reconnector is not None:
            self._reconnector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnector
            self._reconnector = None
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        self._fail_pending(ConnectionError("connection closed"))

    async def send(self, message: dict[str, Any]) -> None:
        """Send without waiting for the answer (SDP relays)."""
        if self._ws is None:
            raise ConnectionError("not connected")
        try:
            await self._ws.send(json.dumps(message))
        except ConnectionClosed as exc:
            raise ConnectionError("connection closed") from exc

    async def request(
        self, message: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """Send with an id and wait for its answer; raise RequestError on error."""
        if self._ws is None:
            raise ConnectionError("not connected")
        req_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        try:
            try:
                await self._ws.send(json.dumps({**message, "id": req_id}))
            except ConnectionClosed as exc:
                raise ConnectionError("connection closed") from exc
            async with asyncio.timeout(timeout or self.request_timeout):
                answer = await fut
        finally:
            self._pending.pop(req_id, None)
        if answer.get("type") == "error":
            raise RequestError(answer.get("code", "?"), answer.get("message", ""))
        return answer

    def _fail_pending(self, exc: Exception) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)

    async def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            async for frame in ws:
                message = json.loads(frame)
                kind = message.get("type")
                re = message.get("re")
                if kind in ANSWER_TYPES and re is not None and re in self._pending:
                    fut = self._pending[re]
                    if not fut.done():
                        fut.set_result(message)
                    if kind in ("ack", "error"):
                        continue
                elif kind == "error":
                    self.last_error = message
                    log.warning("event=server_error code=%s", message.get("code"))
                if self.on_message is not None and kind != "welcome":
                    outcome = self.on_message(message)
                    if asyncio.iscoroutine(outcome):
                        await outcome
        except ConnectionClosed:
            pass
        finally:
            rcvd = ws.protocol.close_rcvd
            self.close_code = rcvd.code if rcvd is not None else None
            self.connected.clear()
            self._fail_pending(ConnectionError("connection closed"))
            self.closed.set()
            idle = self._reconnector is None or self._reconnector.done()
            if self.ended is not None:
                log.warning("event=session_ended reason=%r", self.ended)
            elif self.reconnect and not self._closing and self.welcome and idle:
                self._reconnector = asyncio.get_running_loop().create_task(
                    self._reconnect_loop(), name="signal-reconnect"
                )
