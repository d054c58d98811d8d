"""bench/console.py — the whole console as an officer sees it.

`lapak signal` and N booths (default 6), each in its own process, sending the camera-like test
card at 640x480, 15 fps; the real officer console (`lapak console`) in a pseudo-terminal of
200x50 whose output this script reads and counts, as a terminal would. Warm up, then measure.

Capture-to-paint latency: each booth draws its capture wall clock into the pixels
(media.testcard); the console reads it back from the scaled tile pixels when it paints the
frame and logs the frame when that paint is flushed to the terminal (LAPAK_PAINT_LOG, see
console/paintlog.py). CPU is the console process alone (user+system over wall time, video
decoding included), from /proc.

    .venv/bin/python bench/console.py                  # 6 booths, 60 s
    .venv/bin/python bench/console.py --curve          # also 1, 2, 4 booths (30 s each)
    .venv/bin/python bench/console.py --quick          # smoke: 1 booth, a few seconds

Prints progress, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pty
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This folder comes first on sys.path when run as a script; this file would shadow the console
# package there, so look in the repository root instead.
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from lapak.media.testcard import stamp_age_ms  # noqa: E402
from lapak.signaling.tokens import KeyRing  # noqa: E402

LAPAK = [sys.executable, "-m", "lapak.cli"]
COLS, ROWS = 200, 50
TICKS = os.sysconf("SC_CLK_TCK")
TARGETS = {
    "fps_per_tile_min": (">=", 14),
    "cpu_cores": ("<=", 0.7),
    "rss_mb": ("<=", 300),
    "latency_p95_ms": ("<=", 150),
    "tty_bytes_per_s": ("<=", 2_000_000),
}


def say(text: str) -> None:
    print(text, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Terminal:
    """The console's terminal: a pty of COLS x ROWS whose output is read and counted."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.bytes = 0
        self.tail = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 1 << 20)
            except OSError:
                return
            if not chunk:
                return
            self.bytes += len(chunk)
            self.tail = (self.tail + chunk)[-4096:]

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        with contextlib.suppress(OSError):
            os.close(self.master)


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def read_paint_log(path: Path) -> list[tuple[int, int | None, int, int, int]]:
    """(slot, stamp, painted ms, flushed ms, ms from the decoded frame's arrival to its paint)."""
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 5:
            continue
        slot, stamp, painted, flushed, waited = parts
        rows.append(
            (int(slot), None if stamp == "-" else int(stamp), int(painted), int(flushed),
             int(waited))
        )  # fmt: skip
    return rows


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run_once(booths: int, warmup: float, duration: float, tmp: Path) -> dict[str, object]:
    keys = KeyRing.generate()
    secret = tmp / f"secret-{booths}"
    keys.write(secret)
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    logs = (tmp / f"bench-{booths}.log").open("ab")
    procs: list[subprocess.Popen[bytes]] = []
    console: subprocess.Popen[bytes] | None = None
    term = Terminal()
    paint_log = tmp / f"paint-{booths}.log"
    try:
        say(f"[{booths} booths] starting lapak signal on port {port}")
        procs.append(
            subprocess.Popen(
                [
                    *LAPAK,
                    "signal",
                    "--port",
                    str(port),
                    "--data-dir",
                    str(tmp / f"data-{booths}"),
                    "--secret-file",
                    str(secret),
                ],
                stdout=logs,
                stderr=logs,
                start_new_session=True,
            )
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("lapak signal did not come up in 30 s") from None
                time.sleep(0.2)
        token = keys.issue("officer", "bench", "main", desk="desk-1")
        env = {
            **os.environ,
            "LAPAK_PAINT_LOG": str(paint_log),
            "COLORTERM": "truecolor",
            "TERM": "xterm-256color",
            "TMPDIR": str(tmp),
        }
        say(f"[{booths} booths] starting the console in a {COLS}x{ROWS} pty")
        console = subprocess.Popen(
            [*LAPAK, "console", "--server", url, "--token", token, "--lang", "en"],
            stdin=term.slave, stdout=term.slave, stderr=term.slave, env=env,
            start_new_session=True, close_fds=True,
        )  # fmt: skip
        time.sleep(1.0)
        for i in range(booths):  # one process per booth, in order: booth i takes slot i + 1
            procs.append(
                subprocess.Popen(
                    [
                        *LAPAK,
                        "booth",
                        "--server",
                        url,
                        "--secret-file",
                        str(secret),
                        "--count",
                        "1",
                        "--first",
                        str(i),
                        "--size",
                        "640x480",
                        "--fps",
                        "15",
                    ],
                    stdout=logs,
                    stderr=logs,
                    start_new_session=True,
                )
            )
            time.sleep(0.3)
        say(f"[{booths} booths] waiting for every tile to paint video")
        deadline = time.monotonic() + 90
        while True:
            slots = {r[0] for r in read_paint_log(paint_log)}
            if len(slots) >= booths:
                break
            if console.poll() is not None:
                raise RuntimeError(f"the console exited: {term.tail[-800:]!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only slots {sorted(slots)} painted video within 90 s")
            time.sleep(0.5)
        say(f"[{booths} booths] all tiles live; warming up {warmup:.0f} s")
        time.sleep(warmup)
        say(f"[{booths} booths] measuring {duration:.0f} s")
        cpu0, bytes0, wall0 = cpu_seconds(console.pid), term.bytes, time.monotonic()
        t0_ms = int(time.time() * 1000)
        rss_peak = 0.0
        while time.monotonic() - wall0 < duration:
            time.sleep(1.0)
            rss_peak = max(rss_peak, rss_mb(console.pid))
        cpu1, bytes1, wall1 = cpu_seconds(console.pid), term.bytes, time.monotonic()
        t1_ms = int(time.time() * 1000)
        elapsed = wall1 - wall0
    finally:
        if console is not None and console.poll() is None:
            with contextlib.suppress(OSError):
                term.write(b"q")
                time.sleep(0.5)
                term.write(b"2")  # "quit anyway" (visits are open)
            try:
                console.wait(timeout=10)
            except subprocess.TimeoutExpired:
                stop_group(console)
        for proc in reversed(procs):
            stop_group(proc)
        term.close()
        with contextlib.suppress(OSError):
            os.close(term.slave)
        logs.close()
    frames = [r for r in read_paint_log(paint_log) if t0_ms <= r[3] <= t1_ms]
    per_slot = {s: 0 for s in range(1, booths + 1)}
    latencies: list[float] = []
    to_paint: list[float] = []
    paint_to_flush: list[float] = []
    arrival_to_paint: list[float] = []
    for slot, stamp, painted, flushed, waited in frames:
        per_slot[slot] = per_slot.get(slot, 0) + 1
        paint_to_flush.append(float(flushed - painted))
        if waited >= 0:
            arrival_to_paint.append(float(waited))
        if stamp is not None:
            age = stamp_age_ms(stamp, flushed)
            if 0 <= age < 10_000:
                latencies.append(float(age))
                to_paint.append(float(stamp_age_ms(stamp, painted)))
    fps = [n / elapsed for n in per_slot.values()]
    result: dict[str, object] = {
        "booths": booths,
        "seconds": round(elapsed, 1),
        "fps_per_tile_min": round(min(fps), 2),
        "fps_per_tile_median": round(statistics.median(fps), 2),
        "cpu_cores": round((cpu1 - cpu0) / elapsed, 3),
        "rss_mb": round(rss_peak, 1),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "capture_to_paint_p50_ms": percentile(to_paint, 50),
        "capture_to_paint_p95_ms": percentile(to_paint, 95),
        "arrival_to_paint_p50_ms": percentile(arrival_to_paint, 50),
        "arrival_to_paint_p95_ms": percentile(arrival_to_paint, 95),
        "paint_to_flush_p50_ms": percentile(paint_to_flush, 50),
        "paint_to_flush_p95_ms": percentile(paint_to_flush, 95),
        "stamps_read": len(latencies),
        "frames_painted": len(frames),
        "tty_bytes_per_s": round((bytes1 - bytes0) / elapsed),
    }
    say(f"[{booths} booths] {json.dumps(result)}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--booths", type=int, default=6)
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds (60)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring")
    parser.add_argument("--curve", action="store_true", help="also run 1, 2, 4 booths")
    parser.add_argument("--curve-duration", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="1 booth, 3 s warm-up, 5 s")
    args = parser.parse_args()
    if args.quick:
        args.booths, args.duration, args.warmup, args.curve = 1, 5.0, 3.0, False
    say(f"bench/console.py: {os.cpu_count()} cores, console at {COLS}x{ROWS}")
    with tempfile.TemporaryDirectory(prefix="lapak-bench-console-") as name:
        tmp = Path(name)
        curve = []
        if args.curve:
            for n in (1, 2, 4):
                curve.append(run_once(n, min(args.warmup, 5.0), args.curve_duration, tmp))
        main_run = run_once(args.booths, args.warmup, args.duration, tmp)
    if args.curve:
        curve.append(main_run)
    met = {}
    for key, (op, bound) in TARGETS.items():
        value = main_run.get(key)
        ok = isinstance(value, int | float) and (value >= bound if op == ">=" else value <= bound)
        met[key] = ok
        say(f"target {key} {op} {bound}: {value} {'met' if ok else 'NOT met'}")
    out = {**main_run, "targets_met": met, "cores": os.cpu_count()}
    if curve:
        out["curve"] = [
            {k: r[k] for k in ("booths", "fps_per_tile_min", "cpu_cores", "rss_mb",
                               "latency_p95_ms", "tty_bytes_per_s")}
            for r in curve
        ]  # fmt: skip
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
