"""Across a real constrained link: two network namespaces joined by a veth pair, squeezed by tc.

The officer's side (server and media engine, ``tests/netns_officer.py``) runs in one namespace,
a ``lapak booth`` process in the other; the only path between them is the veth pair. A ``tbf``
rate limit below the video bitrate on the booth's side must leave video flowing at a reduced
rate with audio intact, and both must recover when the limit is lifted. ``netem`` (delay and
loss) is not available on this kernel; ``tbf`` is. Needs root (to create namespaces); traffic
never leaves the two namespaces. Namespaces are removed in ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests_support import stop_process_group

from lapak.signaling.tokens import KeyRing

ROOT = Path(__file__).resolve().parent.parent
OFFICER_IP, BOOTH_IP = "10.231.7.1", "10.231.7.2"


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=10)


def netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if not (shutil.which("ip") and shutil.which("tc")):
        return "needs iproute2 (ip, tc)"
    probe = f"lapak-probe-{os.getpid()}"
    try:
        sh("ip", "netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"cannot create a network namespace here: {exc.stderr.decode().strip()}"
    sh("ip", "netns", "del", probe)
    return None


class Namespaces:
    def __init__(self) -> None:
        tag = os.getpid() % 100000
        self.officer, self.booth = f"lapak-o-{tag}", f"lapak-b-{tag}"
        self.veth_o, self.veth_b = f"lpo{tag}", f"lpb{tag}"

    def create(self) -> None:
        sh("ip", "netns", "add", self.officer)
        sh("ip", "netns", "add", self.booth)
        sh("ip", "link", "add", self.veth_o, "type", "veth", "peer", "name", self.veth_b)
        sh("ip", "link", "set", self.veth_o, "netns", self.officer)
        sh("ip", "link", "set", self.veth_b, "netns", self.booth)
        for ns, dev, ip in (
            (self.officer, self.veth_o, OFFICER_IP),
            (self.booth, self.veth_b, BOOTH_IP),
        ):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    def limit(self, rate: str | None) -> None:
        """Rate-limit what the booth sends (its camera and microphone) with a token bucket."""
        if rate is None:
            sh("ip", "netns", "exec", self.booth, "tc", "qdisc", "del", "dev", self.veth_b, "root")
        else:
            sh(
                "ip", "netns", "exec", self.booth, "tc", "qdisc", "add", "dev", self.veth_b,
                "root", "tbf", "rate", rate, "burst", "8kb", "latency", "150ms",
            )  # fmt: skip

    def destroy(self) -> None:
        for ns in (self.officer, self.booth):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)


class Reader:
    """The officer process's JSON lines, latest first."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(raw))

    async def rates(self, seconds: float) -> dict[str, float]:
        """Per-second rates over the next ``seconds``."""
        await self._wait_line()
        first = self.lines[-1]
        await asyncio.sleep(seconds)
        last = self.lines[-1]
        dt = last["t"] - first["t"]
        assert dt > 0, "the officer process stopped reporting"
        return {
            "fps": (last["frames"] - first["frames"]) / dt,
            "audio_fps": (last["audio_frames"] - first["audio_frames"]) / dt,
            "tone_fps": (last["tone_frames"] - first["tone_frames"]) / dt,
            "kbps": (last["rx_bytes"] - first["rx_bytes"]) * 8 / 1000 / dt,
        }

    async def _wait_line(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.lines or "frames" not in self.lines[-1]:
            if time.monotonic() > deadline:
                raise AssertionError("expected stats lines from the officer process")
            await asyncio.sleep(0.1)


async def test_video_degrades_audio_holds_and_both_recover_across_a_squeezed_link(
    tmp_path: Path,
) -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    keys = KeyRing.generate()
    secret = tmp_path / "secret"
    keys.write(secret)
    ns = Namespaces()
    procs: list[asyncio.subprocess.Process] = []
    log = (tmp_path / "processes.log").open("ab")
    reader: Reader | None = None
    try:
        ns.create()
        officer = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", ns.officer,
            sys.executable, str(ROOT / "tests" / "netns_officer.py"),
            "--host", OFFICER_IP, "--port", "8765", "--secret", str(secret),
            "--data", str(tmp_path / "data"),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=log, start_new_session=True,
        )  # fmt: skip
        procs.append(officer)
        reader = Reader(officer)
        deadline = time.monotonic() + 20
        while not reader.lines:
            assert time.monotonic() < deadline, "the officer process did not start"
            await asyncio.sleep(0.1)
        booth = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", ns.booth, sys.executable, "-m", "lapak.cli", "booth",
            "--server", f"ws://{OFFICER_IP}:8765", "--secret-file", str(secret),
            "--size", "640x480", "--fps", "15",
            cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True,
        )  # fmt: skip
        procs.append(booth)
        deadline = time.monotonic() + 30
        while not (reader.lines and reader.lines[-1].get("frames", 0) > 30):
            assert time.monotonic() < deadline, f"no video across the veth: {reader.lines[-1:]}"
            await asyncio.sleep(0.2)

        free = await reader.rates(4.0)
        assert free["fps"] > 10 and free["audio_fps"] > 40, f"a free link carries it all: {free}"
        assert free["kbps"] > 300, f"the free link should carry the video at full rate: {free}"
        # Squeeze to 85% of what this encoder just used (it varies a little from run to run):
        # below the video's need, well above the voice's.
        rate_kbit = max(200, int(free["kbps"] * 0.85))
        ns.limit(f"{rate_kbit}kbit")
        await asyncio.sleep(5.0)  # let the queue fill and the sender adapt
        squeezed = await reader.rates(6.0)
        assert squeezed["kbps"] < 0.93 * free["kbps"] and squeezed["kbps"] < rate_kbit * 1.06, (
            f"the {rate_kbit} kbit limit should hold the booth's traffic down: {free} -> {squeezed}"
        )
        assert squeezed["fps"] > 1, f"video keeps flowing at a reduced rate: {squeezed}"
        assert squeezed["audio_fps"] > 40, f"audio frames keep arriving: {squeezed}"
        assert squeezed["tone_fps"] > 0.6 * free["tone_fps"], (
            f"the booth's voice stays intelligible (tone frames per second): {free} -> {squeezed}"
        )

        ns.limit(None)
        deadline = time.monotonic() + 20
        recovered = await reader.rates(3.0)
        while recovered["fps"] < 0.8 * free["fps"] or recovered["kbps"] < 0.5 * free["kbps"]:
            assert time.monotonic() < deadline, (
                f"video should recover when the limit is lifted: {free} -> {recovered}"
            )
            recovered = await reader.rates(2.0)
        assert recovered["audio_fps"] > 40 and recovered["tone_fps"] > 0.6 * free["tone_fps"]
    finally:
        for proc in reversed(procs):
            await stop_process_group(proc)
        if reader is not None:
            reader.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader.task
        log.close()
        ns.destroy()
