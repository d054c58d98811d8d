"""bench/eventlog.py runs in a tiny configuration and prints its figures as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_eventlog_bench_quick() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "eventlog.py"), "--quick"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("events_per_s", "append_p99_ms", "replay_full_s", "replay_from_snapshot_s"):
        assert key in figures, f"the last line carries {key}: {figures}"
