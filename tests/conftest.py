"""Shared fixtures: a real server on a loopback port, keys, and bounded waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing


async def wait_for(
    predicate: Callable[[], bool], what: str, timeout: float = 15.0, interval: float = 0.05
) -> None:
    """Poll until ``predicate()`` holds; fail saying what was expected."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for: {what}")
        await asyncio.sleep(interval)


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture
async def server(tmp_path: Path, keys: KeyRing) -> AsyncIterator[SignalServer]:
    srv = SignalServer(tmp_path / "data", keys, host="127.0.0.1", port=0)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture(autouse=True)
def no_leaked_tasks(caplog: pytest.LogCaptureFixture):  # type: ignore[no-untyped-def]
    """Fail a test whose tasks were destroyed while pending or left resources unclosed."""
    import gc

    yield
    gc.collect()
    leaks = [
        r.getMessage()
        for r in caplog.records
        if r.name == "asyncio"
        and ("destroyed but it is pending" in r.getMessage() or "nclosed" in r.getMessage())
    ]
    assert not leaks, f"expected a clean shutdown, asyncio reported: {leaks}"
