"""The officer's console against a real server (``SignalServer`` on loopback) through the real
desk session: what only a real connection shows — an approval reaching the server's state,
reconnecting, the server ending a session for good, the server's clock for "last spoke",
a booth that leaves, a snapshot of live video. Booths are real ``SignalClient``s sending
``start_visit`` (no video), except for the snapshot (a real BoothAgent: aiortc, VP8).
Every key's own behaviour is tested against a fake session in tests/test_console_keys.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for

from lapak.console.app import LapakConsole
from lapak.console.config import ConsoleConfig
from lapak.console.screens import HelpScreen
from lapak.console.supervisor import SupervisorConsole
from lapak.media.booth import BoothMediaConfig
from lapak.media.simulator import make_booths
from lapak.media.testcard import identify_booth
from lapak.signaling.client import SignalClient
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

SIZE = (160, 48)


async def start_booths(server: SignalServer, keys: KeyRing, n: int) -> list[SignalClient]:
    """n booths, each with a started visit; started in order, so booth i takes slot i + 1."""
    booths = []
    for i in range(n):
        name = f"booth-{i + 1:02d}"
        client = SignalClient(server.url, keys.issue("booth", name, "main", booth=name))
        await client.connect()
        await client.request(
            {
                "type": "start_visit",
                "claimant": {"name": f"Claimant {i + 1}", "membership_no": f"1000000000{i}"},
            }
        )
        booths.append(client)
    return booths


@pytest.fixture
async def booths(server: SignalServer, keys: KeyRing) -> AsyncIterator[list[SignalClient]]:
    clients = await start_booths(server, keys, 3)
    try:
        yield clients
    finally:
        await asyncio.gather(*(c.close() for c in clients))


def officer(server: SignalServer, keys: KeyRing, **kwargs: Any) -> LapakConsole:
    token = keys.issue("officer", "ana", "main", desk="d1")
    return LapakConsole(server.url, token, media=False, **kwargs)


def visit_in(app: LapakConsole, slot: int) -> str:
    visit = app.model.visit_in_slot(slot)
    assert visit is not None, f"expected a visit in slot {slot}, slots: {app.model.by_slot()}"
    return visit.visit


def server_visit(server: SignalServer, visit: str) -> Any:
    assert server.hub is not None
    return server.hub.state.visits[visit]


async def ready(app: LapakConsole, n: int = 3) -> None:
    await wait_for(lambda: len(app.model.visits) == n, f"{n} visits on the officer's desk")


async def on_air(pilot: Any, app: LapakConsole, slot: int) -> None:
    await pilot.press(str(slot))
    await wait_for(lambda: app.model.on_air == visit_in(app, slot), f"slot {slot} on air")


def message(app: LapakConsole) -> str:
    return app.desk_screen.message.render().plain


def status(app: LapakConsole) -> str:
    return app.desk_screen.status.render().plain


async def test_approve_reaches_the_server_and_comes_back_to_the_tile(
    server: SignalServer, keys: KeyRing, booths: list[SignalClient]
) -> None:
    app = officer(server, keys)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        visit = visit_in(app, 1)
        await on_air(pilot, app, 1)
        await pilot.press("a")
        await wait_for(lambda: server_visit(server, visit).steps[0].status == "approved", "kept")
        await wait_for(lambda: app.model.step_status(visit, 0) == "approved", "approved on ack")
        await wait_for(lambda: "✔" in str(app.tile(1).steps_line.render()), "the tile says so")
        await wait_for(lambda: "recorded" in message(app), "the status line says so")


async def test_console_says_when_the_server_is_gone_and_reconnects(
    tmp_path: Path, keys: KeyRing
) -> None:
    first = SignalServer(tmp_path / "data", keys, port=0)
    await first.start()
    port = int(first.url.rsplit(":", 1)[1].split("/")[0])
    clients = await start_booths(first, keys, 2)
    app = officer(first, keys)
    second: SignalServer | None = None
    try:
        async with app.run_test(size=SIZE) as pilot:
            await ready(app, 2)
            await asyncio.gather(*(c.close() for c in clients))
            await first.close()
            await wait_for(
                lambda: "lost" in status(app) or "cannot" in status(app), "the status says: lost"
            )
            second = SignalServer(tmp_path / "data", keys, port=port)
            await second.start()
            await wait_for(lambda: "office main" in status(app), "reconnected")
            await ready(app, 2)
            visit = visit_in(app, 1)
            await on_air(pilot, app, 1)
            await pilot.press("a")
            await wait_for(
                lambda: app.model.step_status(visit, 0) == "approved", "approve after reconnect"
            )
            assert second.hub is not None
            assert second.hub.state.visits[visit].steps[0].status == "approved"
    finally:
        if second is not None:
            await second.close()
        await first.close()


async def test_supervisor_stays_connected_past_three_request_timeouts(
    server: SignalServer, keys: KeyRing, booths: list[SignalClient]
) -> None:
    """``watch`` is answered by a snapshot: the request must end there, not time out (it
    used to, so the view reconnected every request timeout, forever)."""
    timeout = 0.5
    supervisor = SupervisorConsole(
        server.url, keys.issue("supervisor", "sri", "main"), media=False, request_timeout=timeout
    )
    desk_app = officer(server, keys)
    async with desk_app.run_test(size=SIZE):
        await ready(desk_app)
    async with supervisor.run_test(size=SIZE):
        await wait_for(lambda: supervisor.session.connected, "the supervisor is connected")
        connected_at = time.monotonic()
        client = supervisor.session.client
        await wait_for(lambda: len(supervisor.model.visits) == 3, "it sees the desk")
        await wait_for(
            lambda: time.monotonic() - connected_at > 4 * timeout, "four request timeouts pass"
        )
        assert client.reconnects == 0, "no reconnect after connecting"
        assert client.connected.is_set()
        assert "lost" not in status(supervisor)


@pytest.mark.parametrize(
    ("token_of", "connects", "says"),
    [
        # signed with a key the server does not hold
        (lambda keys: KeyRing.generate().issue("officer", "ana", "main", desk="d1"),
         False, "refused the token"),
        # valid when the console starts, expired two seconds later
        (lambda keys: keys.issue("officer", "ana", "main", desk="d1", ttl=2.0), True,
         "token_expired"),
        # a supervisor's token runs `lapak supervise`, not the officer's console
        (lambda keys: keys.issue("supervisor", "sri", "main"), True, "lapak supervise"),
    ],
    ids=["refused", "expires", "wrong-role"],
)  # fmt: skip
async def test_console_whose_token_is_refused_stops_with_one_line(
    server: SignalServer,
    keys: KeyRing,
    token_of: Callable[[KeyRing], str],
    connects: bool,
    says: str,
) -> None:
    app = LapakConsole(server.url, token_of(keys), media=False)
    async with app.run_test(size=SIZE):
        await wait_for(lambda: app.return_code is not None, "the console stops")
    assert app.ended == "refused"  # the CLI exits 5 (EXIT_TOKEN)
    assert app.fatal is not None and says in app.fatal, app.fatal
    assert (app.session.welcome is not None) == connects, "welcomed before the end, or not"
    assert app.session.client.reconnects == 0, "no reconnect loop"


async def test_console_replaced_by_a_newer_one_exits_without_reconnecting(
    server: SignalServer, keys: KeyRing
) -> None:
    first = officer(server, keys)
    async with first.run_test(size=SIZE):
        await wait_for(lambda: first.session.connected, "the first console is connected")
        newer = SignalClient(server.url, keys.issue("officer", "ana", "main", desk="d1"))
        try:
            await newer.connect()
            await wait_for(lambda: first.return_code is not None, "the older console stops")
        finally:
            await newer.close()
    assert first.ended == "replaced"  # the CLI exits 7 (EXIT_REPLACED)
    assert first.fatal is not None and "took over" in first.fatal, first.fatal
    assert first.session.client.reconnects == 0, "no reconnect loop"


async def test_last_spoke_comes_from_the_server_and_survives_a_restart(
    server: SignalServer, keys: KeyRing, booths: list[SignalClient]
) -> None:
    app = officer(server, keys)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app)
        await on_air(pilot, app, 1)
        await on_air(pilot, app, 2)
    first = visit_in(app, 1)
    left_air = server_visit(server, first).last_on_air_at
    assert left_air is not None
    restarted = officer(server, keys, clock=lambda: left_air + 42.0)
    async with restarted.run_test(size=SIZE):
        await ready(restarted)
        assert restarted.model.silent_for(first, left_air + 42.0) == 42.0
        await wait_for(lambda: restarted.tile(1).info.silent_s == 42.0, "tile 1: 42 s ago")
        assert restarted.model.silent_for(visit_in(restarted, 2), left_air + 42.0) == 0.0


async def test_a_booth_that_left_is_away_and_its_abandoned_visit_is_told(
    tmp_path: Path, keys: KeyRing
) -> None:
    from lapak.signaling.config import ServerConfig

    srv = SignalServer(tmp_path / "data", keys, port=0, config=ServerConfig(grace_s=1.0))
    await srv.start()
    try:
        clients = await start_booths(srv, keys, 2)
        app = officer(srv, keys)
        async with app.run_test(size=SIZE) as pilot:
            await ready(app, 2)
            await pilot.press("2")
            await clients[1].close()
            await wait_for(lambda: app.tile(2).info.away_since is not None, "slot 2 away")
            assert "away since" in str(app.tile(2).meta_line.render())
            assert "reconnecting" not in str(app.tile(2).meta_line.render())
            await wait_for(lambda: app.model.visit_in_slot(2) is None, "abandoned after grace")
            await wait_for(lambda: "abandoned" in message(app), "the officer is told")
            assert "slot 2 · Claimant 2" in message(app), message(app)
            await clients[0].close()
    finally:
        await srv.close()


async def test_snapshot_saves_the_frame_and_records_its_hash_and_overlays_pause_video(
    server: SignalServer, keys: KeyRing, tmp_path: Path
) -> None:
    booths = make_booths(
        server.url, keys, 1, media=BoothMediaConfig(width=160, height=120, fps=15), seed=3
    )
    app = LapakConsole(
        server.url,
        keys.issue("officer", "ana", "main", desk="d1"),
        config=ConsoleConfig(snapshot_dir=tmp_path / "shots"),
    )
    try:
        await booths[0].start()
        async with app.run_test(size=(120, 40)) as pilot:
            video = app.tile(1).video  # held by reference: there before it is mounted
            await wait_for(
                lambda: video.last_rgb is not None and identify_booth(video.last_rgb) == 0,
                "tile 1 shows booth-01's test card",
                timeout=30,
            )
            await pilot.press("s")
            await wait_for(lambda: bool(app.snapshots), "a snapshot saved")
            path, digest = app.snapshots[0]
            assert path.parent == tmp_path / "shots" and path.suffix == ".png"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
            assert path.read_bytes().startswith(b"\x89PNG"), "the file is a PNG"
            assert server.hub is not None
            visit = booths[0].visit
            assert visit is not None
            await wait_for(
                lambda: server.hub.state.visits[visit].snapshots == 1,
                "the server records the snapshot in the visit's audit trail",
            )
            line = app.desk_screen.query_one("#message")
            await wait_for(
                lambda: "recorded" in line.render().plain, "the console says the server recorded it"
            )
            # At 100 columns the status line leaves the message ~45 characters: the outcome
            # ("snapshot recorded") must be among them, ahead of the hash and the long path.
            await pilot.resize_terminal(100, 40)
            await wait_for(lambda: line.size.width < 60, "the message narrows with the terminal")
            text = line.render().plain
            seen = text.index("recorded") + len("recorded")
            assert seen <= line.size.width, (
                f"'recorded' within the {line.size.width} visible columns: {text!r}"
            )
            assert str(path) in text, f"the file's path is still in the message: {text!r}"
            await pilot.resize_terminal(120, 40)

            await pilot.press("question_mark")
            await wait_for(lambda: isinstance(app.screen, HelpScreen), "help open")
            before = video.frames_painted
            assert app.media is not None
            link = app.media.links[visit]
            arrived = link.frames
            await wait_for(lambda: link.frames > arrived + 5, "more frames arrive under help")
            assert video.frames_painted == before, "no video is painted under the help screen"
            await pilot.press("escape")
            await wait_for(lambda: video.frames_painted > before + 3, "video resumes")
    finally:
        await asyncio.gather(*(b.close() for b in booths))
