"""``lapak signal --store postgresql://...``: the server on the PostgreSQL event log. A
restart replays the same state; SIGKILL loses no acknowledged decision; a wrong store is
one clear message and a non-zero exit."""

# ruff: noqa: F811  (the cluster fixtures are imported, then named as test arguments)
from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from pg_cluster import pg_cluster, pg_url  # noqa: F401  (fixtures)
from sigkill_rig import acked_then_sigkill

from lapak.signaling.client import SignalClient
from lapak.signaling.config import Launch, ServerConfig
from lapak.signaling.pgaudit import verify_store
from lapak.signaling.pglog import connect_pool, load_pg
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

pytestmark = pytest.mark.integration


async def _load(url: str):  # type: ignore[no-untyped-def]
    pool = await connect_pool(url)
    try:
        return await load_pg(pool)
    finally:
        await pool.close()


async def test_a_restart_on_the_store_replays_the_same_state(
    pg_url: str, tmp_path: Path, keys: KeyRing
) -> None:
    config = ServerConfig(launch=Launch(store=pg_url))
    first = SignalServer(tmp_path / "data", keys, port=0, config=config)
    await first.start()
    try:
        officer = SignalClient(first.url, keys.issue("officer", "ana", "main", desk="d1"))
        booth = SignalClient(first.url, keys.issue("booth", "b1", "main", booth="b1"))
        await officer.connect()
        await booth.connect()
        claimant = {"name": "Siti", "membership_no": "12345678901"}
        visit = (await booth.request({"type": "start_visit", "claimant": claimant})).visit
        await officer.request({"type": "decide", "visit": visit, "step": 0, "decision": "approve"})
        await officer.close()
        await booth.close()
        assert first.health()["store"] == "postgresql"
    finally:
        await first.close()
    assert first.hub is not None
    before = first.hub.state
    second = SignalServer(tmp_path / "data", keys, port=0, config=config)
    await second.start()
    try:
        assert second.hub is not None
        assert second.hub.state.visits == before.visits
        assert second.hub.state.desks == before.desks
        assert second.hub.state.visits[visit].steps[0].status == "approved"
    finally:
        await second.close()
    assert (await asyncio.to_thread(verify_store, pg_url)).problems == []


async def test_sigkill_on_the_store_loses_no_acknowledged_decision(
    pg_url: str, tmp_path: Path
) -> None:
    """Decisions stream in; the server is killed with SIGKILL mid-stream; every decision
    that was acknowledged is in the store, whose chains check out (the SQLite log's test,
    tests/test_eventlog.py, on this store)."""
    acked = await acked_then_sigkill(tmp_path / "data", KeyRing.generate(), store=pg_url)
    loaded = await _load(pg_url)
    missing = [(v, s) for v, s in acked if loaded.state.visits[v].steps[s].status != "approved"]
    assert not missing, f"acknowledged decisions lost after SIGKILL: {missing[:5]}"
    assert (await asyncio.to_thread(verify_store, pg_url)).problems == []


def test_a_wrong_store_is_one_clear_message(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    KeyRing.generate().write(secret)
    base = [sys.executable, "-m", "lapak.cli", "signal", "--port", "0", "--data-dir",
            str(tmp_path / "data"), "--secret-file", str(secret)]  # fmt: skip
    not_url = subprocess.run([*base, "--store", "/var/lib/x"], capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    assert not_url.returncode == 2 and "Traceback" not in not_url.stderr
    assert "--store: a PostgreSQL URL" in not_url.stderr
    unreachable = subprocess.run(
        [*base, "--store", "postgresql://nobody@127.0.0.1:1/x"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
    assert "cannot connect to the store postgresql://nobody@127.0.0.1:1/x" in unreachable.stderr


async def test_personal_data_on_the_store_is_sealed_and_a_purge_destroys_its_key(
    pg_url: str, tmp_path: Path, keys: KeyRing
) -> None:
    """Issue 15 on the PostgreSQL store: the name is never in the store in clear, its key
    sits in ``lapak_visit_keys`` (outside the chain) until an admin purges the visit; a
    restart shows the name before the purge and ``purged`` after; the chain still verifies."""
    import asyncpg

    config = ServerConfig(launch=Launch(store=pg_url))
    name = "Siti Rahayu Pgstore"
    server = SignalServer(tmp_path / "data", keys, port=0, config=config)
    await server.start()
    try:
        officer = SignalClient(server.url, keys.issue("officer", "ana", "main", desk="d1"))
        booth = SignalClient(server.url, keys.issue("booth", "b1", "main", booth="b1"))
        admin = SignalClient(server.url, keys.issue("admin", "root", "main"))
        for client in (officer, booth, admin):
            await client.connect()
        claimant = {"name": name, "membership_no": "98765432101"}
        visit = (await booth.request({"type": "start_visit", "claimant": claimant})).visit
        end = {"type": "end_visit", "visit": visit, "outcome": "abandoned"}
        await booth.request(end)
        conn = await asyncpg.connect(pg_url)
        try:
            bodies = [bytes(r["body"]) for r in await conn.fetch("SELECT body FROM lapak_events")]
            assert bodies and not any(name.encode() in b for b in bodies), "no clear name"
            held = await conn.fetchval(
                "SELECT count(*) FROM lapak_visit_keys WHERE visit=$1", visit
            )
            assert held == 1, "the visit's key is kept apart from the chain"
            await admin.request({"type": "purge_visit", "visit": visit, "reason": "asked"})
            gone = await conn.fetchval(
                "SELECT count(*) FROM lapak_visit_keys WHERE visit=$1", visit
            )
            assert gone == 0, "the purge deleted the key in its own transaction"
        finally:
            await conn.close()
        for client in (officer, booth, admin):
            await client.close()
    finally:
        await server.close()
    again = SignalServer(tmp_path / "data", keys, port=0, config=config)
    await again.start()
    try:
        assert again.hub is not None
        purged = again.hub.state.visits.get(visit)
        assert purged is None or (purged.purged and purged.name != name), "purged after restart"
    finally:
        await again.close()
    assert (await asyncio.to_thread(verify_store, pg_url)).problems == []
