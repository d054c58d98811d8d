"""Issue 11: a tamper-evident log that covers what it exports, signed checkpoints, a data
directory checked, locked and private before any client is accepted, disk full said as such.

The attacks are the ones an outsider ran: sqlite-shell edits of seq/at/kind, a TEXT body,
an edited snapshot, a removed tail, a file truncated to 0 bytes, a chain recomputed by
someone holding the file but not the signing key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_eventlog import some_events, write
from tests_support import wait_healthy

from lapak.signaling import signing
from lapak.signaling.audit import records, verify_dir
from lapak.signaling.datadir import DataDirError, open_data_dir
from lapak.signaling.domain import Domain, Rules
from lapak.signaling.eventlog import GENESIS, EventLog, LogError, chain, chain_v1, load
from lapak.signaling.events import Event
from lapak.signaling.permissions import Actor
from lapak.signaling.server import SignalServer
from lapak.signaling.signing import Signer
from lapak.signaling.tokens import KeyRing
from lapak.signaling.workflows import default_workflows

LAPAK = [sys.executable, "-m", "lapak.cli"]


def lapak(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LAPAK, *args], capture_output=True, text=True, timeout=timeout)


def events_with_a_rejection() -> list[Event]:
    d = Domain(rules=Rules(default_workflows()))
    ana = Actor("officer", "ana", "main", desk="d1")
    events: list[Event] = list(d.open_desk(ana, 0.0))
    b1, b2 = (Actor("booth", b, "main", booth=b) for b in ("b1", "b2"))
    visit, evs = d.start_visit(b1, "Siti", "00000000001", "JHT", 1.0)
    events += evs
    events += d.decide(ana, visit, 0, "reject", "document unreadable", 2.0)
    _, evs = d.start_visit(b2, "Budi", "00000000002", "JHT", 3.0)
    return events + evs


async def signed_log(tmp_path: Path, n_visits: int = 4) -> tuple[Path, Signer, int]:
    """A data directory written the way the server writes it, with a signing key."""
    signer = Signer.generate()
    data = tmp_path / "data"
    events, _ = some_events(n_visits)
    await write(data / "events.sqlite3", events, snapshot_every=7, signer=signer)
    return data, signer, len(events)


def sql(data: Path, *statements: str) -> None:
    conn = sqlite3.connect(data / "events.sqlite3")
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


# -- 1. the chain covers every stored column --------------------------------------------


async def test_edited_at_and_kind_break_the_chain(tmp_path: Path) -> None:
    data, _, _ = await signed_log(tmp_path)
    assert verify_dir(data).problems == []
    sql(data, "UPDATE events SET at = at - 259200, kind = 'visit_ended' WHERE seq = 3")
    problems = verify_dir(data).problems
    assert any(p.startswith("event 3 ") for p in problems), problems


async def test_swapped_seq_breaks_the_chain(tmp_path: Path) -> None:
    data, _, _ = await signed_log(tmp_path)
    sql(
        data,
        "UPDATE events SET seq = 1000 WHERE seq = 4",
        "UPDATE events SET seq = 4 WHERE seq = 5",
        "UPDATE events SET seq = 5 WHERE seq = 1000",
    )
    problems = verify_dir(data).problems
    assert any("event 4" in p for p in problems), problems


async def test_a_text_body_is_named_not_a_crash(tmp_path: Path) -> None:
    data, _, _ = await signed_log(tmp_path)
    sql(data, "UPDATE events SET body = CAST(body AS TEXT) WHERE seq = 2")
    problems = verify_dir(data).problems
    assert any(p.startswith("event 2:") and "TEXT" in p for p in problems), problems
    out = await asyncio.to_thread(lapak, "audit", "verify", "--data-dir", str(data))
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr and "BROKEN event 2:" in out.stdout
    sql(data, "DELETE FROM snapshots")  # startup checks only the tail it replays
    with pytest.raises(LogError, match="event 2: body is stored as TEXT"):
        load(data / "events.sqlite3")


async def test_an_unreadable_row_of_every_kind_is_named(tmp_path: Path) -> None:
    data, _, _ = await signed_log(tmp_path)
    sql(data, "UPDATE events SET at = 'yesterday' WHERE seq = 3")
    sql(data, "UPDATE snapshots SET body = CAST(body AS TEXT)")
    problems = verify_dir(data).problems
    assert any(p.startswith("event 3:") for p in problems), problems
    assert any(p.startswith("snapshot at event") for p in problems), problems


# -- snapshots carry the hash of their state ----------------------------------------------


async def test_an_edited_snapshot_falls_back_to_full_replay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    signer = Signer.generate()
    await write(data / "events.sqlite3", events_with_a_rejection(), 3, signer=signer)
    conn = sqlite3.connect(data / "events.sqlite3")
    body = conn.execute("SELECT body FROM snapshots").fetchone()[0]
    assert b'"rejected"' in body, "the snapshot holds the rejected step"
    forged = body.replace(b'"rejected"', b'"approved"')
    conn.execute("UPDATE snapshots SET body = ?", (forged,))
    conn.commit()
    with caplog.at_level(logging.WARNING, "lapak.eventlog"):
        loaded = load(data / "events.sqlite3")
    assert loaded.from_snapshot == 0, "the edited snapshot was not used"
    assert loaded.state.visits["V000001"].steps[0].status == "rejected"
    assert "snapshot_ignored" in caplog.text and "state_hash_mismatch" in caplog.text
    # Whoever also recomputes the state hash still lacks the key that signed it.
    conn.execute("UPDATE snapshots SET state_hash = ?", (hashlib.sha256(forged).hexdigest(),))
    conn.commit()
    conn.close()
    loaded = load(data / "events.sqlite3", signer.public)
    assert loaded.from_snapshot == 0
    assert loaded.state.visits["V000001"].steps[0].status == "rejected"
    problems = verify_dir(data, signer.public).problems
    assert any("differs from its checkpoint" in p for p in problems), problems


# -- removed tail, emptied file, rewritten history ------------------------------------------


async def test_a_removed_tail_is_detected(tmp_path: Path) -> None:
    data, signer, n = await signed_log(tmp_path)
    sql(data, f"DELETE FROM events WHERE seq > {n - 3}")
    problems = verify_dir(data).problems
    assert any("ahead of the log" in p for p in problems), problems
    # Also deleting the checkpoint rows leaves checkpoint.json, outside the database.
    sql(data, "DELETE FROM checkpoints")
    problems = verify_dir(data, signer.public).problems
    assert any("checkpoint.json" in p and "ahead of the log" in p for p in problems), problems
    with pytest.raises(DataDirError, match="removed from the tail"):
        open_data_dir(data, signer)


async def test_a_file_truncated_to_zero_bytes_is_detected(tmp_path: Path) -> None:
    data, signer, n = await signed_log(tmp_path)
    os.truncate(data / "events.sqlite3", 0)
    problems = verify_dir(data, signer.public).problems
    assert any("0 bytes" in p and f"held {n} events" in p for p in problems), problems
    out = await asyncio.to_thread(lapak, "audit", "verify", "--data-dir", str(data))
    assert out.returncode == 1 and "BROKEN" in out.stdout, out
    (data / "checkpoint.json").unlink()  # everything gone: the signed view still says so
    assert verify_dir(data, signer.public).problems


async def test_deleting_log_and_checkpoints_leaves_nothing_signed(tmp_path: Path) -> None:
    data, signer, _ = await signed_log(tmp_path)
    (data / "checkpoint.json").unlink()
    sql(data, "DELETE FROM checkpoints")
    problems = verify_dir(data, signer.public).problems
    assert "no checkpoint signed by this key vouches for the log" in problems, problems
    assert any("checkpoint.json is missing" in p for p in problems), problems


def recompute_chain(data: Path) -> None:
    """What an attacker holding the file (not the key) does after editing an event:
    recompute every hash, fix the checkpoints' hashes and the checkpoint file."""
    conn = sqlite3.connect(data / "events.sqlite3")
    previous = GENESIS
    hashes = {}
    for seq, at, kind, body in conn.execute("SELECT seq, at, kind, body FROM events").fetchall():
        previous = hashes[seq] = chain(previous, seq, at, kind, body)
        conn.execute("UPDATE events SET hash = ? WHERE seq = ?", (previous, seq))
    for (seq,) in conn.execute("SELECT seq FROM checkpoints").fetchall():
        conn.execute("UPDATE checkpoints SET hash = ? WHERE seq = ?", (hashes[seq], seq))
    conn.execute("DELETE FROM snapshots")
    conn.commit()
    conn.close()
    marker = json.loads((data / "checkpoint.json").read_text())
    marker["hash"] = hashes[marker["seq"]]
    (data / "checkpoint.json").write_text(json.dumps(marker))


async def test_a_recomputed_chain_is_caught_by_the_signature(tmp_path: Path) -> None:
    data, signer, _ = await signed_log(tmp_path)
    conn = sqlite3.connect(data / "events.sqlite3")
    body = conn.execute("SELECT body FROM events WHERE seq = 4").fetchone()[0]
    conn.execute("UPDATE events SET body = ? WHERE seq = 4", (body.replace(b"ana", b"eve"),))
    conn.commit()
    conn.close()
    recompute_chain(data)
    assert verify_dir(data).problems == [], "without the key the chain alone cannot tell"
    problems = verify_dir(data, signer.public).problems
    assert any("bad signature" in p for p in problems), problems
    with pytest.raises(DataDirError, match="forged"):
        open_data_dir(data, signer)


async def test_audit_public_key_and_verify_from_the_command_line(tmp_path: Path) -> None:
    data, _, _ = await signed_log(tmp_path)
    key = tmp_path / "keys" / "signing.pem"
    signer = signing.load_or_create(key, data)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    out = await asyncio.to_thread(lapak, "audit", "public-key", "--signing-key", str(key))
    assert out.returncode == 0 and out.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert out.stdout == signer.public_pem()
    pub = tmp_path / "lapak.pub"
    pub.write_text(out.stdout)
    # The log above was signed by another key: verify names that, exit 1.
    out = await asyncio.to_thread(
        lapak, "audit", "verify", "--data-dir", str(data), "--public-key", str(pub)
    )
    assert out.returncode == 1 and "bad signature" in out.stdout, out
    with pytest.raises(signing.SigningKeyError, match="inside the data directory"):
        signing.load_or_create(data / "key.pem", data)


def test_processes_creating_one_signing_key_at_once_all_read_it_whole(tmp_path: Path) -> None:
    """A cluster's nodes start together on one ``--signing-key`` path that does not exist
    yet: whoever creates it, every one of them reads the same whole key (a node once
    read another's half-written file and exited). Six processes, released together by a
    barrier, eight rounds; each prints the public key it got."""
    script = (
        "import sys, multiprocessing as mp\n"
        "from pathlib import Path\n"
        "from lapak.signaling import signing\n"
        "def one(path, barrier, out):\n"
        "    barrier.wait()\n"
        "    try:\n"
        "        out.put(signing.load_or_create(Path(path)).public_pem())\n"
        "    except signing.SigningKeyError as exc:\n"
        "        out.put('error: ' + str(exc))\n"
        "if __name__ == '__main__':\n"
        "    n, path = 6, sys.argv[1]\n"
        "    barrier, out = mp.Barrier(n), mp.Queue()\n"
        "    procs = [mp.Process(target=one, args=(path, barrier, out)) for _ in range(n)]\n"
        "    for p in procs: p.start()\n"
        "    got = [out.get(timeout=60) for _ in procs]\n"
        "    for p in procs: p.join(60)\n"
        "    print(len(set(got)), got[0] if len(set(got)) == 1 else got)\n"
    )
    for round_ in range(8):
        key = tmp_path / f"keys{round_}" / "signing.pem"
        out = subprocess.run(
            [sys.executable, "-c", script, str(key)], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.startswith("1 -----BEGIN PUBLIC KEY-----"), (
            f"round {round_}: every process got the same key: {out.stdout}"
        )
        assert signing.load(key).public_pem() in out.stdout, "the file holds that key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert sorted(f.name for f in key.parent.iterdir()) == ["signing.pem"], (
            "no temporary file left beside the key"
        )


# -- the real server: signing key, checkpoints at shutdown, refusal at start -----------------


def start_signal(
    tmp_path: Path, data: Path, port: int, *extra: str, log_level: str = "INFO"
) -> subprocess.Popen[str]:
    secret = tmp_path / "secret"
    if not secret.exists():
        KeyRing.generate().write(secret)
    return subprocess.Popen(
        [*LAPAK, "--log-level", log_level, "signal", "--port", str(port), "--data-dir",
         str(data), "--secret-file", str(secret), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


async def test_lapak_signal_signs_its_log_and_verify_accepts_it(tmp_path: Path) -> None:
    from tests_support import free_port

    data, port = tmp_path / "data", free_port()
    key = tmp_path / "keys" / "lapak-signing.pem"
    config = tmp_path / "server.toml"
    config.write_text('[[desks]]\nid = "desk-1"\noffice = "main"\n')
    proc = start_signal(tmp_path, data, port, "--signing-key", str(key), "--config", str(config))
    try:
        await asyncio.to_thread(wait_healthy, port, proc)
        proc.terminate()
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    out = await asyncio.to_thread(lapak, "audit", "public-key", "--signing-key", str(key))
    (tmp_path / "lapak.pub").write_text(out.stdout)
    out = await asyncio.to_thread(
        lapak, "audit", "verify", "--data-dir", str(data), "--public-key",
        str(tmp_path / "lapak.pub"),
    )  # fmt: skip
    assert out.returncode == 0 and "0 problems" in out.stdout, out
    assert "NOTE events" not in out.stdout, "the shutdown checkpoint signed the whole log"
    refused = await asyncio.to_thread(
        lapak, "signal", "--port", "0", "--data-dir", str(data), "--secret-file",
        str(tmp_path / "secret"), "--signing-key", str(data / "key.pem"),
    )  # fmt: skip
    assert refused.returncode == 2 and "inside the data directory" in refused.stderr
    assert "Traceback" not in refused.stderr


async def test_lapak_signal_refuses_an_emptied_log_with_one_line(tmp_path: Path) -> None:
    from tests_support import free_port

    data, _, n = await signed_log(tmp_path)
    os.truncate(data / "events.sqlite3", 0)
    out = await asyncio.to_thread(
        lapak, "signal", "--port", str(free_port()), "--data-dir", str(data),
        "--secret-file", str(tmp_path / "secret"), "--signing-key", str(tmp_path / "k.pem"),
    )  # fmt: skip
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr
    assert f"empty (0 bytes), but checkpoint.json says the log held {n} events" in out.stderr


async def start_server(data: Path, signer: Signer | None = None) -> SignalServer:
    server = SignalServer(data, KeyRing.generate(), port=0, signer=signer)
    await server.start()
    return server


async def test_startup_refuses_an_emptied_or_missing_log(tmp_path: Path) -> None:
    data, signer, _ = await signed_log(tmp_path)
    os.truncate(data / "events.sqlite3", 0)
    with pytest.raises(DataDirError, match="truncated"):
        await start_server(data, signer)
    (data / "events.sqlite3").unlink()
    with pytest.raises(DataDirError, match=r"is missing, but checkpoint\.json"):
        await start_server(data)
    assert not (data / "events.sqlite3").exists(), "no new empty log was created"


async def test_startup_refuses_a_malformed_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "events.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(DataDirError, match="not a readable SQLite database"):
        await start_server(data)


async def test_startup_refuses_the_old_format(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "events.sqlite3")
    conn.executescript(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL,"
        " body BLOB NOT NULL, hash TEXT NOT NULL);"
        "CREATE TABLE snapshots (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, body BLOB);"
    )
    body = b'{"kind":"desk_vacated","desk":"d1","at":1.0}'
    conn.execute(
        "INSERT INTO events VALUES (1, 1.0, 'desk_vacated', ?, ?)", (body, chain_v1(GENESIS, body))
    )
    conn.commit()
    conn.close()
    with pytest.raises(LogError, match="schema 1"):
        await start_server(data)
    report = verify_dir(data)
    assert report.count == 1 and report.problems == [], "old logs can still be verified"
    assert any("schema 1" in note for note in report.notes)


async def test_a_second_server_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = await start_server(data)
    try:
        with pytest.raises(
            DataDirError, match=f"in use by another lapak signal \\(pid {os.getpid()}"
        ):
            await start_server(data)
    finally:
        await first.close()
    again = await start_server(data)  # the lock went with the first server
    await again.close()


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


async def test_startup_refuses_a_read_only_directory(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "4m") as mnt:
        data = mnt / "data"
        server = await start_server(data)
        await server.close()
        remount = ["mount", "-o", "remount,ro", str(mnt)]
        await asyncio.to_thread(subprocess.run, remount, check=True)
        with pytest.raises(DataDirError, match="read-only"):
            await start_server(data)


# -- data at rest ---------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_data_directory_and_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = await start_server(data)
    try:
        assert mode(data) == 0o700
        for name in ("events.sqlite3", "events.sqlite3-wal", "events.sqlite3-shm", "lock",
                     "checkpoint.json"):  # fmt: skip
            assert mode(data / name) == 0o600, name
    finally:
        await server.close()
    data.chmod(0o755)  # an existing directory from before, with loose modes
    (data / "events.sqlite3").chmod(0o644)
    (data / "checkpoint.json").chmod(0o644)
    server = await start_server(data)
    try:
        assert mode(data) == 0o700, "tightened at start"
        assert mode(data / "events.sqlite3") == 0o600
        assert mode(data / "checkpoint.json") == 0o600
    finally:
        await server.close()


# -- snapshots and checkpoints ----------------------------------------------------------------


async def test_clean_shutdown_writes_a_snapshot_and_a_checkpoint(tmp_path: Path) -> None:
    """The server's rule (10,000 events, at most one per 300 s) wrote none in a short run,
    so the next start replayed everything: close() now always writes one."""
    data = tmp_path / "data"
    events, _ = some_events(5)
    datadir = open_data_dir(data)
    log = EventLog(datadir.log_path, load(datadir.log_path), 10_000, 300.0,
                   marker=datadir.marker_path)  # fmt: skip
    log.start()
    futures = [log.append([e]) for e in events]
    await log.close()  # without awaiting the appends first: close flushes them
    datadir.close()
    assert all(f.done() and f.exception() is None for f in futures), "every append resolved"
    loaded = load(data / "events.sqlite3")
    assert (loaded.from_snapshot, loaded.replayed) == (len(events), 0)
    assert signing.read_file(data / "checkpoint.json").seq == len(events)  # type: ignore[union-attr]


async def test_checkpoints_every_n_events_and_after_a_quiet_interval(tmp_path: Path) -> None:
    from conftest import wait_for

    signer = Signer.generate()
    data = tmp_path / "data"
    datadir = open_data_dir(data, signer)
    log = EventLog(datadir.log_path, load(datadir.log_path), signer=signer,
                   marker=datadir.marker_path, checkpoint_every=5,
                   checkpoint_interval_s=3600)  # fmt: skip
    log.start()
    events, _ = some_events(3)
    for event in events[:12]:
        await log.append([event])  # one commit each
    assert log.checkpoints == 2, "at events 5 and 10"

    def marker_seq() -> int:
        return signing.read_file(data / "checkpoint.json").seq  # type: ignore[union-attr]

    assert marker_seq() == 10
    log.checkpoint_interval_s = 0.2  # now the quiet writer signs the tail by itself
    await log.append([events[12]])
    await wait_for(lambda: marker_seq() == 13, "a checkpoint after the log went quiet")
    await log.close()
    datadir.close()
    report = verify_dir(data, signer.public)
    assert report.problems == [] and report.notes == [], report


# -- audit export: the desk of every row ------------------------------------------------------


async def test_export_names_the_desk_of_decisions_and_endings(tmp_path: Path) -> None:
    events, _ = some_events(2)
    await write(tmp_path / "events.sqlite3", events)
    rows = records(tmp_path, visit="V000001")
    desks = [(r["kind"], r["by"], r["desk"]) for r in rows]
    assert desks[2:] == [
        ("step_decided", "ana", "d1"),
        ("visit_escalated", "ana", "d1"),  # handed over from desk d1 ...
        ("escalation_taken", "sri", None),  # ... and resolved at no desk
        ("step_decided", "sri", None),
        ("visit_ended", "sri", None),
    ], desks


# -- /healthz ---------------------------------------------------------------------------------


async def test_healthz_fails_when_the_log_is_truncated_under_a_running_server(
    tmp_path: Path,
) -> None:
    data, signer, _ = await signed_log(tmp_path)
    server = await start_server(data, signer)
    try:
        assert server.health()["status"] == "ok"
        os.truncate(data / "events.sqlite3", 0)
        health = server.health()
        assert health["status"] == "failing" and "truncated" in health["problem"]
    finally:
        await server.close()


# -- disk full ----------------------------------------------------------------------------------


def fill(path: Path) -> None:
    """Write until the file system says ENOSPC."""
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(chunk)
    with path.open("ab", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 512)


async def start_visits_until_the_server_goes(url: str, secret: Path, proc: subprocess.Popen[str]):  # type: ignore[no-untyped-def]
    """Booths start visits (each one logs events) until the server is gone."""
    import websockets

    keys = KeyRing.from_file(secret)
    for i in range(200):
        if proc.poll() is not None:
            return
        token = keys.issue("booth", f"b{i}", "main", booth=f"b{i}")
        with contextlib.suppress(OSError, websockets.ConnectionClosed, TimeoutError):
            async with asyncio.timeout(30), websockets.connect(url) as ws:
                await ws.send(json.dumps({"type": "hello", "id": 1, "token": token}))
                await ws.recv()
                claimant = {"name": "Siti " + "x" * 60, "membership_no": f"{i:011d}"}
                await ws.send(json.dumps({"type": "start_visit", "id": 2, "claimant": claimant}))
                await ws.recv()
    raise AssertionError("the server kept running on a full disk")


async def test_disk_full_is_said_and_a_restart_says_so_at_once(tmp_path: Path) -> None:
    from tests_support import free_port

    with tmpfs(tmp_path / "mnt", "8m") as mnt:
        data, port = mnt / "data", free_port()
        proc = start_signal(tmp_path, data, port)
        again = None
        try:
            await asyncio.to_thread(wait_healthy, port, proc)
            await asyncio.to_thread(fill, mnt / "filler")
            url = f"ws://127.0.0.1:{port}/ws"
            await start_visits_until_the_server_goes(url, tmp_path / "secret", proc)
            assert await asyncio.to_thread(proc.wait, 30) == 1
            err = proc.stderr.read() if proc.stderr else ""
            assert "event=log_write_failed reason=disk_full" in err, err
            assert "lapak signal: disk full (database or disk is full)" in err, err
            assert "cannot rollback" not in err and "Traceback" not in err, err
            again = start_signal(tmp_path, data, free_port())
            assert await asyncio.to_thread(again.wait, 30) == 1, "refused at once"
            err = again.stderr.read() if again.stderr else ""
            assert "lapak signal: disk full" in err and "Traceback" not in err, err
        finally:
            for p in (proc, again):
                if p is not None and p.poll() is None:
                    p.kill()
                if p is not None:
                    p.communicate()


async def test_export_of_a_damaged_log_says_so_without_a_traceback(tmp_path: Path) -> None:
    data, _, _ = await signed_log(tmp_path)
    sql(data, "UPDATE events SET body = X'00FF' WHERE seq = 2")
    out = await asyncio.to_thread(lapak, "audit", "export", "--data-dir", str(data))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "run `lapak audit verify`" in out.stderr
