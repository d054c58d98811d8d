"""The real server on a loopback port: HTTP endpoints, bad input, durability, restart."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

from conftest import wait_for
from websockets.asyncio.client import connect

from lapak.signaling.client import Backoff, SignalClient
from lapak.signaling.eventlog import EventLog, read_events
from lapak.signaling.events import DeskOpened
from lapak.signaling.messages import Ack, BoothState, Welcome
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing


def http_get(server: SignalServer, path: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as resp:
        return resp.status, resp.headers["Content-Type"], resp.read().decode()


async def test_healthz_and_metrics(server: SignalServer, keys: KeyRing) -> None:
    client = SignalClient(server.url, keys.issue("officer", "ana", "main", desk="d1"))
    await client.connect()
    try:
        status, ctype, body = await asyncio.to_thread(http_get, server, "/healthz")
        health = json.loads(body)
        assert status == 200 and ctype == "application/json"
        assert health["status"] == "ok" and health["connections"] == {"officer": 1}
        assert health["desks"] == 1
        _, ctype, text = await asyncio.to_thread(http_get, server, "/metrics")
        assert ctype.startswith("text/plain")
        assert 'lapak_connections{role="officer"} 1.0' in text
        assert 'lapak_messages_total{type="hello"} 1.0' in text
    finally:
        await client.close()


async def test_bad_input_gets_codes_and_the_server_goes_on(
    server: SignalServer, keys: KeyRing
) -> None:
    async with connect(server.url) as ws:
        await ws.send("{oops")
        assert json.loads(await ws.recv())["code"] == "bad_json"
        await ws.send(json.dumps({"type": "nope", "id": 9}))
        answer = json.loads(await ws.recv())
        assert (answer["code"], answer["re"]) == ("unknown_type", 9)
        forged = KeyRing.generate().issue("officer", "eve", "main", desk="d1")
        await ws.send(json.dumps({"type": "hello", "id": 1, "token": forged}))
        assert json.loads(await ws.recv())["code"] == "bad_signature"
        async with asyncio.timeout(5):
            await ws.wait_closed()
        assert ws.close_code == 4001, "a refused hello closes with 4001"
    good = SignalClient(server.url, keys.issue("officer", "ana", "main", desk="d1"))
    welcome = await good.connect()
    assert welcome.role == "officer", "a well-behaved client is still served"
    await good.close()
    _, _, text = await asyncio.to_thread(http_get, server, "/metrics")
    assert 'lapak_errors_total{code="bad_json"} 1.0' in text


async def test_acknowledged_decision_survives_restart(tmp_path: Path, keys: KeyRing) -> None:
    data = tmp_path / "data"
    srv = SignalServer(data, keys, port=0)
    await srv.start()
    officer = SignalClient(srv.url, keys.issue("officer", "ana", "main", desk="d1"))
    booth = SignalClient(srv.url, keys.issue("booth", "b1", "main", booth="b1"))
    await officer.connect()
    await booth.connect()
    claimant = {"name": "Siti", "membership_no": "123"}
    visit = (await booth.request({"type": "start_visit", "claimant": claimant})).visit
    ack = await officer.request(
        {"type": "decide", "visit": visit, "step": 0, "decision": "approve"}
    )
    assert isinstance(ack, Ack)
    await officer.close()
    await booth.close()
    await srv.close()

    again = SignalServer(data, keys, port=0)
    await again.start()
    try:
        assert again.hub is not None
        restored = again.hub.state.visits[visit]
        assert restored.steps[0].status == "approved", "the decision came back from the log"
        assert restored.desk == "d1" and restored.slot == 1
    finally:
        await again.close()


async def test_event_log_group_commits_and_reads_back(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.sqlite3")
    log.start()
    futures = [log.append([DeskOpened(f"d{i}", "main", "o", 6, float(i))]) for i in range(200)]
    async with asyncio.timeout(10):
        await asyncio.gather(*futures)
    assert log.appended == 200
    assert log.commits < 200, "batches waiting together share one transaction"
    await log.close()
    desks = [e.desk for e in read_events(tmp_path / "events.sqlite3")]
    assert desks == [f"d{i}" for i in range(200)], "events come back in order"


async def test_clients_reconnect_and_resume_across_a_server_restart(
    tmp_path: Path, keys: KeyRing
) -> None:
    data = tmp_path / "data"
    srv = SignalServer(data, keys, port=0)
    await srv.start()
    port = srv.port
    states: list[BoothState] = []
    resumed: list[Welcome] = []
    booth = SignalClient(
        srv.url,
        keys.issue("booth", "b1", "main", booth="b1"),
        lambda m: states.append(m) if isinstance(m, BoothState) else None,
        reconnect=True,
        on_reconnect=resumed.append,
        policy=Backoff(first=0.05, cap=0.5),
    )
    await booth.connect()
    claimant = {"name": "Siti", "membership_no": "123"}
    visit = (await booth.request({"type": "start_visit", "claimant": claimant})).visit
    await srv.close()
    async with asyncio.timeout(10):
        await booth.closed.wait()
    again = SignalServer(data, keys, port=port)
    await again.start()
    try:
        await wait_for(lambda: bool(resumed), "the booth reconnects and resumes", timeout=15)
        assert booth.reconnects == 1
        assert states[-1].visit == visit, "after reconnecting the booth hears where its visit is"
        answer = await booth.request({"type": "start_visit", "claimant": claimant})
        assert answer.visit == visit, "the visit resumes"
    finally:
        await booth.close()
        await again.close()
