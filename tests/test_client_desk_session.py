"""The client desk session (``media.desk_session``) against a real server: an officer's desk
from snapshot and deltas, a decision sending then acknowledged, a refusal resynced, a seq gap
resynced, a dropped connection reconnected and resumed, the ways a session ends for good, a
supervisor watching, and a media engine's links kept in step with the desk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import wait_for
from tests_support import free_port

from lapak.media.desk_session import DeskChange, DeskSession
from lapak.media.officer import OfficerMedia, OfficerMediaOptions
from lapak.signaling.client import Backoff, RequestError, SignalClient
from lapak.signaling.messages import Delta
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

CLAIMANT = {"name": "Siti", "membership_no": "123"}


def fast() -> Backoff:
    """Reconnect at once in tests (each session its own policy: it counts attempts)."""
    return Backoff(first=0.05, cap=0.2)


async def start_booth(server: SignalServer, keys: KeyRing, name: str) -> tuple[SignalClient, str]:
    booth = SignalClient(server.url, keys.issue("booth", name, "main", booth=name))
    await booth.connect()
    visit = (await booth.request({"type": "start_visit", "claimant": CLAIMANT})).visit
    assert isinstance(visit, str)
    return booth, visit


class Recorder:
    """Every ``DeskChange`` the session reported."""

    def __init__(self) -> None:
        self.changes: list[DeskChange] = []

    def __call__(self, change: DeskChange) -> None:
        self.changes.append(change)

    def saw(self, visit: str) -> bool:
        return any(visit in c.visits for c in self.changes)


@pytest.fixture
async def officer(
    server: SignalServer, keys: KeyRing
) -> AsyncIterator[tuple[DeskSession, Recorder]]:
    seen = Recorder()
    session = DeskSession(
        server.url,
        keys.issue("officer", "ana", "main", desk="d1"),
        engine=None,
        on_change=seen,
        policy=fast(),
    )
    try:
        yield session, seen
    finally:
        await session.close()


async def test_an_officer_session_follows_its_desk_and_decides(
    server: SignalServer, keys: KeyRing, officer: tuple[DeskSession, Recorder]
) -> None:
    session, seen = officer
    welcome = await session.start()
    assert (welcome.role, session.desk) == ("officer", "d1")
    assert session.model.synced and session.model.desk == "d1", "start waits for the snapshot"
    booth, visit = await start_booth(server, keys, "b1")
    try:
        await wait_for(lambda: visit in session.model.visits, "the delta seats the visit")
        assert seen.saw(visit), "the change names the visit"
        assert session.model.next_step(visit) == 0

        ack = await session.decide(visit, 0, "approve")
        assert (ack.visit, ack.step) == (visit, 0)
        assert session.model.step_status(visit, 0) == "approved"
        statuses = [c for c in seen.changes if visit in c.visits]
        assert len(statuses) >= 3, "seated, sending, acknowledged: each is a change"
        await wait_for(
            lambda: session.model.visits[visit].current_step == 1, "the delta's current_step"
        )
        focus = await session.focus(visit)
        assert focus.on_air == visit
        await wait_for(lambda: session.model.on_air == visit, "the server's on_air")
    finally:
        await booth.close()


@pytest.fixture
async def seated(
    server: SignalServer, keys: KeyRing, officer: tuple[DeskSession, Recorder]
) -> AsyncIterator[tuple[DeskSession, Recorder, str]]:
    """The officer's session started, with one booth's visit seated at its desk."""
    session, seen = officer
    await session.start()
    booth, visit = await start_booth(server, keys, "b1")
    try:
        await wait_for(lambda: visit in session.model.visits, "the visit is seated")
        yield session, seen, visit
    finally:
        await booth.close()


async def test_a_refused_decision_keeps_the_reason_and_resyncs(
    seated: tuple[DeskSession, Recorder, str],
) -> None:
    session, _, visit = seated
    await session.decide(visit, 0, "approve")
    seq = session.model.seq
    with pytest.raises(RequestError) as refused:
        await session.decide(visit, 0, "approve")  # our copy is wrong: it was decided
    assert refused.value.code == "step_not_pending"
    assert session.model.seq >= seq and session.model.synced, "resynced from a snapshot"
    assert session.model.step_status(visit, 0) == "approved", "the server's truth"
    assert not session.model.pending


async def test_a_gap_in_the_deltas_asks_for_a_fresh_snapshot(
    seated: tuple[DeskSession, Recorder, str],
) -> None:
    session, _, visit = seated
    model = session.model
    skipped = Delta(
        desk="d1", seq=model.seq + 2, officer="ana", on_air=None, closed=False,
        vacant=False, capacity=6, queue=0, visits=[],
    )  # fmt: skip
    await session._on_message(skipped)  # as if one delta had been lost on the way
    assert not model.synced
    await wait_for(lambda: model.synced, "the session watched its desk again")
    assert visit in model.visits


async def test_a_dropped_connection_reconnects_resumes_and_decides_again(
    seated: tuple[DeskSession, Recorder, str],
) -> None:
    session, seen, visit = seated
    ws = session.client._ws
    assert ws is not None and ws.transport is not None
    ws.transport.abort()  # the network drops under the session
    await wait_for(lambda: session.client.reconnects == 1, "the session reconnects")
    assert session.welcome is not None and session.welcome.resumed, "resumed its place"
    await wait_for(lambda: session.connected and session.model.synced, "a fresh snapshot")
    assert any(c.connection for c in seen.changes), "the UI heard of the connection"
    assert session.ended is None
    ack = await session.decide(visit, 0, "approve")
    assert ack.step == 0


async def test_a_newer_console_for_the_desk_ends_the_session_as_replaced(
    server: SignalServer, keys: KeyRing, officer: tuple[DeskSession, Recorder]
) -> None:
    session, seen = officer
    await session.start()
    newer = SignalClient(server.url, keys.issue("officer", "ana", "main", desk="d1"))
    try:
        await newer.connect()
        await wait_for(lambda: session.ended == "replaced", "the older session ends: replaced")
        assert any(c.connection for c in seen.changes)
        assert session.client.reconnects == 0 and not session.connected, "never comes back"
    finally:
        await newer.close()


async def test_a_refused_token_and_a_wrong_role_end_the_session(
    server: SignalServer, keys: KeyRing
) -> None:
    other = KeyRing.generate()
    forged = DeskSession(
        server.url, other.issue("officer", "ana", "main", desk="d1"), engine=None, policy=fast()
    )
    with pytest.raises(RequestError):
        await forged.start()
    assert forged.ended == "refused"
    await forged.close()

    for token in (
        keys.issue("booth", "b1", "main", booth="b1"),
        keys.issue("supervisor", "sri", "main"),  # an officer's console, not read-only
    ):
        wrong = DeskSession(server.url, token, engine=None)
        await wrong.start()
        assert wrong.ended == "wrong_role" and not wrong.connected
        await wrong.close()


async def test_a_supervisor_watches_a_desk_and_switches(
    server: SignalServer, keys: KeyRing
) -> None:
    office = DeskSession(server.url, keys.issue("officer", "ana", "main", desk="d1"), engine=None)
    other = DeskSession(server.url, keys.issue("officer", "budi", "main", desk="d2"), engine=None)
    await office.start()
    await other.start()
    booth, visit = await start_booth(server, keys, "b1")
    supervisor = DeskSession(
        server.url, keys.issue("supervisor", "sri", "main"), engine=None, watch="d1",
        read_only=True, watch_all=True,
    )  # fmt: skip
    try:
        await supervisor.start()
        assert supervisor.watcher and supervisor.desk == "d1"
        assert set(supervisor.models) == {"d1", "d2"}, "watch_all: every desk of the office"
        seated = next(d for d, m in supervisor.models.items() if visit in m.visits)
        await office.focus(visit) if seated == "d1" else await other.focus(visit)
        await wait_for(
            lambda: supervisor.models[seated].on_air == visit, "the watched desk's deltas"
        )
        snapshot = await supervisor.watch("d2")
        assert supervisor.desk == "d2" and snapshot.desk == "d2"
        with pytest.raises(RequestError) as refused:
            await supervisor.decide(visit, 0, "approve")
        assert refused.value.code == "read_only"
    finally:
        await booth.close()
        for session in (supervisor, office, other):
            await session.close()


async def test_the_engine_gets_a_link_per_seated_visit_and_loses_it_when_the_visit_leaves(
    server: SignalServer, keys: KeyRing
) -> None:
    engine = OfficerMedia(None, OfficerMediaOptions(send_video=False))
    session = DeskSession(
        server.url, keys.issue("officer", "ana", "main", desk="d1"), engine=engine
    )
    await session.start()
    booth, visit = await start_booth(server, keys, "b1")
    try:
        await wait_for(lambda: visit in engine.links, "a link for the seated visit")
        await session.focus(visit)
        await wait_for(lambda: engine.on_air == visit, "the gates follow the server's on_air")
        await session.end_visit(visit, "abandoned")
        await wait_for(lambda: visit not in engine.links, "the link dropped with the visit")
    finally:
        await booth.close()
        await session.close()


async def test_a_server_not_up_yet_is_tried_again_until_it_answers(
    tmp_path: Path, keys: KeyRing
) -> None:
    port = free_port()
    seen = Recorder()
    session = DeskSession(
        f"ws://127.0.0.1:{port}/ws",
        keys.issue("officer", "ana", "main", desk="d1"),
        engine=None,
        on_change=seen,
        policy=fast(),
    )
    starting = asyncio.create_task(session.start(retry=True))
    server = SignalServer(tmp_path / "data", keys, host="127.0.0.1", port=port)
    try:
        await wait_for(lambda: session.last_failure is not None, "a failed attempt is reported")
        assert any(c.connection for c in seen.changes), "the UI hears of each failed attempt"
        assert not starting.done(), "a refused connection is tried again, not raised"
        await server.start()
        async with asyncio.timeout(10):
            welcome = await starting
        assert welcome.role == "officer" and session.model.synced
        assert session.last_failure is None and session.client.policy.attempts == 0
    finally:
        starting.cancel()
        await session.close()
        await server.close()
