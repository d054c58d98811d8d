"""``office = "*"`` supervisors see every office whichever node they reach (issue 14), with
two real ``lapak signal`` nodes on one real PostgreSQL: node A owns north, node B south.
A ``*`` supervisor at A sees south's desk, officer and visit in ``office_stats`` (B
publishes its offices' figures into the store each tick), and watching south's desk from A
is answered ``moved`` with B's URL, which the client follows for that watch."""

# ruff: noqa: F811  (the cluster fixtures are imported, then named as test arguments)
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_for
from pg_cluster import pg_cluster, pg_url  # noqa: F401  (fixtures)
from tests_support import free_port, healthz, wait_healthy

from lapak.signaling.client import SignalClient, WatchMoved
from lapak.signaling.messages import Ack, Snapshot
from lapak.signaling.protocol import Watch
from lapak.signaling.tokens import KeyRing

pytestmark = pytest.mark.integration


def _node(url: str, data: Path, secret: Path, port: int, office: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lapak.cli", "signal", "--port", str(port), "--data-dir",
         str(data), "--secret-file", str(secret), "--store", url, "--office", office,
         "--node-url", f"ws://127.0.0.1:{port}/ws", "--lease-s", "5"],
        stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip


def _owns(port: int, office: str) -> bool:
    return office in ((healthz(port) or {}).get("offices_owned") or [])


async def test_a_star_supervisor_on_one_node_sees_and_watches_the_others_offices(
    pg_url: str, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    keys = KeyRing.generate()
    keys.write(secret)
    port_a, port_b = free_port(), free_port()
    url_a, url_b = f"ws://127.0.0.1:{port_a}/ws", f"ws://127.0.0.1:{port_b}/ws"
    a = _node(pg_url, tmp_path / "a", secret, port_a, "north")
    b = _node(pg_url, tmp_path / "b", secret, port_b, "south")
    clients: list[SignalClient] = []
    try:
        await asyncio.to_thread(wait_healthy, port_a, a)
        await asyncio.to_thread(wait_healthy, port_b, b)
        await wait_for(lambda: _owns(port_a, "north") and _owns(port_b, "south"),
                       "each node owns its office")  # fmt: skip
        north = SignalClient(url_a, keys.issue("officer", "on", "north", desk="d-north"))
        south = SignalClient(url_b, keys.issue("officer", "os", "south", desk="d-south"))
        booth = SignalClient(url_b, keys.issue("booth", "b0", "south", booth="b0"))
        clients += [north, south, booth]
        for client in clients:
            await client.connect(retry=True)
        claimant = {"name": "S", "membership_no": "1"}
        visit = (await booth.request({"type": "start_visit", "claimant": claimant})).visit

        star = keys.issue("supervisor", "sv", "*")
        sup = SignalClient(url_a, star)
        clients.append(sup)
        await sup.connect()
        figures: list[Ack] = []

        async def sees_south() -> bool:
            figures.append(await sup.request({"type": "office_stats"}))
            desks = {d.desk: d for d in figures[-1].figures().desks}
            return "d-south" in desks and desks["d-south"].load == 1

        for _ in range(100):  # bounded: B publishes each tick, A reads each tick
            if await sees_south():
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"A's office_stats never showed south: {figures[-1]}")
        seen = figures[-1].figures()
        desks = {d.desk: d for d in seen.desks}
        assert set(desks) == {"d-north", "d-south"}, "both nodes' offices"
        assert desks["d-south"].officer == "os" and desks["d-south"].present
        assert desks["d-north"].present and desks["d-north"].load == 0
        assert seen.visits_today == 1
        south_only = (await sup.request({"type": "office_stats", "office": "south"})).figures()
        assert [d.desk for d in south_only.desks] == ["d-south"]

        again = SignalClient(url_a, star)
        clients.append(again)
        welcome = await again.connect()
        assert welcome.desks == ["d-north", "d-south"], "the welcome names every desk"

        with pytest.raises(WatchMoved) as moved:  # a typed Watch: refused with where to go
            await sup.request(Watch(desk="d-south"))
        assert moved.value.moved.url == url_b and moved.value.moved.office == "south"
        assert sup.connected.is_set(), "the connection stays"
        holder, snapshot = await sup.watch_anywhere("d-south")
        clients.append(holder)
        assert holder is not sup and holder.url == url_b, "followed moved to south's node"
        assert isinstance(snapshot, Snapshot) and [v.visit for v in snapshot.state.visits] == [
            visit
        ]
        same, local = await sup.watch_anywhere("d-north")
        assert same is sup and local.desk == "d-north", "its own node's desk: watched here"
    finally:
        for client in clients:
            await client.close()
        for proc in (a, b):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
