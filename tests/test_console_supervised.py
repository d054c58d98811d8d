"""The officer sees who coaches or barges the desk: the server's ``supervision`` fed through
the fake desk session (tests/console_fake.py) into the console (a line above the tiles, in
English and Indonesian, gone on ``monitor`` and while the connection is lost); and the real
desk session against a real server, which forgets the supervision when the officer's
connection drops and learns it again from the server after the reconnect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import wait_for
from console_fake import FakeDeskSession, fake, ready

from lapak.console import i18n
from lapak.console.app import LapakConsole
from lapak.media.desk_session import DeskChange, DeskSession
from lapak.signaling.client import Backoff
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

SIZE = (160, 48)


@pytest.fixture(autouse=True)
def english_after() -> Iterator[None]:
    """The language is process-wide: every test leaves it English."""
    yield
    i18n.set_language("en")


def officer(**kwargs: object) -> LapakConsole:
    return LapakConsole("ws://fake", "token", media=False, session_factory=FakeDeskSession,
                        **kwargs)  # type: ignore[arg-type]  # fmt: skip


def line(app: LapakConsole) -> str:
    return app.desk_screen.supervised.render().plain


def shown(app: LapakConsole) -> bool:
    """Whether the line takes a row on screen (its style says so, and its size)."""
    widget = app.desk_screen.supervised
    return widget.display and widget.size.height == 1


async def test_nobody_supervising_shows_no_line_and_takes_no_row() -> None:
    app = officer()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await pilot.pause()
        assert not shown(app) and line(app) == ""
        assert app.desk_screen.grid.region.y == 0, "the tiles start at the top as before"


async def test_coach_then_barge_then_monitor_in_english() -> None:
    app = officer()
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        fake(app).supervision("sri", "coach")
        await wait_for(lambda: "Coached by sri" in line(app), "the coach shown")
        await wait_for(lambda: shown(app), "the line takes its row")
        widget = app.desk_screen.supervised
        assert widget.has_class("coach") and not widget.has_class("barge")
        assert "the claimant" not in line(app)
        assert app.desk_screen.grid.region.y == 1, "the tiles moved down one row for it"

        fake(app).supervision("sri", "barge")
        await wait_for(lambda: "sri is barging (the claimant hears them)" in line(app), "barge")
        assert widget.has_class("barge") and not widget.has_class("coach")
        assert "Coached" not in line(app)

        fake(app).supervision("sri", "monitor")
        await wait_for(lambda: not shown(app), "gone on monitor")
        assert line(app) == "" and not widget.has_class("barge")
        await pilot.pause()
        assert app.desk_screen.grid.region.y == 0


async def test_indonesian_lines() -> None:
    app = officer(language="id")
    async with app.run_test(size=SIZE) as _pilot:
        await ready(app)
        fake(app).supervision("sri", "coach")
        await wait_for(lambda: "Dibimbing oleh sri" in line(app), "coach in Indonesian")
        fake(app).supervision("sri", "barge")
        await wait_for(lambda: "sri ikut bicara (pemohon mendengarnya)" in line(app), "barge")


async def test_gone_while_the_connection_is_lost_and_back_when_connected() -> None:
    app = officer()
    async with app.run_test(size=SIZE) as _pilot:
        await ready(app)
        fake(app).supervision("sri", "barge")
        await wait_for(lambda: shown(app), "barging shown")
        fake(app).drop()
        await wait_for(lambda: not shown(app), "hidden while the connection is lost")
        assert line(app) == ""
        fake(app).connected = True
        fake(app).supervision("sri", "coach")  # the server tells again after the new hello
        await wait_for(lambda: "Coached by sri" in line(app) and shown(app), "shown again")


async def test_a_barge_is_named_before_a_coach_and_both_are_shown() -> None:
    app = officer()
    async with app.run_test(size=SIZE) as _pilot:
        await ready(app)
        fake(app).supervision("sri", "coach")
        fake(app).supervision("budi", "barge")
        await wait_for(lambda: "·" in line(app), "both named")
        assert line(app).index("budi is barging") < line(app).index("Coached by sri")
        assert app.desk_screen.supervised.has_class("barge"), "styled for what the claimant hears"
        fake(app).supervision("budi", "monitor")
        await wait_for(lambda: line(app) == "Coached by sri (only you hear them)", "one left")


# -- the real desk session against a real server ---------------------------------------------


async def test_the_session_forgets_on_a_drop_and_learns_again_after_hello(
    server: SignalServer, keys: KeyRing
) -> None:
    # What the console could read at each change: (connected, supervisors shown, change).
    # The reconnect is 50 ms away, so "lost" is caught where it happens, not by polling.
    seen: list[tuple[bool, int, DeskChange]] = []

    def on_change(change: DeskChange) -> None:
        seen.append((desk.connected, len(desk.supervisions), change))

    desk = DeskSession(
        server.url, keys.issue("officer", "ana", "main", desk="d1"), engine=None,
        on_change=on_change, policy=Backoff(first=0.05, cap=0.2),
    )  # fmt: skip
    coach = DeskSession(
        server.url, keys.issue("supervisor", "sri", "main", grants=["coach"]), engine=None,
        watch="d1", read_only=True,
    )  # fmt: skip
    try:
        await desk.start()
        await coach.start()
        await coach.supervise("d1", "coach")
        await wait_for(lambda: len(desk.supervisions) == 1, "the officer told of the coach")
        [told] = desk.supervisions.values()
        assert (told.sub, told.mode, told.desk) == ("sri", "coach", "d1")
        assert any(c.desk for _, _, c in seen), "the console hears of it as a desk change"

        ws = desk.client._ws
        assert ws is not None and ws.transport is not None
        seen.clear()
        ws.transport.abort()  # the officer's network drops
        await wait_for(lambda: any(not up for up, _, _ in seen), "the loss noticed")
        # The first change after the drop: the coach no longer shown, the desk redrawn (the
        # new hello's ``supervision`` may then come before the client says it is connected).
        lost = [(shown, change) for up, shown, change in seen if not up]
        assert lost[0][0] == 0 and lost[0][1].desk, f"unknown while lost: not shown: {lost}"
        await wait_for(lambda: desk.client.reconnects == 1, "reconnected")
        await wait_for(lambda: len(desk.supervisions) == 1, "told again after the new hello")
        assert [s.mode for s in desk.supervisions.values()] == ["coach"]

        await coach.supervise("d1", "monitor")
        await wait_for(lambda: desk.supervisions == {}, "gone on monitor")
    finally:
        await coach.close()
        await desk.close()
