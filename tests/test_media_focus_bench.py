"""bench/focus.py runs end to end in a tiny configuration and reports its keys as one JSON line."""

from __future__ import annotations

from tests_support import run_bench

KEYS = {"switch_p50_ms", "switch_p95_ms", "old_booth_silent_p95_ms", "changes", "missed"}


def test_bench_focus_tiny_run_prints_its_figures() -> None:
    result, _ = run_bench(
        "focus.py",
        "--booths", "2", "--changes", "4", "--size", "160x120", "--fps", "10",
        "--warmup", "0.5",
        keys=KEYS,
    )  # fmt: skip
    assert result["changes"] == 4 and result["missed"] == 0, f"every switch heard: {result}"
    assert result["switch_p95_ms"] > 0, f"a switch takes time: {result}"
