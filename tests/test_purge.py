"""Issue 15 on disk: a claimant's name never reaches the data directory's files in clear, a
purge (on a running server by an admin, offline with ``lapak purge --data-dir``, or by
retention) destroys the visit's key so its bytes leave the files, and the chain still
verifies; the export says ``purged``, a restart shows the visit purged, and logs written
before sealing still load and verify."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import wait_for
from raw_client import hello, request
from test_eventlog import some_events, write

from lapak.signaling.audit import records, verify_dir
from lapak.signaling.config import ServerConfig
from lapak.signaling.datadir import LOG_NAME
from lapak.signaling.eventlog import load
from lapak.signaling.personal_data import PURGED
from lapak.signaling.purge import PurgeError, purge_offline
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

NAME = "Zaenab Kusumawardhani"  # long and rare: a hit in the bytes is not chance
MEMBER = "31740123456789"
# A snapshot after every batch: the snapshots, too, must never hold the clear text.
CONFIG = ServerConfig(snapshot_every=1, snapshot_min_s=0.0)


def lapak(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lapak.cli", *args], capture_output=True, text=True, timeout=120
    )


def files(data: Path) -> bytes:
    """Every byte of the event log's files (database, WAL, shared memory)."""
    return b"".join(p.read_bytes() for p in sorted(data.glob(LOG_NAME + "*")) if p.is_file())


def stored_key(data: Path, visit: str) -> bytes | None:
    conn = sqlite3.connect(f"file:{data / LOG_NAME}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT key FROM visit_keys WHERE visit = ?", (visit,)).fetchone()
    finally:
        conn.close()
    return bytes(row[0]) if row else None


def clear_text_absent(data: Path) -> None:
    blob = files(data)
    for text in (NAME, MEMBER):
        assert text.encode() not in blob, f"{text!r} is in the data directory's files in clear"
        assert text.encode("utf-16-le") not in blob


async def start_and_leave(url: str, keys: KeyRing, booth_id: str = "b1") -> str:
    """A booth starts a visit for NAME and leaves it (ended: it may be purged)."""
    booth = await hello(url, keys.issue("booth", booth_id, "main", booth=booth_id))
    try:
        claimant = {"name": NAME, "membership_no": MEMBER}
        visit = str((await request(booth, {"type": "start_visit", "claimant": claimant}))["visit"])
        left = await request(booth, {"type": "end_visit", "visit": visit, "outcome": "abandoned"})
        assert left["type"] == "ack", left
    finally:
        await booth.close()
    return visit


def export_rows(data: Path, visit: str) -> dict[str, dict[str, object]]:
    return {str(r["kind"]): r for r in records(data, visit=visit)}


async def test_an_admin_purges_on_the_running_server_and_the_key_leaves_the_files(
    tmp_path: Path, keys: KeyRing
) -> None:
    data = tmp_path / "data"
    server = SignalServer(data, keys, port=0, config=CONFIG)
    await server.start()
    try:
        assert server.hub is not None
        visit = await start_and_leave(server.url, keys)
        assert server.hub.state.visits[visit].name == NAME, "memory keeps the name"
        key = stored_key(data, visit)
        assert key is not None and len(key) == 32
        assert key in files(data), "the key is in the database until the purge"
        clear_text_absent(data)
        ask = {"type": "purge_visit", "visit": visit, "reason": "claimant request"}
        others = {
            "officer": keys.issue("officer", "ana", "main", desk="d1"),
            "supervisor": keys.issue("supervisor", "sue", "main"),
            "east admin": keys.issue("admin", "eve", "east"),
        }
        for who, token in others.items():
            ws = await hello(server.url, token)
            answer = await request(ws, ask)
            await ws.close()
            assert answer["type"] == "error", f"{who} may not purge: {answer}"
        assert stored_key(data, visit) == key, "a refused purge destroys nothing"
        admin = await hello(server.url, keys.issue("admin", "root", "main"))
        answer = await request(admin, ask)
        await admin.close()
        assert answer == {"type": "ack", "re": answer["re"], "visit": visit}
        assert stored_key(data, visit) is None
        assert key not in files(data), "the key's bytes are gone from the database and WAL"
        clear_text_absent(data)
        assert server.hub.state.visits[visit].name == PURGED
    finally:
        await server.close()
    report = verify_dir(data)
    assert report.problems == [], report.problems
    rows = export_rows(data, visit)
    detail = rows["visit_started"]["detail"]
    assert isinstance(detail, dict)
    assert (detail["name"], detail["membership_no"]) == (PURGED, PURGED)
    purged = rows["visit_purged"]
    assert (purged["by"], purged["role"]) == ("root", "admin")
    assert purged["detail"] == {"reason": "claimant request"}
    again = SignalServer(data, keys, port=0, config=CONFIG)
    await again.start()
    try:
        assert again.hub is not None
        shown = again.hub.state.visits[visit]
        assert (shown.name, shown.membership_no, shown.purged) == (PURGED, PURGED, True)
    finally:
        await again.close()
    clear_text_absent(data)


async def test_a_restart_reopens_sealed_names_and_retention_purges_them(
    tmp_path: Path, keys: KeyRing
) -> None:
    """The names come back after a restart (from the keys), until the office's retention
    runs out: then the server's tick purges them, at its injected clock."""
    data = tmp_path / "data"
    now = [time.time()]  # the tokens' clock too, until the day passes
    config = ServerConfig(snapshot_every=1, snapshot_min_s=0.0)
    config.retention = ServerConfig.from_dict({"retention": {"days": 1}}).retention
    server = SignalServer(data, keys, port=0, config=config, clock=lambda: now[0])
    await server.start()
    try:
        visit = await start_and_leave(server.url, keys)
    finally:
        await server.close()
    again = SignalServer(data, keys, port=0, config=config, clock=lambda: now[0])
    await again.start()
    try:
        assert again.hub is not None
        assert again.hub.state.visits[visit].name == NAME, "opened again with its key"
        assert export_rows(data, visit)["visit_started"]["detail"]["name"] == "sealed"  # type: ignore[index]
        now[0] += 86400
        await wait_for(lambda: stored_key(data, visit) is None, "the tick purges it")
        assert again.hub.state.visits[visit].name == PURGED
    finally:
        await again.close()
    rows = export_rows(data, visit)
    assert (rows["visit_purged"]["by"], rows["visit_purged"]["role"]) == ("server", "system")
    assert rows["visit_purged"]["detail"] == {"reason": "retention"}
    assert verify_dir(data).problems == []
    clear_text_absent(data)


async def test_lapak_purge_offline_and_online(tmp_path: Path, keys: KeyRing) -> None:
    data = tmp_path / "data"
    server = SignalServer(data, keys, port=0, config=CONFIG)
    await server.start()
    try:
        first = await start_and_leave(server.url, keys)
        second = await start_and_leave(server.url, keys, "b2")
        offline = ("purge", "--data-dir", str(data), "--visit", first, "--by", "dpo")
        busy = await asyncio.to_thread(lapak, *offline)
        assert busy.returncode == 1, busy
        assert "in use" in busy.stderr and "--server" in busy.stderr, busy.stderr
        assert "Traceback" not in busy.stderr
        online = ("purge", "--server", server.url, "--visit", second)
        officer = keys.issue("officer", "ana", "main", desk="d1")
        wrong = await asyncio.to_thread(lapak, *online, "--token", officer)
        assert wrong.returncode == 5 and "admin token" in wrong.stderr, wrong
        admin = keys.issue("admin", "root", "main")
        done = await asyncio.to_thread(lapak, *online, "--token", admin)
        assert done.returncode == 0, done.stderr
        assert f"{second}: purged" in done.stdout
        twice = await asyncio.to_thread(lapak, *online, "--token", admin)
        assert twice.returncode == 1 and "already purged" in twice.stderr, twice
    finally:
        await server.close()
    key = stored_key(data, first)
    assert key is not None and key in files(data)
    done = await asyncio.to_thread(lapak, *offline)
    assert done.returncode == 0, done.stderr
    assert f"{first}: purged" in done.stdout
    assert stored_key(data, first) is None and key not in files(data)
    twice = await asyncio.to_thread(lapak, *offline)
    assert twice.returncode == 1 and "already purged" in twice.stderr, twice
    unknown = await asyncio.to_thread(lapak, "purge", "--data-dir", str(data), "--visit", "V9")
    assert unknown.returncode == 1 and "not_found" in unknown.stderr, unknown
    nowhere = await asyncio.to_thread(
        lapak, "purge", "--data-dir", str(tmp_path / "x"), "--visit", "V1"
    )
    assert nowhere.returncode == 3 and "no event log" in nowhere.stderr
    away = ("purge", "--server", "127.0.0.1:9", "--token", keys.issue("admin", "root", "main"))
    unreachable = await asyncio.to_thread(lapak, *away, "--visit", "V1")
    assert unreachable.returncode == 4 and "cannot reach" in unreachable.stderr, unreachable
    both = await asyncio.to_thread(lapak, "purge", "--visit", "V1")
    assert both.returncode == 2 and "either" in both.stderr
    verified = await asyncio.to_thread(lapak, "audit", "verify", "--data-dir", str(data))
    assert verified.returncode == 0, verified.stdout
    export = await asyncio.to_thread(lapak, "audit", "export", "--data-dir", str(data))
    assert export.returncode == 0
    assert export.stdout.count('"name": "purged"') == 2, "both visits show as purged"
    assert '"by": "dpo"' in export.stdout and NAME not in export.stdout
    clear_text_absent(data)


async def test_a_log_written_before_sealing_still_loads_and_verifies(tmp_path: Path) -> None:
    """Old logs carry names in clear inside the chain: they load (names shown), verify and
    export as before; purging one of their visits is refused, saying why."""
    data = tmp_path / "old"
    data.mkdir(mode=0o700)
    events, _ = some_events(3)
    await write(data / LOG_NAME, events)
    loaded = load(data / LOG_NAME)
    assert [v.name for v in loaded.state.visits.values()] == ["Siti"] * 3
    assert verify_dir(data).problems == []
    visit = next(iter(loaded.state.visits))
    started = export_rows(data, visit)["visit_started"]["detail"]
    assert started["name"] == "in clear"  # type: ignore[index]
    with pytest.raises(PurgeError, match="before personal data was sealed"):
        purge_offline(data, visit, "claimant request", "dpo", 100.0)
    assert verify_dir(data).problems == [], "a refused purge writes nothing"


async def test_a_reader_delays_the_scrub_without_stalling_the_writer(tmp_path: Path) -> None:
    """A backup or audit reading the log keeps the purge's WAL checkpoint from finishing:
    the writer does not wait for it (the purge is committed, the key row gone) and scrubs
    again after its next batch, once the reader is done."""
    import os

    from lapak.signaling.datadir import open_data_dir
    from lapak.signaling.domain import Domain, Rules
    from lapak.signaling.eventlog import EventLog
    from lapak.signaling.permissions import Actor
    from lapak.signaling.personal_data import Sealer
    from lapak.signaling.workflows import default_workflows

    data = tmp_path / "data"
    opened = open_data_dir(data)
    domain = Domain(rules=Rules(default_workflows()), sealer=Sealer(os.urandom))
    booth = Actor("booth", "b1", "main", booth="b1")
    eventlog = EventLog(opened.log_path, marker=opened.marker_path)
    eventlog.start(opened.take_connection())
    try:
        visit, events = domain.start_visit(booth, NAME, MEMBER, "JHT", 1.0)
        events += domain.end_visit(booth, visit, "abandoned", None, 2.0)
        await eventlog.append(events, keys=domain.take_keys())
        key = stored_key(data, visit)
        assert key is not None
        reader = sqlite3.connect(f"file:{data / LOG_NAME}?mode=ro", uri=True)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM events").fetchone()  # holds its snapshot
        admin = Actor("admin", "root", "main")
        await eventlog.append(domain.purge_visit(admin, visit, "claimant request", 3.0))
        assert eventlog.unscrubbed, "the checkpoint gave way to the reader"
        assert stored_key(data, visit) is None, "the purge itself is committed"
        reader.execute("COMMIT")
        reader.close()
        _, more = domain.start_visit(
            Actor("booth", "b2", "main", booth="b2"), "Budi", "1", "JHT", 4.0
        )
        await eventlog.append(more, keys=domain.take_keys())
        assert not eventlog.unscrubbed, "scrubbed after the next batch"
        assert key not in files(data)
    finally:
        await eventlog.close()
        opened.close()
    clear_text_absent(data)
