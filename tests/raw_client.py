"""A websocket client at the wire level (plain JSON), for server tests that must not depend
on the Python client session: hello, numbered requests, and a reader that drops the rest."""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

_ids = itertools.count(100)


async def hello(url: str, token: str, context: ssl.SSLContext | None = None) -> ClientConnection:
    ws = await connect(url, ssl=context) if context is not None else await connect(url)
    await ws.send(json.dumps({"type": "hello", "id": 1, "token": token}))
    first = json.loads(await ws.recv())
    assert first["type"] == "welcome", f"expected a welcome, got {first}"
    return ws


async def request(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    """Send with a fresh id; the answer is the message whose ``re`` names it."""
    number = next(_ids)
    await ws.send(json.dumps({**message, "id": number}))
    async with asyncio.timeout(10):
        while True:
            answer: dict[str, Any] = json.loads(await ws.recv())
            if answer.get("re") == number:
                return answer


async def discard(ws: ClientConnection) -> None:
    """Read and drop everything (a client that never reads stalls its own close)."""
    async for _ in ws:
        pass
