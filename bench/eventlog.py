"""Event log throughput and replay time.

1. Durable appends: C concurrent appenders (like C client connections each awaiting their
   ack) append step decisions for D seconds through ``EventLog`` (WAL, synchronous=FULL,
   group commit); reports events/s made durable and the append-to-durable latency.
2. Replay: a log of N events (default 100,000) is loaded from scratch, and again from the
   latest snapshot (snapshots every 10,000 events, as the server does).

Run: .venv/bin/python bench/eventlog.py [--events 100000] [--seconds 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lapak.signaling.domain import Domain, Rules
from lapak.signaling.eventlog import EventLog, load
from lapak.signaling.events import Event
from lapak.signaling.permissions import Actor
from lapak.signaling.workflows import default_workflows


def say(text: str) -> None:
    print(f"# {text}", flush=True)


async def appends(
    path: Path, clients: int, seconds: float, stream: list[Event]
) -> dict[str, float]:
    """Clients take the next event of a valid stream and await its durability, in a loop."""
    log = EventLog(path, load(path))
    log.start()
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    feed = iter(stream)

    async def client() -> None:
        for event in feed:
            if time.perf_counter() >= stop:
                return
            t0 = time.perf_counter()
            await log.append([event])
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    commits = log.commits
    await log.close()
    latencies.sort()
    return {
        "events_per_s": len(latencies) / elapsed,
        "commits_per_s": commits / elapsed,
        "events_per_commit": len(latencies) / max(commits, 1),
        "append_p50_ms": statistics.median(latencies) * 1000,
        "append_p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def build_log(n: int) -> list[Event]:
    """A realistic mix: visits start, route, get focus and six decisions, end; one visit
    a minute, as a busy branch sees (so old visits age out of memory as in production)."""
    d = Domain(rules=Rules(default_workflows()))
    events: list[Event] = []
    for desk in range(10):
        events += d.open_desk(Actor("officer", f"o{desk}", "main", desk=f"d{desk}"), 0.0)
    i = 0
    while len(events) < n:
        t = i * 60.0
        booth = Actor("booth", f"b{i % 60}", "main", booth=f"b{i % 60}")
        visit, evs = d.start_visit(booth, "Siti", f"{i:011d}", "JHT", t)
        events += evs
        desk = d.state.visits[visit].desk
        if desk is None:
            i += 1
            continue
        o = Actor("officer", "o", "main", desk=desk)
        events += d.set_focus(o, visit, t + 1)
        for step in range(6):
            events += d.decide(o, visit, step, "approve", None, t + 2 + step)
        events += d.end_visit(o, visit, "completed", None, t + 30)
        i += 1
    return events[:n]


async def write_all(path: Path, events: list[Event], snapshot_every: int) -> None:
    log = EventLog(path, load(path), snapshot_every)
    log.start()
    chunk = 1000
    for k in range(0, len(events), chunk):
        await log.append(events[k : k + chunk])
    await log.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.events, args.seconds, args.clients, args.reps = 2000, 1.0, 20, 1
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        say("building an event stream")
        stream = build_log(max(args.events, 400_000 if not args.quick else 20_000))
        runs = []
        for rep in range(args.reps):
            say(f"durable appends: {args.clients} appenders, {args.seconds}s (run {rep + 1})")
            path = Path(tmp) / f"append{rep}.sqlite3"
            runs.append(asyncio.run(appends(path, args.clients, args.seconds, stream)))
            say(json.dumps({k: round(v, 2) for k, v in runs[-1].items()}))
        for key in runs[0]:
            results[key] = round(statistics.median(r[key] for r in runs), 2)
        say(f"building a log of {args.events} events")
        events = build_log(args.events)
        plain = Path(tmp) / "plain.sqlite3"
        snap = Path(tmp) / "snap.sqlite3"
        asyncio.run(write_all(plain, events, snapshot_every=10**9))
        asyncio.run(write_all(snap, events, snapshot_every=10_000))
        full, tail = [], []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            loaded = load(plain)
            full.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            loaded_snap = load(snap)
            tail.append(time.perf_counter() - t0)
            assert loaded.state.visits == loaded_snap.state.visits
        results["replay_events"] = args.events
        results["replay_full_s"] = round(statistics.median(full), 3)
        results["replay_from_snapshot_s"] = round(statistics.median(tail), 3)
        results["replayed_after_snapshot"] = loaded_snap.replayed
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
