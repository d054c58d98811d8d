"""Benchmark: Lapak past one machine: 1 node on SQLite, 1 and 3 nodes on one PostgreSQL.

The same load (bench/_load.py: officers and booths over websockets, offices of ten desks,
six booths per desk, officers approving steps at ``--rate`` decisions per second in total,
visits ending and starting again) runs against three configurations, one after the other:

- ``sqlite``: one ``lapak signal`` on its SQLite log (the embedded default);
- ``pg1``: one node on PostgreSQL with leases on (``--store``, ``--node-url``), owning every
  office;
- ``pg3``: three nodes on the same PostgreSQL, the offices spread over them.

PostgreSQL is a throwaway cluster (tests/pg_cluster.py: ``initdb`` in a temporary directory,
a fresh database per configuration). Each client connects straight to the node that owns
its office (from ``/healthz``). After each load phase every acknowledged decision is looked
up in the store: ``lost_acks`` (must be 0) counts those missing.

Placement (``--placement``): ``lists`` gives each node its own ``--office`` list (every
third office) plus the failover offices, and starts the nodes in turn so that the first
owns the failover offices and the others stand by for them; ``spread`` gives every node
every office and lets the servers spread them (needs even spreading in ``lapak signal``).

Then, on the three nodes, with the load's clients gone:

- failover, ``--failovers`` times: officers and booths of the failover offices (one desk and
  six booths each, ``SignalClient`` with its reconnect policy, entering through a node that
  survives) are connected to the owner; the owner is killed with SIGKILL; ``failover_s`` is
  the time from the kill until every one of those clients has resumed: a booth when its
  hello is welcomed again, an officer when its next decision is acknowledged. The killed node
  is restarted before the next round.
- split brain: the owner of a failover office is stopped (SIGSTOP) past its lease, another
  node takes the office, the officer (still connected to the stopped node) sends decisions,
  the node is resumed (SIGCONT). ``split_brain_writes`` counts those decisions found in the
  store afterwards (must be 0: the old epoch is fenced); the store must still verify.

Run from the repository root (it needs PostgreSQL's binaries, ``apt install postgresql``)::

    .venv/bin/python bench/cluster.py [--clients N] [--rate R] [--duration S]
                                      [--failovers N] [--lease-s S] [--quick]

Progress goes to stdout as lines starting with '#'; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# This directory holds ``signaling.py``, also the server package's name: keep the package
# first on the path and this directory last (where ``_load`` is found); tests/ gives the
# throwaway PostgreSQL cluster.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))
sys.path.append(str(HERE))
sys.path.append(str(HERE.parent / "tests"))

import _load  # noqa: E402
from _load import Workers, free_port, run_phase, say, stop, wait_http  # noqa: E402

from lapak.signaling.client import SignalClient  # noqa: E402
from lapak.signaling.events import StepDecided, decode_event  # noqa: E402
from lapak.signaling.messages import Ack  # noqa: E402
from lapak.signaling.tokens import KeyRing  # noqa: E402

ROOT = HERE.parent
LAPAK = ROOT / ".venv" / "bin" / "lapak"
CONFIGS = ("sqlite", "pg1", "pg3")
FAILOVER_BOOTHS = 6  # per failover office: one desk, its six slots


def healthz(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return dict(json.load(response))
    except OSError:
        return None


def until(what: str, check: Any, timeout: float, every: float = 0.05) -> Any:
    """Poll ``check()`` until it returns something true; RuntimeError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


async def until_async(what: str, check: Any, timeout: float, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(every)


# -- nodes --------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    port: int
    data: Path
    log: Path
    command: list[str]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=out)
        wait_http(f"http://127.0.0.1:{self.port}/healthz", self.proc, timeout=60)

    def owned(self) -> set[str]:
        if self.proc is None or self.proc.poll() is not None:
            return set()
        health = healthz(self.port)
        return set(health.get("offices_owned", [])) - {"*"} if health else set()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)
            stop(self.proc)

    def warnings(self) -> int:
        lines = self.log.read_text(errors="replace").splitlines()
        bad = [ln for ln in lines if " level=error " in ln or " level=critical " in ln]
        return sum(1 for ln in bad if "event=fenced" not in ln)  # fenced: split brain, expected


def make_node(
    name: str, tmp: Path, secret: Path, store: str | None, offices: list[str] | None,
    lease_s: float,
) -> Node:  # fmt: skip
    port = free_port()
    data = tmp / f"data-{name}"
    cmd = [str(LAPAK), "signal", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--data-dir", str(data), "--secret-file", str(secret)]
    if store is not None:
        cmd += ["--store", store]
    if offices is not None:
        cmd += ["--node-url", f"ws://127.0.0.1:{port}/ws", "--lease-s", f"{lease_s:g}"]
        for office in offices:
            cmd += ["--office", office]
    return Node(name, port, data, tmp / f"{name}.log", cmd)


def settled(
    nodes: list[Node], offices: list[str], quiet_s: float, timeout: float
) -> dict[str, Node]:
    """Office -> owner once every office has exactly one and nothing moved for ``quiet_s``
    (with servers that spread offices, hand-overs go on for a few lease rounds)."""
    deadline = time.monotonic() + timeout
    last: dict[str, str] | None = None
    since = time.monotonic()
    while time.monotonic() < deadline:
        found = owners(nodes, offices)
        names = {o: n.name for o, n in found.items()} if found else None
        if names != last:
            last, since = names, time.monotonic()
        elif found is not None and time.monotonic() - since >= quiet_s:
            return found
        time.sleep(0.25)
    raise RuntimeError(f"the offices did not settle on one owner each within {timeout:g} s")


def postgres_pids(data: Path) -> list[int]:
    """The PostgreSQL cluster's processes: the postmaster and its children (backends,
    WAL writer, checkpointer...), whose CPU is the store's cost."""
    main = int((data / "postmaster.pid").read_text().split()[0])
    pids = [main]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == main:
                pids.append(int(stat.parent.name))
    return pids


def owners(nodes: list[Node], offices: list[str]) -> dict[str, Node] | None:
    """Office -> its one owner, once every office has exactly one; else None."""
    found: dict[str, Node] = {}
    for node in nodes:
        for office in node.owned():
            if office in found:
                return None
            found[office] = node
    return found if all(o in found for o in offices) else None


# -- the store afterwards -----------------------------------------------------------------


def decided_sqlite(data: Path) -> set[tuple[str, int]]:
    """Every (visit, step) with a ``step_decided`` event in a node's SQLite log."""
    conn = sqlite3.connect(f"file:{data / 'events.sqlite3'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT body FROM events WHERE kind = 'step_decided'").fetchall()
    finally:
        conn.close()
    return _decided(row[0] for row in rows)


def decided_pg(url: str) -> set[tuple[str, int]]:
    async def fetch() -> list[Any]:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            return list(
                await conn.fetch("SELECT body FROM lapak_events WHERE kind = 'step_decided'")
            )
        finally:
            await conn.close()

    return _decided(row["body"] for row in asyncio.run(fetch()))


def _decided(bodies: Any) -> set[tuple[str, int]]:
    out = set()
    for body in bodies:
        event = decode_event(bytes(body))
        if isinstance(event, StepDecided):
            out.add((event.visit, event.step))
    return out


def lost(acked: list[tuple[str, int]], decided: set[tuple[str, int]]) -> int:
    return sum(1 for pair in acked if tuple(pair) not in decided)


# -- one configuration under load ---------------------------------------------------------


def run_config(
    kind: str, workers: Workers, tmp: Path, secret: Path, pg: Any, args: argparse.Namespace,
    failover_offices: list[str],
) -> tuple[dict[str, Any], list[Node], str | None]:  # fmt: skip
    """Start the nodes, place the offices, run the load, check the store. Returns the
    figures, the running nodes (pg3: kept for the failover phases) and the store's URL."""
    offices = _load.make_offices(args.clients, args.desks_per_office)
    names = [o.name for o in offices]
    store = pg.create_database() if kind != "sqlite" else None
    n = 3 if kind == "pg3" else 1
    nodes: list[Node] = []
    if kind == "sqlite":
        nodes.append(make_node("sqlite", tmp, secret, None, None, args.lease_s))
    elif args.placement == "spread" or n == 1:
        everything = names + failover_offices
        nodes = [make_node(f"{kind}-{i}", tmp, secret, store, everything, args.lease_s)
                 for i in range(n)]  # fmt: skip
    else:  # every third office, the failover offices wanted by all: the first takes them
        nodes = [
            make_node(f"{kind}-{i}", tmp, secret, store, names[i::n] + failover_offices,
                      args.lease_s)
            for i in range(n)
        ]  # fmt: skip
    try:
        for node in nodes:
            say(f"{kind}: starting {node.name}: {' '.join(node.command[:8])} ...")
            node.start()
            if kind != "sqlite" and args.placement == "lists":
                mine = set(names[nodes.index(node) :: n]) if n > 1 else set(names)
                until(f"{node.name} owns its offices", lambda nd=node, m=mine: m <= nd.owned(), 60)
        placed: dict[str, Node] = {}
        if kind != "sqlite":
            placed = settled(nodes, names + failover_offices, 3.0, 180)
            for office in offices:
                office.url = placed[office.name].url
            share = {nd.name: sum(1 for o in names if placed[o] is nd) for nd in nodes}
            say(f"{kind}: offices per node {share}")
        url = nodes[0].url
        store_pids = (lambda: postgres_pids(pg.data)) if store else None
        real = run_phase(
            workers, "real", url, offices, secret, args.rate, args.duration,
            [nd.proc.pid for nd in nodes if nd.proc is not None], store_pids=store_pids,
        )  # fmt: skip
        decided = decided_pg(store) if store else decided_sqlite(nodes[0].data)
        acked = real.pop("acked")
        missing = lost(acked, decided)
        say(f"{kind}: {len(acked)} acknowledged decisions, {missing} missing from the store")
        result = {
            "nodes": n,
            "store": "sqlite" if kind == "sqlite" else "postgresql",
            "clients": real["clients"],
            "decisions_per_s": real["decisions_per_s"],
            "ack_p50_ms": real["ack_p50_ms"],
            "ack_p99_ms": real["ack_p99_ms"],
            "lost_acks": missing,
            "acks_checked": len(acked),
            "connect_storm_s": real["connect_storm_s"],
            "errors": real["errors"],
            "error_codes": real["error_codes"],
            "server_cpu_cores": real["server_cpu_cores"],
            "store_cpu_cores": real["store_cpu_cores"],
            "server_rss_mb": real["server_rss_mb"],
            "load_cpu_cores": real["load_cpu_cores"],
            "foreign_cpu_cores": real["foreign_cpu_cores"],
            "decisions_target": real["decisions_target"],
            "decisions_sent": real["decisions_sent"],
        }
        if kind != "sqlite":
            result["offices_per_node"] = sorted(
                sum(1 for o in names if placed[o] is nd) for nd in nodes
            )
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    if kind != "pg3":
        for node in nodes:
            node.stop()
    result["node_errors_logged"] = sum(nd.warnings() for nd in nodes)
    return result, nodes, store


# -- failover and split brain (pg3) -------------------------------------------------------


@dataclass
class Desk:
    """One failover office: its officer, its booths, their visits and next steps."""

    office: str
    officer: SignalClient
    booths: list[SignalClient]
    visits: list[str] = field(default_factory=list)
    next_step: dict[str, int] = field(default_factory=dict)
    acked: list[tuple[str, int]] = field(default_factory=list)
    turn: int = 0

    @property
    def clients(self) -> list[SignalClient]:
        return [self.officer, *self.booths]

    async def decide(self) -> None:
        """The next step of the next visit, approved; retried while the office moves."""
        visit = self.visits[self.turn % len(self.visits)]
        self.turn += 1
        step = self.next_step[visit]
        message = {"type": "decide", "visit": visit, "step": step, "decision": "approve"}
        answer = await self.officer.request(message)
        assert isinstance(answer, Ack), answer
        self.next_step[visit] = step + 1
        self.acked.append((visit, step))


async def open_desks(keys: KeyRing, offices: list[str], entry: str, round_no: int) -> list[Desk]:
    desks = []
    for office in offices:
        token = keys.issue("officer", f"fo-{office}", office, desk=f"{office}-d0", ttl=3600)
        officer = SignalClient(entry, token, request_timeout=15)
        booths = [
            SignalClient(entry, keys.issue("booth", f"{office}-b{k}-{round_no}", office,
                                           booth=f"{office}-b{k}-{round_no}", ttl=3600),
                         request_timeout=15)
            for k in range(FAILOVER_BOOTHS)
        ]  # fmt: skip
        desk = Desk(office, officer, booths)
        desks.append(desk)
        await officer.connect(timeout=30, retry=True)
        for booth in booths:
            await booth.connect(timeout=30, retry=True)
            claimant = {"name": f"Claimant {office}", "membership_no": "12345678901"}
            ack = await booth.request({"type": "start_visit", "claimant": claimant})
            assert isinstance(ack, Ack) and isinstance(ack.visit, str), ack
            desk.visits.append(ack.visit)
            desk.next_step[ack.visit] = 0
    return desks


async def close_desks(desks: list[Desk]) -> None:
    """End the desks' visits (their slots free for the next round), then hang up."""
    for desk in desks:
        for visit in desk.visits:
            message = {"type": "end_visit", "visit": visit, "outcome": "abandoned"}
            with contextlib.suppress(Exception):  # an officer already cut off (split brain)
                await desk.officer.request(message, timeout=5)
        for client in desk.clients:
            await client.close()


async def failover_once(
    nodes: list[Node], victim: Node, desks: list[Desk], lease_s: float, errors: dict[str, int]
) -> tuple[float, float]:
    """Kill ``victim``; (seconds until every client of ``desks`` resumed, seconds until a
    survivor owned their offices)."""
    resumed: dict[int, float] = {}
    offices = {desk.office for desk in desks}
    survivors = [nd for nd in nodes if nd is not victim]

    def booth_back(client: SignalClient) -> Any:
        def on_reconnect(_welcome: Any) -> None:
            resumed.setdefault(id(client), time.monotonic())

        return on_reconnect

    async def officer_back(desk: Desk) -> None:
        while True:
            await desk.officer.connected.wait()
            if desk.officer.reconnects == 0:  # not yet noticed the loss
                await asyncio.sleep(0.01)
                continue
            try:
                await desk.decide()
            except Exception as exc:  # closed mid-move: the client reconnects again
                key = type(exc).__name__
                errors[key] = errors.get(key, 0) + 1
                await asyncio.sleep(0.05)
                continue
            resumed[id(desk.officer)] = time.monotonic()
            return

    def taken() -> bool:  # every one of the offices by some survivor (they may split them)
        held: set[str] = set()
        for node in survivors:
            held |= node.owned()
        return offices <= held

    for desk in desks:
        for booth in desk.booths:
            booth.on_reconnect = booth_back(booth)
    clients = [c for desk in desks for c in desk.clients]
    killed = time.monotonic()
    await asyncio.to_thread(victim.kill)
    async with asyncio.timeout(lease_s * 4 + 60):
        await asyncio.to_thread(until, "a survivor owns the offices", taken, 1e9)  # off loop
        took_over = time.monotonic() - killed
        await asyncio.gather(*(officer_back(d) for d in desks))
        await until_async("every client back", lambda: all(id(c) in resumed for c in clients), 1e9)
    return max(resumed.values()) - killed, took_over


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[max(0, min(len(ordered), round(q * len(ordered))) - 1)], 3)


async def failover_rounds(
    nodes: list[Node], keys: KeyRing, fo: list[str], rounds: int, lease_s: float
) -> dict[str, Any]:
    """Kill -9 the owner of the failover offices ``rounds`` times; time until every client
    of the offices it owned has resumed. The killed node is restarted after each round."""
    times: list[float] = []
    takeovers: list[float] = []
    acked: list[tuple[str, int]] = []
    errors: dict[str, int] = {}
    for r in range(rounds):
        placed = await asyncio.to_thread(settled, nodes, fo, 3.0, 120)
        victim = placed[fo[0]]
        moved = [o for o in fo if placed[o] is victim]
        entry = next(nd for nd in nodes if nd is not victim)
        desks = await open_desks(keys, moved, entry.url, r)
        try:
            for desk in desks:
                await desk.decide()  # served by the owner before the kill
            clients = [c for d in desks for c in d.clients]
            assert all(c.url == victim.url for c in clients), "moved to the owner"
            say(f"failover {r + 1}/{rounds}: killing {victim.name} (owner of {moved})")
            took, took_over = await failover_once(nodes, victim, desks, lease_s, errors)
            times.append(took)
            takeovers.append(took_over)
            say(
                f"failover {r + 1}/{rounds}: every client resumed {took:.2f} s after the kill "
                f"(offices taken after {took_over:.2f} s)"
            )
            for desk in desks:
                acked.extend(desk.acked)
        finally:
            await close_desks(desks)
        await asyncio.to_thread(victim.start)  # back, standing by for the next round
    return {
        "failovers": len(times),
        "failover_s": [round(t, 3) for t in times],
        "failover_p50_s": nearest_rank(times, 0.5),
        "failover_p95_s": nearest_rank(times, 0.95),
        "takeover_s": [round(t, 3) for t in takeovers],
        "failover_retries": errors,
        "acked": acked,
    }


async def split_brain(
    nodes: list[Node], keys: KeyRing, office: str, lease_s: float, store: str
) -> dict[str, Any]:
    """SIGSTOP the owner past its lease, let another node take the office, send decisions
    to the stopped owner, SIGCONT it: none of them may be written or acknowledged."""
    placed = await asyncio.to_thread(settled, nodes, [office], 3.0, 120)
    victim = placed[office]
    desks = await open_desks(keys, [office], victim.url, 99)
    desk = desks[0]
    desk.officer.reconnect = False
    late: list[tuple[str, int]] = []
    acked_late = 0
    try:
        await desk.decide()
        victim.signal(signal.SIGSTOP)
        say(f"split brain: stopped {victim.name}, waiting for another node to take {office}")
        others = [nd for nd in nodes if nd is not victim]
        await asyncio.to_thread(
            until, "another node owns it", lambda: any(office in nd.owned() for nd in others),
            lease_s * 4 + 30, 0.1,
        )  # fmt: skip
        tasks = []
        for visit in desk.visits:  # sent to the stopped node after the take
            step = desk.next_step[visit]
            late.append((visit, step))
            message = {"type": "decide", "visit": visit, "step": step, "decision": "approve"}
            tasks.append(asyncio.ensure_future(desk.officer.request(message)))
        await asyncio.sleep(0.2)  # the frames are in the stopped node's socket buffer
        victim.signal(signal.SIGCONT)
        answers = await asyncio.gather(*tasks, return_exceptions=True)
        acked_late = sum(1 for a in answers if isinstance(a, Ack))
        await asyncio.to_thread(
            until, "the old owner dropped it", lambda: office not in victim.owned(), 30, 0.1
        )
    finally:
        victim.signal(signal.SIGCONT)
        await close_desks(desks)
    decided = await asyncio.to_thread(decided_pg, store)
    writes = sum(1 for pair in late if pair in decided)
    from lapak.signaling.pgaudit import verify_store

    problems = (await asyncio.to_thread(verify_store, store)).problems
    say(f"split brain: {len(late)} decisions sent to the stopped owner, {writes} written, "
        f"{acked_late} acknowledged; store problems {problems}")  # fmt: skip
    return {
        "split_brain_writes": writes,
        "split_brain_sent": len(late),
        "split_brain_acked": acked_late,
        "store_problems": problems,
        "acked": desk.acked,
    }


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """``count`` busy-loop processes while the block runs: failover timed on a machine whose
    cores are all taken (as when the nodes serve a full load), not on an idle one."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    if loops:
        say(f"{count} busy loops running during the failover rounds")
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


# -- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=3000, help="clients (default 3000)")
    parser.add_argument("--rate", type=float, default=1000, help="decisions/s offered in total")
    parser.add_argument("--duration", type=float, default=30, help="seconds of load per config")
    parser.add_argument("--workers", type=int, default=2, help="load processes (default 2)")
    parser.add_argument("--failovers", type=int, default=5, help="kill -9 rounds (default 5)")
    parser.add_argument(
        "--failover-offices", type=int, default=2, help="offices timed in a failover (2)"
    )
    parser.add_argument("--lease-s", type=float, default=5.0, help="the nodes' lease (5 s)")
    parser.add_argument(
        "--failover-busy", action="store_true",
        help="keep every core busy (a busy loop per core) during the failover rounds",
    )  # fmt: skip
    parser.add_argument(
        "--placement", choices=("lists", "spread"), default="lists",
        help="lists: an --office list per node; spread: the servers spread the offices",
    )  # fmt: skip
    parser.add_argument("--keep", type=Path, help="copy the nodes' logs into this directory")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="sqlite,pg1,pg3")
    parser.add_argument("--desks-per-office", type=int, default=10, help="(default 10)")
    parser.add_argument("--quick", action="store_true", help="tiny configuration (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.rate, args.duration, args.workers = 60, 60.0, 3.0, 1
        args.desks_per_office = 2
        args.failovers, args.failover_offices, args.lease_s = 1, 1, 2.0
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        sys.stderr.write(f"cluster.py: unknown configuration(s) {sorted(unknown)}: {CONFIGS}\n")
        return 2
    from pg_cluster import pg_bin_dir, start_cluster

    if any(c != "sqlite" for c in configs) and pg_bin_dir() is None:
        sys.stderr.write(
            "cluster.py: PostgreSQL is not installed (initdb, pg_ctl): apt install postgresql\n"
        )
        return 2
    nofile = _load.raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="lapak-bench-cluster-"))
    say(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; open-file "
        f"limit {nofile}; {args.clients} clients; {args.rate:g} decisions/s offered for "
        f"{args.duration:g} s per configuration; lease {args.lease_s:g} s; "
        f"placement {args.placement}; {args.workers} load processes"
    )
    secret = tmp / "secret"
    keys = KeyRing.generate()
    keys.write(secret)
    fo = [f"fo{i}" for i in range(args.failover_offices)]
    started = time.perf_counter()
    pg = start_cluster() if any(c != "sqlite" for c in configs) else None
    workers = Workers(args.workers)
    results: dict[str, dict[str, Any]] = {}
    cluster: dict[str, Any] = {}
    nodes: list[Node] = []
    try:
        for kind in configs:
            result, running, store = run_config(kind, workers, tmp, secret, pg, args, fo)
            results[kind] = result
            if kind == "pg3":
                nodes = running
                assert store is not None
                with busy_cores((os.cpu_count() or 1) if args.failover_busy else 0):
                    fail = asyncio.run(
                        failover_rounds(nodes, keys, fo, args.failovers, args.lease_s)
                    )
                brain = asyncio.run(split_brain(nodes, keys, fo[0], args.lease_s, store))
                decided = decided_pg(store)
                extra = lost(fail.pop("acked") + brain.pop("acked"), decided)
                result["lost_acks"] += extra
                cluster = {**fail, **brain}
                for node in nodes:
                    node.stop()
                result["node_errors_logged"] = sum(nd.warnings() for nd in nodes)
    finally:
        for node in nodes:
            node.stop()
        workers.close()
        if pg is not None:
            pg.stop()
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for node_log in tmp.glob("*.log"):
                shutil.copy(node_log, args.keep / node_log.name)
        shutil.rmtree(tmp, ignore_errors=True)
    top = results.get("pg3") or results[configs[-1]]
    out: dict[str, Any] = {
        "nodes": top["nodes"],
        "store": top["store"],
        "clients": top["clients"],
        "decisions_per_s": top["decisions_per_s"],
        "ack_p50_ms": top["ack_p50_ms"],
        "ack_p99_ms": top["ack_p99_ms"],
        "lost_acks": sum(r["lost_acks"] for r in results.values()),
        "failover_p50_s": cluster.get("failover_p50_s"),
        "failover_p95_s": cluster.get("failover_p95_s"),
        "split_brain_writes": cluster.get("split_brain_writes"),
        "placement": args.placement,
        "failover_busy": args.failover_busy,
        "lease_s": args.lease_s,
        "rate": args.rate,
        "duration_s": args.duration,
        "cores": os.cpu_count(),
        "configs": results,
        "cluster": cluster,
        "bench_s": round(time.perf_counter() - started, 1),
    }
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
