"""The server runs the young generations' collections on its own short clock (issue 17).

CPython's own schedule (allocations minus deallocations) let them fill for seconds under the
bench's steady churn, and each generation-1 collection then held the GIL 15-22 ms. The
pause lengths are measured in bench/signaling.py (BENCHMARKS.md); here: the clock runs with
``lapak signal``'s settings, and stops with the server.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import wait_for

from lapak.signaling.gc_policy import YOUNG_EVERY_S
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing


@pytest.fixture
def collections_seen() -> Iterator[list[int]]:
    """The generation of every collection from now on, with automatic collections off: a
    generation-1 collection is then one that the code asked for."""
    seen: list[int] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            seen.append(info["generation"])

    thresholds = gc.get_threshold()
    gc.disable()
    gc.callbacks.append(on_gc)
    try:
        yield seen
    finally:
        gc.callbacks.remove(on_gc)
        gc.set_threshold(*thresholds)  # the server's tune_gc changed them for the process
        gc.enable()


async def test_the_server_collects_the_young_generations_every_50_ms_until_it_closes(
    tmp_path: Path, keys: KeyRing, collections_seen: list[int]
) -> None:
    assert YOUNG_EVERY_S <= 0.1, f"expected a short clock, got {YOUNG_EVERY_S} s"
    srv = SignalServer(tmp_path / "data", keys, host="127.0.0.1", port=0, tune_gc=True)
    await srv.start()
    try:
        await wait_for(
            lambda: collections_seen.count(1) >= 5,
            f"five generation-1 collections from the server's clock (one per {YOUNG_EVERY_S} s)"
            f"; saw generations {collections_seen}",
            timeout=10,
        )
    finally:
        await srv.close()
    running = [t.get_name() for t in asyncio.all_tasks() if not t.done()]
    assert "young-gc" not in running, f"expected the clock stopped with the server: {running}"
