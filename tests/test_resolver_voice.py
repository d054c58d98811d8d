"""The resolving supervisor talks with the claimant from the console (issue 15), for real:
a server on loopback, a Python booth (test card and tone), an officer who escalates, and a
``SupervisorConsole`` (``run_test``) with grant ``resolve`` and a 1600 Hz microphone. Taking
the escalation with ``t`` links the console's media engine to that booth: the booth plays
the supervisor's tone, the console receives the booth's frames and tone, and finishing the
visit with ``d`` closes the link."""

from __future__ import annotations

import pytest
from conftest import wait_for
from resolver_rig import connected_engine, end_as_abandoned, escalate, open_alerts, resolver_console

from lapak.media.booth import BoothMediaConfig
from lapak.media.simulator import make_booths
from lapak.media.supervisor_voice import SUPERVISOR_FREQUENCY
from lapak.media.tones import booth_frequency
from lapak.signaling.client import SignalClient
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
    supervisor = resolver_console(server, keys)
    assert server.hub is not None
    visits = server.hub.state.visits
    try:
        visit = await escalate(officer, booth, visits, "photo differs")
        async with supervisor.run_test(size=SIZE) as pilot:
            engine = await connected_engine(supervisor)
            assert visit not in engine.links, "no link to an escalation nobody took"
            await open_alerts(supervisor, pilot)
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

            await end_as_abandoned(supervisor, pilot, visits, visit)
            assert link.pc.connectionState == "closed", "its peer connection is closed"
            assert visit not in engine.resolving
    finally:
        await booth.close()
        await officer.close()
