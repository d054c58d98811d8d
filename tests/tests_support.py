"""Small helpers shared by tests that start real processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthz(port: int) -> dict[str, Any] | None:
    """One ``GET /healthz`` of a server on loopback; None while it does not answer (or fails)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return dict(json.loads(r.read()))
    except OSError:
        return None


def wait_healthy(port: int, proc: subprocess.Popen[str], timeout: float = 30) -> dict[str, Any]:
    """Poll ``/healthz`` until the server started as ``proc`` answers; fail at once, with its
    stderr, if it exits first, and after ``timeout`` seconds if it never answers."""
    deadline = time.monotonic() + timeout
    while (health := healthz(port)) is None:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no answer on /healthz of port {port} within {timeout:.0f}s")
        time.sleep(0.05)
    return health


def run_bench(
    script: str, *args: str, keys: Iterable[str] = (), timeout: float = 120
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """Run ``bench/<script>`` from the repository root; check it exits 0 and that its last
    line is one JSON object carrying ``keys``. Returns that object and the finished process."""
    proc = subprocess.run(
        [sys.executable, f"bench/{script}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, (
        f"expected exit 0, got {proc.returncode}; stderr:\n{proc.stderr[-3000:]}\n"
        f"stdout:\n{proc.stdout[-1500:]}"
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, f"expected output, got none; stderr:\n{proc.stderr[-3000:]}"
    result = json.loads(lines[-1])
    assert isinstance(result, dict), f"expected a JSON object on the last line, got {lines[-1]!r}"
    missing = set(keys) - result.keys()
    assert not missing, f"expected keys {sorted(keys)}; missing {sorted(missing)}"
    return result, proc


async def stop_process_group(proc: asyncio.subprocess.Process, timeout: float = 10.0) -> None:
    """SIGTERM a child started with ``start_new_session=True`` and its group; SIGKILL it if
    it has not ended within ``timeout``."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        async with asyncio.timeout(timeout):
            await proc.wait()
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
