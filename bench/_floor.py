"""The floor for bench/console.py: the officer's media engine with no screen, in its own process.

``lapak.media.headless.HeadlessDesk`` with an officer token for the desk: the same desk
session, the same ``OfficerMedia`` engine and options as ``lapak console`` with its defaults
(no microphone, the officer's card as video, no audio out), receiving and decoding every
booth's video into its link, and nothing painted. Once ``--booths`` links are connected and
delivering frames it puts the booth in slot 1 on air (as the bench does on the console with
its ``1`` key), then prints one JSON line a second on stdout:
``{"t": wall ms, "on_air": slot or null, "kbps": summed link.stats.kbps, "links": n,
"frames": {slot: decoded frames so far}}``; the first line after the focus carries
``"ready": true``. Stops on SIGTERM or SIGINT.

    python bench/_floor.py --server ws://127.0.0.1:PORT/ws --token TOKEN --booths 6
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from lapak.media.headless import HeadlessDesk  # noqa: E402
from lapak.media.officer import OfficerMediaOptions  # noqa: E402


def line(desk: HeadlessDesk, **extra: Any) -> str:
    by_slot = desk.session.model.by_slot()
    frames: dict[str, int] = {}
    kbps = 0.0
    for slot, visit in by_slot.items():
        link = desk.engine.links.get(visit.visit)
        if link is None:
            continue
        frames[str(slot)] = link.frames
        if link.stats is not None and link.stats.kbps is not None:
            kbps += link.stats.kbps
    on_air = next((s for s, v in by_slot.items() if v.visit == desk.on_air), None)
    return json.dumps(
        {"t": int(time.time() * 1000), "on_air": on_air, "kbps": round(kbps, 1),
         "links": len(frames), "frames": frames, **extra}
    )  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    desk = HeadlessDesk(
        args.server, args.token, OfficerMediaOptions(officer_name="Bench", desk=args.desk)
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await desk.start()
    try:
        while not stop.is_set():  # every booth linked and delivering frames
            links = desk.engine.links.values()
            if len(links) >= args.booths and all(
                link.state == "connected" and link.frames > 10 for link in links
            ):
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
        first = desk.session.model.visit_in_slot(1)
        if first is not None and not stop.is_set():
            await desk.focus(first.visit)
        ready = True
        while not stop.is_set():
            print(line(desk, ready=ready), flush=True)
            ready = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        await desk.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--booths", type=int, required=True)
    parser.add_argument("--desk", default="desk-1")
    asyncio.run(main(parser.parse_args()))
