"""The recording tests' rig (issue 15): a started server with ``recording`` on and its one
booth (test card and tone, 320x240 at 10 fps), and beside them the officer's desk. Shared by
test_recording, test_recording_handoff and test_pg_recordings so that they start the same
real parts the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from lapak.media.booth import BoothAgent, BoothMediaConfig
from lapak.media.headless import HeadlessDesk
from lapak.media.officer import OfficerMediaOptions
from lapak.media.simulator import make_booths
from lapak.signaling.config import ServerConfig
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing


@dataclass
class Rig:
    server: SignalServer
    keys: KeyRing
    booth: BoothAgent
    desk: HeadlessDesk
    rec_dir: Path


async def start_node(
    data_dir: Path, config: ServerConfig, seed: int
) -> tuple[SignalServer, KeyRing, BoothAgent]:
    """A server on ``data_dir`` with ``config``, started, and its one booth (made, not yet
    started: the test starts its visit). The caller closes both."""
    keys = KeyRing.generate()
    server = SignalServer(data_dir, keys, port=0, config=config)
    await server.start()
    (booth,) = make_booths(
        server.url, keys, 1, media=BoothMediaConfig(width=320, height=240, fps=10), seed=seed
    )
    return server, keys, booth


@asynccontextmanager
async def desk_rig(tmp_path: Path, config: ServerConfig, seed: int) -> AsyncIterator[Rig]:
    """``start_node`` on ``tmp_path/data`` and officer ana's desk d1 (1200 Hz tone), started;
    recordings go to ``tmp_path/recordings``. After: the desk, the rig's booth (a test may
    have replaced it) and the server are closed."""
    server, keys, booth = await start_node(tmp_path / "data", config, seed)
    desk = HeadlessDesk(
        server.url,
        keys.issue("officer", "ana", "main", desk="d1"),
        OfficerMediaOptions(audio_in="tone", desk="d1"),
    )
    made = Rig(server, keys, booth, desk, tmp_path / "recordings")
    try:
        await desk.start()
        yield made
    finally:
        await desk.close()
        await made.booth.close()
        await server.close()
