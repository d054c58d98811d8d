"""Sessions survive a move (issue 14), with two real ``lapak signal`` nodes on one real
PostgreSQL: a booth and an officer enter through node B, are sent to the owner A, and A is
then killed with SIGKILL or stopped with SIGTERM (a hand-over). Both clients come back on B
with the session id A gave them (``resumed: true``), the booth's visit in the same seat and
still on air, the officer's desk with both visits: as a single node resumes its own."""

# ruff: noqa: F811  (the cluster fixtures are imported, then named as test arguments)
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import wait_for
from pg_cluster import pg_cluster, pg_url  # noqa: F401  (fixtures)
from tests_support import free_port, healthz, wait_healthy

from lapak.signaling.client import SignalClient
from lapak.signaling.messages import BoothState, ServerMessage, Snapshot
from lapak.signaling.tokens import KeyRing

pytestmark = pytest.mark.integration

LEASE_S = 5.0  # long enough that a heartbeat late under load does not re-plan the pair
GRACE_S = 15.0  # the nodes' grace period (``--grace``)


def _node(url: str, data: Path, secret: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lapak.cli", "signal", "--port", str(port), "--data-dir",
         str(data), "--secret-file", str(secret), "--store", url, "--office", "main",
         "--node-url", f"ws://127.0.0.1:{port}/ws", "--lease-s", str(LEASE_S),
         "--grace", str(GRACE_S)],
        stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip


def _owns(port: int, office: str = "main") -> bool:
    return office in ((healthz(port) or {}).get("offices_owned") or [])


@dataclass
class Pair:
    keys: KeyRing
    a: subprocess.Popen[str]
    b: subprocess.Popen[str]
    url_a: str
    url_b: str
    port_b: int
    b_started: float  # monotonic
    clients: list[SignalClient] = field(default_factory=list)


@pytest.fixture
async def pair(pg_url: str, tmp_path: Path) -> AsyncIterator[Pair]:
    """Node A owning ``main`` and node B, both up."""
    secret = tmp_path / "secret"
    keys = KeyRing.generate()
    keys.write(secret)
    port_a, port_b = free_port(), free_port()
    procs = [_node(pg_url, tmp_path / "a", secret, port_a)]
    try:
        await asyncio.to_thread(wait_healthy, port_a, procs[0])
        await wait_for(lambda: _owns(port_a), "node A owns main")
        b_started = time.monotonic()
        procs.append(_node(pg_url, tmp_path / "b", secret, port_b))
        await asyncio.to_thread(wait_healthy, port_b, procs[1])
        # Placement (signaling/placement.py) spreads ``main`` and ``"*"`` over the two live
        # nodes by hashing their URLs (random ports): wait until each owns one, then call
        # the owner of ``main`` A (it may be the node started second).
        await wait_for(
            lambda: (
                _owns(port_a) != _owns(port_b)
                and _owns(port_a, "*") != _owns(port_b, "*")
                and _owns(port_a) != _owns(port_a, "*")
            ),
            "the two nodes split main and * between them",
            timeout=30,
        )
        if _owns(port_b):
            port_a, port_b = port_b, port_a
            procs.reverse()
        url = "ws://127.0.0.1:{}/ws"
        pair = Pair(keys, procs[0], procs[1], url.format(port_a), url.format(port_b), port_b,
                    b_started)  # fmt: skip
        yield pair
        for client in pair.clients:
            await client.close()
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class Seen:
    """What a client received, newest last, by kind."""

    def __init__(self) -> None:
        self.messages: list[ServerMessage] = []

    def __call__(self, message: ServerMessage) -> None:
        self.messages.append(message)

    def last(self, kind: type[BoothState] | type[Snapshot]) -> BoothState | Snapshot | None:
        return next((m for m in reversed(self.messages) if isinstance(m, kind)), None)


async def _seated_on_air(pair: Pair) -> tuple[SignalClient, SignalClient, Seen, Seen, dict]:
    """Through B (moved to A): an officer at d0, two booths whose visits are seated, the
    first on air."""
    keys = pair.keys
    seen_officer, seen_booth = Seen(), Seen()
    # Both nodes are entry points, as a deployment lists them: placement may give ``main`` to
    # B before the clients arrive, and then the node that is killed is the one they entered by.
    entries = (pair.url_a,)
    officer = SignalClient(pair.url_b, keys.issue("officer", "o0", "main", desk="d0"),
                           seen_officer, entries=entries)  # fmt: skip
    booth = SignalClient(pair.url_b, keys.issue("booth", "b0", "main", booth="b0"), seen_booth,
                         entries=entries)  # fmt: skip
    other = SignalClient(pair.url_b, keys.issue("booth", "b1", "main", booth="b1"),
                         entries=entries)  # fmt: skip
    pair.clients += [officer, booth, other]
    for client in pair.clients:
        async with asyncio.timeout(20):
            await client.connect(retry=True)
    urls = {c.url for c in pair.clients}
    assert len(urls) == 1, f"all sent to the one owner of main: {urls}"
    if urls == {pair.url_b}:  # placement moved main to the other node before they came: it is A
        pair.a, pair.b, pair.url_a, pair.url_b = pair.b, pair.a, pair.url_b, pair.url_a
        pair.port_b = int(pair.url_b.rsplit(":", 1)[1].split("/")[0])
    assert _owns(int(pair.url_a.rsplit(":", 1)[1].split("/")[0])), "moved to the owner"
    visits = []
    for client, name in ((booth, "S"), (other, "T")):
        claimant = {"name": name, "membership_no": "1"}
        visits.append((await client.request({"type": "start_visit", "claimant": claimant})).visit)
    await officer.request({"type": "focus", "visit": visits[0]})
    await wait_for(lambda: _on_air(seen_booth) is True, "the booth is on air")
    snapshot = seen_officer.last(Snapshot)
    assert snapshot is not None
    before = {
        "visits": visits,
        "sessions": [officer.welcome.session, booth.welcome.session],  # type: ignore[union-attr]
        "slot": _slot(seen_booth),
    }
    assert all(before["sessions"]) and before["slot"] is not None
    return officer, booth, seen_officer, seen_booth, before


def _on_air(seen: Seen) -> bool | None:
    state = seen.last(BoothState)
    return state.on_air if isinstance(state, BoothState) else None


def _slot(seen: Seen) -> int | None:
    state = seen.last(BoothState)
    return state.slot if isinstance(state, BoothState) else None


async def _resumed_on_b(
    pair: Pair, officer: SignalClient, booth: SignalClient, seen_officer: Seen,
    seen_booth: Seen, before: dict,
) -> None:  # fmt: skip
    seen_officer.messages.clear()
    seen_booth.messages.clear()
    await wait_for(
        lambda: all(c.reconnects >= 1 and c.connected.is_set() for c in (officer, booth)),
        "the officer and the booth reconnected", 40,
    )  # fmt: skip
    assert officer.url == pair.url_b and booth.url == pair.url_b
    assert officer.welcome is not None and booth.welcome is not None
    assert [officer.welcome.session, booth.welcome.session] == before["sessions"], "same ids"
    assert officer.welcome.resumed and booth.welcome.resumed
    await wait_for(lambda: _on_air(seen_booth) is not None, "the booth's booth_state on B")
    assert _on_air(seen_booth) is True and _slot(seen_booth) == before["slot"], "seat and air"
    await wait_for(lambda: seen_officer.last(Snapshot) is not None, "the officer's snapshot")
    desk = seen_officer.last(Snapshot)
    assert isinstance(desk, Snapshot)
    assert desk.state.on_air == before["visits"][0], "the on-air booth kept"
    assert sorted(v.visit for v in desk.state.visits) == sorted(before["visits"]), "desk kept"
    decide = {"type": "decide", "visit": before["visits"][0], "step": 0, "decision": "approve"}
    await officer.request(decide)  # and the work goes on, acknowledged by B


async def test_kill_9_the_owner_sessions_resume_on_the_other_node(pair: Pair) -> None:
    """B has run longer than the grace period before the kill, so the sessions resume by
    the take-over's own window (``Hub.adopted``), not by B's start-up one."""
    officer, booth, seen_officer, seen_booth, before = await _seated_on_air(pair)
    await wait_for(
        lambda: time.monotonic() - pair.b_started > GRACE_S + 1,
        "node B's start-up window has closed (a time window, not a wait for an event)",
        GRACE_S + 5, interval=0.5,
    )  # fmt: skip
    os.killpg(pair.a.pid, signal.SIGKILL)
    pair.a.wait(timeout=10)
    await _resumed_on_b(pair, officer, booth, seen_officer, seen_booth, before)
    assert _owns(pair.port_b)


async def test_a_sigterm_hand_over_keeps_the_sessions(pair: Pair) -> None:
    officer, booth, seen_officer, seen_booth, before = await _seated_on_air(pair)
    os.killpg(pair.a.pid, signal.SIGTERM)
    assert await asyncio.to_thread(pair.a.wait, 30) == 0
    await _resumed_on_b(pair, officer, booth, seen_officer, seen_booth, before)
