"""One server, two offices: booths, desks and sessions of one office never touch the other's.

Office isolation runs on the hub (tests/hub_driver.py); desk takeover and token expiry on a
real server on a loopback port, raw websockets (a client written from docs/protocol.md),
so the close codes are seen on the wire.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from conftest import wait_for
from hub_driver import HubDriver
from websockets.asyncio.client import ClientConnection, connect

from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing


class Peer:
    """A raw websocket client that keeps every message it receives, in order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.inbox: list[dict[str, Any]] = []
        self._ids = iter(range(1, 1_000_000))
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            self.inbox.append(json.loads(frame))

    async def request(self, message: dict[str, Any]) -> tuple[dict[str, Any], list[dict]]:
        """Send with a fresh id; return the answer and what arrived before it since sending."""
        rid = next(self._ids)
        mark = len(self.inbox)
        await self.ws.send(json.dumps({**message, "id": rid}))
        await wait_for(
            lambda: any(m.get("re") == rid for m in self.inbox[mark:]), f"answer to {message}"
        )
        new = self.inbox[mark:]
        index = next(i for i, m in enumerate(new) if m.get("re") == rid)
        return new[index], new[:index]

    async def hello(self, token: str, session: str | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "hello", "token": token}
        if session is not None:
            message["session"] = session
        welcome, _ = await self.request(message)
        assert welcome["type"] == "welcome", welcome
        return welcome

    async def sync(self, token: str) -> list[dict]:
        """Everything that arrived before the answer to a harmless request (``refresh``):
        the server answers in order, so this is a barrier."""
        _, before = await self.request({"type": "refresh", "token": token})
        return before

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


async def open_peer(server: SignalServer) -> Peer:
    return Peer(await connect(server.url))


CLAIMANT = {"name": "Siti Main", "membership_no": "11111111111"}


def test_a_booth_id_of_another_office_never_reaches_this_office_visit() -> None:
    hub = HubDriver()
    officer = hub.join("officer", sub="ana", desk="d1")
    main_booth, main_welcome = hub.hello("booth", sub="booth-01", booth="booth-01")
    visit = hub.start_visit(main_booth, **CLAIMANT)

    north_booth, welcome = hub.hello("booth", sub="booth-01", office="north", booth="booth-01")
    assert hub.inbox[north_booth] == [welcome], "north's booth-01 gets nothing of main's visit"
    assert not any(m.get("name") == CLAIMANT["name"] for m in hub.inbox[north_booth])

    leave = {"type": "end_visit", "id": 3, "visit": visit, "outcome": "abandoned"}
    refused = hub.say(north_booth, leave)[0]
    assert refused["code"] == "forbidden", "north's booth-01 cannot end main's visit"

    offer = {"type": "sdp", "id": 4, "visit": visit, "sdp_type": "offer", "sdp": "v=0",
             "offer_id": "a"}  # fmt: skip
    sent = hub.send(officer, offer)
    assert sent.to(officer)[0]["type"] == "ack"
    assert [m["type"] for m in sent.to(main_booth)] == ["sdp"], "main's booth gets it"
    assert sent.to(north_booth) == [], "the officer's offer reaches main's booth-01 only"
    answer = {**offer, "id": 5, "sdp_type": "answer", "sdp": "north"}
    refused = hub.say(north_booth, answer)[0]
    assert refused["code"] == "forbidden", "north's booth-01 cannot answer for main's"

    claimant = {"name": CLAIMANT["name"], "membership_no": CLAIMANT["membership_no"]}
    own = hub.send(north_booth, {"type": "start_visit", "id": 6, "claimant": claimant})
    own_visit = own.to(north_booth)[0]["visit"]
    assert own_visit != visit, "north's booth-01 starts its own visit, not main's"
    states = [m for m in own.to(north_booth) if m["type"] == "booth_state"]
    assert [(m["visit"], m["state"]) for m in states] == [(own_visit, "queued")], (
        "north has no desk open: its visit waits in north's queue"
    )
    assert not any(m.get("visit") == own_visit for m in own.to(main_booth)), "main hears nothing"
    assert hub.state.visits[visit].state == "active"
    assert welcome["session"] != main_welcome["session"]


def test_desks_and_sessions_of_another_office_are_out_of_reach() -> None:
    hub = HubDriver()
    hub.join("officer", sub="ana", desk="d1")
    intruder = hub.connect()
    hello = {"type": "hello", "id": 1, "token": hub.token("officer", sub="eve", office="north",
                                                          desk="d1")}  # fmt: skip
    refused = hub.send(intruder, hello)
    assert refused.to(intruder)[0]["code"] == "wrong_office", "main's desk refuses a north officer"
    assert [c[:2] for c in refused.closes] == [(intruder, 4001)], "the intruder is closed"

    north_sup = hub.join("supervisor", sub="sup", office="north")
    watch = hub.say(north_sup, {"type": "watch", "id": 2, "desk": "d1"})[0]
    assert watch["code"] == "forbidden", "a north supervisor cannot watch main's desk"
    stats = hub.say(north_sup, {"type": "office_stats", "id": 3, "office": "main"})[0]
    assert stats["code"] == "forbidden"

    main_booth, main_welcome = hub.hello("booth", sub="booth-01", booth="booth-01")
    _, stolen = hub.hello(
        "booth", sub="booth-01", office="north", booth="booth-01", session=main_welcome["session"]
    )
    assert stolen["resumed"] is False and stolen["session"] != main_welcome["session"], (
        "main's booth-01 session does not resume north's booth-01"
    )
    hub.disconnect(main_booth)
    _, resumed = hub.hello(
        "booth", sub="booth-01", booth="booth-01", session=main_welcome["session"]
    )
    assert resumed["resumed"] is True, "main's own session still resumes"
    assert hub.hub.booth_connections("north", "booth-01")
    assert hub.hub.booth_connections("main", "booth-01")


async def test_the_newer_officer_connection_takes_the_desk_over(
    server: SignalServer, keys: KeyRing
) -> None:
    token = keys.issue("officer", "ana", "main", desk="d1")
    older, newer, booth = [await open_peer(server) for _ in range(3)]
    try:
        await older.hello(token)
        await newer.hello(token)
        await wait_for(lambda: older.ws.close_code is not None, "the older connection closes")
        assert older.ws.close_code == 4002
        assert any(m.get("code") == "replaced" for m in older.inbox)
        await booth.hello(keys.issue("booth", "b1", "main", booth="b1"))
        await booth.request({"type": "start_visit", "claimant": CLAIMANT})
        await wait_for(
            lambda: any(m.get("type") == "delta" for m in newer.inbox),
            "the newer one runs the desk",
        )
    finally:
        for peer in (older, newer, booth):
            await peer.close()


async def test_an_expired_token_closes_4001_unless_refreshed(
    server: SignalServer, keys: KeyRing
) -> None:
    soon = time.time() - 3600 + 2  # a one-hour token with two seconds left
    short = keys.issue("supervisor", "sup", "main", now=soon, ttl=3600)
    lapsed, refreshed = await open_peer(server), await open_peer(server)
    try:
        await lapsed.hello(short)
        await refreshed.hello(short)
        answer, _ = await refreshed.request(
            {"type": "refresh", "token": keys.issue("supervisor", "sup", "main")}
        )
        assert answer["type"] == "ack" and answer["exp"] > time.time() + 60
        other, _ = await refreshed.request(
            {"type": "refresh", "token": keys.issue("supervisor", "someone-else", "main")}
        )
        assert other["code"] == "bad_token", "a refresh must name the same identity"
        await wait_for(lambda: lapsed.ws.close_code is not None, "the lapsed connection closes")
        assert lapsed.ws.close_code == 4001
        assert any(m.get("code") == "token_expired" for m in lapsed.inbox)
        stats, _ = await refreshed.request({"type": "office_stats"})
        assert stats["type"] == "ack", "the refreshed connection is still served"
        assert refreshed.ws.close_code is None
    finally:
        await lapsed.close()
        await refreshed.close()
