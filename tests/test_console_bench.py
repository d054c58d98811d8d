"""bench/console.py runs end to end in its tiny configuration and prints its figures as JSON."""

from __future__ import annotations

from tests_support import run_bench

KEYS = {
    "fps_per_tile_min",
    "fps_per_tile_median",
    "cpu_cores",
    "rss_mb",
    "latency_p50_ms",
    "latency_p95_ms",
    "tty_bytes_per_s",
}


def test_bench_console_quick_prints_json_with_its_keys() -> None:
    result, _ = run_bench("console.py", "--quick", keys=KEYS, timeout=110)
    assert result["frames_painted"] > 0, f"expected painted frames, got {result}"
    assert result["stamps_read"] > 0, "expected clock stamps read back from painted tiles"
    assert result["tty_bytes_per_s"] > 0
