"""Real ``lapak signal`` cluster nodes on one PostgreSQL database, for the lease tests:
each a process of its own (its own port and data directory, one secret for all), its log
in a file (a pipe nobody reads would stall a talkative node). ``Nodes.start`` starts one,
``restart`` starts a killed one again on its port and data directory, ``stop_all`` kills
what is left. The ``pg_nodes`` fixture gives a fresh database's ``Nodes``."""

# ruff: noqa: F811  (the cluster fixtures are imported, then named as fixture arguments)
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pg_cluster import pg_cluster, pg_url  # noqa: F401  (fixtures)
from tests_support import free_port, healthz, wait_healthy

from lapak.signaling.placement import place
from lapak.signaling.tokens import KeyRing

LEASE_S = 2.0


@dataclass
class Node:
    port: int
    data: Path
    offices: list[str]
    lease_s: float
    proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def log_path(self) -> Path:
        return self.data.with_suffix(".log")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def owned(self) -> list[str]:
        """The offices its ``/healthz`` says it owns (none when it does not answer)."""
        health = healthz(self.port) if self.alive() else None
        return list(health.get("offices_owned", [])) if health else []

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class Nodes:
    """The nodes of one store; a node's name in the store is its URL."""

    def __init__(self, store: str, root: Path, keys: KeyRing | None = None) -> None:
        self.store = store
        self.root = root
        self.keys = keys or KeyRing.generate()
        self.secret = root / "secret"
        root.mkdir(parents=True, exist_ok=True)
        self.keys.write(self.secret)
        self.nodes: list[Node] = []

    def add(self, offices: list[str], lease_s: float = LEASE_S, port: int | None = None) -> Node:
        """A node, not started yet (its port chosen now: placement can be computed)."""
        index = len(self.nodes)
        node = Node(port or free_port(), self.root / f"n{index}", list(offices), lease_s)
        self.nodes.append(node)
        return node

    def spawn(self, node: Node) -> Node:
        argv = [
            sys.executable, "-m", "lapak.cli", "signal", "--port", str(node.port),
            "--data-dir", str(node.data), "--secret-file", str(self.secret), "--store",
            self.store, "--node-url", node.url, "--lease-s", str(node.lease_s),
        ]  # fmt: skip
        for office in node.offices:
            argv += ["--office", office]
        with node.log_path.open("a") as log:
            node.proc = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=log, text=True, start_new_session=True
            )
        return node

    async def start(
        self, offices: list[str], lease_s: float = LEASE_S, port: int | None = None
    ) -> Node:
        """Add a node, start it and wait until it answers ``/healthz``."""
        return await self.restart(self.add(offices, lease_s, port))

    async def restart(self, node: Node) -> Node:
        """(Re)start ``node`` on its port and data directory; wait until it answers."""
        self.spawn(node)
        assert node.proc is not None
        try:
            await asyncio.to_thread(wait_healthy, node.port, node.proc)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{node.log_tail()}") from None
        return node

    def kill(self, node: Node, sig: int = signal.SIGKILL) -> None:
        if node.alive():
            assert node.proc is not None
            os.killpg(node.proc.pid, sig)
            if sig == signal.SIGKILL:
                node.proc.wait(timeout=10)

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.alive()]

    def placement(self) -> dict[str, str]:
        """Office -> URL of the node that should own it, over the nodes running now (every
        node serves ``*`` too)."""
        return place({n.url: [*n.offices, "*"] for n in self.live()})

    def owners(self) -> dict[str, list[str]]:
        """Office -> URLs of the running nodes that say they own it."""
        found: dict[str, list[str]] = {}
        for node in self.live():
            for office in node.owned():
                found.setdefault(office, []).append(node.url)
        return found

    def settled(self) -> bool:
        """Every office owned by exactly the node placement gives it."""
        owners = self.owners()
        plan = self.placement()
        return set(owners) == set(plan) and all(owners[o] == [u] for o, u in plan.items())

    def logs(self) -> str:
        return "\n".join(f"--- {n.url}\n{n.log_tail()}" for n in self.nodes)

    def stop_all(self) -> None:
        for node in self.nodes:
            if node.alive():
                assert node.proc is not None
                os.killpg(node.proc.pid, signal.SIGCONT)
                os.killpg(node.proc.pid, signal.SIGKILL)
                node.proc.wait()


@pytest.fixture
def pg_nodes(pg_url: str, tmp_path: Path) -> Iterator[Nodes]:
    """Cluster nodes on a fresh database (started by the test; all killed afterwards)."""
    nodes = Nodes(pg_url, tmp_path / "nodes")
    try:
        yield nodes
    finally:
        nodes.stop_all()
