"""Escalation hand-off end to end against a real server (``SignalServer`` on loopback): the
officer's console escalates with ``e`` and a note, the visit leaves the desk and the next
claimant takes the slot; a supervisor's console with grant ``resolve`` sees it in ``n``,
takes it with ``t``, approves its step with ``a`` and finishes it with ``d``. Booths are
real ``SignalClient``s (no media); the kiosk's side is tests/test_kiosk.py."""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import wait_for
from textual.widgets import DataTable

from lapak.console.app import LapakConsole
from lapak.console.escalations import AlertsScreen
from lapak.console.screens import NoteScreen, PickScreen
from lapak.console.supervisor import SupervisorConsole
from lapak.signaling.audit import records
from lapak.signaling.client import SignalClient
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

SIZE = (160, 48)


async def booth(server: SignalServer, keys: KeyRing, n: int) -> SignalClient:
    name = f"booth-{n:02d}"
    client = SignalClient(server.url, keys.issue("booth", name, "main", booth=name))
    await client.connect()
    claimant = {"name": f"Claimant {n}", "membership_no": f"100000000{n}"}
    await client.request({"type": "start_visit", "claimant": claimant})
    return client


def state(server: SignalServer) -> Any:
    assert server.hub is not None
    return server.hub.state


async def test_escalation_hand_off_from_console_to_supervisor(
    server: SignalServer, keys: KeyRing
) -> None:
    admin = SignalClient(server.url, keys.issue("admin", "root", "main"))
    await admin.connect()
    await admin.request({"type": "configure_desk", "desk": "d1", "capacity": 1})
    booths = [await booth(server, keys, n) for n in (1, 2)]
    officer = LapakConsole(server.url, keys.issue("officer", "ana", "main", desk="d1"), media=False)
    supervisor = SupervisorConsole(
        server.url, keys.issue("supervisor", "sri", "main", grants=["resolve"]), media=False
    )
    try:
        async with officer.run_test(size=SIZE) as pilot:
            await wait_for(lambda: len(officer.model.visits) == 1, "one seat, one visit")
            first = officer.model.visit_in_slot(1)
            assert first is not None
            await pilot.press("1")
            await wait_for(lambda: officer.model.on_air == first.visit, "on air")
            await pilot.press("e")
            await wait_for(lambda: isinstance(officer.screen, NoteScreen), "the note box")
            await pilot.press(*"photo differs", "enter")
            await wait_for(
                lambda: state(server).visits[first.visit].state == "escalated", "handed over"
            )
            second = next(v for v in state(server).visits.values() if v.booth == "booth-02")
            await wait_for(
                lambda: (
                    officer.model.visit_in_slot(1) is not None
                    and officer.model.visit_in_slot(1).visit == second.id
                ),  # type: ignore[union-attr]
                "the queued claimant takes the freed slot at once",
            )
        async with supervisor.run_test(size=SIZE) as pilot:
            await wait_for(lambda: supervisor.session.connected, "the supervisor is connected")
            await pilot.press("n")
            await wait_for(lambda: isinstance(supervisor.screen, AlertsScreen), "the alerts")
            table = supervisor.screen.query_one("#escalation-rows", DataTable)
            row = [str(c) for c in table.get_row_at(0)]
            assert row[:3] == ["booth-01", "d1", "photo differs"], row
            await pilot.press("t")
            await wait_for(
                lambda: state(server).visits[first.visit].taken_by == "sri", "taken by sri"
            )
            await wait_for(
                lambda: str(table.get_row_at(0)[4]) == "sri", "the screen shows it taken"
            )
            await pilot.press("a")
            await wait_for(
                lambda: state(server).visits[first.visit].steps[0].by == "sri",
                "sri approved its first step",
            )
            await pilot.press("d")
            await wait_for(lambda: isinstance(supervisor.screen, PickScreen), "the outcomes")
            await pilot.press("3")  # abandoned
            await wait_for(
                lambda: state(server).visits[first.visit].state == "ended", "sri ended it"
            )
            assert state(server).visits[first.visit].outcome == "abandoned"
    finally:
        await asyncio.gather(admin.close(), *(b.close() for b in booths))


async def test_a_supervisor_who_disconnects_mid_coach_is_logged_as_ended(
    server: SignalServer, keys: KeyRing
) -> None:
    """The shell commits the events of a disconnect: the audit trail says when the coach
    ended even though the supervisor never said ``monitor``, and even when nobody is told
    (the officer has gone too: the disconnect produces an event and no message)."""
    officer = SignalClient(server.url, keys.issue("officer", "ana", "main", desk="d1"))
    sri = SignalClient(
        server.url, keys.issue("supervisor", "sri", "main", grants=["coach"]), reconnect=False
    )
    await officer.connect()
    await sri.connect()
    try:
        await sri.request({"type": "supervise", "desk": "d1", "mode": "coach"})
        await officer.close()
        assert server.hub is not None
        hub = server.hub
        await wait_for(lambda: not hub.sessions.holders(("desk", "main", "d1")), "officer gone")
        await sri.close()

        def modes() -> list[str]:
            rows = records(server.data_dir)
            return [r["detail"]["mode"] for r in rows if r["kind"] == "supervision_changed"]

        await wait_for(lambda: modes() == ["coach", "monitor"], "the end is durable in the log")
        [ended] = [r for r in records(server.data_dir) if r["kind"] == "supervision_changed"][1:]
        assert (ended["by"], ended["role"], ended["desk"]) == ("sri", "supervisor", "d1")
    finally:
        await officer.close()
