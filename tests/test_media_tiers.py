"""Video tiers for real: two Python booths (640x480 test cards) and the officer's media engine,
through the server. Off air the officer receives thumbnails; the booth put on air, or zoomed,
switches to full size without renegotiating; the one that leaves goes back to a thumbnail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from conftest import wait_for

from lapak.media.booth import BoothAgent, BoothMediaConfig
from lapak.media.booth_link import BoothLink
from lapak.media.headless import HeadlessDesk
from lapak.media.officer import OfficerMediaOptions
from lapak.media.simulator import make_booths
from lapak.media.testcard import identify_booth
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

pytestmark = pytest.mark.asyncio(loop_scope="module")

FULL, THUMBNAIL = (640, 480), (160, 120)


@dataclass
class Rig:
    server: SignalServer
    booths: list[BoothAgent]
    desk: HeadlessDesk

    def link(self, booth: BoothAgent) -> BoothLink:
        assert booth.visit is not None
        return self.desk.engine.links[booth.visit]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    keys = KeyRing.generate()
    server = SignalServer(tmp_path_factory.mktemp("tiers") / "data", keys, port=0)
    await server.start()
    booths = make_booths(
        server.url, keys, 2, media=BoothMediaConfig(width=640, height=480, fps=15), seed=5
    )
    desk = HeadlessDesk(
        server.url,
        keys.issue("officer", "ana", "main", desk="d1"),
        OfficerMediaOptions(audio_in="tone", audio_out="none", desk="d1"),
    )
    try:
        await desk.start()
        for booth in booths:
            await booth.start()
        yield Rig(server, booths, desk)
    finally:
        await desk.close()
        await asyncio.gather(*(b.close() for b in booths))
        await server.close()


async def received(rig: Rig, booth: BoothAgent, size: tuple[int, int], why: str) -> None:
    await wait_for(
        lambda: booth.visit in rig.desk.engine.links and rig.link(booth).frame_size == size,
        f"{booth.name}: the officer receives {size[0]}x{size[1]} frames ({why}); "
        f"last seen {rig.link(booth).frame_size if booth.visit in rig.desk.engine.links else None}",
        timeout=30,
    )


async def test_off_air_booths_send_thumbnails_that_still_show_the_booth(rig: Rig) -> None:
    for booth in rig.booths:
        await received(rig, booth, THUMBNAIL, "nobody on air or zoomed")
        assert booth.video_tier == "thumbnail"
        frame = rig.link(booth).latest
        if frame is not None:  # the test card's colour survives the thumbnail
            assert identify_booth(frame.to_ndarray(format="rgb24")) == booth.index


async def test_focus_switches_the_on_air_booth_to_full_and_back(rig: Rig) -> None:
    a, b = rig.booths
    await rig.desk.session.focus(a.visit)
    await received(rig, a, FULL, "on air")
    assert rig.link(b).frame_size == THUMBNAIL, "the other booth stays a thumbnail"
    await rig.desk.session.focus(b.visit)
    await received(rig, b, FULL, "now on air")
    await received(rig, a, THUMBNAIL, "left the air")
    await rig.desk.session.focus(None)
    await received(rig, b, THUMBNAIL, "nobody on air")


async def test_zoom_asks_an_off_air_booth_for_full_video(rig: Rig) -> None:
    a, b = rig.booths
    await rig.desk.session.zoom(a.visit)
    await received(rig, a, FULL, "zoomed, not on air")
    assert not a.on_air and a.video_tier == "full"
    await rig.desk.session.zoom(None)
    await received(rig, a, THUMBNAIL, "zoom closed")
    links = {booth.name: rig.link(booth).rebuilds for booth in (a, b)}
    assert links == {a.name: 0, b.name: 0}, f"tiers switch without renegotiating: {links}"
