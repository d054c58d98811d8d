"""Keepalive pings spread over the interval. websockets pings every ``ping_interval`` from the
moment a connection opened, so connections opened together — a node's clients reconnecting
after a failover, a booth room after a network blip, a load test's storm — ping together, for
ever: every 20 s the loop handles thousands of pings and pongs in one pass, and every answer
queued behind them waits (measured in BENCHMARKS.md, "keepalive waves"). A random first delay
of up to one interval gives each connection its own phase; the interval and the timeout stay."""

from __future__ import annotations

import asyncio
import random

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection

__all__ = ["SpreadClientConnection", "SpreadServerConnection", "first_ping_delay"]


def first_ping_delay(interval: float, draw: float) -> float:
    """The extra wait before a connection's first keepalive ping: ``draw`` in [0, 1) of one
    interval (uniform draws give uniform phases)."""
    return max(0.0, min(draw, 1.0)) * interval


class SpreadServerConnection(ServerConnection):
    """The server's connection, its keepalive started at a random phase."""

    async def keepalive(self) -> None:
        assert self.ping_interval is not None
        await asyncio.sleep(first_ping_delay(self.ping_interval, random.random()))
        await super().keepalive()


class SpreadClientConnection(ClientConnection):
    """The client's connection (``connect(create_connection=...)``), likewise."""

    async def keepalive(self) -> None:
        assert self.ping_interval is not None
        await asyncio.sleep(first_ping_delay(self.ping_interval, random.random()))
        await super().keepalive()
