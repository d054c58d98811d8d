"""The server's bounds on bad input, against a real server on a loopback port: deep JSON,
mistyped token claims, byte-counted frame limits, binary frames, hello deadline, Origin,
key reload, monotonic grace periods."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import jwt
import pytest
from conftest import wait_for
from websockets.asyncio.client import ClientConnection, connect

from lapak.signaling.config import ServerConfig
from lapak.signaling.protocol import CloseCode
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import ALGORITHM, KeyRing, key_id

DEEP = "[" * 1000 + "]" * 1000


async def ask(ws: ClientConnection, message: dict | str) -> dict:
    await ws.send(message if isinstance(message, str) else json.dumps(message))
    async with asyncio.timeout(10):
        return json.loads(await ws.recv())


async def closed_with(ws: ClientConnection) -> int | None:
    async with asyncio.timeout(15):
        await ws.wait_closed()
    return ws.close_code


def signed(keys: KeyRing, **claims: object) -> str:
    key = keys.keys[0]
    payload = {"role": "officer", "sub": "ana", "office": "main", "desk": "d1", "iat": 1}
    payload["exp"] = 4_000_000_000
    payload.update(claims)
    return jwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": key_id(key)})


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, f"expected no traceback or error log, got {[r.getMessage() for r in bad]}"


async def test_deep_json_gets_bad_json_before_and_after_hello(
    server: SignalServer, keys: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    async with connect(server.url) as ws:
        assert (await ask(ws, DEEP))["code"] == "bad_json"
        assert (await ask(ws, "[" * 1000))["code"] == "bad_json"
        as_token = '{"type": "hello", "id": 1, "token": ' + DEEP + "}"
        assert (await ask(ws, as_token))["code"] in ("bad_json", "invalid_message")
        welcome = await ask(
            ws, {"type": "hello", "id": 2, "token": keys.issue("supervisor", "s", "main")}
        )
        assert welcome["type"] == "welcome", "the connection is still usable"
        assert (await ask(ws, '{"type": "watch", "desk": ' + DEEP + "}"))["code"] == "bad_json"
    no_traceback(caplog)


@pytest.mark.parametrize(
    "claims",
    [{"exp": "123"}, {"iat": "1"}, {"desk": ["d1"]}, {"desk": {"x": 1}}, {"sub": 7},
     {"office": None}, {"exp": True}],
)  # fmt: skip
async def test_signed_token_with_mistyped_claims_gets_bad_token(
    server: SignalServer, keys: KeyRing, caplog: pytest.LogCaptureFixture, claims: dict
) -> None:
    async with connect(server.url) as ws:
        answer = await ask(ws, {"type": "hello", "id": 1, "token": signed(keys, **claims)})
        assert (answer["type"], answer["code"], answer["re"]) == ("error", "bad_token", 1)
        assert await closed_with(ws) == 4001
    no_traceback(caplog)


async def test_nested_token_payload_gets_bad_token(server: SignalServer, keys: KeyRing) -> None:
    import base64

    def b64(data: str) -> str:
        return base64.urlsafe_b64encode(data.encode()).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "kid": key_id(keys.keys[0])}))
    token = f"{header}.{b64(DEEP)}.AAAA"
    async with connect(server.url) as ws:
        answer = await ask(ws, {"type": "hello", "id": 1, "token": token})
        assert answer["code"] in ("bad_token", "bad_signature")


async def test_frame_limit_counts_utf8_bytes_and_too_big_carries_re(server: SignalServer) -> None:
    wide = "\U0001f600" * 20_000  # 20,000 characters, 80,000 bytes: over 64 KiB
    async with connect(server.url, max_size=2**20) as ws:
        answer = await ask(ws, {"type": "hello", "id": 41, "token": wide})
        assert (answer["code"], answer["re"]) == ("too_big", 41)


async def test_claimant_fields_are_capped(server: SignalServer, keys: KeyRing) -> None:
    async with connect(server.url, max_size=2**20) as ws:
        await ask(
            ws, {"type": "hello", "id": 1, "token": keys.issue("booth", "b1", "main", booth="b1")}
        )
        for claimant in (
            {"name": "\U0001f600" * 201, "membership_no": "1"},
            {"name": "Siti", "membership_no": "9" * 65},
            {"name": "", "membership_no": "1"},
        ):
            answer = await ask(ws, {"type": "start_visit", "id": 2, "claimant": claimant})
            assert (answer["code"], answer["re"]) == ("invalid_message", 2), claimant
        ok = await ask(
            ws,
            {
                "type": "start_visit",
                "id": 3,
                "claimant": {"name": "\U0001f600" * 200, "membership_no": "9" * 64},
            },
        )
        assert ok["type"] == "ack", "the longest allowed fields are accepted"


async def test_rate_limited_errors_carry_re(tmp_path: Path, keys: KeyRing) -> None:
    config = ServerConfig(rate_per_s=0.001, rate_burst=2)
    server = SignalServer(tmp_path / "d", keys, port=0, config=config)
    await server.start()
    try:
        async with connect(server.url) as ws:
            for i in range(3):
                await ws.send(json.dumps({"type": "watch", "id": 100 + i, "desk": "x"}))
            answers = [json.loads(await ws.recv()) for _ in range(3)]
            assert (answers[2]["code"], answers[2]["re"]) == ("rate_limited", 102)
    finally:
        await server.close()


async def test_binary_frames_are_refused_with_1008(server: SignalServer, keys: KeyRing) -> None:
    async with connect(server.url) as ws:
        await ask(ws, {"type": "hello", "id": 1, "token": keys.issue("supervisor", "s", "main")})
        await ws.send(json.dumps({"type": "office_stats", "id": 2}).encode())
        answer = json.loads(await ws.recv())
        assert (answer["type"], answer["code"]) == ("error", "invalid_message")
        assert "binary" in answer["message"]
        assert await closed_with(ws) == 1008


async def test_messages_are_answered_in_the_order_sent_whole_or_in_fragments(
    server: SignalServer, keys: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/protocol.md: a message may come in fragments, and messages are handled in the
    order they were sent. Sent back to back from the moment the connection opens (the first
    ones reach the server before its handler runs), one of them in three fragments, then
    more whole ones: every answer comes, in order."""
    token = keys.issue("supervisor", "s", "main")
    async with connect(server.url) as ws:
        await ws.send(json.dumps({"type": "hello", "id": 1, "token": token}))
        for n in range(2, 6):
            await ws.send(json.dumps({"type": "office_stats", "id": n}))
        text = json.dumps({"type": "office_stats", "id": 6})
        await ws.send([text[:5], text[5:9], text[9:]])  # one message, three frames
        for n in range(7, 10):
            await ws.send(json.dumps({"type": "office_stats", "id": n}))
        async with asyncio.timeout(10):
            answers = [json.loads(await ws.recv()) for _ in range(9)]
    assert answers[0]["type"] == "welcome", answers[0]
    assert [a.get("re") for a in answers] == list(range(1, 10)), answers
    assert all(a["type"] != "error" for a in answers), answers
    no_traceback(caplog)


async def test_text_that_is_not_utf8_is_closed_with_1007(
    server: SignalServer, keys: KeyRing
) -> None:
    """docs/protocol.md, close codes: a text frame whose bytes are not UTF-8 closes 1007, and
    the server goes on serving the others."""
    async with connect(server.url) as ws:
        await ask(ws, {"type": "hello", "id": 1, "token": keys.issue("supervisor", "s", "main")})
        await ws.send(b'{"type": "office_stats", "id": "\xff"}', text=True)
        assert await closed_with(ws) == CloseCode.INVALID_DATA == 1007
    async with connect(server.url) as other:
        welcome = await ask(
            other,
            {"type": "hello", "id": 1, "token": keys.issue("officer", "a", "main", desk="d1")},
        )
        assert welcome["type"] == "welcome"


async def test_a_handler_that_raises_closes_that_connection_with_1011_only(
    server: SignalServer,
    keys: KeyRing,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug while handling one message (forced here) is logged with its traceback and
    closes that connection with 1011 (internal error), as docs/protocol.md says; the next
    connection is served."""
    assert server.hub is not None
    receive = server.hub.receive

    def broken(conn_id: int, frame: str) -> object:
        if "boom" in frame:
            raise RuntimeError("forced")
        return receive(conn_id, frame)

    monkeypatch.setattr(server.hub, "receive", broken)
    async with connect(server.url) as ws:
        await ask(ws, {"type": "hello", "id": 1, "token": keys.issue("supervisor", "s", "main")})
        await ws.send(json.dumps({"type": "office_stats", "id": 2, "boom": True}))
        assert await closed_with(ws) == 1011
    assert any("forced" in str(r.exc_info[1]) for r in caplog.records if r.exc_info), (
        "expected the forced error logged with its traceback"
    )
    async with connect(server.url) as other:
        welcome = await ask(
            other, {"type": "hello", "id": 1, "token": keys.issue("supervisor", "t", "main")}
        )
        assert welcome["type"] == "welcome"


async def test_connection_without_hello_is_closed_after_the_hello_timeout(
    tmp_path: Path, keys: KeyRing
) -> None:
    config = ServerConfig(hello_timeout_s=3600)
    server = SignalServer(tmp_path / "d", keys, port=0, config=config)
    await server.start()
    try:
        async with connect(server.url) as greeted:  # its deadline is an hour away
            token = keys.issue("supervisor", "s", "main")
            await ask(greeted, {"type": "hello", "id": 1, "token": token})
            config.hello_timeout_s = 0.2  # read when a connection opens
            async with connect(server.url) as idle:
                answer = json.loads(await idle.recv())
                assert (answer["code"], idle.close_code) == ("hello_required", None)
                assert await closed_with(idle) == 1008
            assert (await ask(greeted, {"type": "office_stats", "id": 2}))["type"] == "ack"
    finally:
        await server.close()


def _handshake(port: int, host: str, origin: str, address: str = "127.0.0.1") -> int:
    import socket

    with socket.create_connection((address, port), timeout=10) as sock:
        sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                f"Origin: {origin}\r\n\r\n"
            ).encode()
        )
        return int(sock.recv(1024).split(b" ", 2)[1])


async def test_origin_is_compared_with_the_servers_own_not_the_host_header(
    tmp_path: Path, keys: KeyRing
) -> None:
    config = ServerConfig.from_dict(
        {
            "server": {
                "public_url": "https://lapak.example/ws",
                "allowed_origins": ["http://kiosk.lan:8080"],
            }
        }
    )
    server = SignalServer(tmp_path / "d", keys, port=0, config=config)
    await server.start()
    port = server.port
    try:
        status = await asyncio.to_thread(_handshake, port, f"evil:{port}", f"http://evil:{port}")
        assert status == 403, "DNS rebinding: a Host that matches the Origin proves nothing"
        for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}",
                       "https://lapak.example", "http://kiosk.lan:8080"):  # fmt: skip
            status = await asyncio.to_thread(_handshake, port, f"127.0.0.1:{port}", origin)
            assert status == 101, origin
        for origin in ("http://kiosk.lan:8080/", "http://KIOSK.lan:8080", "http://kiosk.lan"):
            status = await asyncio.to_thread(_handshake, port, f"127.0.0.1:{port}", origin)
            assert status == 403, f"exact match only: {origin}"
    finally:
        await server.close()


async def test_origin_of_the_address_a_browser_reached_is_allowed(
    tmp_path: Path, keys: KeyRing
) -> None:
    """Listening on every address, a kiosk page loaded from the server's LAN address sends
    that address as Origin; the server knows it from the socket, not from Host."""
    server = SignalServer(tmp_path / "d", keys, host="0.0.0.0", port=0)
    await server.start()
    port = server.port
    try:
        reached = "127.0.0.2"  # another local address of this machine
        ok = await asyncio.to_thread(
            _handshake, port, f"{reached}:{port}", f"http://{reached}:{port}", reached
        )
        assert ok == 101
        evil = await asyncio.to_thread(
            _handshake, port, f"evil:{port}", f"http://evil:{port}", reached
        )
        assert evil == 403
        other = await asyncio.to_thread(
            _handshake, port, f"{reached}:{port}", f"http://127.0.0.3:{port}", reached
        )
        assert other == 403, "only the address this connection reached"
    finally:
        await server.close()


async def test_sighup_reload_lets_a_rotated_key_in_without_restart(
    tmp_path: Path, keys: KeyRing
) -> None:
    secret = tmp_path / "secret"
    keys.write(secret)
    server = SignalServer(tmp_path / "d", keys, port=0, secret_file=secret)
    await server.start()
    try:
        new = KeyRing.generate()
        token = new.issue("supervisor", "s", "main")
        async with connect(server.url) as ws:
            assert (await ask(ws, {"type": "hello", "id": 1, "token": token}))[
                "code"
            ] == "bad_signature"
        KeyRing((new.keys[0], keys.keys[0])).write(secret)
        assert server.reload_keys()
        async with connect(server.url) as ws:
            assert (await ask(ws, {"type": "hello", "id": 1, "token": token}))["type"] == "welcome"
            old = keys.issue("supervisor", "s", "main")
        async with connect(server.url) as ws:
            assert (await ask(ws, {"type": "hello", "id": 1, "token": old}))["type"] == "welcome"
        secret.write_text("# nothing\n")
        assert not server.reload_keys(), "an empty file is refused; the old ring stays"
        async with connect(server.url) as ws:
            assert (await ask(ws, {"type": "hello", "id": 1, "token": token}))["type"] == "welcome"
    finally:
        await server.close()


async def test_a_wall_clock_step_does_not_abandon_a_booth(tmp_path: Path, keys: KeyRing) -> None:
    step = [0.0]
    import time

    server = SignalServer(
        tmp_path / "d", keys, port=0, config=ServerConfig(grace_s=30),
        clock=lambda: time.time() + step[0],
    )  # fmt: skip
    await server.start()
    try:
        async with connect(server.url) as booth:
            await ask(
                booth,
                {
                    "type": "hello",
                    "id": 1,
                    "token": keys.issue("booth", "b1", "main", booth="b1", ttl=86400),
                },
            )
            ack = await ask(
                booth,
                {"type": "start_visit", "id": 2, "claimant": {"name": "S", "membership_no": "1"}},
            )
            visit = ack["visit"]
        assert server.hub is not None
        await wait_for(lambda: len(server.hub.away) == 1, "the booth is away")
        step[0] = 3600.0
        ticks = server.ticks
        await wait_for(lambda: server.ticks >= ticks + 2, "two ticks after the clock step")
        assert server.hub.state.visits[visit].state != "ended", "a +1 h wall step abandons nobody"
    finally:
        await server.close()


async def test_a_desk_of_six_longest_claimants_fits_the_consoles_message_limit(
    server: SignalServer, keys: KeyRing
) -> None:
    """Claimant caps keep the officer's desk loadable: six seated visits with the longest
    4-byte-character names stay far below the console's 1 MiB message limit."""
    booths = []
    try:
        for i in range(6):
            ws = await connect(server.url, max_size=2**20)
            booths.append(ws)
            token = keys.issue("booth", f"b{i}", "main", booth=f"b{i}")
            await ask(ws, {"type": "hello", "id": 1, "token": token})
            claimant = {"name": "\U0001f600" * 200, "membership_no": "\U0001f600" * 64}
            answer = await ask(ws, {"type": "start_visit", "id": 2, "claimant": claimant})
            assert answer["type"] == "ack", answer
        async with connect(server.url, max_size=2**20) as officer:
            token = keys.issue("officer", "ana", "main", desk="d1")
            await officer.send(json.dumps({"type": "hello", "id": 1, "token": token}))
            snapshot = None
            async with asyncio.timeout(10):
                while snapshot is None:
                    text = await officer.recv()
                    snapshot = text if json.loads(text)["type"] == "snapshot" else None
            assert len(json.loads(snapshot)["state"]["visits"]) == 6
            assert len(snapshot.encode()) < 64 * 1024, "a full desk stays small"
    finally:
        for ws in booths:
            await ws.close()
