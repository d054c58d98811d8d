"""The signalling benchmark runs end to end in a tiny configuration and reports its figures."""

from __future__ import annotations

from tests_support import run_bench

KEYS = {
    "clients",
    "connect_storm_s",
    "decisions_per_s",
    "ack_p50_ms",
    "ack_p99_ms",
    "floor_p50_ms",
    "floor_p99_ms",
    "ratio_p99",
    "errors",
    "server_rss_mb",
}


def test_bench_signaling_quick_prints_json_with_its_keys() -> None:
    result, _ = run_bench("signaling.py", "--quick", keys=KEYS)
    assert result["errors"] == 0, f"expected no errors in the tiny run, got {result['detail']}"
    assert result["clients"] > 0, f"expected clients to connect, got {result['clients']!r}"
    for key in ("decisions_per_s", "ack_p50_ms", "ack_p99_ms", "floor_p99_ms", "ratio_p99"):
        assert isinstance(result[key], int | float) and result[key] > 0, (
            f"expected {key} to be a positive number, got {result[key]!r}"
        )
    detail = result["detail"]
    assert detail["decisions_acked"] == detail["decisions_sent"] > 0, (
        f"expected every decision sent to be acknowledged, got {detail}"
    )
    assert detail["visits_ended"] > 0, f"expected visits to cycle (end, start), got {detail}"
