"""Offices leased to one node at a time, with a fencing epoch (signaling/leases.py): two
real ``lapak signal`` nodes on one PostgreSQL. The owner is paused (SIGSTOP) past its lease,
the other node takes the office and its stream; resumed (SIGCONT), the old owner's writes
are refused: no ack, nothing written, no duplicate ``seq``, no acknowledged decision lost;
placement giving the office back, it adopts it afresh under a new epoch. The nodes come
from the ``pg_nodes`` fixture (tests/pg_nodes.py)."""

# ruff: noqa: F811  (the cluster fixtures are imported, then named as test arguments)
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import wait_for
from pg_cluster import pg_cluster, pg_url  # noqa: F401  (fixtures)
from pg_nodes import Node, Nodes, pg_nodes  # noqa: F401  (fixture)
from test_eventlog import _connect_retry
from tests_support import free_port, healthz, wait_healthy

from lapak.signaling.client import Backoff, SignalClient
from lapak.signaling.leases import Leases
from lapak.signaling.pgaudit import verify_store
from lapak.signaling.pglog import Fenced, PgLog, connect_pool, load_pg
from lapak.signaling.placement import place
from lapak.signaling.tokens import KeyRing

pytestmark = pytest.mark.integration

LEASE_S = 2.0


async def _two(nodes: Nodes, office: str = "main", lease_s: float = LEASE_S) -> tuple[Node, Node]:
    """Two nodes serving ``office``, ``a`` the one placement gives it, started in turn:
    ``a`` alone takes every office, ``b`` then takes its share (``*``)."""
    a, b = nodes.add([office], lease_s), nodes.add([office], lease_s)
    if place({n.url: [office, "*"] for n in (a, b)})[office] != a.url:
        a, b = b, a
    await nodes.restart(a)
    await wait_for(lambda: office in a.owned(), "the first node owns the office")
    await nodes.restart(b)
    await wait_for(nodes.settled, "the second node took its share", 20, 0.2)
    return a, b


async def test_a_paused_owner_past_its_lease_is_fenced_then_takes_its_office_back(
    pg_nodes: Nodes,
) -> None:
    """The owner is paused past its lease: the other node takes the office. Resumed, the old
    owner's late write is refused (no ack, nothing written); it forgets the office, and as
    placement gives the office back to it, the other node hands it over and the old owner
    adopts it afresh from the store, with a new epoch: the acknowledged decision is there,
    the refused one is not, the next one is acknowledged."""
    keys = pg_nodes.keys
    a, b = await _two(pg_nodes)
    assert (healthz(a.port) or {}).get("lease_renewed_s_ago") is not None
    assert "store_commit_ms" in (healthz(a.port) or {})
    assert "main" not in b.owned(), "the office has one owner"
    clients: list[SignalClient] = []
    try:
        officer_token = keys.issue("officer", "o0", "main", desk="d0")
        officer = SignalClient(a.url, officer_token, reconnect=False)
        await officer.connect()
        booth = await _connect_retry(a.url, keys.issue("booth", "b0", "main", booth="b0"))
        clients += [officer, booth]
        claimant = {"name": "S", "membership_no": "1"}
        visit = (await booth.request({"type": "start_visit", "claimant": claimant})).visit
        decide = {"type": "decide", "visit": visit, "decision": "approve"}
        await officer.request({**decide, "step": 0})  # acknowledged by the owner

        assert a.proc is not None
        os.killpg(a.proc.pid, signal.SIGSTOP)
        await wait_for(lambda: "main" in b.owned(), "the second node takes the office", 20)
        late = asyncio.create_task(officer.request({**decide, "step": 1}))  # sent to the paused
        os.killpg(a.proc.pid, signal.SIGCONT)
        with pytest.raises(Exception):  # noqa: B017  (closed or refused: never acked)
            async with asyncio.timeout(20):
                await late

        await wait_for(lambda: "main" in a.owned() and "main" not in b.owned(),
                       "handed back to the node placement gives it", 30, 0.2)  # fmt: skip
        again = await _connect_retry(b.url, officer_token)  # any node: moved to the owner
        clients.append(again)
        assert again.url == a.url
        await again.request({**decide, "step": 2})  # the retaken office has the visit and desk
    finally:
        for client in clients:
            await client.close()
        pg_nodes.stop_all()
    pool = await connect_pool(pg_nodes.store)
    try:
        loaded = await load_pg(pool)
        epoch = await pool.fetchval("SELECT epoch FROM lapak_offices WHERE office = 'main'")
    finally:
        await pool.close()
    steps = [s.status for s in loaded.state.visits[visit].steps[:3]]
    assert steps == ["approved", "pending", "approved"], "acked kept, refused never written"
    assert epoch == 3, "taken by a, then b, then a again: each time a new epoch"
    assert (await asyncio.to_thread(verify_store, pg_nodes.store)).problems == [], "no gap, no dup"


async def test_an_append_after_the_epoch_moved_is_refused(pg_url: str) -> None:
    """The fence inside the transaction: node A holds an office, node B takes it (its lease
    ran out); A's next append fails with Fenced, acks nothing and writes nothing."""
    pool = await connect_pool(pg_url)
    try:
        first, second = Leases(pool, "a", "ws://a", 1.0), Leases(pool, "b", "ws://b", 60.0)
        assert await first.acquire("main") == 1
        assert await second.acquire("main") is None, "held by a live lease"
        log = PgLog(pool, await load_pg(pool), node="a", fence=first.held)
        log.start()
        from test_eventlog import some_events

        events, _ = some_events(2)
        await log.append(events[:3])
        await pool.execute("UPDATE lapak_offices SET lease_until = 0")  # A's lease ran out
        assert await second.acquire("main") == 2, "the epoch moves"
        with pytest.raises(Fenced):
            await log.append(events[3:])
        await log.close()
        count = await pool.fetchval("SELECT count(*) FROM lapak_events")
        assert count == 3 and "main" not in first.held
        assert await first.renew() == [], "nothing left to renew"
    finally:
        await pool.close()


async def test_live_nodes_release_one_and_leave(pg_url: str) -> None:
    """What placement reads and what a hand-over and a clean stop write: the live nodes
    with the offices each serves (a node silent for a lease is not live), one office
    released only while still ours at our epoch, a node that left is gone at once."""
    pool = await connect_pool(pg_url)
    try:
        a = Leases(pool, "a", "ws://a", 2.0, ["north", "*"])
        b = Leases(pool, "b", "ws://b", 2.0, ["south", "*"])
        await a.heartbeat()
        await b.heartbeat()
        assert await a.live() == {"a": ["*", "north"], "b": ["*", "south"]}
        assert a.urls == {"a": "ws://a", "b": "ws://b"}
        await pool.execute("UPDATE lapak_nodes SET heartbeat = heartbeat - 3 WHERE node = 'b'")
        assert set(await a.live()) == {"a"}, "silent for a lease: not live"
        assert set(await b.live()) == {"a", "b"}, "a node always counts itself"

        assert await a.acquire("north") == 1
        assert await b.acquire("north") is None
        assert await a.release_one("north") is True and "north" not in a.held
        assert await b.acquire("north") == 2, "free at once, a new epoch"
        a.held["north"] = 1  # a stale view (it was fenced): releasing must not free b's
        assert await a.release_one("north") is False
        assert await b.renew() == [], "b still holds it"
        assert await a.release_one("north") is False, "not held: nothing to release"

        await b.leave()
        assert set(await a.live()) == {"a"}
        assert await pool.fetchval("SELECT count(*) FROM lapak_nodes WHERE node = 'b'") == 0
    finally:
        await pool.close()


async def test_node_url_without_store_or_office_is_a_usage_error(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    KeyRing.generate().write(secret)
    base = [sys.executable, "-m", "lapak.cli", "signal", "--secret-file", str(secret),
            "--data-dir", str(tmp_path / "d"), "--node-url", "ws://127.0.0.1:1/ws"]  # fmt: skip
    out = await asyncio.to_thread(subprocess.run, base, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--node-url needs --store" in out.stderr
    conn_url = "postgresql://x@127.0.0.1:1/x"
    out = await asyncio.to_thread(
        subprocess.run, [*base, "--store", conn_url], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "--node-url needs --office" in out.stderr
    assert "Traceback" not in out.stderr


async def test_any_node_is_an_entry_point_and_kill_9_fails_over(pg_nodes: Nodes) -> None:
    """An officer and a booth enter through the node that does not own their office: both
    are sent (``moved``) to the owner and served there. The owner is killed with SIGKILL:
    the other node takes the office within a bounded time and both clients, reconnecting
    through the URL they were first given, are back with the desk and the visit intact."""
    keys = pg_nodes.keys
    a, b = await _two(pg_nodes)
    clients: list[SignalClient] = []
    try:
        officer = SignalClient(b.url, keys.issue("officer", "o0", "main", desk="d0"))
        booth = SignalClient(b.url, keys.issue("booth", "b0", "main", booth="b0"))
        clients += [officer, booth]
        for client in clients:
            async with asyncio.timeout(20):
                await client.connect(retry=True)
        assert officer.url == a.url and booth.url == a.url, "moved to the owner"
        claimant = {"name": "S", "membership_no": "1"}
        visit = (await booth.request({"type": "start_visit", "claimant": claimant})).visit
        decide = {"type": "decide", "visit": visit, "decision": "approve"}
        await officer.request({**decide, "step": 0})
        sessions = [c.welcome.session for c in clients if c.welcome]

        killed = time.monotonic()
        pg_nodes.kill(a)
        await wait_for(
            lambda: all(c.reconnects == 1 and c.connected.is_set() for c in clients),
            "both clients resumed on the other node", 30,
        )  # fmt: skip
        failover_s = time.monotonic() - killed
        assert officer.url == b.url and booth.url == b.url
        # The new owner resumes the sessions the old one gave (signaling/resume.py).
        assert len(sessions) == 2
        assert [c.welcome.session for c in clients if c.welcome] == sessions
        await officer.request({**decide, "step": 1})  # the visit and the desk are intact
        assert failover_s < LEASE_S + 10, f"failover took {failover_s:.1f} s"
    finally:
        for client in clients:
            await client.close()


async def test_sigterm_hands_the_offices_over_at_once(pg_nodes: Nodes) -> None:
    """A clean stop releases its leases and leaves the live nodes: with a 60 s lease, the
    other node owns the office within a few ticks, not after the lease."""
    a, b = await _two(pg_nodes, lease_s=60)
    assert "main" in a.owned() and "main" not in b.owned()
    assert a.proc is not None
    os.killpg(a.proc.pid, signal.SIGTERM)
    assert await asyncio.to_thread(a.proc.wait, 30) == 0
    await wait_for(lambda: "main" in b.owned(), "the other node takes it", 10)


async def test_nodes_owning_different_offices_mint_distinct_visit_ids(pg_nodes: Nodes) -> None:
    """Two nodes on one store, each serving its own office, start visits at once: every id
    is distinct (numbered per office), each visit keeps its own key in the store (its
    personal data opens after a reload) and every stream verifies."""
    keys = pg_nodes.keys
    a = await pg_nodes.start(["north"])
    b = await pg_nodes.start(["south"])
    clients: list[SignalClient] = []
    started: dict[str, str] = {}  # visit -> claimant name
    try:
        await wait_for(lambda: "north" in a.owned() and "south" in b.owned(),
                       "each node owns its office")  # fmt: skip
        for node, office in ((a, "north"), (b, "south")):
            for i in range(3):
                token = keys.issue("booth", f"b{i}", office, booth=f"b{i}")
                booth = await _connect_retry(node.url, token)
                clients.append(booth)
                name = f"{office} claimant {i}"
                claimant = {"name": name, "membership_no": f"{i}"}
                reply = await booth.request({"type": "start_visit", "claimant": claimant})
                started[reply.visit] = name
    finally:
        for client in clients:
            await client.close()
        pg_nodes.stop_all()
    assert len(started) == 6, f"six distinct ids: {sorted(started)}"
    pool = await connect_pool(pg_nodes.store)
    try:
        loaded = await load_pg(pool)  # every stream, in commit order
        stored_keys = await pool.fetchval("SELECT count(*) FROM lapak_visit_keys")
    finally:
        await pool.close()
    assert {v: loaded.state.visits[v].name for v in started} == started, "each key its own"
    assert stored_keys == 6
    assert (await asyncio.to_thread(verify_store, pg_nodes.store)).problems == []


NODE = shutil.which("node")
SIGNAL_JS = Path(__file__).resolve().parents[1] / "signaling" / "kiosk" / "signal.js"
KIOSK_SCRIPT = """
globalThis.location = { protocol: "http:", host: process.env.ENTRY };
const store = new Map();
globalThis.sessionStorage = {
  getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v),
};
const { Signal } = await import(process.env.SIGNAL_JS);
const claimant = { name: "S", membership_no: "1" };
const signal = new Signal(process.env.TOKEN, {
  onWelcome: async (welcome) => {
    const visit = (await signal.request({ type: "start_visit", claimant })).visit;
    console.log(JSON.stringify({ url: signal.url, session: welcome.session, visit,
                                 reconnects: signal.reconnects,
                                 between: signal.betweenAnswers }));
    if (signal.reconnects > 0) { signal.stop(); process.exit(0); }
  },
  onFatal: (why) => { console.log(JSON.stringify({ fatal: why })); process.exit(1); },
  onStatus: (status) => console.error(`status=${status} url=${signal.url}`),
  backoffMs: process.env.BACKOFF_MS ? JSON.parse(process.env.BACKOFF_MS) : undefined,
});
setTimeout(() => { console.log(JSON.stringify({ timeout: signal.url })); process.exit(1); }, 60000);
signal.start();
"""


def _node_has_websocket() -> bool:
    if NODE is None:
        return False
    run = subprocess.run([NODE, "--experimental-websocket", "-e", "WebSocket"],
                         capture_output=True, timeout=30)  # fmt: skip
    return run.returncode == 0


@pytest.mark.skipif(not _node_has_websocket(), reason="needs node with a WebSocket (>= 20.10)")
async def test_the_kiosk_signal_module_follows_moved_and_fails_over(pg_nodes: Nodes) -> None:
    """The kiosk's signal.js (run by node, against two real nodes) loaded from the node that
    does not own its office: it follows ``moved`` to the owner with its session and starts
    its visit there. The owner is killed: the module cannot reach it, starts over at its
    own node, which has taken the office, and the booth's visit is still its open visit."""
    keys = pg_nodes.keys
    a, b = await _two(pg_nodes)
    kiosk: asyncio.subprocess.Process | None = None
    try:
        env = {**os.environ, "ENTRY": f"127.0.0.1:{b.port}", "SIGNAL_JS": SIGNAL_JS.as_uri(),
               "TOKEN": keys.issue("booth", "b0", "main", booth="b0")}  # fmt: skip
        assert NODE is not None
        kiosk = await asyncio.create_subprocess_exec(
            NODE, "--experimental-websocket", "--no-warnings", "--input-type=module", "-e",
            KIOSK_SCRIPT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert kiosk.stdout is not None
        async with asyncio.timeout(30):
            first = json.loads(await kiosk.stdout.readline())
        assert first.get("url") == a.url, f"moved to the owner: {first}"
        assert first["visit"] and first["reconnects"] == 0

        pg_nodes.kill(a)
        try:
            async with asyncio.timeout(45):
                second = json.loads(await kiosk.stdout.readline())
                assert await kiosk.wait() == 0, second
        except TimeoutError:
            kiosk.kill()
            assert kiosk.stderr is not None
            trail = (await kiosk.stderr.read()).decode()[-3000:]
            raise AssertionError(f"the kiosk did not resume: {trail}") from None
        assert second.get("url") == b.url, f"back at its own: {second}"
        assert second["visit"] == first["visit"], "the booth's open visit came with the office"
    finally:
        if kiosk is not None and kiosk.returncode is None:
            kiosk.kill()
            await kiosk.wait()


async def _gone_node_holds(
    office: str, store: str, seconds: float = 4.0, owner: str = "ws://gone/ws"
) -> None:
    """A node that is gone holds ``office``'s lease ``seconds`` more."""
    pool = await connect_pool(store)
    try:
        await pool.execute(
            "INSERT INTO lapak_offices (office, owner_node, epoch, lease_until) "
            "VALUES ($1, $3, 1, extract(epoch from clock_timestamp()) + $2)",
            office, seconds, owner,
        )  # fmt: skip
    finally:
        await pool.close()


async def _beside_a_just_dead_owner(pg_nodes: Nodes) -> Node:
    """A live node serving "main", whose owner died a moment ago: the dead node's heartbeat
    is fresh for 6 s more and its lease runs 9 s, and placement prefers it for "main", so
    the live node sends clients there (``moved``) until it is not live, then says "between
    nodes" until the lease is out, then takes the office."""
    node = pg_nodes.add(["main"], LEASE_S)
    gone = next(  # a dead node's URL that placement prefers to the live node for "main"
        url
        for url in (f"ws://127.0.0.1:{free_port()}/ws" for _ in range(200))
        if place({url: ["main", "*"], node.url: ["main", "*"]})["main"] == url
    )
    pool = await connect_pool(pg_nodes.store)
    try:
        await pool.execute(
            "INSERT INTO lapak_nodes (node, url, heartbeat, offices) VALUES "
            "($1, $1, extract(epoch from clock_timestamp()) + 6, ARRAY['main', '*'])",
            gone,
        )  # fmt: skip
    finally:
        await pool.close()
    await _gone_node_holds("main", pg_nodes.store, seconds=9.0, owner=gone)
    pg_nodes.spawn(node)
    assert node.proc is not None
    await asyncio.to_thread(wait_healthy, node.port, node.proc)
    return node


async def _in_a_failover(pg_nodes: Nodes, dead_owner_preferred: bool) -> Node:
    """A live node for "main" while a gone node's lease on it runs a few seconds more:
    beside a just-dead owner that placement still prefers, or a gone node's lease only."""
    if dead_owner_preferred:
        return await _beside_a_just_dead_owner(pg_nodes)
    await _gone_node_holds("main", pg_nodes.store)
    return await pg_nodes.start(["main"], LEASE_S)


@pytest.mark.parametrize("dead_owner_preferred", [False, True])
async def test_a_client_in_a_failover_asks_again_shortly(
    pg_nodes: Nodes, dead_owner_preferred: bool
) -> None:
    """The office's lease is held for a few seconds more by a node that is gone. Either the
    live node, which placement gives the office, answers ``moved`` to itself ("between
    nodes") until it can take it; or the dead owner's heartbeat is still fresh, so the live
    node sends the client there (``moved``), where nothing answers. Either way the client
    asks the live node again after the short between-nodes wait, not its back-off: with a
    back-off of 30 s it is welcomed within the 20 s the test allows, as soon as the lease
    has run out and the node took the office."""
    node = await _in_a_failover(pg_nodes, dead_owner_preferred)
    policy = Backoff(first=30.0, cap=30.0, between_s=0.2)
    booth = SignalClient(node.url, pg_nodes.keys.issue("booth", "b0", "main", booth="b0"),
                         policy=policy)  # fmt: skip
    try:
        async with asyncio.timeout(20):
            welcome = await booth.connect(retry=True)
        assert welcome.office == "main" and booth.url == node.url
        assert booth.between_answers >= 1, "the node said the office was between nodes"
        assert policy.attempts == 0, "no back-off step was taken for them"
    finally:
        await booth.close()


@pytest.mark.skipif(not _node_has_websocket(), reason="needs node with a WebSocket (>= 20.10)")
@pytest.mark.parametrize("dead_owner_preferred", [False, True])
async def test_the_kiosk_signal_module_told_between_nodes_asks_again_shortly(
    pg_nodes: Nodes, dead_owner_preferred: bool
) -> None:
    """As above for the kiosk's signal.js (run by node): told "between nodes", or sent to
    an owner that does not answer, it asks its node again after about a second, not after
    its back-off (30 s here), so it starts its visit within the 20 s the test allows, once
    the node took the office."""
    node = await _in_a_failover(pg_nodes, dead_owner_preferred)
    env = {**os.environ, "ENTRY": f"127.0.0.1:{node.port}", "SIGNAL_JS": SIGNAL_JS.as_uri(),
           "TOKEN": pg_nodes.keys.issue("booth", "b0", "main", booth="b0"),
           "BACKOFF_MS": "[30000]"}  # fmt: skip
    assert NODE is not None
    kiosk = await asyncio.create_subprocess_exec(
        NODE, "--experimental-websocket", "--no-warnings", "--input-type=module", "-e",
        KIOSK_SCRIPT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert kiosk.stdout is not None
        async with asyncio.timeout(20):
            first = json.loads(await kiosk.stdout.readline())
        assert first.get("url") == node.url and first["visit"], first
        assert first["between"] >= 1, f"the node said the office was between nodes: {first}"
    finally:
        if kiosk.returncode is None:
            kiosk.kill()
            await kiosk.wait()
