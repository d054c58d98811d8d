"""`lapak demo` in a real pseudo-terminal: it shows booths, `q` quits, nothing is left.

Keys are pressed when the screen shows what they act on (never after a sleep): the test reads
the terminal until the expected text appears."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path


def read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            seen += chunk
            if needle in seen:
                return seen
    raise AssertionError(
        f"expected {needle!r} on the screen within {timeout}s; got {seen[-400:]!r}"
    )


def drain_until(fd: int, done: Callable[[], bool], timeout: float) -> bytes:
    """Keep reading the terminal (so the app never blocks on it) until ``done()``, the
    terminal closes or ``timeout`` passes; what was read."""
    seen = b""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


def drain_until_exit(proc: subprocess.Popen[bytes], fd: int, timeout: float) -> bytes:
    """Keep reading the terminal until the process ends."""
    deadline = time.monotonic() + timeout
    seen = drain_until(fd, lambda: proc.poll() is not None, timeout)
    proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    return seen


def start_demo(tmp_path: Path, booths: int) -> tuple[subprocess.Popen[bytes], int]:
    """`lapak demo` in a 100x30 pseudo-terminal; its temporary directory, state directory
    ($XDG_STATE_HOME), home and working directory all under tmp_path. Returns the process and
    the terminal's master side."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    for folder in ("home", "cwd"):
        (tmp_path / folder).mkdir()
    env = {
        **os.environ,
        "TMPDIR": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "HOME": str(tmp_path / "home"),
        "TERM": "xterm-256color",
    }
    env.pop("LAPAK_SNAPSHOT_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lapak.cli", "demo", "--booths", str(booths), "--size", "160x120"],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
        close_fds=True, cwd=tmp_path / "cwd",
    )  # fmt: skip
    os.close(slave)
    return proc, master


def take_snapshot(fd: int, root: Path, attempts: int = 30) -> None:
    """Press ``s`` until a snapshot file appears under ``root`` (slot 1 may show no picture
    yet: the console then says so, and the key is pressed again). The file, not the status
    line, is the proof: the line ends in an ellipsis before "saved" when the claimant's
    generated name is long and the terminal 100 columns wide."""

    def saved() -> bool:
        return any(root.rglob("*.png"))

    for _ in range(attempts):
        os.write(fd, b"s")
        drain_until(fd, saved, timeout=5)
        if saved():
            return
    raise AssertionError(f"no snapshot file under {root} after {attempts} presses of s")


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if not p.is_dir()]


def test_demo_shows_booths_and_q_quits_cleanly(tmp_path: Path) -> None:
    proc, master = start_demo(tmp_path, booths=2)
    try:
        read_until(master, b"booth-02", timeout=60)
        read_until(master, "▀".encode(), timeout=60)  # live video cells are painted
        take_snapshot(master, tmp_path)  # personal data: under the demo's temporary directory
        os.write(master, b"q")  # a demo's visits are thrown away: q quits at once
        drain_until_exit(proc, master, timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            subprocess.run(["pkill", "-9", "-f", f"secret-file {tmp_path}"], capture_output=True)
        rest = b""
        while True:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            rest += chunk
        os.close(master)
    assert proc.returncode == 0, f"demo exit code {proc.returncode}: {rest[-600:]!r}"
    assert b"Traceback" not in rest, rest[-2000:]
    leftovers = subprocess.run(
        ["pgrep", "-f", f"secret-file {tmp_path}"], capture_output=True, text=True
    )
    assert leftovers.stdout == "", "no booth process is left behind"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "home"], (
        "no temporary directory, state directory (log, snapshots) is left behind"
    )
    assert files_under(tmp_path) == [], "no file is left behind (log, snapshot, anything)"


def test_booths_stop_when_the_demo_is_killed(tmp_path: Path) -> None:
    """Even a SIGKILLed demo leaves no booth process behind."""
    proc, master = start_demo(tmp_path, booths=1)
    pattern = f"secret-file {tmp_path}"
    try:
        read_until(master, b"booth-01", timeout=40)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
            if not found.stdout:
                break
            time.sleep(0.2)
        assert not found.stdout, "the booth process stops once the demo is gone"
    finally:
        subprocess.run(["pkill", "-9", "-f", pattern], capture_output=True)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
