"""The whole path once, for real: server, three simulated booths, the officer console.

Real websockets on loopback, real aiortc peer connections with VP8 and Opus, the Textual
app through ``run_test``. Each step waits with a bound and says what it expected.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from conftest import wait_for

from lapak.console.app import LapakConsole
from lapak.media.booth import BoothAgent, BoothMediaConfig
from lapak.media.simulator import make_booths
from lapak.media.testcard import identify_booth
from lapak.media.tones import OFFICER_FREQUENCY, ToneSource
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing


def officer_heard(agent: BoothAgent) -> float | None:
    return agent.officer_audio.last_heard.get(OFFICER_FREQUENCY)


async def test_three_booths_end_to_end(tmp_path: Path, keys: KeyRing) -> None:
    data = tmp_path / "data"
    server = SignalServer(data, keys, port=0)
    await server.start()
    booths = make_booths(
        server.url, keys, 3, media=BoothMediaConfig(width=320, height=240, fps=15), seed=1
    )
    app = LapakConsole(
        server.url,
        keys.issue("officer", "ana", "main", desk="d1"),
        voice=ToneSource(OFFICER_FREQUENCY),
    )
    try:
        for booth in booths:  # in order, so booth i takes slot i + 1
            await booth.start()
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_for(lambda: len(app.model.visits) == 3, "three visits on the desk")
            by_slot = app.model.by_slot()
            agent_of = {
                slot: next(b for b in booths if b.visit == v.visit) for slot, v in by_slot.items()
            }
            assert sorted(agent_of) == [1, 2, 3]

            # Each tile shows its own booth's test card.
            def tile_shows(slot: int) -> bool:
                rgb = app.tile(slot).video.last_rgb
                return rgb is not None and identify_booth(rgb) == agent_of[slot].index

            for slot in (1, 2, 3):
                await wait_for(
                    lambda s=slot: tile_shows(s),
                    f"tile {slot} shows the test card of {agent_of[slot].name}",
                    timeout=30,
                )
            assert all(app.tile(s).video.frames_painted > 0 for s in (1, 2, 3))

            # Booth audio reaches the console.
            links = app.media.links if app.media else {}
            await wait_for(
                lambda: all(link.audio.frames > 50 for link in links.values()),
                "audio frames from every booth",
            )

            # Nobody is on air yet: no booth hears the officer.
            await asyncio.sleep(1.0)
            assert all(officer_heard(b) is None for b in booths), "officer audio leaked off air"

            # `2` puts slot 2 on air: the server records it, the booth is told.
            await pilot.press("2")
            target = agent_of[2]
            assert server.hub is not None
            await wait_for(
                lambda: server.hub.state.desks["d1"].on_air == target.visit,
                "the server records slot 2 on air",
            )
            await wait_for(lambda: target.on_air, "booth in slot 2 is told it is on air")
            await wait_for(
                lambda: target.hears_officer(), "the on-air booth hears the officer's tone"
            )
            settle = time.monotonic()
            await asyncio.sleep(1.5)
            for slot in (1, 3):
                heard = officer_heard(agent_of[slot])
                assert heard is None, f"booth in slot {slot} heard the officer while off air"
            assert target.hears_officer(within=1.0) and officer_heard(target) > settle

            # `a` approves the current step of the selected (slot 2) visit, after the ack.
            await pilot.press("a")
            visit = target.visit
            assert visit is not None
            await wait_for(
                lambda: app.model.step_status(visit, 0) == "approved",
                "the console shows step 0 approved after the server's ack",
            )
            assert server.hub.state.visits[visit].steps[0].status == "approved"
            await wait_for(
                lambda: target.status is not None and target.status.steps[0].status == "approved",
                "the booth is told its step was approved",
            )
            await pilot.press("q")
    finally:
        await asyncio.gather(*(b.close() for b in booths))
        await server.close()

    # The decision survives a restart on the same data directory.
    again = SignalServer(data, keys, port=0)
    await again.start()
    try:
        assert again.hub is not None
        restored = again.hub.state.visits[visit]
        assert restored.steps[0].status == "approved", "decision restored from the log"
        assert again.hub.state.desks["d1"].on_air == visit, "focus restored from the log"
        assert len([v for v in again.hub.state.visits.values() if v.state == "active"]) == 3
    finally:
        await again.close()
