"""bench/cluster.py runs end to end in a tiny configuration (SQLite, one and three nodes on a
throwaway PostgreSQL, one failover, the split-brain phase) and reports its figures."""

from __future__ import annotations

import pytest
from pg_cluster import need_postgresql
from tests_support import run_bench

pytestmark = pytest.mark.integration

KEYS = {
    "nodes",
    "store",
    "clients",
    "decisions_per_s",
    "ack_p50_ms",
    "ack_p99_ms",
    "lost_acks",
    "failover_p50_s",
    "failover_p95_s",
    "split_brain_writes",
}


def test_bench_cluster_quick_prints_json_with_its_keys() -> None:
    need_postgresql()
    result, _ = run_bench("cluster.py", "--quick", keys=KEYS, timeout=300)
    assert result["lost_acks"] == 0, f"an acknowledged decision is missing: {result}"
    assert result["split_brain_writes"] == 0, f"the fenced node wrote: {result['cluster']}"
    assert result["cluster"]["split_brain_sent"] > 0, "decisions went to the stopped owner"
    assert result["cluster"]["store_problems"] == [], result["cluster"]
    configs = result["configs"]
    assert set(configs) == {"sqlite", "pg1", "pg3"}, configs
    for name, figures in configs.items():
        assert figures["errors"] == 0, f"{name}: {figures['error_codes']}"
        assert figures["acks_checked"] > 0 and figures["decisions_per_s"] > 0, (name, figures)
    assert configs["pg3"]["nodes"] == 3 and min(configs["pg3"]["offices_per_node"]) > 0, (
        f"every node owns offices: {configs['pg3']}"
    )
    assert result["failover_p50_s"] > 0 and result["cluster"]["failovers"] == 1, result["cluster"]
