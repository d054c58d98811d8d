"""Every key of the officer's console, driven through Textual's pilot against a fake desk
session (tests/console_fake.py: no sockets; it answers by the server's rules and records
each request). The console against a real server: tests/test_console_live.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from conftest import wait_for
from console_fake import REASONS, FakeDeskSession, snapshot, visit_view

from lapak.console.app import LapakConsole
from lapak.console.config import ConsoleConfig
from lapak.console.screens import (
    ConfirmQuit,
    ConfirmScreen,
    HelpScreen,
    NoteScreen,
    OfficeOverview,
    PickScreen,
)
from lapak.console.supervisor import SupervisorConsole

SIZE = (160, 48)


def officer(**kwargs: Any) -> LapakConsole:
    return LapakConsole("ws://fake", "token", media=False, session_factory=FakeDeskSession,
                        **kwargs)  # fmt: skip


def fake(app: LapakConsole) -> FakeDeskSession:
    session = app.session
    assert isinstance(session, FakeDeskSession)
    return session


async def ready(app: LapakConsole, n: int = 3) -> None:
    """The server's snapshot: n booths, booth i in slot i, started in that order."""
    await wait_for(lambda: fake(app).connected, "the session started")
    fake(app).load(snapshot([visit_view(i) for i in range(1, n + 1)]))
    await wait_for(lambda: len(app.model.visits) == n, f"{n} visits on the officer's desk")
    await wait_for(lambda: app.tile(n).info.visit is not None, f"tile {n} shows its visit")


def visit_in(app: LapakConsole, slot: int) -> str:
    visit = app.model.visit_in_slot(slot)
    assert visit is not None, f"expected a visit in slot {slot}, slots: {app.model.by_slot()}"
    return visit.visit


def server_step(app: LapakConsole, visit: str, step: int) -> str:
    """The step's status as the (fake) server holds it."""
    return fake(app).server[visit].steps[step].status


async def on_air(pilot: Any, app: LapakConsole, slot: int) -> None:
    """Put a slot on air (decisions about it then go without a question)."""
    await pilot.press(str(slot))
    await wait_for(lambda: app.model.on_air == visit_in(app, slot), f"slot {slot} on air")


def message(app: LapakConsole) -> str:
    return app.desk_screen.message.render().plain


def selected(app: LapakConsole) -> int:
    return app.desk_screen.selected_slot


async def test_number_keys_tab_and_space_move_the_air() -> None:
    app = officer()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await pilot.press("2")
        await wait_for(lambda: ("focus", visit_in(app, 2)) in fake(app).calls, "focus sent")
        await wait_for(lambda: app.tile(2).info.on_air, "tile 2 marked ON AIR")
        assert "ON AIR" in str(app.tile(2).title_line.render())
        assert selected(app) == 2

        await pilot.press("tab")
        assert selected(app) == 3, "tab selects the next slot"
        await pilot.press("shift+tab", "shift+tab")
        assert selected(app) == 1, "shift+tab selects the previous slot"
        await pilot.press("shift+tab")
        assert selected(app) == 3, "selection wraps around the visible slots"

        # Slot 1 has waited longest (never spoken to, started first).
        await pilot.press("space")
        await wait_for(lambda: app.model.on_air == visit_in(app, 1), "space puts slot 1 on air")
        # Now slot 3 has never been spoken to; slot 2 was left just now.
        await pilot.press("space")
        await wait_for(
            lambda: app.model.on_air == visit_in(app, 3), "space then puts slot 3 on air"
        )
        assert app.model.silent_for(visit_in(app, 2), app.clock()) is not None

        await pilot.press("6")
        assert "slot 6 is empty" in message(app), "an empty slot says so in the status bar"
        assert selected(app) == 3, "an empty slot's key does not move the selection"


async def test_zero_puts_nobody_on_air() -> None:
    app = officer()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await on_air(pilot, app, 2)
        await pilot.press("0")
        await wait_for(lambda: ("focus", None) in fake(app).calls, "focus on nobody sent")
        await wait_for(lambda: app.model.on_air is None, "nobody on air on the console")
        assert not any(app.tile(s).info.on_air for s in (1, 2, 3))
        assert selected(app) == 2, "0 leaves the selection where it was"
        await wait_for(lambda: "nobody on air" in message(app), "the status line says so")
        assert any(row.keys == "0" for row in app.key_help()), "0 is in the help"


async def test_approve_shows_pending_until_the_ack() -> None:
    app = officer()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        visit = visit_in(app, 1)
        await on_air(pilot, app, 1)
        fake(app).hold = gate = asyncio.Event()  # the server answers once released
        await pilot.press("a")
        await wait_for(lambda: app.model.step_status(visit, 0) == "sending", "step 0 pending")
        await wait_for(lambda: "…" in str(app.tile(1).steps_line.render()), "drawn as sending")
        assert server_step(app, visit, 0) == "pending"
        gate.set()
        await wait_for(lambda: app.model.step_status(visit, 0) == "approved", "approved on ack")
        assert server_step(app, visit, 0) == "approved"
        assert ("decide", visit, 0, "approve", None) in fake(app).calls
        await wait_for(lambda: "✔" in str(app.tile(1).steps_line.render()), "drawn approved")


async def test_refused_decision_shows_the_servers_truth_and_its_message() -> None:
    app = officer()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        visit = visit_in(app, 1)
        await on_air(pilot, app, 1)
        await pilot.press("a")
        await wait_for(lambda: app.model.step_status(visit, 0) == "approved", "step 0 approved")
        # The console's copy goes stale (as after a missed delta): it believes step 0 pending.
        stale = app.model.visits[visit]
        steps = [msgspec.structs.replace(stale.steps[0], status="pending"), *stale.steps[1:]]
        app.model.visits[visit] = msgspec.structs.replace(stale, steps=steps, current_step=0)
        app.model.acked.clear()
        await pilot.press("a")
        await wait_for(lambda: "step_not_pending" in message(app), "the server's code shown")
        assert "slot 1 · Claimant 1" in message(app), "the refusal names slot and claimant"
        # Not the console's guess: the server's state, fetched again after the refusal.
        await wait_for(
            lambda: app.model.step_status(visit, 0) == "approved", "the server's truth: approved"
        )
        await wait_for(
            lambda: str(app.tile(1).steps_line.render()).startswith("✔"), "shown as approved"
        )
        assert server_step(app, visit, 0) == "approved", "nothing changed"


async def test_reject_picks_a_reason_by_keyboard_and_reopen_clears_it() -> None:
    app = officer()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        visit = visit_in(app, 1)
        welcome = fake(app).welcome
        assert welcome is not None and len(welcome.reasons) >= 2, "the server's reasons"
        await on_air(pilot, app, 1)
        await pilot.press("x")
        await wait_for(lambda: isinstance(app.screen, PickScreen), "the reason picker")
        title = app.screen.title_text  # type: ignore[attr-defined]
        assert "slot 1 · Claimant 1" in title, f"the reject dialog names the claimant: {title}"
        assert app.tile(1).video.paused, "video pauses under the picker"
        await pilot.press("down", "enter")  # the second reason
        await wait_for(lambda: app.model.step_status(visit, 0) == "rejected", "step 0 rejected")
        step = fake(app).server[visit].steps[0]
        assert (step.status, step.reason) == ("rejected", REASONS[1])
        assert not app.tile(1).video.paused, "video resumes after the picker"

        await pilot.press("x", "escape")
        await pilot.pause()
        assert server_step(app, visit, 1) == "pending", "esc cancels"

        await pilot.press("o")
        await wait_for(
            lambda: server_step(app, visit, 0) == "pending", "reopen clears step 0 at the server"
        )
        await wait_for(lambda: app.model.step_status(visit, 0) == "pending", "step 0 pending")
        await pilot.press("o")
        await pilot.pause()
        assert "reopen" in message(app)


async def test_finish_asks_the_outcome_and_escalate_asks_a_note() -> None:
    app = officer()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        first, second = visit_in(app, 1), visit_in(app, 2)
        await on_air(pilot, app, 1)
        for _ in range(6):  # every step approved: completed is possible
            await pilot.press("a")
        await wait_for(
            lambda: all(s.status == "approved" for s in fake(app).server[first].steps),
            "every step of visit 1 approved",
        )
        await wait_for(lambda: app.model.next_step(first) is None, "the console knows")
        await wait_for(
            lambda: app.model.approved_count(first)[0] == 6, "the console has the server's view"
        )
        await pilot.press("d")
        await wait_for(lambda: isinstance(app.screen, PickScreen), "the outcome picker")
        assert "slot 1 · Claimant 1" in app.screen.title_text  # type: ignore[attr-defined]
        await pilot.press("1")  # completed
        await wait_for(lambda: fake(app).server[first].state == "ended", "visit 1 ended")
        assert fake(app).server[first].outcome == "completed"
        await wait_for(lambda: app.model.visit_in_slot(1) is None, "slot 1 empties")
        await wait_for(lambda: app.tile(1).info.visit is None, "tile 1 empties")

        await on_air(pilot, app, 2)
        await pilot.press("e")
        await wait_for(lambda: isinstance(app.screen, NoteScreen), "the note box")
        await pilot.press(*"needs review", "enter")
        await wait_for(lambda: fake(app).server[second].state == "escalated", "visit 2 handed over")
        assert ("end_visit", second, "escalated", "needs review") in fake(app).calls
        await wait_for(
            lambda: app.model.visit_in_slot(2) is None, "it left the desk: slot 2 is free"
        )
        await wait_for(lambda: "handed to a supervisor" in message(app), "the officer is told")


async def test_zoom_help_palette_and_quit_confirmation() -> None:
    app = officer()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        shown = [s for s in range(1, 7) if app.tile(s).display]
        assert shown == [1, 2, 3], f"three booths show three tiles, got {shown}"
        await pilot.press("tab", "z")
        assert [s for s in range(1, 7) if app.tile(s).display] == [2], "zoom shows slot 2 only"
        await pilot.pause()
        assert app.tile(2).size.width > SIZE[0] - 4
        await pilot.press("z")
        assert [s for s in range(1, 7) if app.tile(s).display] == [1, 2, 3]

        await pilot.press("question_mark")
        await wait_for(lambda: isinstance(app.screen, HelpScreen), "the help screen")
        assert all(app.tile(s).video.paused for s in (1, 2, 3)), "help pauses the video"
        video = app.tile(1).video
        middle = "".join(seg.text for seg in video.render_line(video.size.height // 2))
        assert "video paused" in middle, f"a paused tile says so, not connecting: {middle!r}"
        labels = [row.label for row in app.screen.rows]  # type: ignore[attr-defined]
        assert "Approve" in labels and "Reopen" in labels and "Snapshot" in labels
        await pilot.press("escape")
        await wait_for(lambda: not isinstance(app.screen, HelpScreen), "help closes")

        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Approve" in titles and "Put booth 3 on air" in titles, titles

        for quit_key in ("q", "ctrl+q", "ctrl+c"):
            await pilot.press(quit_key)
            await wait_for(lambda: isinstance(app.screen, ConfirmQuit), f"{quit_key} asks first")
            assert not app.query("Toast") and not app.screen.query("Toast"), "no toast"
            await pilot.press("1")  # stay
            await wait_for(lambda: app.screen is app.desk_screen, "back at the desk")
            assert app.is_running
        await pilot.press("q", "2")  # quit
        await wait_for(lambda: not app.is_running, "the console quits")


async def test_zoom_tells_the_server_which_booth_to_send_full_video() -> None:
    app = officer()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        zooms = lambda: [c for c in fake(app).calls if c[0] == "zoom"]  # noqa: E731
        assert zooms() == [], "nothing zoomed, nothing said"
        await pilot.press("tab", "z")
        await wait_for(lambda: zooms() == [("zoom", visit_in(app, 2))], "zoom on slot 2 sent")
        await pilot.press("tab")  # the selection moves while zoomed: the zoom follows it
        await wait_for(lambda: zooms()[-1] == ("zoom", visit_in(app, 3)), "zoom follows")
        await pilot.press("z")
        await wait_for(lambda: zooms()[-1] == ("zoom", None), "unzoom sent")
        count = len(zooms())
        await pilot.press("tab")
        await pilot.pause()
        assert len(zooms()) == count, "moving the selection unzoomed tells the server nothing"


async def test_mute_toggles_the_microphone() -> None:
    app = LapakConsole("ws://fake", "token", session_factory=FakeDeskSession)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: fake(app).connected, "connected")
        engine = app.media
        assert engine is not None and hasattr(engine, "set_muted"), "the officer's engine"
        assert engine.muted is False
        await pilot.press("m")
        assert engine.muted is True
        assert "MUTED" in app.desk_screen.mic.render().plain
        await pilot.press("m")
        assert engine.muted is False


async def test_keys_rebind_from_config_and_labels_follow_the_language() -> None:
    config = ConsoleConfig(keys={"approve": "y", "zoom": "f2"})
    app = officer(config=config, language="id")
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        visit = visit_in(app, 1)
        await on_air(pilot, app, 1)
        await pilot.press("a")
        await pilot.pause()
        assert app.model.step_status(visit, 0) == "pending", "a no longer approves"
        await pilot.press("y")
        await wait_for(lambda: app.model.step_status(visit, 0) == "approved", "y approves")
        await pilot.press("f2")
        assert app.desk_screen.zoomed
        labels = {entry.binding.description for entry in app.active_bindings.values()}
        assert "Setujui" in labels and "Perbesar" in labels, labels
        rows = {row.label: row.keys for row in app.key_help()}
        assert rows["Setujui"] == "y", rows


async def test_supervisor_is_read_only_and_sees_the_office() -> None:
    supervisor = SupervisorConsole("ws://fake", "token", media=False,
                                   session_factory=FakeDeskSession)  # fmt: skip
    async with supervisor.run_test(size=SIZE) as pilot:
        await ready(supervisor)
        assert fake(supervisor).read_only, "the session only watches"
        banner = supervisor.desk_screen.banner
        assert banner.display and "READ-ONLY" in banner.render().plain
        bound = set(supervisor.active_bindings)
        for key in ("a", "x", "o", "d", "e", "s", "m", "space", "1", "2"):
            assert key not in bound, f"{key} must not be bound for a supervisor"
        calls = list(fake(supervisor).calls)
        await pilot.press("a", "1", "x", "d")
        await pilot.pause()
        assert fake(supervisor).calls == calls, "no request from a supervisor's keys"
        visit = visit_in(supervisor, 1)
        assert fake(supervisor).server[visit].steps[0].status == "pending"
        assert isinstance(supervisor.screen, type(supervisor.desk_screen))

        await pilot.press("v")
        await wait_for(lambda: isinstance(supervisor.screen, OfficeOverview), "the overview")
        figures = supervisor.screen.figures  # type: ignore[attr-defined]
        assert [d.desk for d in figures.desks] == ["d1"]
        assert figures.desks[0].load == 3
        await pilot.press("escape")
        await pilot.press("w")
        await wait_for(lambda: isinstance(supervisor.screen, PickScreen), "the desk picker")
        await pilot.press("escape")


async def test_a_key_meant_for_the_booth_on_air_asks_before_landing_on_another() -> None:
    """Slot 1 on air, ``tab`` then ``a``: the console names booth-02's claimant and asks."""
    app = officer()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        second = visit_in(app, 2)
        await on_air(pilot, app, 1)
        await pilot.press("tab", "a")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen), "asks first")
        title = app.screen.title_text  # type: ignore[attr-defined]
        assert "slot 2 · Claimant 2" in title and "booth-02" in title, title
        assert "slot 1 · Claimant 1" in title, f"names who is on air: {title}"
        await pilot.press("escape")
        await wait_for(lambda: "cancelled" in message(app), "the cancel is echoed")
        assert "slot 2 · Claimant 2" in message(app)
        assert server_step(app, second, 0) == "pending", "nothing decided"

        await pilot.press("a")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen), "asks again")
        await pilot.press("2")  # yes, for this claimant
        await wait_for(lambda: server_step(app, second, 0) == "approved", "approved")
        await wait_for(lambda: "recorded" in message(app), "echoed")
        assert "slot 2 · Claimant 2" in message(app), message(app)


async def test_finish_offers_only_outcomes_that_match_the_steps() -> None:
    """No step approved: ``completed`` is shown with the reason it is not possible and cannot
    be picked; the server's own refusal (``outcome_mismatch``) is shown if it comes."""
    app = officer()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        first = visit_in(app, 1)
        await on_air(pilot, app, 1)
        await pilot.press("d")
        await wait_for(lambda: isinstance(app.screen, PickScreen), "the outcome picker")
        picker = app.screen
        assert isinstance(picker, PickScreen)
        labels = dict(picker.choices)
        assert "every step approved (0/6" in labels["completed"], labels
        assert "rejected step" in labels["rejected"], labels
        await pilot.press("1", "2")  # neither can be picked
        await pilot.pause()
        assert app.screen is picker, "a refused outcome is not picked"
        assert fake(app).server[first].state == "active"
        await pilot.press("escape")

        visit = app.model.visits[first]
        await app.end_visit(visit, "completed", "")  # as if the console's copy were stale
        assert "outcome_mismatch" in message(app), message(app)
        assert "slot 1 · Claimant 1" in message(app)
        assert fake(app).server[first].state == "active"

        await pilot.press("x", "enter")  # reject step 1: rejected becomes possible
        await wait_for(lambda: app.model.step_status(first, 0) == "rejected", "rejected")
        await pilot.press("d")
        await wait_for(lambda: isinstance(app.screen, PickScreen), "the outcome picker")
        await pilot.press("2")
        await wait_for(lambda: fake(app).server[first].state == "ended", "ended")
        assert fake(app).server[first].outcome == "rejected"


async def test_a_burst_of_changes_is_one_redraw_of_the_tiles_it_names() -> None:
    """Deltas arriving together merge into one ``DeskChanged``; only their tiles redraw."""
    app = officer()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        app.clock_timer.pause()  # its once-a-second redraw of every tile would count too
        await pilot.pause()
        drawn: list[int] = []
        for slot in (1, 2, 3):
            tile = app.tile(slot)
            original = tile.update_info

            def spy(info: Any, slot: int = slot, original: Any = original) -> None:
                drawn.append(slot)
                original(info)

            tile.update_info = spy  # type: ignore[method-assign]
        session = fake(app)
        view = session.server["V2"]
        for name in ("A", "B", "C"):  # no await between them: one burst
            session.change(msgspec.structs.replace(view, name=name))
        await wait_for(lambda: app.tile(2).info.name == "C", "tile 2 shows the last name")
        await pilot.pause()
        assert drawn == [2], f"one redraw of tile 2 only, got {drawn}"


async def test_the_sessions_end_decides_the_apps_end_in_one_place() -> None:
    for reason, detail, ended, says in (
        ("replaced", "replaced: a newer console", "replaced", "took over"),
        ("refused", "token_expired: expired", "refused", "token_expired"),
    ):
        app = officer()
        async with app.run_test(size=SIZE):
            await ready(app)
            fake(app).end(reason, detail)
            await wait_for(lambda: app.return_code is not None, "the console stops")  # noqa: B023
        assert app.ended == ended, (reason, app.ended)
        assert app.fatal is not None and says in app.fatal, app.fatal
    wrong = officer()
    fake(wrong).start_as = fake(wrong).start_as.__class__(
        **{**msgspec.structs.asdict(fake(wrong).start_as), "role": "supervisor"}
    )
    async with wrong.run_test(size=SIZE):
        await wait_for(lambda: wrong.return_code is not None, "the console stops")
    assert wrong.ended == "refused" and wrong.fatal is not None
    assert "lapak supervise" in wrong.fatal, wrong.fatal
