"""Decisions streaming into a real ``lapak signal`` process that is killed with SIGKILL
mid-stream: the rig shared by the SQLite and the PostgreSQL durability tests, so both stores
are held to the same "durable before acknowledged" in the same way."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from test_eventlog import _connect_retry
from tests_support import free_port

from lapak.signaling.tokens import KeyRing


def _spawn(command: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)


async def acked_then_sigkill(
    data: Path, keys: KeyRing, *, store: str | None = None, kill_after_acks: int = 10,
    booths: int = 12,
) -> list[tuple[str, int]]:  # fmt: skip
    """Start ``lapak signal`` (on ``store`` if given), seat ``booths`` visits at three desks,
    stream approvals from the three officers, SIGKILL the server once ``kill_after_acks``
    were acknowledged (more keep coming), and return every ``(visit, step)`` acknowledged."""
    secret = data.parent / "secret"
    keys.write(secret)
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    command = [sys.executable, "-m", "lapak.cli", "signal", "--port", str(port),
               "--data-dir", str(data), "--secret-file", str(secret)]  # fmt: skip
    if store is not None:
        command += ["--store", store]
    proc = _spawn(command)
    acked: list[tuple[str, int]] = []
    try:
        officers = [
            await _connect_retry(url, keys.issue("officer", f"o{i}", "main", desk=f"d{i}"))
            for i in range(3)
        ]
        clients = [
            await _connect_retry(url, keys.issue("booth", f"b{i}", "main", booth=f"b{i}"))
            for i in range(booths)
        ]
        visits = []
        for booth in clients:
            claimant = {"name": "S", "membership_no": "1"}
            visits.append(
                (await booth.request({"type": "start_visit", "claimant": claimant})).visit
            )
        enough = asyncio.Event()

        async def decide_all(officer) -> None:  # type: ignore[no-untyped-def]
            for step in range(6):
                for visit in visits:  # other desks' visits are refused and skipped
                    try:
                        await officer.request(
                            {"type": "decide", "visit": visit, "step": step, "decision": "approve"}
                        )
                    except Exception:  # not at this desk, or the server is gone
                        continue
                    acked.append((visit, step))
                    if len(acked) >= kill_after_acks:
                        enough.set()

        tasks = [asyncio.create_task(decide_all(o)) for o in officers]
        async with asyncio.timeout(30):  # kill mid-stream, with decisions still coming
            await enough.wait()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in officers + clients:
            await client.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert len(acked) >= kill_after_acks, "decisions were acknowledged before the kill"
    return acked
