"""A long-running subcommand's lifetime: stop cleanly on SIGINT/SIGTERM or when its parent
goes away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

log = logging.getLogger("lapak.cli")


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


async def watch_parent(stop: asyncio.Event) -> None:
    """Stop when the process that started us is gone (even if it was SIGKILLed)."""
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(0.5)
        if os.getppid() != parent:
            log.info("event=parent_gone action=stop")
            stop.set()
