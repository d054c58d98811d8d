"""Shared fixtures: a real server on a loopback port, keys, and bounded waiting; and the test
tiers (``integration``, see ``pytest_collection_modifyitems``)."""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import ModuleType

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
def lapak_logger_restored() -> Iterator[None]:
    """A test that runs a command in-process (``setup_logging``) points the ``lapak`` logger
    at its own, soon closed, stream and stops it propagating: later tests' ``caplog`` would
    see nothing. Put the logger back as it was after every test."""
    import logging

    logger = logging.getLogger("lapak")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


@pytest.fixture(autouse=True)
def no_leaked_tasks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test whose tasks were destroyed while pending or left resources unclosed.

    The collection looks only at what was allocated since the last test: what survived is
    frozen (``gc.freeze``), else every test would walk the whole heap of Textual, aiortc and
    numpy again (0.2 s a test, two thirds of the unit tier's time)."""
    import gc

    yield
    gc.collect()
    gc.freeze()
    leaks = [
        r.getMessage()
        for r in caplog.records
        if r.name == "asyncio"
        and ("destroyed but it is pending" in r.getMessage() or "nclosed" in r.getMessage())
    ]
    assert not leaks, f"expected a clean shutdown, asyncio reported: {leaks}"


# -- test tiers ----------------------------------------------------------------------------------

INTEGRATION = re.compile(
    r"\b(SignalServer|subprocess\.\w+|Popen|create_subprocess_exec|run_bench|wait_healthy"
    r"|RTCPeerConnection|OfficerMedia|BoothAgent|run_booths|make_booths|async_playwright"
    r"|sync_playwright)\("
)
"""What an integration test does: start a real server, another process (the ``lapak``
command, a bench, a browser), or real media (aiortc peers, booth agents)."""


def _source(obj: Callable[..., object] | type | ModuleType) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


_helpers_by_module: dict[str, frozenset[str]] = {}


def _integration_helpers(module: ModuleType) -> frozenset[str]:
    """Names of the module's own functions and classes that do integration work, directly
    or through another such helper."""
    if module.__name__ not in _helpers_by_module:
        own = {
            name: _source(value)
            for name, value in vars(module).items()
            if (inspect.isfunction(value) or inspect.isclass(value))
            and getattr(value, "__module__", None) == module.__name__
        }
        found = {name for name, text in own.items() if INTEGRATION.search(text)}
        while True:
            grown = found | {
                name for name, text in own.items()
                if any(re.search(rf"\b{re.escape(h)}\b", text) for h in found)
            }  # fmt: skip
            if grown == found:
                break
            found = grown
        _helpers_by_module[module.__name__] = frozenset(found)
    return _helpers_by_module[module.__name__]


def is_integration(item: pytest.Item) -> bool:
    """The rule: a test is ``integration`` when its own code, a helper of its module that it
    calls, or a fixture it uses (``server``, for one) starts a real server, a subprocess,
    real media or a browser; see ``INTEGRATION``. Everything else is a unit test."""
    function = getattr(item, "function", None)
    module = getattr(item, "module", None)
    if function is None or module is None:
        return False
    text = _source(function)
    helpers = _integration_helpers(module)
    if INTEGRATION.search(text) or any(re.search(rf"\b{re.escape(h)}\b", text) for h in helpers):
        return True
    info = getattr(item, "_fixtureinfo", None)
    for defs in info.name2fixturedefs.values() if info is not None else ():
        for fixturedef in defs:
            if INTEGRATION.search(_source(fixturedef.func)):
                return True
    return False


MEDIA = re.compile(
    r"\baiortc\b|^(from|import) lapak\.media\b|playwright|netns_officer"
    r"|bench/(console|focus|recorder)\.py|lapak\.cli\", \"(booth|demo|console)\"",
    re.MULTILINE,
)
"""What marks a module ``media``: it runs media in real time (aiortc peers, booth agents, the
console, a browser) and counts frames or tones, which a test beside it on the other core
starves (two such counts failed when they shared two busy cores with other tests)."""

_media_modules: dict[str, bool] = {}


def is_media(item: pytest.Item) -> bool:
    module = getattr(item, "module", None)
    if module is None:
        return False
    if module.__name__ not in _media_modules:
        _media_modules[module.__name__] = bool(MEDIA.search(_source(module)))
    return _media_modules[module.__name__]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the integration tier (``make test-fast`` leaves it out, with ``slow``), and the
    real-time media modules (``make test`` runs them after the rest, one at a time)."""
    for item in items:
        if is_integration(item):
            item.add_marker(pytest.mark.integration)
        if is_media(item):
            item.add_marker(pytest.mark.media)
