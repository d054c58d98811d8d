"""The resolving supervisor's tests (issue 15: test_resolver_voice, _picture, _relink): the
steps they all take with the same real parts. An officer at d1 escalates a booth's visit,
supervisor sri's console (grant ``resolve``, media on, a 1600 Hz tone as microphone) connects,
opens the alerts and, at the end, finishes the visit with ``d`` as abandoned."""

from __future__ import annotations

from typing import Any

from conftest import wait_for

from lapak.console.escalations import AlertsScreen
from lapak.console.screens import PickScreen
from lapak.console.supervisor import SupervisorConsole
from lapak.media.booth import BoothAgent
from lapak.media.officer import SupervisorMedia
from lapak.signaling.client import SignalClient
from lapak.signaling.protocol import EndVisit
from lapak.signaling.server import SignalServer
from lapak.signaling.state import Visit
from lapak.signaling.tokens import KeyRing


def resolver_console(server: SignalServer, keys: KeyRing, **kwargs: Any) -> SupervisorConsole:
    """Supervisor sri's console: grant ``resolve``, its media engine on, the tone as its
    microphone; ``kwargs`` go to ``SupervisorConsole`` as they are."""
    return SupervisorConsole(
        server.url,
        keys.issue("supervisor", "sri", "main", grants=["resolve"]),
        media=True,
        audio_in="tone",
        **kwargs,
    )


async def escalate(
    officer: SignalClient, booth: BoothAgent, visits: dict[str, Visit], note: str
) -> str:
    """The officer (at d1) connects, the booth starts its visit, which is routed to d1, and
    the officer hands it over with ``note``. Returns the escalated visit."""
    await officer.connect()
    visit = await booth.start()
    await wait_for(lambda: visits[visit].desk == "d1", "the visit is routed to d1")
    await officer.request(EndVisit(visit=visit, outcome="escalated", note=note))
    await wait_for(lambda: visits[visit].state == "escalated", "handed over")
    return visit


async def connected_engine(supervisor: SupervisorConsole) -> SupervisorMedia:
    """The console's media engine, once its session is connected (inside ``run_test``)."""
    engine = supervisor.engine
    assert isinstance(engine, SupervisorMedia)
    await wait_for(lambda: supervisor.session.connected, "the supervisor is connected")
    return engine


async def open_alerts(supervisor: SupervisorConsole, pilot: Any) -> AlertsScreen:
    """``n``: the alerts screen, shown."""
    await pilot.press("n")
    await wait_for(lambda: isinstance(supervisor.screen, AlertsScreen), "the alerts")
    screen = supervisor.screen
    assert isinstance(screen, AlertsScreen)
    return screen


async def end_as_abandoned(
    supervisor: SupervisorConsole, pilot: Any, visits: dict[str, Visit], visit: str
) -> None:
    """``d`` then ``3``: sri ends the visit as abandoned and the console drops its link."""
    engine = supervisor.engine
    assert isinstance(engine, SupervisorMedia)
    await pilot.press("d")
    await wait_for(lambda: isinstance(supervisor.screen, PickScreen), "the outcomes")
    await pilot.press("3")  # abandoned
    await wait_for(lambda: visits[visit].state == "ended", "sri ended it")
    await wait_for(lambda: visit not in engine.links, "the link is dropped")
