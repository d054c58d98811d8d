"""bench/console.py runs end to end in its tiny configuration and prints its figures as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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
    proc = subprocess.run(
        [sys.executable, "bench/console.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, f"expected exit 0, got {proc.returncode}; output:\n{proc.stdout}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    missing = KEYS - result.keys()
    assert not missing, f"expected keys {sorted(KEYS)}; missing {sorted(missing)}"
    assert result["frames_painted"] > 0, f"expected painted frames, got {result}"
    assert result["stamps_read"] > 0, "expected clock stamps read back from painted tiles"
    assert result["tty_bytes_per_s"] > 0
