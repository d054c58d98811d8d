"""`lapak demo` in a real pseudo-terminal: it shows booths, `q` quits, nothing is left."""

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


def start_demo(tmp_path: Path, booths: int) -> tuple[subprocess.Popen[bytes], int]:
    """`lapak demo` in a 100x30 pseudo-terminal with its temporary files under tmp_path;
    returns the process and the terminal's master side."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {**os.environ, "TMPDIR": str(tmp_path), "TERM": "xterm-256color"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "console", "demo", "--booths", str(booths), "--size", "160x120"],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
        close_fds=True,
    )  # fmt: skip
    os.close(slave)
    return proc, master


def test_demo_shows_booths_and_q_quits_cleanly(tmp_path: Path) -> None:
    proc, master = start_demo(tmp_path, booths=2)
    try:
        read_until(master, b"booth-02", timeout=40)
        read_until(master, "▀".encode(), timeout=30)  # live video cells are painted
        os.write(master, b"q")  # visits are open, so the console asks first
        time.sleep(1.0)
        os.write(master, b"2")  # "2  yes"
        proc.wait(timeout=30)
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
    assert list(tmp_path.iterdir()) == [], "no temporary file is left behind"


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
