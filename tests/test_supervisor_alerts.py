"""The supervisor's alerts and escalations screen, driven through Textual's pilot against the
fake desk session (tests/console_fake.py): ``n`` shows them, enter goes where an alert is,
``t`` takes the selected escalation, ``a``/``x``/``d`` resolve one taken. The server side of
every rule is tests/test_escalation.py."""

from __future__ import annotations

import msgspec
from conftest import wait_for
from console_fake import FakeDeskSession, snapshot, visit_view
from textual.widgets import DataTable

from lapak.console.escalations import AlertsScreen
from lapak.console.screens import OfficeOverview, PickScreen
from lapak.console.supervisor import SupervisorConsole
from lapak.signaling.messages import Alert, EscalationEntry, OfficeFigures

SIZE = (160, 48)


def escalation(n: int, *, taken_by: str | None = None) -> EscalationEntry:
    view = visit_view(n, desk=None, slot=None, state="escalated")  # type: ignore[arg-type]
    return EscalationEntry(
        visit=view.visit, booth=view.booth, office="main", desk="d1", by="ana",
        note=f"signature differs {n}", escalated_at=900.0, waiting_s=95.0, taken_by=taken_by,
        booth_present=True, visit_view=view,
    )  # fmt: skip


def figures(*escalations: EscalationEntry, alerts: tuple[Alert, ...] = ()) -> OfficeFigures:
    return OfficeFigures(
        office="main", desks=[], queue=[], median_wait_s=None, visits_today=0,
        visits_per_hour=0.0, outcomes={}, escalations=list(escalations), alerts=list(alerts),
    )  # fmt: skip


SILENT = Alert(kind="not_spoken_to", office="main", desk="d2", slot=2, visit="V2",
               booth="booth-02", seconds=320.0)  # fmt: skip
WAITING = Alert(kind="escalation_waiting", office="main", desk="d1", slot=None, visit="V7",
                booth="booth-07", seconds=95.0)  # fmt: skip
QUEUED = Alert(kind="queue_wait", office="main", desk=None, slot=None, visit="V9",
               booth="booth-09", seconds=400.0)  # fmt: skip


def supervisor() -> SupervisorConsole:
    return SupervisorConsole("ws://fake", "token", media=False, session_factory=FakeDeskSession)


def fake(app: SupervisorConsole) -> FakeDeskSession:
    assert isinstance(app.session, FakeDeskSession)
    return app.session


async def ready(app: SupervisorConsole) -> None:
    await wait_for(lambda: fake(app).connected, "the session started")
    fake(app).load(snapshot([visit_view(1), visit_view(2)]))
    await wait_for(lambda: len(app.model.visits) == 2, "the watched desk's visits")


def rows(app: SupervisorConsole, table: str) -> list[list[str]]:
    widget = app.screen.query_one(f"#{table}", DataTable)
    return [[str(c) for c in widget.get_row_at(i)] for i in range(widget.row_count)]


def message(app: SupervisorConsole) -> str:
    return app.desk_screen.message.render().plain


async def test_alerts_screen_lists_escalations_and_takes_and_resolves_one() -> None:
    app = supervisor()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        fake(app).stats = figures(escalation(7), alerts=(WAITING, SILENT, QUEUED))
        await pilot.press("n")
        await wait_for(lambda: isinstance(app.screen, AlertsScreen), "the alerts screen")
        assert [r[:2] for r in rows(app, "alert-rows")] == [
            ["escalation waiting", "from desk d1"],
            ["not spoken to", "desk d2 slot 2"],
            ["long queue wait", "queue"],
        ]
        [row] = rows(app, "escalation-rows")
        assert row[:5] == ["booth-07", "d1", "signature differs 7", "1:35", "nobody yet"], row

        await pilot.press("a")
        await wait_for(lambda: "take this escalation first" in message(app), "take first")
        assert not [c for c in fake(app).calls if c[0] == "decide"]

        await pilot.press("enter")  # on the escalation_waiting alert: its escalation row
        await pilot.press("t")
        await wait_for(lambda: ("take_escalation", "V7") in fake(app).calls, "take sent")
        await wait_for(lambda: rows(app, "escalation-rows")[0][4] == "sri", "shown as mine")

        await pilot.press("a")
        await wait_for(
            lambda: ("decide", "V7", 0, "approve", None) in fake(app).calls, "approve step 0"
        )
        await pilot.press("x")
        await wait_for(lambda: isinstance(app.screen, PickScreen), "the reasons")
        await pilot.press("1")
        await wait_for(
            lambda: ("decide", "V7", 0, "reject", "document unreadable") in fake(app).calls,
            "reject with the picked reason",
        )
        await wait_for(lambda: isinstance(app.screen, AlertsScreen), "back to the alerts")
        await pilot.press("d")
        await wait_for(lambda: isinstance(app.screen, PickScreen), "the outcomes")
        await pilot.press("3")
        await wait_for(
            lambda: ("end_visit", "V7", "abandoned", None) in fake(app).calls, "finished"
        )


async def test_enter_on_an_alert_goes_to_its_desk_and_slot() -> None:
    app = supervisor()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        fake(app).stats = figures(alerts=(SILENT, QUEUED))
        await pilot.press("n")
        await wait_for(lambda: isinstance(app.screen, AlertsScreen), "the alerts screen")
        await pilot.press("enter")
        await wait_for(lambda: ("watch", "d2") in fake(app).calls, "watches the alert's desk")
        await wait_for(lambda: app.desk_screen.selected_slot == 2, "its slot selected")
        await pilot.press("n")
        await wait_for(lambda: isinstance(app.screen, AlertsScreen), "the alerts again")
        await pilot.press("down", "enter")  # the queue: the office overview shows it
        await wait_for(lambda: isinstance(app.screen, OfficeOverview), "the overview")


async def test_a_refused_take_is_shown_and_new_escalations_are_announced() -> None:
    app = supervisor()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        fake(app).stats = figures(escalation(7, taken_by="tono"))
        await app.refresh_alerts()
        await pilot.press("n")
        await wait_for(lambda: isinstance(app.screen, AlertsScreen), "the alerts screen")
        await pilot.press("t")
        await wait_for(lambda: "cannot take" in message(app), "the server's refusal shown")
        assert "tono" in message(app)
        await pilot.press("escape")
        stats = fake(app).stats
        assert stats is not None
        fake(app).stats = msgspec.structs.replace(
            stats, escalations=[*stats.escalations, escalation(8)]
        )
        await app.refresh_alerts()
        assert "escalation waiting: booth-08" in message(app)


async def test_without_figures_the_key_says_so() -> None:
    app = supervisor()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await pilot.press("n")
        await wait_for(lambda: "alerts are not available" in message(app), "said so")
        assert not isinstance(app.screen, AlertsScreen)
