"""bench/console.py runs end to end in its tiny configuration (two booths, tiers on, the
headless floor) and prints its figures as JSON."""

from __future__ import annotations

from tests_support import run_bench

KEYS = {
    "fps_per_tile_min",
    "fps_per_tile_median",
    "fps_on_air",
    "fps_off_air_median",
    "cpu_cores",
    "console_cpu_cores",
    "booths_cpu_cores",
    "floor_cpu_cores",
    "console_cpu_ratio",
    "rss_mb",
    "latency_p50_ms",
    "latency_p95_ms",
    "console_own_latency_p50_ms",
    "console_own_latency_p95_ms",
    "tty_bytes_per_s",
    "inbound_kbps",
    "tier_switch_ms",
    "tier_switch_max_ms",
}


def test_bench_console_quick_prints_json_with_its_keys() -> None:
    result, _ = run_bench("console.py", "--quick", keys=KEYS, timeout=180)
    assert result["frames_painted"] > 0, f"expected painted frames, got {result}"
    assert result["stamps_read"] > 0, "expected clock stamps read back from painted tiles"
    assert result["tty_bytes_per_s"] > 0
    assert result["fps_on_air"] > 0 and result["fps_off_air_median"] > 0, result
    # the console's own share (arrival at the link -> flush) is a part of the whole path
    assert 0 <= result["console_own_latency_p50_ms"] <= result["latency_p50_ms"], result
    assert result["console_cpu_cores"] > 0 and result["floor_cpu_cores"] > 0, result
    assert result["inbound_kbps"] > 0, "expected the officer's inbound kbps in the paint log"
    assert len(result["tier_switches"]) == 2, "expected both on-air switches timed"
    assert result["width_on_air"] == 640, "expected the on-air tile decoded at full width"
    if result["video_tiers"] == "on":
        assert result["width_off_air_median"] < 640, "expected off-air thumbnails with tiers on"
