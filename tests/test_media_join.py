"""Booths joining at once: every link gets media on its first offer, with no rebuild.

The officer's engine used to start a link's no-answer clock only after ICE gathering, from
``offered_at = 0.0``: a watcher tick during the gathering of a new link's first offer saw an
offer "unanswered for ages" and rebuilt it, two offers went out, the first answer landed on the
second peer connection and the link hung until its connect timeout. These tests let booths join
together, many times, and require that no link is rebuilt and no answer is stale. Timing is
never asserted: the bound on "media arrives" is generous, what matters is that nothing is
rebuilt on the way.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from conftest import wait_for

from lapak.media.booth import BoothAgent, BoothMediaConfig
from lapak.media.headless import HeadlessDesk
from lapak.media.officer import OfficerMediaOptions
from lapak.media.simulator import make_booths
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

SMALL = BoothMediaConfig(width=96, height=64, fps=10)
MEDIA_BOUND_S = 60.0
"""Generous: the link must connect on its first offer; the bound only stops a hung test."""


def link_trouble(caplog: pytest.LogCaptureFixture) -> list[str]:
    words = ("reason=no_answer", "event=stray_answer", "event=stale_answer", "link_rebuild")
    return [r.getMessage() for r in caplog.records if any(w in r.getMessage() for w in words)]


async def join_and_leave(
    desk: HeadlessDesk, server: SignalServer, keys: KeyRing, count: int, first: int
) -> None:
    """``count`` booths start their visits together; each link delivers decoded frames; the
    officer ends the visits and the links go away."""
    booths: list[BoothAgent] = make_booths(
        server.url, keys, count, media=SMALL, seed=first, first=first
    )
    try:
        visits = await asyncio.gather(*(b.start() for b in booths))
        links = desk.engine.links
        await wait_for(
            lambda: all(v in links and links[v].frames > 0 for v in visits),
            f"decoded frames from all {count} booths (first {first})",
            timeout=MEDIA_BOUND_S,
        )
        for visit in visits:
            link = links[visit]
            assert link.rebuilds == 0, f"{visit} was rebuilt {link.rebuilds}x before media came"
            assert getattr(link, "stale_answers", 0) == 0, (
                f"{visit} got {link.stale_answers} stale answers"
            )
        for visit in visits:
            await desk.client.request({"type": "end_visit", "visit": visit, "outcome": "abandoned"})
        await wait_for(lambda: not set(visits) & set(links), "the ended visits' links dropped")
    finally:
        await asyncio.gather(*(b.close() for b in booths))


@pytest.mark.parametrize(("count", "rounds"), [(2, 20), (6, 3)])
async def test_booths_joining_together_all_get_media_without_a_rebuild(
    tmp_path: Path, keys: KeyRing, caplog: pytest.LogCaptureFixture, count: int, rounds: int
) -> None:
    caplog.set_level(logging.INFO, logger="lapak")
    server = SignalServer(tmp_path / "data", keys, port=0)
    await server.start()
    desk = HeadlessDesk(
        server.url,
        keys.issue("officer", "ana", "main", desk="d1"),
        OfficerMediaOptions(send_video=False),
    )
    try:
        await desk.start()
        for round_ in range(rounds):
            await join_and_leave(desk, server, keys, count, first=round_ * count)
            trouble = link_trouble(caplog)
            assert not trouble, f"round {round_ + 1}/{rounds}: expected clean joins, got {trouble}"
    finally:
        await desk.close()
        await server.close()
