"""bench/console.py — the whole console as an officer sees it, and what the console alone costs.

`lapak signal` and N booths (default 6), each in its own process, sending the camera-like test
card at 640x480, 15 fps; the real officer console (`lapak console`) in a pseudo-terminal of
200x50 whose output this script reads and counts, as a terminal would. Once every tile paints
video the bench puts slot 1 on air with the console's own key (`1`), warms up, then measures.

Capture-to-paint latency: each booth draws its capture wall clock into the pixels
(media.testcard); the console reads it back from the scaled tile pixels when it paints the
frame and logs the frame when that paint is flushed to the terminal (LAPAK_PAINT_LOG, see
console/paintlog.py), with the decoded frame's width and, once a second, the officer's inbound
kbps summed over its links (getStats). What the console owns is `console_own_latency`: from
the decoded frame's arrival at the link to its flush (wait for the paint timer + paint →
flush); the rest of `latency` is the booth's capture and encode, the network and aiortc's
receive path and decoder. `latency_on_air_*` is slot 1's (on air while measuring),
`latency_off_air_*` the others': aiortc's video jitter buffer hands a frame on only when the
next frame's first packet arrives, so a thumbnail at 5 fps reaches the link ~200 ms later than
its capture plus transport, a full-rate frame ~67 ms. CPU figures are user+system over wall
time from /proc, per process: `console_cpu_cores` (= `cpu_cores`, the console alone, video
decoding included), `booths_cpu_cores` (all booth processes summed), `server_cpu_cores`.

The floor: the same N booths into a headless receiver (bench/_floor.py: the officer's media
engine, lapak.media.headless.HeadlessDesk, nothing painted) in its own process, with a fresh
server and fresh booths, for the same duration; `floor_cpu_cores` is that process alone and
`console_cpu_ratio` = console_cpu_cores / floor_cpu_cores is what painting costs on top of
receiving and decoding, measured in the same run.

Quality tiers (`lapak signal --video-tiers on|off`): with tiers on, the server tells each
off-air booth to send a thumbnail (160x120 at 5 fps) and the on-air one its full 640x480 at
15 fps. `--tiers both` (the default) runs the console and the floor once with tiers off and once
with tiers on; the top-level keys are tiers on, `tiers_off` holds the same keys with tiers off
and `tiers_on_over_off` their ratios. The booths are separate processes on the same two cores
as the console, the server and the floor: six booths encoding VP8 at 640x480 15 fps cost more
than a core between them, and that work competes with the console for the CPU (it shows in the
console's latency, not its CPU). With tiers on, five of six encode 160x120 at 5 fps, which
frees most of that (`booths_cpu_cores`); so the console's decoding gets cheaper too.

Tier switch: after the measured window, the bench puts another booth on air with its key
(`2`, `3`, …) `--switches` times, `--switch-gap` seconds apart, and times from the key's write
to the first frame of that slot at full width (640) flushed to the terminal: `tier_switch_ms`
(median) and `tier_switch_max_ms`. With tiers off it is only the wait for that booth's next
frame (the baseline).

    .venv/bin/python bench/console.py                  # 6 booths, 60 s, tiers off and on, floor
    .venv/bin/python bench/console.py --tiers on       # only tiers on
    .venv/bin/python bench/console.py --curve          # also 1, 2, 4 booths (30 s each)
    .venv/bin/python bench/console.py --quick          # smoke: 2 booths, a few seconds

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# This folder comes first on sys.path when run as a script; this file would shadow the console
# package there, so look in the repository root instead.
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from lapak.media.testcard import stamp_age_ms  # noqa: E402
from lapak.signaling.tokens import KeyRing  # noqa: E402

LAPAK = [sys.executable, "-m", "lapak.cli"]
FLOOR = [sys.executable, str(ROOT / "bench" / "_floor.py")]
COLS, ROWS = 200, 50
WIDTH, HEIGHT, FPS = 640, 480, 15
TICKS = os.sysconf("SC_CLK_TCK")
TARGETS = {
    # Tiers on, off-air tiles are thumbnails at ~5 fps by design: the frame-rate target is the
    # on-air tile's (fps_off_air_median is reported, with no target).
    "fps_on_air": (">=", 14),
    "console_cpu_cores": ("<=", 0.5),
    "console_own_latency_p95_ms": ("<=", 50),
    "latency_p95_ms": ("<=", 150),
    "rss_mb": ("<=", 300),
    "tty_bytes_per_s": ("<=", 2_000_000),
}
TIER_NAME = {None: "default", True: "on", False: "off"}
"""The server's --video-tiers in a phase (None: not given, a tree without the flag)."""
RATIO_KEYS = (
    "inbound_kbps", "console_cpu_cores", "floor_cpu_cores", "booths_cpu_cores",
    "console_own_latency_p95_ms", "latency_p95_ms", "tty_bytes_per_s",
)  # fmt: skip


def say(text: str) -> None:
    print(text, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def tiers_supported() -> bool:
    """Whether this tree's `lapak signal` has `--video-tiers` (the lead's quality tiers)."""
    out = subprocess.run([*LAPAK, "signal", "--help"], capture_output=True, text=True, check=False)
    return "--video-tiers" in out.stdout


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
        with contextlib.suppress(OSError):
            os.close(self.slave)


@dataclass
class Frame:
    slot: int
    stamp: int | None
    painted: int  # wall ms
    flushed: int  # wall ms
    waited: int  # ms from arrival at the link to paint, -1 unknown
    width: int


@dataclass
class PaintLogReader:
    """Follows the console's paint log (format in console/paintlog.py) as it grows."""

    path: Path
    frames: list[Frame] = field(default_factory=list)
    kbps: list[tuple[int, float]] = field(default_factory=list)  # (wall ms, summed kbps)
    _offset: int = 0
    _partial: bytes = b""

    def poll(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        data, self._partial = self._partial + data, b""
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an unfinished last line waits for the next poll
        for raw in lines:
            parts = raw.decode().split()
            if len(parts) == 4 and parts[0] == "kbps":
                self.kbps.append((int(parts[1]), float(parts[2])))
            elif len(parts) == 6:
                slot, stamp, painted, flushed, waited, width = parts
                self.frames.append(
                    Frame(int(slot), None if stamp == "-" else int(stamp), int(painted),
                          int(flushed), int(waited), int(width))
                )  # fmt: skip


def stop_group(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
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


def wait_until(what: str, ok: Any, timeout: float, alive: Any = None, poll: float = 0.1) -> None:
    """Poll ``ok()`` until true; raise after ``timeout`` s or when ``alive()`` says why not."""
    deadline = time.monotonic() + timeout
    while not ok():
        if alive is not None and (why := alive()):
            raise RuntimeError(why)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(poll)


class Stack:
    """A fresh `lapak signal` (tiers on, off, or its default) and N booth processes."""

    def __init__(self, tag: str, tmp: Path, tiers: bool | None) -> None:
        self.tag = tag
        self.keys = KeyRing.generate()
        self.secret = tmp / f"secret-{tag}"
        self.keys.write(self.secret)
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        self.logs = (tmp / f"bench-{tag}.log").open("ab")
        self.booths: list[subprocess.Popen[bytes]] = []
        flag = [] if tiers is None else ["--video-tiers", "on" if tiers else "off"]
        say(f"[{tag}] starting lapak signal on port {self.port} {' '.join(flag)}")
        self.server = subprocess.Popen(
            [*LAPAK, "signal", "--port", str(self.port), "--data-dir", str(tmp / f"data-{tag}"),
             "--secret-file", str(self.secret), *flag],
            stdout=self.logs, stderr=self.logs, start_new_session=True,
        )  # fmt: skip

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return True
            except OSError:
                return False

        wait_until("lapak signal healthy", healthy, 30, self._server_died, poll=0.2)
        self.token = self.keys.issue("officer", "bench", "main", desk="desk-1")

    def _server_died(self) -> str | None:
        return "lapak signal exited" if self.server.poll() is not None else None

    def start_booths(self, n: int) -> None:
        """One process per booth, in order: booth i takes slot i + 1."""
        for i in range(n):
            self.booths.append(
                subprocess.Popen(
                    [*LAPAK, "booth", "--server", self.url, "--secret-file", str(self.secret),
                     "--count", "1", "--first", str(i), "--size", f"{WIDTH}x{HEIGHT}",
                     "--fps", str(FPS)],
                    stdout=self.logs, stderr=self.logs, start_new_session=True,
                )
            )  # fmt: skip
            time.sleep(0.3)

    def cpu(self) -> tuple[float, float]:
        """(booths summed, server) CPU seconds so far."""
        return sum(cpu_seconds(p.pid) for p in self.booths), cpu_seconds(self.server.pid)

    def close(self) -> None:
        for proc in reversed(self.booths):
            stop_group(proc)
        stop_group(self.server)
        self.logs.close()


def measure(pid: int, stack: Stack, duration: float) -> dict[str, float]:
    """CPU of ``pid``, the booths and the server over ``duration`` s; peak RSS of ``pid``."""
    cpu0, (booths0, server0), wall0 = cpu_seconds(pid), stack.cpu(), time.monotonic()
    t0_ms = int(time.time() * 1000)
    rss_peak = rss_mb(pid)
    while time.monotonic() - wall0 < duration:
        time.sleep(min(1.0, max(0.0, duration - (time.monotonic() - wall0))))
        rss_peak = max(rss_peak, rss_mb(pid))
    cpu1, (booths1, server1), wall1 = cpu_seconds(pid), stack.cpu(), time.monotonic()
    elapsed = wall1 - wall0
    return {
        "t0_ms": t0_ms,
        "t1_ms": int(time.time() * 1000),
        "elapsed": elapsed,
        "cpu": (cpu1 - cpu0) / elapsed,
        "booths_cpu": (booths1 - booths0) / elapsed,
        "server_cpu": (server1 - server0) / elapsed,
        "rss": rss_peak,
    }


def fps_keys(per_slot: dict[int, float], prefix: str = "") -> dict[str, float | None]:
    off = [v for s, v in per_slot.items() if s != 1]
    return {
        f"{prefix}fps_on_air": round(per_slot.get(1, 0.0), 2),
        f"{prefix}fps_off_air_median": None if not off else round(statistics.median(off), 2),
    }


def run_console(
    booths: int,
    warmup: float,
    duration: float,
    tiers: bool | None,
    tmp: Path,
    switches: int = 0,
    switch_gap: float = 3.0,
) -> dict[str, Any]:
    tag = f"console-{booths}-{TIER_NAME[tiers]}"
    stack = Stack(tag, tmp, tiers)
    console: subprocess.Popen[bytes] | None = None
    term = Terminal()
    log = PaintLogReader(tmp / f"paint-{tag}.log")
    switch_ms: list[float] = []
    try:
        env = {
            **os.environ,
            "LAPAK_PAINT_LOG": str(log.path),
            "COLORTERM": "truecolor",
            "TERM": "xterm-256color",
            "TMPDIR": str(tmp),
        }
        say(f"[{tag}] starting the console in a {COLS}x{ROWS} pty")
        console = subprocess.Popen(
            [*LAPAK, "console", "--server", stack.url, "--token", stack.token, "--lang", "en"],
            stdin=term.slave, stdout=term.slave, stderr=term.slave, env=env,
            start_new_session=True, close_fds=True,
        )  # fmt: skip
        proc = console

        def console_died() -> str | None:
            if proc.poll() is None:
                return None
            return f"the console exited: {term.tail[-800:]!r}"

        wait_until("the console's paint log", log.path.exists, 30, console_died)
        stack.start_booths(booths)
        say(f"[{tag}] waiting for every tile to paint video")

        def all_live() -> bool:
            log.poll()
            return len({f.slot for f in log.frames}) >= booths

        wait_until("every tile painting video", all_live, 90, console_died, poll=0.5)
        say(f"[{tag}] all tiles live; slot 1 on air (key 1)")
        on_air_ms = switch(term, log, 1, console_died)
        say(
            f"[{tag}] slot 1 full width {on_air_ms:.0f} ms after the key; warming up {warmup:.0f} s"
        )
        time.sleep(warmup)
        say(f"[{tag}] measuring {duration:.0f} s")
        bytes0 = term.bytes
        window = measure(console.pid, stack, duration)
        tty_bytes = term.bytes - bytes0
        log.poll()
        order = [*range(2, booths + 1), 1]  # never the slot already on air
        for n in range(switches if booths > 1 else 0):
            slot = order[n % len(order)]
            started = time.monotonic()
            switch_ms.append(switch(term, log, slot, console_died))
            say(f"[{tag}] slot {slot} on air: full width after {switch_ms[-1]:.0f} ms")
            time.sleep(max(0.0, switch_gap - (time.monotonic() - started)))
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
        stack.close()
        term.close()
    log.poll()
    t0_ms, t1_ms, elapsed = window["t0_ms"], window["t1_ms"], window["elapsed"]
    frames = [f for f in log.frames if t0_ms <= f.flushed <= t1_ms]
    per_slot = {s: 0.0 for s in range(1, booths + 1)}
    widths: dict[int, list[float]] = {s: [] for s in range(1, booths + 1)}
    latencies: list[float] = []
    by_air: dict[bool, list[float]] = {True: [], False: []}  # latency, on air (slot 1) or not
    to_paint: list[float] = []
    paint_to_flush: list[float] = []
    arrival_to_paint: list[float] = []
    own: list[float] = []
    for f in frames:
        per_slot[f.slot] = per_slot.get(f.slot, 0) + 1 / elapsed
        widths.setdefault(f.slot, []).append(f.width)
        paint_to_flush.append(float(f.flushed - f.painted))
        if f.waited >= 0:
            arrival_to_paint.append(float(f.waited))
            own.append(float(f.waited + f.flushed - f.painted))
        if f.stamp is not None:
            age = stamp_age_ms(f.stamp, f.flushed)
            if 0 <= age < 10_000:
                latencies.append(float(age))
                by_air[f.slot == 1].append(float(age))
                to_paint.append(float(stamp_age_ms(f.stamp, f.painted)))
    fps = list(per_slot.values())
    kbps = [k for at, k in log.kbps if t0_ms <= at <= t1_ms]
    off_widths = [w for s, ws in widths.items() if s != 1 for w in ws]
    result: dict[str, Any] = {
        "booths": booths,
        "video_tiers": TIER_NAME[tiers],
        "seconds": round(elapsed, 1),
        "fps_per_tile_min": round(min(fps), 2),
        "fps_per_tile_median": round(statistics.median(fps), 2),
        **fps_keys(per_slot),
        "width_on_air": median(widths.get(1, [])),
        "width_off_air_median": median(off_widths),
        "cpu_cores": round(window["cpu"], 3),
        "console_cpu_cores": round(window["cpu"], 3),
        "booths_cpu_cores": round(window["booths_cpu"], 3),
        "server_cpu_cores": round(window["server_cpu"], 3),
        "rss_mb": round(window["rss"], 1),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "latency_on_air_p50_ms": percentile(by_air[True], 50),
        "latency_on_air_p95_ms": percentile(by_air[True], 95),
        "latency_off_air_p50_ms": percentile(by_air[False], 50),
        "latency_off_air_p95_ms": percentile(by_air[False], 95),
        "console_own_latency_p50_ms": percentile(own, 50),
        "console_own_latency_p95_ms": percentile(own, 95),
        "capture_to_paint_p50_ms": percentile(to_paint, 50),
        "capture_to_paint_p95_ms": percentile(to_paint, 95),
        "arrival_to_paint_p50_ms": percentile(arrival_to_paint, 50),
        "arrival_to_paint_p95_ms": percentile(arrival_to_paint, 95),
        "paint_to_flush_p50_ms": percentile(paint_to_flush, 50),
        "paint_to_flush_p95_ms": percentile(paint_to_flush, 95),
        "stamps_read": len(latencies),
        "frames_painted": len(frames),
        "tty_bytes_per_s": round(tty_bytes / elapsed),
        "inbound_kbps": None if not kbps else round(statistics.median(kbps), 1),
        "tier_switch_ms": None if not switch_ms else round(statistics.median(switch_ms)),
        "tier_switch_max_ms": None if not switch_ms else round(max(switch_ms)),
        "tier_switches": [round(ms) for ms in switch_ms],
    }
    say(f"[{tag}] {json.dumps(result)}")
    return result


def switch(term: Terminal, log: PaintLogReader, slot: int, died: Any) -> float:
    """Press ``slot``'s on-air key; ms from the key's write to the first frame of that slot at
    full width flushed to the terminal."""
    key_ms = time.time() * 1000
    term.write(str(slot).encode())

    def full() -> bool:
        log.poll()
        return any(f.slot == slot and f.width >= WIDTH and f.flushed >= key_ms
                   for f in log.frames[-400:])  # fmt: skip

    wait_until(f"slot {slot} at full width after its key", full, 30, died, poll=0.02)
    first = min(
        f.flushed for f in log.frames[-400:]
        if f.slot == slot and f.width >= WIDTH and f.flushed >= key_ms
    )  # fmt: skip
    return first - key_ms


def run_floor(
    booths: int, warmup: float, duration: float, tiers: bool | None, tmp: Path
) -> dict[str, Any]:
    """The same booths into bench/_floor.py (no screen): the receiving and decoding floor."""
    tag = f"floor-{booths}-{TIER_NAME[tiers]}"
    stack = Stack(tag, tmp, tiers)
    lines: list[dict[str, Any]] = []
    floor: subprocess.Popen[str] | None = None
    try:
        say(f"[{tag}] starting the headless receiver (bench/_floor.py)")
        floor = subprocess.Popen(
            [*FLOOR, "--server", stack.url, "--token", stack.token, "--booths", str(booths)],
            stdout=subprocess.PIPE, stderr=stack.logs, text=True, start_new_session=True,
        )  # fmt: skip
        out = floor.stdout
        assert out is not None

        def read() -> None:
            for line in out:
                with contextlib.suppress(ValueError):
                    lines.append(json.loads(line))

        threading.Thread(target=read, daemon=True).start()
        proc = floor
        stack.start_booths(booths)
        say(f"[{tag}] waiting for every link to deliver frames, then slot 1 on air")
        wait_until(
            "every floor link delivering frames, slot 1 on air",
            lambda: any(line.get("ready") for line in lines), 90,
            lambda: "bench/_floor.py exited" if proc.poll() is not None else None, poll=0.2,
        )  # fmt: skip
        say(f"[{tag}] warming up {warmup:.0f} s")
        time.sleep(warmup)
        say(f"[{tag}] measuring {duration:.0f} s")
        window = measure(floor.pid, stack, duration)
    finally:
        if floor is not None:
            stop_group(floor)
        stack.close()
    inside = [line for line in lines if window["t0_ms"] <= line["t"] <= window["t1_ms"]]
    per_slot: dict[int, float] = {}
    if len(inside) >= 2:
        first, last = inside[0], inside[-1]
        seconds = (last["t"] - first["t"]) / 1000
        for slot, frames in last["frames"].items():
            per_slot[int(slot)] = (frames - first["frames"].get(slot, frames)) / seconds
    kbps = [line["kbps"] for line in inside if line["kbps"] > 0]
    result: dict[str, Any] = {
        "floor_cpu_cores": round(window["cpu"], 3),
        "floor_rss_mb": round(window["rss"], 1),
        "floor_booths_cpu_cores": round(window["booths_cpu"], 3),
        "floor_inbound_kbps": None if not kbps else round(statistics.median(kbps), 1),
        **fps_keys(per_slot, "floor_"),
    }
    say(f"[{tag}] {json.dumps(result)}")
    return result


def run_tiers(args: argparse.Namespace, tiers: bool | None, tmp: Path) -> dict[str, Any]:
    result = run_console(
        args.booths, args.warmup, args.duration, tiers, tmp, args.switches, args.switch_gap
    )
    if args.floor:
        result.update(run_floor(args.booths, args.warmup, args.duration, tiers, tmp))
        floor = result["floor_cpu_cores"]
        result["console_cpu_ratio"] = (
            round(result["console_cpu_cores"] / floor, 2) if floor else None
        )
    return result


def ratios(on: dict[str, Any], off: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in RATIO_KEYS:
        a, b = on.get(key), off.get(key)
        if key in on or key in off:
            out[key] = round(a / b, 3) if isinstance(a, int | float) and b else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--booths", type=int, default=6)
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds (60)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring")
    parser.add_argument(
        "--tiers", choices=("both", "on", "off"), default="both",
        help="the server's --video-tiers: both (off, then on: default), on, or off",
    )  # fmt: skip
    parser.add_argument("--switches", type=int, default=5, help="tier switches timed (5)")
    parser.add_argument("--switch-gap", type=float, default=3.0, help="seconds between them")
    parser.add_argument(
        "--no-floor", dest="floor", action="store_false", help="skip the headless floor"
    )
    parser.add_argument("--curve", action="store_true", help="also run 1, 2, 4 booths")
    parser.add_argument("--curve-duration", type=float, default=30.0)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke: 2 booths, tiers on, 2 s warm-up, 4 s, 2 switches",
    )
    args = parser.parse_args()
    if args.quick:
        args.booths, args.duration, args.warmup, args.curve = 2, 4.0, 2.0, False
        args.tiers, args.switches, args.switch_gap = "on", 2, 1.0
    load = os.getloadavg()
    supported = tiers_supported()
    say(
        f"bench/console.py: {os.cpu_count()} cores, load {load[0]:.2f}, console at {COLS}x{ROWS}, "
        f"video tiers {'supported' if supported else 'not in this tree (server default)'}"
    )
    phases: list[bool | None] = [None]
    if supported:
        phases = {"both": [False, True], "on": [True], "off": [False]}[args.tiers]
    with tempfile.TemporaryDirectory(prefix="lapak-bench-console-") as name:
        tmp = Path(name)
        curve = []
        if args.curve:
            for n in (1, 2, 4):
                curve.append(
                    run_console(n, min(args.warmup, 5.0), args.curve_duration, phases[-1], tmp)
                )
        runs = {tiers: run_tiers(args, tiers, tmp) for tiers in phases}
    main_run = runs[phases[-1]]
    if args.curve:
        curve.append(main_run)
    met = {}
    for key, (op, bound) in TARGETS.items():
        value = main_run.get(key)
        ok = isinstance(value, int | float) and (value >= bound if op == ">=" else value <= bound)
        met[key] = ok
        say(f"target {key} {op} {bound}: {value} {'met' if ok else 'NOT met'}")
    out: dict[str, Any] = {
        **main_run, "targets_met": met, "cores": os.cpu_count(), "load_at_start": round(load[0], 2)
    }  # fmt: skip
    if False in runs and True in runs:
        out["tiers_off"] = runs[False]
        out["tiers_on_over_off"] = ratios(runs[True], runs[False])
    if curve:
        out["curve"] = [
            {k: r[k] for k in ("booths", "fps_per_tile_min", "fps_on_air", "cpu_cores", "rss_mb",
                               "latency_p95_ms", "tty_bytes_per_s")}
            for r in curve
        ]  # fmt: skip
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
