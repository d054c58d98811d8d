"""A small asyncio client for the signalling protocol, shared by booths and consoles.

Requests get an ``id`` and await their ``ack``/``error``; every other inbound message goes
to the ``on_message`` callback in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("lapak.client")

MessageHandler = Callable[[dict[str, Any]], Awaitable[None] | None]


class RequestError(Exception):
    """The server refused a request; ``code`` is the stable error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SignalClient:
    def __init__(self, url: str, token: str, on_message: MessageHandler | None = None) -> None:
        self.url = url
        self.token = token
        self.on_message = on_message
        self.welcome: dict[str, Any] = {}
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def connect(self, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            self._ws = await connect(self.url, compression=None, max_size=1024 * 1024)
            self._reader = asyncio.create_task(self._read(), name="signal-reader")
            self.welcome = await self.request({"type": "hello", "token": self.token})
        return self.welcome

    async def close(self) -> None:
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
        assert self._ws is not None
        await self._ws.send(json.dumps(message))

    async def request(self, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Send with an id and wait for its ack; raise RequestError on error."""
        assert self._ws is not None
        req_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        try:
            await self._ws.send(json.dumps({**message, "id": req_id}))
            async with asyncio.timeout(timeout):
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
        assert self._ws is not None
        try:
            async for frame in self._ws:
                message = json.loads(frame)
                re = message.get("re")
                if message.get("type") in ("ack", "error", "welcome") and re in self._pending:
                    fut = self._pending[re]
                    if not fut.done():
                        fut.set_result(message)
                    if message.get("type") != "welcome":
                        continue
                if message.get("type") == "error":
                    log.warning("event=server_error code=%s", message.get("code"))
                if self.on_message is not None and message.get("type") != "welcome":
                    outcome = self.on_message(message)
                    if asyncio.iscoroutine(outcome):
                        await outcome
        except ConnectionClosed:
            pass
        finally:
            self._fail_pending(ConnectionError("connection closed"))
            self.closed.set()
