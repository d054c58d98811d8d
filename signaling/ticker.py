"""The server's clock tick: once a second, the hub gives up places whose grace period ran
out (measured on the monotonic clock: a wall-clock step must abandon nobody)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

TICK_S = 1.0


class Ticker:
    def __init__(self, on_tick: Callable[[], None], every_s: float = TICK_S) -> None:
        self.on_tick = on_tick
        self.every_s = every_s
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hub-ticker")

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
