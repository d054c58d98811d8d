"""The resolving supervisor talks with the claimant from the console (issue 15), for real:
a server on loopback, a Python booth (test card and tone), an officer who escalates, and a
``SupervisorConsole`` (``run_test``) with grant ``resolve`` and a 1600 Hz microphone. Taking
the escalation with ``t`` links the console's media engine to that booth: the booth plays
the supervisor's tone, the console receives the booth's frames and tone, and finishing the
visit with ``d`` closes the link."""

from __future__ import annotations

import pytest
from conftest import wait_for

from lapak.console.escalations import AlertsScreen
from lapak.console.screens import PickScreen
from lapak.console.supervisor import SupervisorConsole
from lapak.media.booth import BoothMediaConfig
from lapak.media.officer import SupervisorMedia
from lapak.media.simulator import make_booths
from lapak.media.supervisor_voice import SUPERVISOR_FREQUENCY
from lapak.media.tones import booth_frequency
from lapak.signaling.client import SignalClient
from lapak.signaling.protocol import EndVisit
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

pytestmark = [pytest.mark.integration]

SIZE = (160, 48)


async def test_the_resolver_console_speaks_with_the_escalated_booth(
    server: SignalServer, keys: KeyRing
) -> None:
    officer = SignalClient(server.url, keys.issue("officer", "ana", "main", desk="d1"))
    (booth,) = make_booths(
        server.url, keys, 1, media=BoothMediaConfig(width=160, height=120, fps=10), seed=5
    )
    booth.barge.heard.watch(SUPERVISOR_FREQUENCY)
    claimant_tone = booth_frequency(booth.index)
    supervisor = SupervisorConsole(
        server.url,
        keys.issue("supervisor", "sri", "main", grants=["resolve"]),
        media=True,
        audio_in="tone",
    )
    assert server.hub is not None
    visits = server.hub.state.visits
    try:
        await officer.connect()
        visit = await booth.start()
        await wait_for(lambda: visits[visit].desk == "d1", "the visit is routed to d1")
        await officer.request(EndVisit(visit=visit, outcome="escalated", note="photo differs"))
        await wait_for(lambda: visits[visit].state == "escalated", "handed over")
        async with supervisor.run_test(size=SIZE) as pilot:
            engine = supervisor.engine
            assert isinstance(engine, SupervisorMedia)
            await wait_for(lambda: supervisor.session.connected, "the supervisor is connected")
            assert visit not in engine.links, "no link to an escalation nobody took"
            await pilot.press("n")
            await wait_for(lambda: isinstance(supervisor.screen, AlertsScreen), "the alerts")
            await pilot.press("t")
            await wait_for(lambda: visits[visit].taken_by == "sri", "taken by sri")
            await wait_for(lambda: visit in engine.links, "the console links to the booth")
            await wait_for(
                lambda: booth.barge.heard.heard_within(SUPERVISOR_FREQUENCY, 0.3),
                "the booth plays the supervisor's microphone",
                timeout=30,
            )
            link = engine.links[visit]
            frames = link.frames
            await wait_for(
                lambda: engine.links[visit].frames > frames + 10,
                "the booth's frames reach the supervisor",
                timeout=30,
            )

            def claimant_heard() -> bool:
                probe = engine.links[visit].audio
                probe.watch(claimant_tone)
                return probe.heard_within(claimant_tone, 0.5)

            await wait_for(claimant_heard, "the supervisor hears the claimant's tone", timeout=30)
            line = str(supervisor.screen.query_one("#resolver-link").render())
            assert "booth-" in line and "connected" in line, line

            await pilot.press("d")
            await wait_for(lambda: isinstance(supervisor.screen, PickScreen), "the outcomes")
            await pilot.press("3")  # abandoned
            await wait_for(lambda: visits[visit].state == "ended", "sri ended it")
            await wait_for(lambda: visit not in engine.links, "the link is dropped")
            assert link.pc.connectionState == "closed", "its peer connection is closed"
            assert visit not in engine.resolving
    finally:
        await booth.close()
        await officer.close()
