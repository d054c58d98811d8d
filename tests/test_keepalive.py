"""Keepalive pings spread over the interval (signaling/keepalive.py): connections opened
together must not ping together for ever (BENCHMARKS.md, "keepalive waves")."""

from __future__ import annotations

import time

from conftest import wait_for
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from lapak.signaling.keepalive import SpreadServerConnection, first_ping_delay

INTERVAL = 2.0


def test_first_delay_is_a_share_of_one_interval() -> None:
    assert first_ping_delay(20.0, 0.0) == 0.0
    assert first_ping_delay(20.0, 0.5) == 10.0
    assert first_ping_delay(20.0, 0.999) < 20.0
    assert first_ping_delay(20.0, 7.0) == 20.0 and first_ping_delay(20.0, -1.0) == 0.0


async def test_connections_opened_together_ping_at_their_own_phases() -> None:
    pinged: dict[int, list[float]] = {}

    class Recorded(SpreadServerConnection):
        async def ping(self, data=None):  # type: ignore[no-untyped-def]
            pinged.setdefault(id(self), []).append(time.monotonic())
            return await super().ping(data)

    async def handler(ws: SpreadServerConnection) -> None:
        await ws.wait_closed()

    async with serve(
        handler, "127.0.0.1", 0, ping_interval=INTERVAL, ping_timeout=INTERVAL,
        create_connection=Recorded,
    ) as server:  # fmt: skip
        port = next(iter(server.sockets)).getsockname()[1]
        opened = time.monotonic()
        clients = [await connect(f"ws://127.0.0.1:{port}", ping_interval=None) for _ in range(20)]
        try:
            await wait_for(
                lambda: len(pinged) == 20 and min(len(t) for t in pinged.values()) >= 2,
                "two pings on each of the twenty connections", 4 * INTERVAL + 10,
            )  # fmt: skip
        finally:
            for client in clients:
                await client.close()
    firsts = sorted(times[0] - opened for times in pinged.values())
    assert firsts[0] >= INTERVAL * 0.9, f"no ping before one interval: {firsts}"
    # Twenty uniform phases over 2 s all within 0.5 s has a chance of about 20 * 0.25**19.
    assert firsts[-1] - firsts[0] > 0.5, f"the first pings are spread, not together: {firsts}"
    for times in pinged.values():  # then every interval, as websockets does
        assert times[1] - times[0] >= INTERVAL * 0.9, times
