"""A booth process killed mid-visit: the other five never notice, and the killed one comes back.

Five booths run in this process, the sixth is a real ``lapak booth`` process that the test kills
with SIGKILL (no goodbye: its peer connection simply stops). The officer's engine must keep the
other links delivering frames without a gap over 500 ms, show the dead link as
``reconnecting``, and reconnect the booth when its process is started again (same token: the
server hands back its open visit).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import time
from pathlib import Path

from conftest import wait_for
from tests_support import stop_process_group

from lapak.media.booth import BoothMediaConfig
from lapak.media.headless import HeadlessDesk
from lapak.media.officer import OfficerMediaOptions
from lapak.media.simulator import booth_id, make_booths
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

ROOT = Path(__file__).resolve().parent.parent


async def start_booth_process(url: str, token: str, log_path: Path) -> asyncio.subprocess.Process:
    log = log_path.open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lapak.cli", "booth", "--server", url, "--token", token,
            "--first", "5", "--size", "160x120", "--fps", "10",
            cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True,
        )  # fmt: skip
    finally:
        log.close()


def max_gap(times: list[float], start: float, end: float) -> float:
    """Longest stretch without a frame within [start, end]."""
    inside = [start, *(t for t in times if start <= t <= end), end]
    return max(b - a for a, b in itertools.pairwise(inside))


async def test_killed_booth_leaves_the_others_untouched_and_resumes(
    tmp_path: Path, keys: KeyRing
) -> None:
    server = SignalServer(tmp_path / "data", keys, port=0)
    await server.start()
    booths = make_booths(
        server.url, keys, 5, media=BoothMediaConfig(width=160, height=120, fps=10), seed=5
    )
    name = booth_id(5)
    token = keys.issue("booth", sub=name, office="main", booth=name)
    desk = HeadlessDesk(
        server.url,
        keys.issue("officer", "ana", "main", desk="d1"),
        OfficerMediaOptions(audio_in="tone", stall_s=2.0),
    )
    proc = None
    try:
        await desk.start()
        for booth in booths:
            await booth.start()
        proc = await start_booth_process(server.url, token, tmp_path / "booth.log")
        links = desk.engine.links
        await wait_for(
            lambda: (
                len(links) == 6
                and all(link.state == "connected" and link.frames > 5 for link in links.values())
            ),
            "six connected links delivering video",
            timeout=30,
        )
        assert server.hub is not None
        victim = next(v for v, visit in server.hub.state.visits.items() if visit.booth == name)
        others = [link for visit, link in links.items() if visit != victim]

        killed_at = time.monotonic()
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        await wait_for(
            lambda: links[victim].state in ("reconnecting", "failed"),
            "the killed booth's link shows reconnecting",
        )
        await asyncio.sleep(1.0)
        window_end = time.monotonic()
        gaps = {
            link.visit: max_gap(list(link.frame_times), killed_at, window_end) for link in others
        }
        assert all(gap < 0.5 for gap in gaps.values()), (
            f"the other five booths should keep delivering frames without a gap over 500 ms "
            f"after {name} was killed; longest gaps (s): {gaps}"
        )
        assert all(link.state == "connected" for link in others)
        assert all(link.rebuilds == 0 for link in others), "no other link was rebuilt"

        frames_before = links[victim].frames
        proc = await start_booth_process(server.url, token, tmp_path / "booth.log")
        await wait_for(
            lambda: links[victim].state == "connected" and links[victim].frames > frames_before + 5,
            "the restarted booth resumes its visit and its link reconnects",
            timeout=30,
        )
        assert victim in links, "the visit survived the booth's restart"
        assert server.hub.state.visits[victim].state == "active"
        assert all(link.rebuilds == 0 for link in others), "no other link was rebuilt"
    finally:
        if proc is not None:
            await stop_process_group(proc, timeout=8)
        await desk.close()
        await asyncio.gather(*(b.close() for b in booths))
        await server.close()
