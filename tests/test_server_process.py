"""The real `lapak signal` process under load and signals: the file-descriptor limit,
SIGTERM during a burst, SIGHUP key reload, and memory across connection churn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import wait_for
from tests_support import free_port, healthz, stop_process_group
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from lapak.signaling.eventlog import read_events
from lapak.signaling.events import StepDecided
from lapak.signaling.tokens import KeyRing


@dataclass
class Proc:
    proc: asyncio.subprocess.Process
    port: int
    data: Path
    log: Path
    keys: KeyRing
    secret: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


@contextlib.asynccontextmanager
async def start_server(
    tmp_path: Path, config: str = "", nofile: int | None = None
) -> AsyncIterator[Proc]:
    keys = KeyRing.generate()
    secret = tmp_path / "secret"
    keys.write(secret)
    conf = tmp_path / "lapak.toml"
    conf.write_text(config)
    port = free_port()
    log = tmp_path / "server.log"

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with log.open("w") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lapak.cli", "signal", "--port", str(port), "--data-dir",
            str(tmp_path / "data"), "--secret-file", str(secret), "--config", str(conf),
            stderr=err, start_new_session=True, preexec_fn=limit,
        )  # fmt: skip
    server = Proc(proc, port, tmp_path / "data", log, keys, secret)
    try:
        deadline = time.monotonic() + 30
        while await asyncio.to_thread(healthz, port) is None:
            assert proc.returncode is None, f"server exited: {server.log_text()[-2000:]}"
            assert time.monotonic() < deadline, f"server did not start: {server.log_text()}"
            await asyncio.sleep(0.1)
        yield server
    finally:
        await stop_process_group(proc)


async def hello(url: str, token: str, **kw: object):  # type: ignore[no-untyped-def]
    ws = await connect(url, **kw)  # type: ignore[arg-type]
    await ws.send(json.dumps({"type": "hello", "id": 0, "token": token}))
    answer = json.loads(await ws.recv())
    assert answer["type"] == "welcome", answer
    return ws


async def test_at_the_fd_limit_connections_are_refused_quietly_and_serving_resumes(
    tmp_path: Path,
) -> None:
    async with start_server(tmp_path, nofile=256) as server:
        socks = []
        for _ in range(400):  # more than the server has descriptors for
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            socks.append(writer)
        await wait_for(
            lambda: "event=connection_limit" in server.log_text(), "the limit is logged", 30
        )
        for writer in socks:
            writer.close()
        token = server.keys.issue("supervisor", "s", "main")

        async def served() -> bool:
            with contextlib.suppress(OSError, ConnectionClosed, Exception):
                ws = await hello(server.url, token, open_timeout=5)
                await ws.close()
                return True
            return False

        deadline = time.monotonic() + 30
        while not await served():
            assert time.monotonic() < deadline, "the server serves again once clients leave"
            await asyncio.sleep(0.2)
        text = server.log_text()
        assert "Traceback" not in text and "exc=" not in text, text[:3000]
        assert "event=accept_failed" not in text, "accept() never ran out of descriptors"
        assert text.count("event=connection_limit") <= 3, "logged once, not per refusal"
        assert len(text) < 200_000, f"the log stays small, got {len(text)} bytes"
        assert server.proc.returncode is None


async def test_sigterm_during_a_burst_acknowledges_every_committed_decision(
    tmp_path: Path,
) -> None:
    config = "[server]\nrate_per_s = 1000000\nrate_burst = 1000000\n"
    acked: set[int] = set()
    close_code = None
    async with start_server(tmp_path, config) as server:
        booth = await hello(server.url, server.keys.issue("booth", "b1", "main", booth="b1"))
        officer = await hello(
            server.url, server.keys.issue("officer", "ana", "main", desk="d1"), max_size=2**24
        )
        claimant = {"name": "Siti", "membership_no": "1"}
        await booth.send(json.dumps({"type": "start_visit", "id": 1, "claimant": claimant}))
        visit = None
        while visit is None:
            message = json.loads(await booth.recv())
            visit = message.get("visit") if message["type"] == "ack" else None
        await booth.close()  # its visit stays seated; it need not read the burst's updates
        frames = [
            json.dumps({"type": "decide", "id": i, "visit": visit, "step": 0, "decision": d})
            for i, d in ((i, "approve" if i % 2 else "reopen") for i in range(1, 4001))
        ]

        async def read_acks() -> None:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    message = json.loads(await officer.recv())
                    if message["type"] == "ack" and isinstance(message.get("re"), int):
                        acked.add(message["re"])

        reader = asyncio.create_task(read_acks())
        with contextlib.suppress(ConnectionClosed):
            for sent, frame in enumerate(frames, 1):
                await officer.send(frame)
                if sent == 1500:  # mid-burst, once the server is answering
                    await wait_for(lambda: bool(acked), "a first decision is acknowledged")
                    os.killpg(server.proc.pid, signal.SIGTERM)
        async with asyncio.timeout(60):
            await reader
        close_code = officer.close_code
        async with asyncio.timeout(60):
            assert await server.proc.wait() == 0, server.log_text()[-3000:]
        logged = [
            e for e in read_events(server.data / "events.sqlite3") if isinstance(e, StepDecided)
        ]
    assert close_code in (1001, 1012), f"closed after the acks with 1001, got {close_code}"
    assert acked, "some decisions were acknowledged before the shutdown"
    assert len(logged) == len(acked), (
        f"every committed decision was acknowledged and every ack is in the log: "
        f"{len(logged)} in the log, {len(acked)} acked"
    )
    assert acked == set(range(1, len(acked) + 1)), "acks form the prefix the log holds"


async def test_sighup_reloads_the_key_ring(tmp_path: Path) -> None:
    async with start_server(tmp_path) as server:
        new = KeyRing.generate()
        KeyRing((new.keys[0], server.keys.keys[0])).write(server.secret)
        os.killpg(server.proc.pid, signal.SIGHUP)
        await wait_for(lambda: "event=keys_reloaded" in server.log_text(), "the reload is logged")
        ws = await hello(server.url, new.issue("supervisor", "s", "main"))
        await ws.close()
        assert server.proc.returncode is None, "SIGHUP does not stop the server"


HALF_OPEN = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def _half_open(port: int, n: int, partial: bool) -> None:
    for _ in range(n):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HALF_OPEN[:40] if partial else HALF_OPEN)  # then vanish
        writer.transport.abort()


async def _complete(url: str, token: str, n: int) -> None:
    for _ in range(n):
        ws = await hello(url, token)
        await ws.close()


@pytest.mark.slow
async def test_memory_returns_after_20000_connections(tmp_path: Path) -> None:
    """Two rounds of 5,000 half-open upgrades (full or partial request, then gone) and 5,000
    complete connect+hello+close cycles. After the first round RSS comes back within 60 MB of
    where it started (what stays is allocator fragmentation from the round's peak, ~20 MB
    here), and the second round adds less than 10 MB to the larger of that and the baseline
    plus that fragmentation: nothing grows with the number of connections (before the fix:
    +66 MB per 20,000 and never returned)."""
    first_bound_kb, growth_kb, fragmentation_kb = 60 * 1024, 10 * 1024, 20 * 1024
    async with start_server(tmp_path, "[server]\nrate_per_s = 1000\n") as server:
        token = server.keys.issue("booth", "b1", "main", booth="b1")

        def idle() -> bool:
            health = healthz(server.port)
            return health is not None and not health["connections"]

        async def churn() -> None:
            # few clients at once: what stays afterwards depends on the peak, not the count
            await asyncio.gather(*(_half_open(server.port, 1000, i % 2 == 0) for i in range(5)))
            await asyncio.gather(*(_complete(server.url, token, 500) for i in range(10)))
            await wait_for(idle, "every connection gone", 120)

        await asyncio.gather(*(_complete(server.url, token, 50) for _ in range(4)))  # warm up
        await asyncio.gather(*(_half_open(server.port, 100, i % 2 == 0) for i in range(10)))
        await wait_for(idle, "warm-up connections gone", 60)
        baseline = server.rss_kb()
        await churn()
        limit = baseline + first_bound_kb
        await wait_for(
            lambda: server.rss_kb() < limit,
            f"RSS back under {limit // 1024} MB after 10,000 connections",
            60,
        )
        first = server.rss_kb()
        await churn()
        # Fragmentation left by a round's peak varies by up to ~20 MB with the machine's load (a
        # first round that happened to keep nothing made a 10 MB step flaky under load); the
        # leak this guards against grew ~33 MB per round and never came back.
        limit = max(first, baseline + fragmentation_kb) + growth_kb
        await wait_for(
            lambda: server.rss_kb() < limit,
            f"RSS back under {limit // 1024} MB after 10,000 more connections",
            60,
        )
        print(f"rss_kb baseline={baseline} first={first} second={server.rss_kb()}")
