"""bench/focus.py — how fast audio focus moves between booths.

The real ``lapak signal`` server in its own process, six simulated booths in another (test card
and their own tones, real VP8/Opus), and the officer media engine (``media.headless``) here,
sending the officer's 1200 Hz tone. Then N focus changes at random intervals. For each: the
time from the focus key (the officer's ``focus`` request leaving) to the first audio frame at the
new booth carrying the officer's tone, detected in the audio the booth would play (it plays the
officer only while the server says it is on air), and the time until the last such frame at the
old booth. All processes read the same CLOCK_MONOTONIC, so booth-side times compare directly.

``old_booth_received_p95_ms`` is the same for what still arrives at the old booth over the
network (the officer's gate alone, before the booth's own on-air gate). It also splits the
switch into where the time goes: key → server ack (durable), key → the
officer's gate opens (the server's delta arrives), key → the booth is told it is on air, and
gate open → first tone frame at the booth (encode, network, aiortc's jitter buffer, decode).

Run from the repo root: ``.venv/bin/python bench/focus.py`` (``--changes 20`` for a quick look).
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def say(text: str) -> None:
    print(text, flush=True)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[k], 1)


# -- the booths' process ---------------------------------------------------------------------


async def booths_worker(url: str, secret: str, count: int, size: str, fps: int) -> None:
    """Run the booths; print one JSON line per played-tone transition and per on-air change."""
    from lapak.media.audio_tracks import AudioProbe
    from lapak.media.booth import BoothAgent, BoothMediaConfig
    from lapak.media.simulator import make_booths
    from lapak.media.tones import OFFICER_FREQUENCY
    from lapak.signaling.tokens import KeyRing

    w, h = (int(x) for x in size.split("x"))
    agents = make_booths(
        url, KeyRing.from_file(Path(secret)), count, media=BoothMediaConfig(w, h, fps), seed=7
    )

    def emit(**fields: Any) -> None:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()

    def watch(agent: BoothAgent) -> None:
        playing = {"on": False, "last": 0.0}
        received = {"on": False, "last": 0.0}
        was_on_air = {"v": False}

        def on_frame(probe: AudioProbe, _mono: Any) -> None:
            # What the booth plays: the officer's audio while on air, nothing otherwise.
            present = agent.on_air and probe.detected.get(OFFICER_FREQUENCY, False)
            now = probe.last_frame_at or time.monotonic()
            if present and not playing["on"]:
                emit(booth=agent.visit, ev="tone_on", t=now)
            if not present and playing["on"]:
                emit(booth=agent.visit, ev="tone_off", t=playing["last"])
            if present:
                playing["last"] = now
            playing["on"] = present
            # What arrives over the network, played or not (the officer's gating alone).
            rx = probe.detected.get(OFFICER_FREQUENCY, False)
            if not rx and received["on"]:
                emit(booth=agent.visit, ev="rx_off", t=received["last"])
            if rx:
                received["last"] = now
            received["on"] = rx

        def on_change(a: BoothAgent) -> None:
            if a.on_air != was_on_air["v"]:
                was_on_air["v"] = a.on_air
                emit(booth=a.visit, ev="on_air" if a.on_air else "off_air", t=time.monotonic())

        agent.officer_audio.on_frame = on_frame
        agent.on_change = on_change

    for agent in agents:
        watch(agent)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        for agent in agents:
            await agent.start()
            emit(booth=agent.visit, ev="started", t=time.monotonic())
        await stop.wait()
    finally:
        await asyncio.gather(*(a.close() for a in agents), return_exceptions=True)


# -- the officer side and the measurement ----------------------------------------------------


def audio_prefetch() -> int:
    from lapak.media.peer import AUDIO_PREFETCH

    return AUDIO_PREFETCH


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_healthy(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            line = await reader.readline()
            writer.close()
            if b"200" in line:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError("the server did not become healthy")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from lapak.media.headless import HeadlessDesk
    from lapak.media.officer import OfficerMediaOptions
    from lapak.signaling.tokens import KeyRing

    tmp = Path(tempfile.mkdtemp(prefix="lapak-focus-"))
    secret = tmp / "secret"
    keys = KeyRing.generate()
    keys.write(secret)
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    logs = (tmp / "processes.log").open("ab")
    say(f"starting lapak signal on port {port} (data in {tmp})")
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lapak.cli", "--log-level", "WARNING", "signal", "--port", str(port),
        "--data-dir", str(tmp / "data"), "--secret-file", str(secret),
        cwd=ROOT, stdout=logs, stderr=logs, start_new_session=True,
    )  # fmt: skip
    booths: asyncio.subprocess.Process | None = None
    desk: HeadlessDesk | None = None
    events: list[dict[str, Any]] = []
    try:
        await wait_healthy(port)
        desk = HeadlessDesk(
            url,
            keys.issue("officer", "bench", "main", desk="d1"),
            OfficerMediaOptions(audio_in="tone", officer_name="Bench", desk="d1"),
        )
        gates: list[tuple[str | None, float]] = []

        def on_focus(visit: str | None) -> None:
            gates.append((visit, time.monotonic()))  # the officer's gates move here

        desk.on_focus = on_focus
        await desk.start()
        say(f"starting {args.booths} booths at {args.size} {args.fps} fps in their own process")
        booths = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "bench" / "focus.py"), "--booths-worker", url, str(secret),
            "--booths", str(args.booths), "--size", args.size, "--fps", str(args.fps),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=logs, start_new_session=True,
        )  # fmt: skip

        async def read_events() -> None:
            assert booths is not None and booths.stdout is not None
            async for line in booths.stdout:
                with contextlib.suppress(ValueError):
                    events.append(json.loads(line))

        reader = asyncio.create_task(read_events())
        deadline = time.monotonic() + 60
        while not (
            len(desk.engine.links) == args.booths
            and all(
                link.state == "connected" and link.frames > 10
                for link in desk.engine.links.values()
            )
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the booths did not all connect within 60 s")
            await asyncio.sleep(0.2)
        visits = sorted(desk.engine.links)
        say(f"{len(visits)} links connected; warming up for {args.warmup:.0f} s")
        await asyncio.sleep(args.warmup)

        rng = random.Random(args.seed)
        changes: list[dict[str, Any]] = []
        current: str | None = None
        say(f"{args.changes} focus changes, intervals {args.min_gap}-{args.max_gap} s")
        for n in range(args.changes):
            target = rng.choice([v for v in visits if v != current])
            t0 = time.monotonic()
            await desk.focus(target)
            acked = time.monotonic()
            changes.append({"t0": t0, "ack": acked, "to": target, "from": current})
            current = target
            await asyncio.sleep(rng.uniform(args.min_gap, args.max_gap))
            if (n + 1) % 25 == 0:
                say(f"  {n + 1} changes done")
        await asyncio.sleep(1.0)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader

        # -- analysis ------------------------------------------------------------------------
        switch: list[float] = []
        silent: list[float] = []
        received: list[float] = []
        ack_ms: list[float] = []
        gate_ms: list[float] = []
        told_ms: list[float] = []
        wire_ms: list[float] = []
        missed = 0
        by_booth: dict[str, list[dict[str, Any]]] = {}
        for ev in events:
            by_booth.setdefault(ev["booth"], []).append(ev)
        for i, ch in enumerate(changes):
            t0 = ch["t0"]
            t_next = changes[i + 1]["t0"] if i + 1 < len(changes) else float("inf")
            ack_ms.append((ch["ack"] - t0) * 1000)
            new = by_booth.get(ch["to"], [])
            first_on = next(
                (e["t"] for e in new if e["ev"] == "tone_on" and t0 <= e["t"] < t_next), None
            )
            told = next((e["t"] for e in new if e["ev"] == "on_air" and e["t"] >= t0), None)
            if first_on is None:
                missed += 1
            else:
                switch.append((first_on - t0) * 1000)
            if told is not None and told < t_next:
                told_ms.append((told - t0) * 1000)
            if ch["from"] is not None:
                old = by_booth.get(ch["from"], [])
                off = next(
                    (e["t"] for e in old if e["ev"] == "tone_off" and e["t"] >= t0 - 1), None
                )
                silent.append(max(0.0, ((off if off is not None else t0) - t0) * 1000))
                rx_off = next(
                    (e["t"] for e in old if e["ev"] == "rx_off" and e["t"] >= t0 - 1), None
                )
                received.append(max(0.0, ((rx_off if rx_off is not None else t0) - t0) * 1000))
        # the officer's gate opening, and from it to the first tone frame at the booth
        for i, ch in enumerate(changes):
            t_next = changes[i + 1]["t0"] if i + 1 < len(changes) else float("inf")
            gate = next((t for v, t in gates if v == ch["to"] and ch["t0"] <= t < t_next), None)
            if gate is None:
                continue
            gate_ms.append((gate - ch["t0"]) * 1000)
            first_on = next(
                (
                    e["t"]
                    for e in by_booth.get(ch["to"], [])
                    if e["ev"] == "tone_on" and ch["t0"] <= e["t"] < t_next
                ),
                None,
            )
            if first_on is not None:
                wire_ms.append((first_on - gate) * 1000)
        return {
            "changes": len(changes),
            "missed": missed,
            "switch_p50_ms": pct(switch, 50),
            "switch_p95_ms": pct(switch, 95),
            "old_booth_silent_p50_ms": pct(silent, 50),
            "old_booth_silent_p95_ms": pct(silent, 95),
            "old_booth_received_p95_ms": pct(received, 95),
            "ack_p50_ms": pct(ack_ms, 50),
            "gate_open_p50_ms": pct(gate_ms, 50),
            "booth_told_p50_ms": pct(told_ms, 50),
            "gate_to_tone_p50_ms": pct(wire_ms, 50),
            "gate_to_tone_p95_ms": pct(wire_ms, 95),
            "audio_prefetch": audio_prefetch(),
            "booths": args.booths,
            "size": args.size,
            "fps": args.fps,
            "switch_mean_ms": round(statistics.fmean(switch), 1) if switch else None,
        }
    finally:
        if desk is not None:
            await desk.close()
        for proc in (booths, server):
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    async with asyncio.timeout(10):
                        await proc.wait()
                except TimeoutError:
                    os.killpg(proc.pid, signal.SIGKILL)
                    await proc.wait()
        logs.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--booths-worker", nargs=2, metavar=("URL", "SECRET"), help=argparse.SUPPRESS
    )
    parser.add_argument("--booths", type=int, default=6)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--size", default="640x480", help="booth video size (640x480)")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--min-gap", type=float, default=0.4, help="shortest interval (s)")
    parser.add_argument("--max-gap", type=float, default=1.2, help="longest interval (s)")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.booths_worker:
        url, secret = args.booths_worker
        asyncio.run(booths_worker(url, secret, args.booths, args.size, args.fps))
        return
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result = asyncio.run(run(args))
    say(json.dumps(result))


if __name__ == "__main__":
    main()
