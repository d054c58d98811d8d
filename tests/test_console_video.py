"""Keys that need live video, with a real BoothAgent (aiortc, VP8) and the real server."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from conftest import wait_for

from console.app import LapakConsole
from console.config import ConsoleConfig
from console.screens import HelpScreen
from media.booth import BoothMediaConfig
from media.simulator import make_booths
from media.testcard import identify_booth
from signaling.server import SignalServer
from signaling.tokens import KeyRing


async def test_snapshot_saves_the_frame_and_records_its_hash_and_overlays_pause_video(
    server: SignalServer, keys: KeyRing, tmp_path: Path
) -> None:
    booths = make_booths(
        server.url, keys, 1, media=BoothMediaConfig(width=160, height=120, fps=15), seed=3
    )
    app = LapakConsole(
        server.url,
        keys.issue("officer", "ana", "main", desk="d1"),
        config=ConsoleConfig(snapshot_dir=tmp_path / "shots"),
    )
    try:
        await booths[0].start()
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(
                lambda: bool(app.desk_screen.query("#slot-1")), "the desk screen has its tiles"
            )
            video = app.tile(1).video
            await wait_for(
                lambda: video.last_rgb is not None and identify_booth(video.last_rgb) == 0,
                "tile 1 shows booth-01's test card",
                timeout=30,
            )
            await pilot.press("s")
            await wait_for(lambda: bool(app.snapshots), "a snapshot saved")
            path, digest = app.snapshots[0]
            assert path.parent == tmp_path / "shots" and path.suffix == ".png"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
            assert path.read_bytes().startswith(b"\x89PNG"), "the file is a PNG"
            assert server.hub is not None
            visit = booths[0].visit
            assert visit is not None
            await wait_for(
                lambda: server.hub.state.visits[visit].snapshots == 1,
                "the server records the snapshot in the visit's audit trail",
            )
            await wait_for(
                lambda: "recorded" in app.desk_screen.query_one("#message").render().plain,
                "the console says the server recorded it",
            )

            await pilot.press("question_mark")
            await wait_for(lambda: isinstance(app.screen, HelpScreen), "help open")
            before = video.frames_painted
            await asyncio.sleep(1.0)
            assert video.frames_painted == before, "no video is painted under the help screen"
            await pilot.press("escape")
            await wait_for(lambda: video.frames_painted > before + 3, "video resumes")
    finally:
        await asyncio.gather(*(b.close() for b in booths))
