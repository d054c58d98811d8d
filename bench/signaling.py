"""Benchmark: the signalling server under load, against a bare websocket echo floor.

The real ``lapak signal`` runs in its own process (fresh data directory, default log level,
its log to a file). Load processes (``bench/_load.py``, python-websockets' asyncio client)
drive officers and booths spread over offices of ten desks: one officer per desk, six booths
per desk (clients left over become extra booths whose visits queue). All clients connect at
once, say hello and get their snapshot (officers) or, after ``start_visit``, their
``booth_state`` (booths): that is the connect storm. Then officers approve pending steps at
``--rate`` decisions per second in total (open loop, paced per load process) for
``--duration`` s. A visit's six steps decided, its officer ends it and its booth starts the
next visit, which the server routes to a free slot. An ack counts only when the server sends
it, which it does after the SQLite group commit.

In the same run the same load processes drive a bare python-websockets echo server (its own
process, same websocket settings) with the same clients and the same request pattern and
rate; the echo of a request is its ack. That is the floor: ``ratio_p99`` is ack p99 over
floor p99. Run from the repository root::

    .venv/bin/python bench/signaling.py [--clients N] [--rate R] [--duration S]
                                        [--workers W] [--curve] [--quick]
                                        [--visits staggered|storm] [--floor fair|echo]
                                        [--client-gc paused|on] [--probe RATE]

The load model (issue 17), both phases alike. ``--visits staggered`` (default): visits are
out of step, as in an office open for a while: each joins at a random moment of one visit
length (a warm-up of that length before the recorded window) and its officer looks at it
for a random time (exponential, half a round on average) before each decision.
``--visits storm``: every visit starts in the connect storm and they stay in step, so ~1,700
visits end and restart within 2 s every visit length (the figures before 2026-12-03 15:00).
``--floor fair`` (default): after each echo the echo server also sends the extra frames the
real server sent per request in this run's real phase (deltas and booth states, the same
number per request and a sample of the same frames), which the clients decode as they did;
``--floor echo``: the echo alone (the clients then decode about a quarter of the frames).
``--client-gc paused`` (default): the load processes do not collect garbage during the load
(frozen after a collection before it; a thousand clients share one heap there, where a real
client is a process of its own), nor does the echo server (its collections are no part of
a floor); no visible effect measured (BENCHMARKS.md); ``on``: as before.
The old model in full: ``--visits storm --floor echo --client-gc on``.
Every ack is also timed when its bytes reached the client's connection (``data_received``),
before the load process decoded the frames ahead of it in the same burst:
``ack_arrival_p99_ms``, ``floor_arrival_p99_ms`` and their ratio ``ratio_arrival_p99``, so that
the load process's own lag is split out; ``ratio_p99`` (the target) is unchanged.
``--probe RATE``: one more desk and its six booths in a load process of their own, deciding
RATE times a second in both phases (its window lined up with the others'):
``probe_p99_ms``, ``floor_probe_p99_ms``, ``ratio_probe_p99``, the acks as one client sees
them when its process has nothing else to do; the other keys leave the probe out. The
probe's process runs at niceness -10 when the bench may raise it (root; ``probe_nice`` says),
so that on a core it shares with the load processes it is woken at once.

``--curve`` runs 250, 500, 1,000 and 2,000 clients (``--duration`` per point, default 20 s
so the whole curve fits in five minutes); the top-level figures are then those of the
largest point. Progress goes to stdout as lines starting with '#'; the last line is one
JSON object. Targets: clients >= 2,000, connect_storm_s <= 10, decisions_per_s >= 1,000,
ratio_p99 <= 2, errors = 0.

Each run also times SQLite commits alone on the same disk (``commit_probe``), the floor for
any durable ack. Diagnostics for whoever optimises the server: ``--keep DIR`` (server logs and
every ack's time and latency), ``--profile FILE`` (py-spy raw stacks of the server during the
load; ``BENCH_PYSPY_GIL=1`` for GIL holders only), ``--server-gc-log``, ``--server-log-level``,
``--server-config``, ``--points N,N,...``. ``foreign_cpu_cores`` says how much CPU other work
on the machine took meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

# This script's name is also the server package's: keep the package first on the path and
# this directory last (where ``_load`` is found), also for the spawned load processes.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))
sys.path.append(str(HERE))

import _load  # noqa: E402  (the load generator lives next to this script)
from _load import (  # noqa: E402
    Workers,
    free_port,
    percentile,
    run_phase,
    say,
    stop,
    wait_http,
    wait_port,
)

from lapak.signaling.tokens import KeyRing  # noqa: E402

ROOT = HERE.parent
LAPAK = ROOT / ".venv" / "bin" / "lapak"
CURVE = (250, 500, 1000, 2000)
SERVER_GLOBAL: list[str] = []  # experiments only: `lapak --log-level X signal ...`
SERVER_EXTRA: list[str] = []  # experiments only: `lapak signal ... --config FILE`
SERVER_ENV: dict[str, str] = {}  # experiments only: the server's environment
SERVER_PIN: list[str] = []  # --pin: `taskset -c CPU` before the server's and the echo's command
GC_HOOK = """import gc, sys, time
_t = [0.0]
def _gc(phase, info):
    if phase == "start":
        _t[0] = time.perf_counter()
    elif info["generation"] == 2 or time.perf_counter() - _t[0] > 0.005:
        ms = (time.perf_counter() - _t[0]) * 1000
        sys.stderr.write(f"ts={time.time():.3f} level=info logger=bench.gc event=gc "
                         f"generation={info['generation']} ms={ms:.1f}\\n")
gc.callbacks.append(_gc)
"""
TARGETS = {
    "clients": (">=", 2000),
    "connect_storm_s": ("<=", 10),
    "decisions_per_s": (">=", 1000),
    "ratio_p99": ("<=", 2),
    "errors": ("==", 0),
}


def commit_probe(path: Path, seconds: float) -> dict[str, Any]:
    """What durability alone costs on this disk: SQLite commits as the server makes them.

    WAL, ``synchronous=FULL``, one small transaction every 2 ms (a group commit of the few
    events that arrive meanwhile at 1,000 requests per second), nothing else running. No ack
    can come sooner than its commit, so this is the floor for a durable ack's latency.
    """
    say(f"commit probe: SQLite WAL synchronous=FULL, a 2-row commit every 2 ms for {seconds:g} s")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    body = b"x" * 300
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO events (body) VALUES (?)", [(body,), (body,)])
            conn.execute("COMMIT")
            latencies.append(time.perf_counter() - started)
            time.sleep(0.002)
    finally:
        conn.close()
    probe = {
        "commits": len(latencies),
        "commit_p50_ms": percentile(latencies, 50),
        "commit_p99_ms": percentile(latencies, 99),
        "commit_max_ms": percentile(latencies, 100),
    }
    say(f"commit probe: p50 {probe['commit_p50_ms']} ms, p99 {probe['commit_p99_ms']} ms")
    return probe


def start_echo(
    extras: Path | None = None, gc_off: bool = False
) -> tuple[int, subprocess.Popen[bytes]]:
    """The floor's server in its own process; ``extras``: the fair floor's frames."""
    port = free_port()
    cmd = [*SERVER_PIN, sys.executable, str(Path(_load.__file__)), "127.0.0.1", str(port)]
    cmd += [str(extras) if extras else "-", *(["nogc"] if gc_off else [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
    except BaseException:
        stop(proc)
        raise
    return port, proc


def _probe_keys(real: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """With ``--probe``: one desk in a load process of its own, both phases (``run_phase``)."""
    if "probe_p99_ms" not in real:
        return {}
    theirs = {f"floor_{k}": v for k, v in floor.items() if k.startswith("probe_")}
    return {**{k: v for k, v in real.items() if k.startswith("probe_")}, **theirs,
            "ratio_probe_p99": _ratio(real, floor, "probe_p99_ms")}  # fmt: skip


def _ratio(real: dict[str, Any], floor: dict[str, Any], key: str) -> float | None:
    """``key`` of the real phase over the floor's, or None when either has no figure."""
    if real.get(key) is None or not floor.get(key):
        return None
    return round(real[key] / floor[key], 2)


def run_point(
    workers: Workers,
    tmp: Path,
    secret: Path,
    clients: int,
    rate: float,
    duration: float,
    profile: Path | None = None,
    keep: Path | None = None,
    stagger: bool = True,
    fair: bool = True,
    gc_paused: bool = True,
    probe_rate: float = 0.0,
) -> dict[str, Any]:
    offices = _load.make_offices(clients)
    port = free_port()
    data = tmp / f"data-{clients}"
    server_log = tmp / f"server-{clients}.log"
    cmd = [
        *SERVER_PIN,
        str(LAPAK),
        *SERVER_GLOBAL,
        "signal",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    cmd += ["--data-dir", str(data), "--secret-file", str(secret), *SERVER_EXTRA]
    say(f"starting {' '.join(cmd)}")
    with server_log.open("wb") as log_file:
        server = subprocess.Popen(cmd, stdout=log_file, stderr=log_file, env=SERVER_ENV or None)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", server)
        before: list[dict[str, float] | None] = []
        real = run_phase(
            workers, "real", f"ws://127.0.0.1:{port}/ws", offices, secret, rate, duration,
            [server.pid], profile, keep, stagger=stagger, gc_paused=gc_paused,
            at_load=lambda: before.append(ack_buckets(port)), probe_rate=probe_rate,
        )  # fmt: skip
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            health = json.load(response)
        served = ack_shares(ack_buckets(port), before[0] if before else None)
    finally:
        stop(server)
    lines = server_log.read_text(errors="replace").splitlines()
    bad = [ln for ln in lines if " level=warning " in ln or " level=error " in ln]
    bad += [ln for ln in lines if " level=critical " in ln]
    say(f"server log: {len(lines)} lines, {len(bad)} warnings or worse")
    for line in bad[:5]:
        say(f"  {line}")
    real.pop("acked")
    extras: _load.Extras = real.pop("extras")
    extras_file = None
    if fair:
        extras_file = tmp / f"extras-{clients}.json"
        body = {"per_request": extras.per_request, "frames": extras.frames}
        extras_file.write_text(json.dumps(body))
        say(
            f"fair floor: {extras.per_request:.3f} extra frames per request, "
            f"a sample of {len(extras.frames)} from the real phase"
        )
    echo_port, echo_proc = start_echo(extras_file, gc_off=gc_paused)
    try:
        floor = run_phase(
            workers, "echo", f"ws://127.0.0.1:{echo_port}/", offices, secret, rate, duration,
            [echo_proc.pid], None, keep, stagger=stagger, gc_paused=gc_paused,
            probe_rate=probe_rate,
        )  # fmt: skip
    finally:
        stop(echo_proc)
    floor.pop("acked")
    floor.pop("extras")
    ratio = _ratio(real, floor, "ack_p99_ms")
    point = {
        **{k: v for k, v in real.items()},
        "floor_p50_ms": floor["ack_p50_ms"],
        "floor_p99_ms": floor["ack_p99_ms"],
        # both phases' acks timed when their bytes reached the client, before the load
        # process decoded what came ahead of them (a real client is a process of its own)
        "floor_arrival_p50_ms": floor["ack_arrival_p50_ms"],
        "floor_arrival_p99_ms": floor["ack_arrival_p99_ms"],
        "ratio_arrival_p99": _ratio(real, floor, "ack_arrival_p99_ms"),
        **_probe_keys(real, floor),
        "floor_decisions_per_s": floor["decisions_per_s"],
        "floor_connect_storm_s": floor["connect_storm_s"],
        "floor_listen_overflows": floor["listen_overflows"],
        "floor_errors": floor["errors"],
        "floor_server_cpu_cores": floor["server_cpu_cores"],
        "floor_foreign_cpu_cores": floor["foreign_cpu_cores"],
        # is the floor fair? the same clients, but each gets one echo per request where the
        # real server also sends deltas and booth states, which the load processes decode
        "floor_messages_in": floor["messages_in"],
        "floor_load_loop_lag_p99_ms": floor["load_loop_lag_p99_ms"],
        "floor_load_cpu_cores": floor["load_cpu_cores"],
        "floor_frames_in_per_request": floor["frames_in_per_request"],
        "floor_window_bytes_in": floor["window_bytes_in"],
        "floor_extra_per_request": round(extras.per_request, 3) if fair else 0.0,
        "floor": "fair" if fair else "echo",
        "ratio_p99": ratio,
        "server_log_lines": len(lines),
        "server_log_warnings": len(bad),
        "server_events": health.get("events"),
        # the server's own view (frame read -> answer written, commit included), of every
        # answer from the end of the storm on (warm-up, window and the drain after it)
        "server_acks_over_ms": served,
    }
    point["errors"] += floor["errors"] + real.get("probe_errors", 0) + floor.get("probe_errors", 0)
    point["meets_targets"] = meets(point)
    say(
        f"{clients} clients: storm {point['connect_storm_s']} s, "
        f"{point['decisions_per_s']}/s, ack p99 {point['ack_p99_ms']} ms vs floor "
        f"{point['floor_p99_ms']} ms (ratio {ratio}), errors {point['errors']}, "
        f"meets targets: {point['meets_targets']}"
    )
    return point


def ack_buckets(port: int) -> dict[str, float] | None:
    """The server's ``lapak_ack_latency_seconds`` histogram now: cumulative count per bound."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    buckets: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("lapak_ack_latency_seconds_bucket{") and 'le="' in line:
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            with contextlib.suppress(ValueError):
                buckets[bound] = float(line.rsplit(" ", 1)[1])
    return buckets or None


def ack_shares(
    after: dict[str, float] | None, before: dict[str, float] | None
) -> dict[str, float] | None:
    """The share (per cent) of the answers between two readings of the histogram that
    took longer than each bound. Next to the clients' p99 it says how much of the tail is
    the server's path (frame read to answer written, commit included) and how much lies
    outside it."""
    if after is None:
        return None
    counts = {b: n - (before or {}).get(b, 0.0) for b, n in after.items()}
    total = counts.get("+Inf")
    if not total:
        return None
    return {
        f"{float(b) * 1000:g}": round(100 * (total - n) / total, 3)
        for b, n in counts.items()
        if b != "+Inf"
    }


def meets(point: dict[str, Any]) -> bool:
    for key, (op, bound) in TARGETS.items():
        value = point.get(key)
        if value is None:
            return False
        ok = value >= bound if op == ">=" else value <= bound if op == "<=" else value == bound
        if not ok:
            return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2000, help="clients (default 2000)")
    parser.add_argument("--rate", type=float, default=1000, help="decisions/s in total")
    parser.add_argument("--duration", type=float, help="seconds of load (60; 20 per curve point)")
    parser.add_argument("--workers", type=int, default=2, help="load processes (default 2)")
    parser.add_argument("--curve", action="store_true", help="run 250, 500, 1000, 2000 clients")
    parser.add_argument("--points", help="client counts to run, comma-separated (a custom curve)")
    parser.add_argument("--quick", action="store_true", help="tiny configuration (smoke test)")
    parser.add_argument(
        "--visits",
        choices=("staggered", "storm"),
        default="staggered",
        help="visits out of step after a warm-up (default), or all started in the storm",
    )
    parser.add_argument(
        "--floor",
        choices=("fair", "echo"),
        default="fair",
        help="the echo plus the real phase's extra frames per request (default), or echo only",
    )
    parser.add_argument(
        "--server-log-level", help="experiment: the server's --log-level (default: its own)"
    )
    parser.add_argument("--server-config", type=Path, help="experiment: the server's --config")
    parser.add_argument(
        "--server-gc-log",
        action="store_true",
        help="experiment: log the server's garbage collections (gen 2, or over 5 ms)",
    )
    parser.add_argument(
        "--client-gc",
        choices=("paused", "on"),
        default="paused",
        help="the load processes' garbage collection during the load (default paused)",
    )
    parser.add_argument(
        "--probe",
        type=float,
        default=0.0,
        metavar="RATE",
        help="also run one desk (and its six booths) in a load process of its own, deciding "
        "RATE times a second in both phases: probe_p99_ms, floor_probe_p99_ms, "
        "ratio_probe_p99 (the acks one client sees, without a thousand others' work in its "
        "process); default 0: off",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="experiment: the server (and the echo floor) on the last core, the load processes "
        "on the others (both phases alike), so the load does not take the server's core",
    )
    parser.add_argument("--keep", type=Path, help="copy the server logs into this directory")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the server with py-spy during the load (raw stacks to this file; "
        "needs `.venv/bin/pip install py-spy`, not a project dependency)",
    )
    args = parser.parse_args()
    if args.quick:
        points, rate, duration, n_workers = [30], 80.0, 3.0, 1
    elif args.curve or args.points:
        points = [int(n) for n in args.points.split(",")] if args.points else list(CURVE)
        rate, duration, n_workers = args.rate, args.duration or 20.0, args.workers
    else:
        points, rate, duration = [args.clients], args.rate, args.duration or 60.0
        n_workers = args.workers
    if args.server_log_level:
        SERVER_GLOBAL.extend(["--log-level", args.server_log_level])
    if args.server_config:
        SERVER_EXTRA.extend(["--config", str(args.server_config.resolve())])
    nofile = _load.raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="lapak-bench-signal-"))
    if args.server_gc_log:  # a sitecustomize on the server's path installs a gc callback
        (tmp / "gchook").mkdir()
        (tmp / "gchook" / "sitecustomize.py").write_text(GC_HOOK)
        SERVER_ENV.update(os.environ, PYTHONPATH=str(tmp / "gchook"))
    say(
        f"machine: {os.cpu_count()} cores; open-file limit {nofile}; points {points}; "
        f"rate {rate:g}/s; {duration:g} s per phase; {n_workers} load processes"
    )
    secret = tmp / "secret"
    KeyRing.generate().write(secret)
    load_cpus = None
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            parser.error("--pin needs at least two cores")
        SERVER_PIN.extend(["taskset", "-c", str(cpus[-1])])
        load_cpus = set(cpus[:-1])
    workers = Workers(n_workers, load_cpus, probe=args.probe > 0)
    started = time.perf_counter()
    stagger, fair = args.visits == "staggered", args.floor == "fair"
    gc_paused = args.client_gc == "paused"
    try:
        durable = commit_probe(tmp / "probe.sqlite3", 3.0 if args.quick else 15.0)
        model = {"stagger": stagger, "fair": fair, "gc_paused": gc_paused, "probe_rate": args.probe}
        curve = [
            run_point(workers, tmp, secret, n, rate, duration, args.profile, args.keep, **model)
            for n in points
        ]
    finally:
        workers.close()
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for server_log in tmp.glob("server-*.log"):
                shutil.copy(server_log, args.keep / server_log.name)
        shutil.rmtree(tmp, ignore_errors=True)
    top = curve[-1]
    result: dict[str, Any] = {
        key: top[key]
        for key in (
            "clients",
            "connect_storm_s",
            "decisions_per_s",
            "ack_p50_ms",
            "ack_p99_ms",
            "floor_p50_ms",
            "floor_p99_ms",
            "ratio_p99",
            "ack_arrival_p99_ms",
            "floor_arrival_p99_ms",
            "ratio_arrival_p99",
            "errors",
            "server_rss_mb",
        )
    }
    result["meets_targets"] = top["meets_targets"]
    for key in ("probe_p99_ms", "floor_probe_p99_ms", "ratio_probe_p99", "probe_acks"):
        if key in top:
            result[key] = top[key]
    if args.probe > 0:
        result["probe_nice"] = workers.probe_nice
    result["commit_probe"] = durable
    result["server_command_extra"] = (
        SERVER_GLOBAL + SERVER_EXTRA + (["(gc log)"] if SERVER_ENV else [])
    )
    result["rate"] = rate
    result["visits"] = args.visits
    result["floor"] = args.floor
    result["client_gc"] = args.client_gc
    result["pinned"] = args.pin
    result["warmup_s"] = top["warmup_s"]
    result["duration_s"] = duration
    result["cores"] = os.cpu_count()
    result["detail"] = top
    if len(curve) > 1:
        result["curve"] = curve
        broken = [p["clients"] for p in curve if not p["meets_targets"]]
        result["breaks_at"] = broken[0] if broken else None
    result["bench_s"] = round(time.perf_counter() - started, 1)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
