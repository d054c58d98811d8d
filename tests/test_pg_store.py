"""The PostgreSQL event log (signaling/pglog.py) on a throwaway cluster: acks after the
commit, replay equals the live state (with and without snapshots, and as a hypothesis
property over random command sequences), one hash-chained stream per office, and
``lapak audit verify/export --store`` (passing, then failing on a tampered row)."""

# ruff: noqa: F811  (the cluster fixtures are imported, then named as test arguments)
from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from pg_cluster import Cluster, pg_cluster, pg_url  # noqa: F401  (fixtures)
from test_domain import commands, new_domain, run
from test_eventlog import some_events
from test_placement import _office_part, _two_offices

from lapak.signaling.errors import LapakError
from lapak.signaling.events import Event, WorkflowSet
from lapak.signaling.pgaudit import store_rows, verify_store
from lapak.signaling.pglog import PgLoaded, PgLog, connect_pool, load_pg
from lapak.signaling.signing import Signer
from lapak.signaling.state import replay
from lapak.signaling.streams import StreamRouter

pytestmark = pytest.mark.integration


async def write_pg(
    url: str,
    events: list[Event],
    snapshot_every: int = 10_000,
    signer: Signer | None = None,
    one_by_one: bool = False,
    node: str = "single",
) -> PgLog:
    """Append ``events`` one event per append, all at once (as many batches as group commit
    makes) or ``one_by_one`` (a transaction each), then close."""
    pool = await connect_pool(url)
    try:
        loaded = await load_pg(pool, signer.public if signer else None)
        log = PgLog(pool, loaded, snapshot_every, signer=signer, node=node)
        log.start()
        async with asyncio.timeout(30):
            if one_by_one:
                for e in events:
                    await log.append([e])
            await asyncio.gather(*(log.append([e]) for e in events if not one_by_one))
        await log.close()
    finally:
        await pool.close()
    return log


async def read_pg(url: str, signer: Signer | None = None) -> PgLoaded:
    pool = await connect_pool(url)
    try:
        return await load_pg(pool, signer.public if signer else None)
    finally:
        await pool.close()


async def test_acks_come_after_the_commit_and_in_order(pg_cluster: Cluster) -> None:
    """``then`` runs only when another session (psql) already sees the batch's rows."""
    url = pg_cluster.create_database()
    events, _ = some_events(5)
    pool = await connect_pool(url)
    visible: list[int] = []  # rows another session sees when the i-th ack runs

    def then(fut: asyncio.Future[None]) -> None:
        assert fut.exception() is None
        psql = [str(pg_cluster.bin_dir / "psql"), url, "-tAc", "SELECT count(*) FROM lapak_events"]
        visible.append(int(subprocess.run(psql, capture_output=True, text=True).stdout))

    try:
        log = PgLog(pool, await load_pg(pool))
        log.start()
        await asyncio.gather(*(log.append([e], then=then) for e in events))
        await log.close()
    finally:
        await pool.close()
    assert len(visible) == len(events), "each ack ran once"
    assert all(n >= i + 1 for i, n in enumerate(visible)), f"acked before commit: {visible}"
    assert log.commits < len(events), "appends waiting together went in one transaction"


async def test_restart_replays_the_same_state_with_and_without_snapshots(
    pg_cluster: Cluster,
) -> None:
    events, state = some_events()
    plain, snap = pg_cluster.create_database(), pg_cluster.create_database()
    await write_pg(plain, events)
    conn = await asyncpg.connect(plain)
    try:
        await conn.execute("DELETE FROM lapak_snapshots")  # start-up must replay every row
    finally:
        await conn.close()
    written = await write_pg(snap, events, snapshot_every=7, one_by_one=True)
    assert written.snapshots >= 2, "snapshots were taken along the way and at close"
    from_plain, from_snap = await read_pg(plain), await read_pg(snap)
    assert from_plain.replayed == len(events) and from_plain.from_snapshot == 0
    assert from_snap.from_snapshot == len(events), "the final snapshot covers everything"
    assert from_plain.state == from_snap.state
    assert from_plain.state.visits == state.visits and from_plain.state.desks == state.desks
    assert from_plain.heads == from_snap.heads


async def test_one_stream_per_office(pg_url: str) -> None:
    """Events of two offices and a "*" workflow land in three streams, each numbered from 1."""
    d = new_domain()
    events: list[Event] = []
    for i, cmd in enumerate(
        [("open", 0, 2), ("open", 2, 2), ("start", 0, 0, 0), ("start", 1, 1, 0),
         ("workflow", "*", 2), ("decide", 0, 0), ("end", 1, "escalated")]
    ):  # fmt: skip
        with contextlib.suppress(LapakError):
            events += run(d, cmd, float(i))
    await write_pg(pg_url, events)
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch("SELECT stream, seq, kind FROM lapak_events ORDER BY pos")
    finally:
        await conn.close()
    streams: dict[str, list[int]] = {}
    for r in rows:
        streams.setdefault(r["stream"], []).append(r["seq"])
    assert set(streams) == {"main", "north", "*"}
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in streams.values())
    assert [r["kind"] for r in rows if r["stream"] == "*"] == ["workflow_set"]
    assert (await read_pg(pg_url)).state == d.state


async def test_audit_verify_passes_then_names_a_tampered_row(pg_url: str) -> None:
    signer = Signer.generate()
    events, _ = some_events(6)
    await write_pg(pg_url, events, snapshot_every=5, signer=signer, one_by_one=True)
    clean = await asyncio.to_thread(verify_store, pg_url, signer.public)
    assert clean.problems == [] and clean.count == len(events)
    stranger = await asyncio.to_thread(verify_store, pg_url, Signer.generate().public)
    assert any("not signed by this key" in p for p in stranger.problems)
    conn = await asyncpg.connect(pg_url)
    try:
        seq = await conn.fetchval(
            "UPDATE lapak_events SET body = convert_to(replace(convert_from(body, 'UTF8'), "
            "'see supervisor', 'all fine'), 'UTF8') WHERE stream = 'main' AND seq = "
            "(SELECT min(seq) FROM lapak_events WHERE stream = 'main' "
            "AND convert_from(body, 'UTF8') LIKE '%see supervisor%') RETURNING seq"
        )
    finally:
        await conn.close()
    tampered = await asyncio.to_thread(verify_store, pg_url, signer.public)
    assert any(f"stream main: event {seq} " in p and "edited" in p for p in tampered.problems), (
        tampered.problems
    )


def test_audit_command_line_on_a_store(pg_url: str) -> None:
    events, _ = some_events(3)
    asyncio.run(write_pg(pg_url, events))
    lapak = [sys.executable, "-m", "lapak.cli", "audit"]

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*lapak, *argv], capture_output=True, text=True, timeout=60)

    ok = cli("verify", "--store", pg_url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"{len(events)} events checked, 0 problems" in ok.stdout
    out = cli("export", "--store", pg_url)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert out.returncode == 0 and len(lines) == len(events)
    assert lines[0]["seq"] == "main:1" and lines[0]["kind"] == "desk_opened"
    assert [r[0] for r in store_rows(pg_url)][:2] == ["main:1", "main:2"]
    bad = cli("verify", "--store", "postgresql://nobody@127.0.0.1:1/x")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "cannot connect to the store" in bad.stdout + bad.stderr
    both = cli("verify", "--store", pg_url, "--data-dir", "/tmp")
    assert both.returncode == 2 and "Traceback" not in both.stderr


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(commands)
def test_replay_of_the_store_equals_the_live_state(pg_url: str, cmds: list[tuple]) -> None:
    """The domain's replay property, through PostgreSQL: random commands over two offices
    and "*" workflows, written in one-event batches with snapshots every 5 events; loading
    the store gives exactly the live state."""
    d = new_domain(reasons=("r",))
    events: list[Event] = []
    for i, cmd in enumerate(cmds):
        with contextlib.suppress(LapakError):
            events += run(d, cmd, float(i))

    async def check() -> None:
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(
                "DROP TABLE IF EXISTS lapak_events, lapak_snapshots, lapak_checkpoints, "
                "lapak_meta, lapak_offices, lapak_nodes"
            )
        finally:
            await conn.close()
        await write_pg(pg_url, events, snapshot_every=5, one_by_one=True)
        assert (await read_pg(pg_url)).state == d.state

    asyncio.run(check())


async def test_an_office_is_adopted_from_the_newest_snapshot_that_covers_it(pg_url: str) -> None:
    """A node taking an office it never held starts from the newest snapshot of any node
    that covers the office (signed, checked against the stored rows), then applies only
    the rows after it; the office comes out as a replay of its whole stream; the writer
    goes on from the head (the next row verifies)."""
    events = _two_offices()
    router = StreamRouter()
    north = sum(1 for e in events if router.route(e) == "north")
    signer = Signer.generate()
    cut = len(events) // 2
    await write_pg(pg_url, events[:cut], snapshot_every=5, signer=signer, node="a")
    await write_pg(pg_url, events[cut:], snapshot_every=10**6, signer=signer, node="b")
    conn = await asyncpg.connect(pg_url)
    try:  # b was killed before its closing snapshot: a's (at the cut) is the newest left
        await conn.execute("DELETE FROM lapak_snapshots WHERE node = 'b'")
    finally:
        await conn.close()
    pool = await connect_pool(pg_url)
    try:
        loaded = await load_pg(pool, signer.public, node="c", streams=set())  # holds nothing
        log = PgLog(pool, loaded, node="c", signer=signer)
        state = loaded.state
        applied = await log.adopt("north", state)
        assert 0 < applied < north, f"{applied} rows applied of {north}: not from the snapshot"
        whole = replay(events)
        assert _office_part(state, "north") == _office_part(whole, "north")
        assert _office_part(log.marks.replica, "north") == _office_part(whole, "north")
        assert log.heads["north"][0] == north
        log.start()
        next_row = WorkflowSet("JHT", ["identity"], "admin", 99.0, office="north")
        async with asyncio.timeout(30):
            await log.append([next_row])
            await log.close()
    finally:
        await pool.close()
    rows = await asyncio.to_thread(store_rows, pg_url)
    assert sum(1 for r in rows if str(r[0]).startswith("north:")) == north + 1
    assert (await asyncio.to_thread(verify_store, pg_url)).problems == []
