"""A taken escalation's booth that is away is linked again when it comes back (issue 15), for
real: a server on loopback, a Python booth (test card and tone), an officer who escalates,
and a ``SupervisorConsole`` (``run_test``) with grant ``resolve`` and a 1600 Hz microphone.

The booth goes away (its signalling and media closed) before the escalation is taken, and
comes back: the console's link connects, the booth's frames arrive and the booth plays the
supervisor's tone. Then it drops during the resolution and comes back again: the same. The
console learns the booth's presence from ``office_stats`` (``EscalationEntry.booth_present``),
which it polls: while the server says the booth is away the link is not offered again (each
offer would only be refused), and it is offered as soon as a poll says it is back; nothing is
taken again. (Without the server's presence the engine could only guess: re-offer blindly
every few seconds with back-off, ``media/booth_link.py``.)"""

from __future__ import annotations

import pytest
from conftest import wait_for
from resolver_rig import connected_engine, escalate, open_alerts, resolver_console

from lapak.console.supervisor import SupervisorConsole
from lapak.media.booth import BoothAgent, BoothMediaConfig
from lapak.media.simulator import make_booths
from lapak.media.supervisor_voice import SUPERVISOR_FREQUENCY
from lapak.signaling.client import SignalClient
from lapak.signaling.messages import OfficeFigures
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

pytestmark = [pytest.mark.integration]

SIZE = (160, 48)
MEDIA = BoothMediaConfig(width=160, height=120, fps=10)


async def polls(console: SupervisorConsole, count: int) -> None:
    """Wait for ``count`` more ``office_stats`` answers (the console asks every 5 s)."""
    for _ in range(count):
        before: OfficeFigures | None = console.office_stats

        def answered(before: OfficeFigures | None = before) -> bool:
            return console.office_stats is not before

        await wait_for(answered, "the next poll", timeout=15)


def same_booth(server: SignalServer, keys: KeyRing) -> BoothAgent:
    """The booth's process again (same name and token): ``start`` resumes its open visit."""
    (booth,) = make_booths(server.url, keys, 1, media=MEDIA, seed=11)
    booth.barge.heard.watch(SUPERVISOR_FREQUENCY)
    return booth


async def test_a_booth_back_from_away_is_linked_again_without_taking_it_again(
    server: SignalServer, keys: KeyRing
) -> None:
    officer = SignalClient(server.url, keys.issue("officer", "ana", "main", desk="d1"))
    booth = same_booth(server, keys)
    supervisor = resolver_console(server, keys)
    assert server.hub is not None
    visits = server.hub.state.visits
    try:
        visit = await escalate(officer, booth, visits, "photo differs")
        await booth.close()  # away before anyone takes it

        async with supervisor.run_test(size=SIZE) as pilot:
            engine = await connected_engine(supervisor)
            screen = await open_alerts(supervisor, pilot)
            await wait_for(
                lambda: any(
                    e.visit == visit and not e.booth_present for e in screen.figures.escalations
                ),
                "the alerts say the booth is away",
                timeout=20,
            )
            await pilot.press("t")
            await wait_for(lambda: visits[visit].taken_by == "sri", "taken by sri")
            await wait_for(lambda: visit in engine.links, "the console has a link for it")
            link = engine.links[visit]
            await wait_for(
                lambda: link.booth_present is False and link.booth_away,
                "the server's presence reaches the link: the booth is away",
                timeout=20,
            )
            assert link.state != "connected" and link.frames == 0
            rebuilds = link.rebuilds
            await polls(supervisor, 2)
            assert link.rebuilds == rebuilds, "no offer while the server says it is away"
            await wait_for(
                lambda: "away" in str(screen.query_one("#resolver-link").render()),
                "the resolver is told the booth is away",
            )

            booth = same_booth(server, keys)
            assert await booth.start() == visit, "the booth resumes the escalated visit"
            await wait_for(
                lambda: engine.links.get(visit) is link and link.state == "connected",
                "the link connects once the booth is back (not taken again)",
                timeout=30,
            )
            await wait_for(lambda: link.frames > 10, "the booth's frames arrive", timeout=30)
            await wait_for(
                lambda: booth.barge.heard.heard_within(SUPERVISOR_FREQUENCY, 0.3),
                "the booth plays the supervisor's tone",
                timeout=30,
            )

            # it drops during the resolution, and comes back
            await booth.close()
            await wait_for(
                lambda: link.booth_present is False,
                "a poll tells the link the booth dropped",
                timeout=30,
            )
            frames = link.frames
            booth = same_booth(server, keys)
            assert await booth.start() == visit
            await wait_for(
                lambda: link.state == "connected" and link.frames > frames + 10,
                "linked again after the drop, frames arriving",
                timeout=40,
            )
            await wait_for(
                lambda: booth.barge.heard.heard_within(SUPERVISOR_FREQUENCY, 0.3),
                "the booth plays the supervisor's tone again",
                timeout=30,
            )
            assert link.booth_present is True
            assert engine.links[visit] is link and visit in engine.resolving
            assert visits[visit].taken_by == "sri" and visits[visit].state == "escalated"
    finally:
        await booth.close()
        await officer.close()
