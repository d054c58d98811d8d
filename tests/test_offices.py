"""One server, two offices: booths, desks and sessions of one office never touch the other's.

Real server on a loopback port, raw websockets (a client written from docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from conftest import wait_for
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


async def test_a_booth_id_of_another_office_never_reaches_this_office_visit(
    server: SignalServer, keys: KeyRing
) -> None:
    officer, main_booth, north_booth = [await open_peer(server) for _ in range(3)]
    try:
        await officer.hello(keys.issue("officer", "ana", "main", desk="d1"))
        main_token = keys.issue("booth", "booth-01", "main", booth="booth-01")
        north_token = keys.issue("booth", "booth-01", "north", booth="booth-01")
        await main_booth.hello(main_token)
        ack, _ = await main_booth.request({"type": "start_visit", "claimant": CLAIMANT})
        visit = ack["visit"]

        welcome = await north_booth.hello(north_token)
        before = await north_booth.sync(north_token)
        assert before == [], f"north's booth-01 gets nothing of main's visit: {before}"
        assert not any(m.get("name") == CLAIMANT["name"] for m in north_booth.inbox)

        leave = {"type": "end_visit", "visit": visit, "outcome": "abandoned"}
        refused, _ = await north_booth.request(leave)
        assert refused["code"] == "forbidden", "north's booth-01 cannot end main's visit"

        offer = {"type": "sdp", "visit": visit, "sdp_type": "offer", "sdp": "v=0", "offer_id": "a"}
        sent, _ = await officer.request(offer)
        assert sent["type"] == "ack"
        await wait_for(
            lambda: any(m.get("type") == "sdp" for m in main_booth.inbox), "main's booth gets it"
        )
        assert not [m for m in await north_booth.sync(north_token) if m["type"] == "sdp"], (
            "the officer's offer reaches main's booth-01 only"
        )
        answer = {**offer, "sdp_type": "answer", "sdp": "north"}
        refused, _ = await north_booth.request(answer)
        assert refused["code"] == "forbidden", "north's booth-01 cannot answer for main's"

        mark = len(north_booth.inbox)
        own, _ = await north_booth.request({"type": "start_visit", "claimant": CLAIMANT})
        assert own["visit"] != visit, "north's booth-01 starts its own visit, not main's"
        await north_booth.sync(north_token)  # the visit's booth_state follows its ack
        states = [m for m in north_booth.inbox[mark:] if m["type"] == "booth_state"]
        assert [(m["visit"], m["state"]) for m in states] == [(own["visit"], "queued")], (
            "north has no desk open: its visit waits in north's queue"
        )
        _, before = await main_booth.request({"type": "refresh", "token": main_token})
        assert not any(m.get("visit") == own["visit"] for m in before), "main hears nothing"
        health = server.hub
        assert health is not None and health.state.visits[visit].state == "active"
        assert welcome["session"] != main_booth.inbox[0]["session"]
    finally:
        for peer in (officer, main_booth, north_booth):
            await peer.close()


async def test_desks_and_sessions_of_another_office_are_out_of_reach(
    server: SignalServer, keys: KeyRing
) -> None:
    main_officer, intruder, north_sup, main_booth, north_booth = [
        await open_peer(server) for _ in range(5)
    ]
    try:
        await main_officer.hello(keys.issue("officer", "ana", "main", desk="d1"))
        refused, _ = await intruder.request(
            {"type": "hello", "token": keys.issue("officer", "eve", "north", desk="d1")}
        )
        assert refused["code"] == "wrong_office", "main's desk refuses a north officer"
        await wait_for(lambda: intruder.ws.close_code is not None, "the intruder is closed")
        assert intruder.ws.close_code == 4001

        await north_sup.hello(keys.issue("supervisor", "sup", "north"))
        watch, _ = await north_sup.request({"type": "watch", "desk": "d1"})
        assert watch["code"] == "forbidden", "a north supervisor cannot watch main's desk"
        stats, _ = await north_sup.request({"type": "office_stats", "office": "main"})
        assert stats["code"] == "forbidden"

        main_token = keys.issue("booth", "booth-01", "main", booth="booth-01")
        main_welcome = await main_booth.hello(main_token)
        stolen = await north_booth.hello(
            keys.issue("booth", "booth-01", "north", booth="booth-01"),
            session=main_welcome["session"],
        )
        assert stolen["resumed"] is False and stolen["session"] != main_welcome["session"], (
            "main's booth-01 session does not resume north's booth-01"
        )
        await main_booth.close()
        again = await open_peer(server)
        main_booth = again
        resumed = await again.hello(main_token, session=main_welcome["session"])
        assert resumed["resumed"] is True, "main's own session still resumes"
        health = server.hub
        assert health is not None
        assert health.booth_connections("north", "booth-01")
        assert health.booth_connections("main", "booth-01")
    finally:
        for peer in (main_officer, intruder, north_sup, main_booth, north_booth):
            await peer.close()


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
