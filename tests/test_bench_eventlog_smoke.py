"""bench/eventlog.py runs in a tiny configuration and prints its figures as JSON."""

from __future__ import annotations

from tests_support import run_bench

KEYS = ("events_per_s", "append_p99_ms", "replay_full_s", "replay_from_snapshot_s")


def test_eventlog_bench_quick() -> None:
    run_bench("eventlog.py", "--quick", keys=KEYS)
