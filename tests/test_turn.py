"""Booths across sites: the visit's media goes through a real coturn, and survives it restarting.

Topology (network namespaces; root): three namespaces, the TURN host T, the officer O and the
booth B. O and B each have one veth pair into T (10.231.8.0/24 and 10.231.9.0/24) and a host
route to T's one "public" address 10.231.10.1 (on T's loopback), nothing else; T does not
forward (``net.ipv4.ip_forward=0``), so O and B have no route to each other: only what T's
own processes relay crosses. T runs coturn (``use-auth-secret``) and ``lapak signal`` on
10.231.10.1, whose ``[ice]`` config lists the TURN server and its secret file; the officer
(``tests/netns_officer.py`` joining that server) and a ``lapak booth`` process get per-client
TURN credentials in their welcome. The video must arrive with a relay candidate in the ICE
pair; with coturn stopped the link fails, and when coturn is back it is rebuilt and video
flows again. Namespaces are deleted and processes killed in ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests_support import stop_process_group

from lapak.signaling.tokens import KeyRing
from tests.test_media_netns import Reader, netns_unavailable, sh

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

log = logging.getLogger("tests.turn")
ROOT = Path(__file__).resolve().parent.parent
PUBLIC = "10.231.10.1"  # T's address: TURN on :3478, signalling on :8765
T_O, O_IP = "10.231.8.1", "10.231.8.2"
T_B, B_IP = "10.231.9.1", "10.231.9.2"
TURN_SECRET = "lapak-turn-test-secret"


class TurnTopology:
    """T, O and B as described above; ``destroy`` removes all three (and their veths)."""

    def __init__(self) -> None:
        tag = os.getpid() % 100000
        self.turn, self.officer, self.booth = (f"lapak-{x}-{tag}" for x in ("t", "to", "tb"))
        self.links = ((f"ltO{tag}", f"loT{tag}"), (f"ltB{tag}", f"lbT{tag}"))

    def create(self) -> None:
        for ns in (self.turn, self.officer, self.booth):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", self.turn, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        sh("ip", "-n", self.turn, "addr", "add", f"{PUBLIC}/32", "dev", "lo")
        for (t_dev, c_dev), ns, t_ip, c_ip in (
            (self.links[0], self.officer, T_O, O_IP),
            (self.links[1], self.booth, T_B, B_IP),
        ):
            sh("ip", "link", "add", t_dev, "type", "veth", "peer", "name", c_dev)
            sh("ip", "link", "set", t_dev, "netns", self.turn)
            sh("ip", "link", "set", c_dev, "netns", ns)
            sh("ip", "-n", self.turn, "addr", "add", f"{t_ip}/24", "dev", t_dev)
            sh("ip", "-n", ns, "addr", "add", f"{c_ip}/24", "dev", c_dev)
            sh("ip", "-n", self.turn, "link", "set", t_dev, "up")
            sh("ip", "-n", ns, "link", "set", c_dev, "up")
            sh("ip", "-n", ns, "route", "add", f"{PUBLIC}/32", "via", t_ip)

    def no_route(self, ns: str, address: str) -> bool:
        found = subprocess.run(
            ["ip", "-n", ns, "route", "get", address], capture_output=True, timeout=10
        )
        return found.returncode != 0

    def destroy(self) -> None:
        for ns in (self.turn, self.officer, self.booth):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)


async def start_turnserver(net: TurnTopology, tmp: Path, out: object) -> asyncio.subprocess.Process:
    """coturn as Debian ships it, in T, TURN REST credentials only; ready when it listens."""
    logfile = tmp / "turnserver.log"
    logfile.unlink(missing_ok=True)
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", net.turn, "turnserver", "-n",
        f"--listening-ip={PUBLIC}", f"--relay-ip={PUBLIC}", "--listening-port=3478",
        "--min-port=49152", "--max-port=49400",
        "--use-auth-secret", f"--static-auth-secret={TURN_SECRET}", "--realm=lapak.test",
        "--no-cli", "--no-tls", "--no-dtls", "--fingerprint",
        f"--log-file={logfile}", "--simple-log", f"--pidfile={tmp / 'turnserver.pid'}",
        f"--userdb={tmp / 'turndb'}",
        stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    try:
        while not udp_bound(net.turn, 3478):
            assert proc.returncode is None, "turnserver exited at start (see turnserver.log)"
            assert time.monotonic() < deadline, "turnserver did not bind UDP 3478 in 15 s"
            await asyncio.sleep(0.1)
    except BaseException:
        await stop_process_group(proc)  # not yet in the caller's list of processes to stop
        raise
    return proc


def udp_bound(ns: str, port: int) -> bool:
    found = subprocess.run(
        ["ip", "netns", "exec", ns, "ss", "-Hlun", f"sport = :{port}"],
        capture_output=True, timeout=10, check=False,
    )  # fmt: skip
    return bool(found.stdout.strip())


async def wait_listening(net: TurnTopology, port: int, timeout: float = 20) -> None:
    """Until something accepts TCP on PUBLIC:port inside T (the test itself is outside)."""
    probe = f"import socket; socket.create_connection(({PUBLIC!r}, {port}), 1).close()"
    deadline = time.monotonic() + timeout
    while True:
        done = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", net.turn, sys.executable, "-c", probe,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        if await done.wait() == 0:
            return
        assert time.monotonic() < deadline, f"nothing listens on {PUBLIC}:{port} in {timeout} s"
        await asyncio.sleep(0.2)


ALLOCATE = """
import asyncio, json, sys, time
from aioice import turn
from lapak.signaling.ice import turn_credential, turn_username

async def allocate(username, password):
    try:
        made = turn.create_turn_endpoint(
            asyncio.DatagramProtocol, (sys.argv[1], 3478), username, password
        )
        transport, _ = await asyncio.wait_for(made, 10)
    except Exception as exc:
        return type(exc).__name__
    transport.close()
    return "allocated"

async def main():
    secret, now = sys.argv[2], time.time()
    fresh, expired = turn_username("probe", now, 600), turn_username("probe", now, -60)
    print(json.dumps({
        "fresh": await allocate(fresh, turn_credential(secret, fresh)),
        "wrong_secret": await allocate(fresh, turn_credential(secret + "x", fresh)),
        "expired": await allocate(expired, turn_credential(secret, expired)),
    }))

asyncio.run(main())
"""


async def allocations(ns: str) -> dict[str, str]:
    """From ``ns``: a TURN allocation with ice.py's credentials, a wrong secret's, an expired
    one's; what coturn made of each."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, sys.executable, "-c", ALLOCATE, PUBLIC, TURN_SECRET,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, f"the allocation probe failed: {err.decode()[-2000:]}"
    result: dict[str, str] = json.loads(out)
    return result


async def wait_line(reader: Reader, what: str, ok: object, timeout: float) -> float:
    """Seconds until the officer's latest line satisfies ``ok`` (a predicate over it)."""
    started = time.monotonic()
    while True:
        line = reader.lines[-1] if reader.lines else {}
        if ok(line):  # type: ignore[operator]  # a predicate over the line
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"expected {what} in {timeout} s: {line}"
        await asyncio.sleep(0.2)


async def test_media_goes_through_turn_and_recovers_when_it_returns(tmp_path: Path) -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    if shutil.which("turnserver") is None:
        if os.environ.get("CI"):
            pytest.fail("turnserver (Debian package coturn) is missing: .ci/run installs it")
        pytest.skip("needs turnserver (apt-get install coturn)")
    secret = tmp_path / "secret"
    KeyRing.generate().write(secret)
    (tmp_path / "turn.secret").write_text(TURN_SECRET + "\n")
    config = tmp_path / "server.toml"
    config.write_text(
        f'[server]\nhost = "{PUBLIC}"\nport = 8765\ndata_dir = "data"\nsecret_file = "secret"\n'
        f'[ice]\nturn_secret_file = "turn.secret"\nturn_ttl_s = 600\n'
        f'[[ice.servers]]\nurls = ["turn:{PUBLIC}:3478?transport=udp"]\n'
    )
    net = TurnTopology()
    procs: list[asyncio.subprocess.Process] = []
    out = (tmp_path / "processes.log").open("ab")
    reader: Reader | None = None
    try:
        net.create()
        assert net.no_route(net.officer, B_IP) and net.no_route(net.booth, O_IP), (
            "the officer and the booth must have no route to each other"
        )
        turn = await start_turnserver(net, tmp_path, out)
        procs.append(turn)
        probed = await allocations(net.booth)
        assert probed == {"fresh": "allocated", "wrong_secret": "TransactionFailed",
                          "expired": "TransactionFailed"}, (
            f"coturn takes ice.py's credentials and refuses a wrong or expired one: {probed}"
        )  # fmt: skip
        server = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", net.turn, sys.executable, "-m", "lapak.cli", "signal",
            "--config", str(config),
            cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip
        procs.append(server)
        await wait_listening(net, 8765)
        officer = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", net.officer,
            sys.executable, str(ROOT / "tests" / "netns_officer.py"),
            "--server-url", f"ws://{PUBLIC}:8765/ws", "--secret", str(secret),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=out, start_new_session=True,
        )  # fmt: skip
        procs.append(officer)
        reader = Reader(officer)
        await wait_line(reader, "the officer's desk ready", lambda line: True, 30)
        booth_started = time.monotonic()
        booth = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", net.booth, sys.executable, "-m", "lapak.cli", "booth",
            "--server", f"ws://{PUBLIC}:8765", "--secret-file", str(secret),
            "--size", "320x240", "--fps", "15",
            cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip
        procs.append(booth)

        await wait_line(
            reader, "video through the relay", lambda line: line.get("frames", 0) > 15, 60
        )
        connect_s = time.monotonic() - booth_started
        line = reader.lines[-1]
        assert line["state"] == "connected", f"the link is up: {line}"
        assert "relay" in (line["pair"] or []), f"the ICE pair in use is a TURN relay: {line}"
        log.warning("turn: booth start to video via relay %.1f s, pair %s", connect_s, line["pair"])
        flowing = await reader.rates(2.0)
        assert flowing["fps"] > 5, f"video flows through the relay: {flowing}"

        await stop_process_group(turn)
        procs.remove(turn)
        stopped_at = time.monotonic()
        down_s = await wait_line(
            reader, "the link to leave connected", lambda ln: ln.get("state") != "connected", 30
        )
        stalled = await reader.rates(2.0)
        assert stalled["fps"] < 1, f"no video without the relay: {stalled}"
        # Each rebuild then gathers host candidates only (aioice gives up on the TURN server
        # after 5 s) and times out connecting: after FAILED_AFTER of them the link reads failed.
        await wait_line(
            reader, "the link to read failed", lambda ln: ln.get("state") == "failed", 240
        )
        failed_s = time.monotonic() - stopped_at
        log.warning("turn: stopped; link down after %.1f s, failed after %.1f s", down_s, failed_s)

        turn = await start_turnserver(net, tmp_path, out)
        procs.append(turn)
        recover_s = await wait_line(
            reader,
            "the link rebuilt through the returned TURN server",
            lambda line: line.get("state") == "connected" and "relay" in (line.get("pair") or []),
            120,
        )
        recovered = await reader.rates(3.0)
        assert recovered["fps"] > 5, f"video flows again through the relay: {recovered}"
        log.warning("turn: restarted; link back through the relay %.1f s later", recover_s)
    finally:
        for proc in reversed(procs):
            await stop_process_group(proc)
        if reader is not None:
            reader.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader.task
        out.close()
        net.destroy()
