"""``lapak backup``: an online copy of a live log that verifies and replays to the same state.

A real server takes decisions from a client while the backup runs; the copy is then
restored the way docs/deploy.md says (its two files into a new data directory), checked by
``lapak audit verify --public-key`` and started on.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from conftest import wait_for
from raw_client import discard, hello, request

from lapak.signaling import signing
from lapak.signaling.backup import BackupError, backup_log, marker_for, restore_files
from lapak.signaling.config import ServerConfig
from lapak.signaling.domain import State, apply
from lapak.signaling.eventlog import read_events
from lapak.signaling.server import SignalServer
from lapak.signaling.signing import Signer
from lapak.signaling.tokens import KeyRing
from lapak.signaling.visitkeys import SqliteKeyStore, reveal

FAST = ServerConfig(rate_per_s=1e6, rate_burst=100_000)  # the client writes flat out


def rows(path: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [(int(s), str(h)) for s, h in conn.execute("SELECT seq, hash FROM events")]
    finally:
        conn.close()


def signed_seq(marker: Path) -> int:
    mark = signing.read_file(marker)
    return mark.seq if mark is not None else 0


def lapak(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lapak.cli", *args], capture_output=True, text=True, timeout=120
    )


async def test_backup_of_a_live_log_verifies_and_replays(tmp_path: Path, keys: KeyRing) -> None:
    signer = Signer.generate()
    public = tmp_path / "public.pem"
    public.write_text(signer.public_pem())
    data = tmp_path / "data"
    server = SignalServer(data, keys, port=0, signer=signer, config=FAST)
    await server.start()
    assert server.log is not None
    server.log.checkpoint_interval_s = 0.2  # signed checkpoints land in the copy (else 10 s)
    officer = await hello(server.url, keys.issue("officer", "ana", "main", desk="d1"))
    booth = await hello(server.url, keys.issue("booth", "b1", "main", booth="b1"))
    claimant = {"name": "Siti", "membership_no": "123"}
    visit = (await request(booth, {"type": "start_visit", "claimant": claimant}))["visit"]
    drain = asyncio.create_task(discard(booth))  # its booth_states, read and dropped
    acked = 0
    stop = asyncio.Event()

    async def decide_forever() -> None:
        nonlocal acked
        for decision in itertools.cycle(("approve", "reopen")):
            if stop.is_set():
                return
            step = {"type": "decide", "visit": visit, "step": 0, "decision": decision}
            answer = await request(officer, step)
            assert answer["type"] == "ack", f"a decision is acknowledged: {answer}"
            acked += 1

    writer = asyncio.create_task(decide_forever())
    output = tmp_path / "backups" / "lapak.sqlite3"
    output.parent.mkdir()
    try:
        await wait_for(lambda: acked >= 30, "30 decisions before the backup")
        marker = data / "checkpoint.json"
        await wait_for(lambda: signed_seq(marker) > 0, "a signed checkpoint of the live log")
        backup = ("backup", "--data-dir", str(data), "--output", str(output))
        made = await asyncio.to_thread(lapak, *backup)  # the client writes on meanwhile
        assert made.returncode == 0, f"the backup is made: {made.stderr}"
        events = len(rows(output))
        assert f": {events} events" in made.stdout, made.stdout
        await wait_for(lambda: acked >= events + 20, "more decisions after the backup")
        twice = await asyncio.to_thread(lapak, *backup)
        assert twice.returncode == 1 and "exists" in twice.stderr, "never overwritten"
    finally:
        stop.set()
        await writer
        await officer.close()
        await booth.close()
        await drain
        await server.close()

    # The copy is the live log as of one commit: a prefix of it, one file, private.
    live = rows(data / "events.sqlite3")
    copied = rows(output)
    assert copied == live[:events]
    assert len(live) > len(copied), "the log went on after the backup"
    assert stat.S_IMODE(output.stat().st_mode) == 0o600, "the copy is owner-only"
    assert stat.S_IMODE(marker_for(output).stat().st_mode) == 0o600
    assert not output.with_name(output.name + "-wal").exists(), "one self-contained file"

    # Restore: the two files into a new data directory; audit it, then start on it.
    restored = tmp_path / "restored"
    restored.mkdir(mode=0o700)
    for source, target in restore_files(output, restored).items():
        target.write_bytes(source.read_bytes())
        target.chmod(0o600)
    audit = await asyncio.to_thread(
        lapak, "audit", "verify", "--data-dir", str(restored), "--public-key", str(public)
    )
    assert audit.returncode == 0, f"the copy verifies: {audit.stdout}{audit.stderr}"
    expected = State()
    for event in list(read_events(data / "events.sqlite3"))[:events]:
        apply(expected, event)
    copy = sqlite3.connect(f"file:{output}?mode=ro", uri=True)
    try:  # the copy carries the visit keys: its sealed names open as the live ones did
        assert reveal(expected, SqliteKeyStore(copy)) == 0, "every visit's key is in the copy"
        assert expected.visits[visit].name == "Siti", "and opens to the name the booth sent"
    finally:
        copy.close()
    again = SignalServer(restored, keys, port=0, signer=signer)
    await again.start()
    try:
        assert again.hub is not None
        same = msgspec.json.encode(again.hub.state) == msgspec.json.encode(expected)
        assert same, "the restored server holds the state of the live log at the copy"
        ws = await hello(again.url, keys.issue("officer", "ana", "main", desk="d1"))
        approved = expected.visits[visit].steps[0].status == "approved"
        decision = "reopen" if approved else "approve"
        step = {"type": "decide", "visit": visit, "step": 0, "decision": decision}
        answer = await request(ws, step)
        await ws.close()
        assert answer["type"] == "ack", f"the restored server takes decisions: {answer}"
    finally:
        await again.close()
    audit = await asyncio.to_thread(
        lapak, "audit", "verify", "--data-dir", str(restored), "--public-key", str(public)
    )
    assert audit.returncode == 0, f"the restored log goes on verifying: {audit.stdout}"


def test_backup_refuses_a_missing_log(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no event log"):
        backup_log(tmp_path / "nothing", tmp_path / "out.sqlite3")
    assert not (tmp_path / "out.sqlite3").exists()
