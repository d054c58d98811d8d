"""The server's clock ticks: once a second, the hub gives up places whose grace period ran
out (measured on the monotonic clock: a wall-clock step must abandon nobody); every 50 ms,
the young generations are collected (signaling/gc_policy.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

TICK_S = 1.0


class Ticker:
    def __init__(
        self, on_tick: Callable[[], None], every_s: float = TICK_S, name: str = "hub-ticker"
    ) -> None:
        self.on_tick = on_tick
        self.every_s = every_s
        self.name = name
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            self.on_tick()
            self.ticks += 1
