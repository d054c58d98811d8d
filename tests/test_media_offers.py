"""Offer identity (docs/protocol.md, ``offer_id``) and offers to a booth that is away.

An answer is applied only when it echoes the link's latest ``offer_id``; a booth answers only
the latest offer from each peer. A re-offer refused ``not_connected`` waits for the booth to
come back (the visit view's ``booth_present``) instead of a timer, and is made as soon as it
is back.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for

from lapak.media.booth import BoothAgent, BoothMediaConfig, ClaimantInfo
from lapak.media.booth_link import why_rebuild
from lapak.media.headless import HeadlessDesk
from lapak.media.officer import OfficerMediaOptions, SupervisorMedia
from lapak.media.peer import close_peers, new_peer_connection
from lapak.media.simulator import make_booths
from lapak.signaling.messages import SdpRelay
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

SMALL = BoothMediaConfig(width=96, height=64, fps=10)


async def test_an_answer_that_does_not_echo_the_latest_offer_is_dropped() -> None:
    offers: list[tuple[str, str]] = []

    async def send_sdp(visit: str, sdp_type: str, sdp: str, offer_id: str) -> None:
        offers.append((sdp_type, offer_id))

    engine = SupervisorMedia(send_sdp)
    try:
        link = await engine.ensure("V1")
        assert len(offers) == 1 and offers[0][0] == "offer" and 1 <= len(offers[0][1]) <= 64
        for stale in ("not-the-offer", None):
            await engine.on_answer("V1", "v=0 garbage", stale)
        assert link.stale_answers == 2, "answers naming no or another offer are dropped"
        assert link.rebuilds == 0, "a stale answer never touches the link"
        assert link.pc.signalingState == "have-local-offer", "still waiting for the real answer"
        await engine._rebuild(link, "test")
        assert len(offers) == 2 and offers[1][1] != offers[0][1], "each offer has its own id"
        await engine.on_answer("V1", "v=0 garbage", offers[0][1])
        assert link.stale_answers == 3, "the answer to the replaced offer is stale"
    finally:
        await engine.close()


async def test_a_booth_answers_only_the_latest_offer_and_echoes_its_id() -> None:
    booth = BoothAgent("ws://127.0.0.1:1/ws", "t", "booth-01", 0, ClaimantInfo("A", "1"), SMALL)
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    booth.client.send = send  # type: ignore[method-assign]
    booth._open_sources()
    officer = new_peer_connection()
    try:
        officer.addTransceiver("audio", direction="sendrecv")
        officer.addTransceiver("video", direction="sendrecv")
        await officer.setLocalDescription(await officer.createOffer())
        sdp = officer.localDescription.sdp
        for offer_id in ("first", "second"):
            offer = SdpRelay(
                visit="V1", sdp_type="offer", sdp=sdp, from_="officer", offer_id=offer_id
            )
            await booth._on_message(offer)
        await wait_for(
            lambda: sent and booth.peers.offers_superseded == 1, "the booth has handled both offers"
        )
        assert [m.offer_id for m in sent] == ["second"], (
            f"only the latest offer is answered, echoing its id; sent {sent}"
        )
        assert booth.peers.offers_superseded == 1
        await officer.setRemoteDescription(
            type(officer.localDescription)(sdp=sent[0].sdp, type="answer")
        )
    finally:
        await close_peers([officer])
        await booth.close()


async def test_a_booth_that_left_is_offered_again_when_it_is_back_not_on_a_timer(
    tmp_path: Path, keys: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lapak")
    server = SignalServer(tmp_path / "data", keys, port=0)
    await server.start()
    desk = HeadlessDesk(
        server.url,
        keys.issue("officer", "ana", "main", desk="d1"),
        OfficerMediaOptions(send_video=False, stall_s=1.0),
    )
    (booth,) = make_booths(server.url, keys, 1, media=SMALL, seed=1)
    again: BoothAgent | None = None
    try:
        await desk.start()
        visit = await booth.start()
        links = desk.engine.links
        await wait_for(lambda: visit in links and links[visit].frames > 0, "first media")
        link = links[visit]

        await booth.close()  # the page reloads: its connection and its peer go away
        await wait_for(lambda: link.booth_present is False, "the visit view says: booth away")
        await wait_for(lambda: link.state != "connected", "the dead link is noticed")
        far_future = time.monotonic() + 3600
        assert why_rebuild(link, far_future, desk.engine.stall_s) is None, (
            "no re-offer on a timer while the booth is away"
        )
        rebuilds = link.rebuilds

        again = BoothAgent(booth.url, booth.token, booth.name, 0, booth.claimant, SMALL)
        assert await again.start() == visit, "the booth resumes its visit"
        frames = link.frames
        await wait_for(
            lambda: link.state == "connected" and link.frames > frames, "media after its return"
        )
        reasons = [r.getMessage() for r in caplog.records if "event=link_rebuild" in r.getMessage()]
        assert link.rebuilds > rebuilds and "reason=booth_back" in reasons[-1], (
            f"the booth's return triggers the re-offer; rebuilds: {reasons}"
        )
    finally:
        await desk.close()
        if again is not None:
            await again.close()
        await server.close()
