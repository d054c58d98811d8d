"""The render benchmark runs end to end and reports its figures as one JSON line."""

from __future__ import annotations

from tests_support import run_bench

KEYS = {
    "ms_per_tile_frame",
    "naive_ms_per_tile_frame",
    "speedup",
    "chafa_ms_per_tile_frame",
    "vs_chafa",
    "bytes_per_tile_frame",
    "chafa_bytes_per_tile_frame",
}


def test_bench_render_quick_prints_json_with_its_keys() -> None:
    result, proc = run_bench("render.py", "--quick", keys=KEYS)
    for key in ("ms_per_tile_frame", "naive_ms_per_tile_frame", "speedup"):
        assert isinstance(result[key], int | float) and result[key] > 0, (
            f"expected {key} to be a positive number, got {result[key]!r}"
        )
    sent = result["bytes_per_tile_frame"]
    assert isinstance(sent, int) and sent > 0, (
        f"expected bytes_per_tile_frame to be a positive int, got {sent!r}"
    )
    if result["chafa_ms_per_tile_frame"] is None:
        assert result["vs_chafa"] is None and result["chafa_bytes_per_tile_frame"] is None, (
            f"expected all chafa figures null together, got {result}"
        )
        assert "chafa" in proc.stdout and "apt-get install" in proc.stdout, (
            "expected the bench to say how to install chafa when it is missing"
        )
