"""bench/focus.py runs end to end in a tiny configuration and reports its keys as one JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"switch_p50_ms", "switch_p95_ms", "old_booth_silent_p95_ms", "changes", "missed"}


def test_bench_focus_tiny_run_prints_its_figures() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "bench/focus.py",
            "--booths",
            "2",
            "--changes",
            "4",
            "--size",
            "160x120",
            "--fps",
            "10",
            "--warmup",
            "0.5",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"expected exit 0, got {proc.returncode}; stderr:\n{proc.stderr}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    missing = KEYS - result.keys()
    assert not missing, f"expected keys {sorted(KEYS)}; missing {sorted(missing)}"
    assert result["changes"] == 4 and result["missed"] == 0, f"every switch heard: {result}"
    assert result["switch_p95_ms"] > 0, f"a switch takes time: {result}"
