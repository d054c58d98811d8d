"""Bad input against a real server: fuzzed frames, oversize frames, slow readers, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
import subprocess
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from lapak.signaling.client import SignalClient
from lapak.signaling.config import ServerConfig
from lapak.signaling.messages import Ack
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

VALID = [
    {"type": "hello", "id": 1, "token": "x"},
    {"type": "start_visit", "id": 2, "claimant": {"name": "S", "membership_no": "1"}},
    {"type": "focus", "id": 3, "visit": "V000001"},
    {"type": "decide", "id": 4, "visit": "V000001", "step": 0, "decision": "approve"},
    {"type": "end_visit", "id": 5, "visit": "V000001", "outcome": "completed"},
    {"type": "watch", "id": 6, "desk": "d1"},
    {"type": "sdp", "id": 7, "visit": "V000001", "sdp_type": "offer", "sdp": "v=0"},
    {"type": "configure_desk", "id": 8, "desk": "d9", "capacity": 3},
]


def mutate(rng: random.Random, token: str) -> str:
    base = dict(rng.choice(VALID))
    if base["type"] == "hello" and rng.random() < 0.5:
        base["token"] = token
    choice = rng.randrange(8)
    if choice == 0:  # binary frames are refused with 1008 (test_server_limits): send noise text
        return "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(1, 200)))
    if choice == 1:
        text = json.dumps(base)
        i = rng.randrange(len(text))
        return text[:i] + chr(rng.randrange(32, 0x2FFF)) + text[i + 1 :]
    if choice == 2:
        base.pop(rng.choice(list(base)))
    elif choice == 3:
        base[rng.choice(list(base))] = rng.choice([None, 1e308, -1, "", [], {}, "x" * 1000, True])
    elif choice == 4:
        base["type"] = rng.choice(["", "HELLO", "ack", "error", "snapshot", "../", "\u0000"])
    elif choice == 5:
        return "[" * 5000 + "]" * 5000
    elif choice == 6:
        base["extra"] = {"nested": [1, 2, {"deep": "x"}]}
    return json.dumps(base)


async def test_fuzzed_frames_leave_the_server_serving(server: SignalServer, keys: KeyRing) -> None:
    rng = random.Random(20261126)
    officer_token = keys.issue("officer", "ana", "main", desk="d1")
    sent = 0
    for _ in range(12):
        try:
            async with connect(server.url, max_size=2**20) as ws:
                for _ in range(60):
                    await ws.send(mutate(rng, officer_token))
                    sent += 1
                    async with asyncio.timeout(5):
                        answer = json.loads(await ws.recv())
                    assert answer["type"] in ("error", "welcome", "ack", "snapshot", "delta"), (
                        answer
                    )
                    if answer["type"] == "error":
                        assert isinstance(answer["code"], str) and answer["message"]
        except ConnectionClosed:
            pass  # a refused hello closes the connection: expected now and then
    assert sent > 100, "the fuzzer got frames through"
    good = SignalClient(server.url, keys.issue("booth", "b1", "main", booth="b1"))
    await good.connect()
    answer = await good.request(
        {"type": "start_visit", "claimant": {"name": "S", "membership_no": "1"}}
    )
    assert isinstance(answer, Ack), "a well-behaved client is served after the fuzzing"
    await good.close()
    assert server.health()["status"] == "ok"


async def test_oversize_frames_get_too_big_or_1009(server: SignalServer) -> None:
    async with connect(server.url, max_size=2**20) as ws:
        await ws.send(json.dumps({"type": "hello", "token": "x" * 100_000}))
        assert json.loads(await ws.recv())["code"] == "too_big"
        await ws.send("x" * (2 * 1024 * 1024))
        async with asyncio.timeout(5):
            await ws.wait_closed()
        assert ws.close_code == 1009


async def test_slow_reader_is_closed_and_others_are_served(tmp_path: Path, keys: KeyRing) -> None:
    import lapak.signaling.delivery as delivery

    limit = delivery.SEND_BUFFER_LIMIT
    delivery.SEND_BUFFER_LIMIT = 64 * 1024
    config = ServerConfig(rate_per_s=1e6, rate_burst=100_000)
    server = SignalServer(tmp_path / "d", keys, port=0, config=config)
    await server.start()
    clients: list[SignalClient] = []
    try:
        officer = SignalClient(server.url, keys.issue("officer", "ana", "main", desk="d1"))
        await officer.connect()
        clients.append(officer)
        for i in range(6):  # six seated visits make every snapshot a few KiB
            booth = SignalClient(server.url, keys.issue("booth", f"b{i}", "main", booth=f"b{i}"))
            await booth.connect()
            await booth.request(
                {"type": "start_visit", "claimant": {"name": "S" * 200, "membership_no": "1"}}
            )
            clients.append(booth)
        token = keys.issue("supervisor", "sri", "main")
        async with connect(server.url, max_queue=1, max_size=2**20) as slow:
            await slow.send(json.dumps({"type": "hello", "id": 1, "token": token}))
            for i in range(4000):  # ask for big answers and do not read them
                try:
                    await slow.send(json.dumps({"type": "watch", "id": i + 2, "desk": "d1"}))
                except ConnectionClosed:
                    break
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                async with asyncio.timeout(20):
                    while True:
                        await slow.recv()
            assert slow.close_code == 4008, f"slow reader closed with 4008, got {slow.close_code}"
        good = SignalClient(server.url, keys.issue("supervisor", "s2", "main"))
        assert (await good.connect()).role == "supervisor", "others are still served"
        clients.append(good)
    finally:
        for client in clients:
            await client.close()
        delivery.SEND_BUFFER_LIMIT = limit
        await server.close()


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
             "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl cannot make a test certificate here: {exc}")
    return cert, key


async def test_tls_serves_wss(tmp_path: Path, keys: KeyRing, tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = SignalServer(tmp_path / "d", keys, port=0, ssl_context=context)
    await server.start()
    try:
        assert server.url.startswith("wss://")
        client_ctx = ssl.create_default_context(cafile=str(cert))
        async with connect(server.url, ssl=client_ctx) as ws:
            await ws.send(
                json.dumps(
                    {"type": "hello", "id": 1, "token": keys.issue("supervisor", "s", "main")}
                )
            )
            assert json.loads(await ws.recv())["type"] == "welcome"
    finally:
        await server.close()


def test_config_file_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "lapak.toml"
    path.write_text(
        '[server]\noffices = ["main"]\ngrace_s = 5\n'
        '[workflows.JHT]\nsteps = ["identity", "decision"]\n'
        '[reasons]\nlist = ["missing"]\n[pins]\nbooth-01 = "desk-1"\n'
        '[[desks]]\nid = "desk-1"\noffice = "main"\ncapacity = 4\n'
    )
    config = ServerConfig.load(path)
    assert config.offices == ["main"] and config.grace_s == 5
    assert config.workflows == {"JHT": ["identity", "decision"]}
    assert config.reasons == ["missing"] and config.pins == {"booth-01": "desk-1"}
    assert config.desks[0].capacity == 4
    defaults = ServerConfig()
    assert "JHT" in defaults.workflows and defaults.reasons, "defaults come from workflows.toml"
    path.write_text("[server]\ngrase_s = 5\n")
    with pytest.raises(ValueError, match="grase_s"):
        ServerConfig.load(path)


async def test_configured_desks_exist_at_startup(tmp_path: Path, keys: KeyRing) -> None:
    config = ServerConfig.from_dict({"desks": [{"id": "desk-7", "office": "main", "capacity": 2}]})
    server = SignalServer(tmp_path / "d", keys, port=0, config=config)
    await server.start()
    try:
        assert server.hub is not None and server.hub.state.desks["desk-7"].capacity == 2
    finally:
        await server.close()


async def test_websocket_origin_must_be_the_servers_own(server: SignalServer) -> None:
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as err:
        async with connect(server.url, origin="http://evil.example"):
            pass
    assert err.value.response.status_code == 403
    own = f"http://127.0.0.1:{server.port}"
    async with connect(server.url, origin=own) as ws:
        await ws.send("{}")
        assert json.loads(await ws.recv())["type"] == "error", "the own origin is let in"


def test_origins_are_built_one_way() -> None:
    from lapak.signaling.origins import OriginCheck, origin, own_origins

    assert origin(False, "::1", 80) == "http://[::1]"
    assert origin(True, "example.org", 443) == "https://example.org"
    assert origin(True, "10.0.0.5", 8765) == "https://10.0.0.5:8765"
    own = own_origins("192.168.1.5", 8765, tls=False)
    assert own >= {"http://localhost:8765", "http://[::1]:8765", "http://192.168.1.5:8765"}
    check = OriginCheck(own, tls=False)
    assert check.allows(None, None), "machine clients send no Origin"
    assert not check.allows("http://evil:8765", ("192.168.1.5", 8765))
    reached = ("::ffff:10.1.2.3", 8765, 0, 0)  # IPv4 over a dual-stack socket
    assert check.allows("http://10.1.2.3:8765", reached), "the address a kiosk reached us at"
