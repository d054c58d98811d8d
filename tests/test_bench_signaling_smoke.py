"""The signalling benchmark runs end to end in a tiny configuration and reports its figures."""

from __future__ import annotations

import subprocess
import sys

from tests_support import ROOT, run_bench

KEYS = {
    "clients",
    "connect_storm_s",
    "decisions_per_s",
    "ack_p50_ms",
    "ack_p99_ms",
    "floor_p50_ms",
    "floor_p99_ms",
    "ratio_p99",
    "ack_arrival_p99_ms",
    "floor_arrival_p99_ms",
    "ratio_arrival_p99",
    "errors",
    "server_rss_mb",
}


def test_bench_signaling_quick_prints_json_with_its_keys() -> None:
    result, _ = run_bench("signaling.py", "--quick", "--probe", "40", keys=KEYS)
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
    # the fair floor (the default): the clients get as many frames per request from the
    # echo server as from the real one, and the visits are staggered after a warm-up
    assert result["visits"] == "staggered" and result["floor"] == "fair", result
    assert detail["warmup_s"] > 0, f"expected a warm-up before the window, got {detail}"
    assert detail["floor_extra_per_request"] > 0, f"expected extra frames, got {detail}"
    real, floor = detail["frames_in_per_request"], detail["floor_frames_in_per_request"]
    assert abs(floor - real) <= 0.25 * real, (
        f"expected the floor's frames per request near the real phase's {real}, got {floor}"
    )
    shares = detail["server_acks_over_ms"]  # from the server's /metrics histogram
    assert shares and all(0 <= v <= 100 for v in shares.values()), shares
    assert list(shares.values()) == sorted(shares.values(), reverse=True), shares
    # each ack timed at its bytes' arrival too: after it was sent, no later than handled
    for arrival, handled in (
        (result["ack_arrival_p99_ms"], result["ack_p99_ms"]),
        (result["floor_arrival_p99_ms"], result["floor_p99_ms"]),
        (detail["ack_arrival_p50_ms"], result["ack_p50_ms"]),
    ):
        assert 0 < arrival <= handled, (
            f"expected an ack's arrival time in (0, its handled time {handled}], got {arrival}"
        )
    # --probe: one desk in a process of its own, in both phases, its acks apart
    assert result["probe_acks"] >= 40, f"expected the probe's ~40 acks a second, got {result}"
    for key in ("probe_p99_ms", "floor_probe_p99_ms", "ratio_probe_p99"):
        assert isinstance(result[key], int | float) and result[key] > 0, (key, result[key])
    assert detail["probe_errors"] == detail["floor_probe_errors"] == 0, detail
    assert 0 < detail["probe_arrival_p99_ms"] <= result["probe_p99_ms"], detail


def test_bench_signaling_old_load_model_stays_available() -> None:
    result, _ = run_bench(
        "signaling.py", "--quick", "--visits", "storm", "--floor", "echo", keys=KEYS
    )
    detail = result["detail"]
    assert result["errors"] == 0, f"expected no errors in the tiny run, got {detail}"
    assert (result["visits"], result["floor"], detail["warmup_s"]) == ("storm", "echo", 0), detail
    assert detail["floor_extra_per_request"] == 0, f"expected the bare echo, got {detail}"
    # one echo per request (a request sent as the window closes may be answered after it)
    assert 0.95 <= detail["floor_frames_in_per_request"] <= 1.0, (
        f"expected one echo per request in the bare floor, got {detail}"
    )


def test_bench_signaling_refuses_an_unknown_load_model() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/signaling.py", "--visits", "waves"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "invalid choice" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
