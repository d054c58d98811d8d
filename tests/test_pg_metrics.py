"""/metrics of a node on the PostgreSQL store (signaling/metrics.py, ``StoreGauges``): the
offices it owns, how long ago it renewed its leases, the lease length, the last commit and
the batches refused by the fence carry the node's figures, the same as /healthz; a SQLite
server declares those series and exports no sample of them."""

# ruff: noqa: F811  (the cluster fixtures are imported, then named as test arguments)
from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest
from pg_cluster import pg_cluster, pg_url  # noqa: F401  (fixtures)
from prometheus_client.parser import text_string_to_metric_families

from lapak.signaling.client import SignalClient
from lapak.signaling.config import Launch, ServerConfig
from lapak.signaling.pglog import connect_pool
from lapak.signaling.reconnect import RequestError
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

pytestmark = pytest.mark.integration

NODE = "ws://node-a.example:8765/ws"
LEASE_S = 3.0
STORE_SERIES = (
    "lapak_offices_owned",
    "lapak_office_owned",
    "lapak_lease_renewed_seconds_ago",
    "lapak_lease_seconds",
    "lapak_fenced_batches_total",
    "lapak_store_last_commit_seconds",
)


def page(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    text = page(port)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float | None:  # fmt: skip
    return samples.get((name, tuple(sorted({"node": NODE, **labels}.items()))))


async def test_a_node_exports_its_leases_and_store_and_counts_a_fenced_batch(
    pg_url: str, tmp_path: Path, keys: KeyRing
) -> None:
    config = ServerConfig(
        offices=["main", "north"],
        launch=Launch(store=pg_url, node_url=NODE, lease_s=LEASE_S),
    )
    server = SignalServer(tmp_path / "data", keys, port=0, config=config)
    await server.start()
    booth: SignalClient | None = None
    officer = SignalClient(server.url, keys.issue("officer", "ana", "north", desk="d1"))
    try:
        samples = await asyncio.to_thread(scrape, server.port)
        assert value(samples, "lapak_store_last_commit_seconds") is None, "no commit yet"
        await officer.connect()  # its desk opens: a commit
        health = server.health()
        owned = sorted(health["offices_owned"])
        assert owned == ["*", "main", "north"], health
        samples = await asyncio.to_thread(scrape, server.port)
        assert value(samples, "lapak_offices_owned") == 3
        for office in owned:
            assert value(samples, "lapak_office_owned", office=office) == 1, office
        assert value(samples, "lapak_lease_seconds") == LEASE_S
        assert value(samples, "lapak_fenced_batches_total") == 0
        commit = value(samples, "lapak_store_last_commit_seconds")
        assert commit is not None and commit > 0, "the desk's opening was committed"
        assert abs(commit * 1000 - server.health()["store_commit_ms"]) <= 0.01, "as /healthz"

        first = value(samples, "lapak_lease_renewed_seconds_ago")
        assert first is not None and first >= 0
        ages = [first]
        async with asyncio.timeout(15):  # a lease round renews: the age starts again
            while len(ages) < 2 or ages[-1] >= ages[-2]:
                await asyncio.sleep(0.05)
                age = value(await asyncio.to_thread(scrape, server.port),
                            "lapak_lease_renewed_seconds_ago")  # fmt: skip
                assert age is not None
                ages.append(age)

        # No more lease rounds; another node takes "main" behind this one's back.
        await server.ticker.stop()
        if server._lease_task is not None:
            await server._lease_task
        stopped = value(await asyncio.to_thread(scrape, server.port),
                        "lapak_lease_renewed_seconds_ago")  # fmt: skip
        pool = await connect_pool(pg_url)
        try:
            await pool.execute(
                "UPDATE lapak_offices SET epoch = epoch + 1, owner_node = 'node-b', "
                "lease_until = extract(epoch from clock_timestamp()) + 60 WHERE office = 'main'"
            )
        finally:
            await pool.close()
        booth = SignalClient(server.url, keys.issue("booth", "b1", "main", booth="b1"),
                             reconnect=False)  # fmt: skip
        await booth.connect()
        claimant = {"name": "Siti", "membership_no": "12345678901"}
        with pytest.raises((RequestError, ConnectionError, TimeoutError)):
            await booth.request({"type": "start_visit", "claimant": claimant}, timeout=10)

        samples = await asyncio.to_thread(scrape, server.port)
        assert value(samples, "lapak_fenced_batches_total") == 1, "the refused batch is counted"
        assert value(samples, "lapak_offices_owned") == 2
        assert value(samples, "lapak_office_owned", office="main") is None, "no stale series"
        assert value(samples, "lapak_office_owned", office="north") == 1
        assert sorted(server.health()["offices_owned"]) == ["*", "north"]
        age = value(samples, "lapak_lease_renewed_seconds_ago")
        assert stopped is not None and age is not None and age > stopped, (
            "without lease rounds the age only grows"
        )
    finally:
        if booth is not None:
            await booth.close()
        await officer.close()
        await server.close()


async def test_a_sqlite_server_declares_the_store_series_without_samples(
    tmp_path: Path, keys: KeyRing
) -> None:
    server = SignalServer(tmp_path / "data", keys, port=0)
    await server.start()
    try:
        text = await asyncio.to_thread(page, server.port)
    finally:
        await server.close()
    for name in STORE_SERIES:
        assert f"# TYPE {name} " in text, f"{name} is declared"
        assert not any(line.startswith(f"{name}{{") for line in text.splitlines()), (
            f"{name} has no sample on a server without the store"
        )
