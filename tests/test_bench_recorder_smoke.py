"""bench/recorder.py runs end to end (a 6 s visit) and reports its figures as one JSON line."""

from __future__ import annotations

from tests_support import run_bench

KEYS = {"recorder_cpu_s_per_min", "disk_mb_per_min", "duration_s", "bytes", "gaps"}


def test_bench_recorder_quick_prints_json_with_its_keys() -> None:
    result, _ = run_bench("recorder.py", "--quick", keys=KEYS)
    assert isinstance(result["bytes"], int) and result["bytes"] > 0, result
    assert result["recorder_cpu_s_per_min"] > 0 and result["disk_mb_per_min"] > 0, result
    assert result["duration_s"] > 4, "the file spans the visit"
    assert result["encrypted"] is True and result["closed_with_final_chunk"] is True, result
    assert result["decoded_booth_frames"] > 10, "the decrypted file decodes"
