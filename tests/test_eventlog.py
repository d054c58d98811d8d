"""The durable log: hash chain, snapshots, replay, audit, and SIGKILL of a real server."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lapak.signaling.audit import records, verify_dir
from lapak.signaling.datadir import open_data_dir
from lapak.signaling.domain import Domain, Rules, State
from lapak.signaling.eventlog import EventLog, LogError, load
from lapak.signaling.events import Event
from lapak.signaling.permissions import Actor
from lapak.signaling.signing import Signer
from lapak.signaling.tokens import KeyRing
from lapak.signaling.workflows import default_workflows


def some_events(n_visits: int = 20) -> tuple[list[Event], State]:
    d = Domain(rules=Rules(default_workflows()))
    ana = Actor("officer", "ana", "main", desk="d1")
    sri = Actor("supervisor", "sri", "main", grants=("monitor", "resolve"))
    events: list[Event] = list(d.open_desk(ana, 0.0))
    for i in range(n_visits):
        booth = Actor("booth", f"b{i}", "main", booth=f"b{i}")
        visit, evs = d.start_visit(booth, "Siti", f"{i:011d}", "JHT", float(i))
        events += evs
        events += d.decide(ana, visit, 0, "approve", None, float(i))
        events += d.end_visit(ana, visit, "escalated", "see supervisor", float(i) + 0.5)
        events += d.take_escalation(sri, visit, float(i) + 0.6)  # the hand-off, resolved
        events += d.decide(sri, visit, 1, "reject", "documents missing", float(i) + 0.7)
        events += d.end_visit(sri, visit, "rejected", None, float(i) + 0.8)
    return events, d.state


async def write(
    path: Path, events: list[Event], snapshot_every: int = 10_000, signer: Signer | None = None
) -> EventLog:
    """Append ``events`` one by one; a path named events.sqlite3 is used the way the server
    uses it (its directory checked, locked, with its checkpoint file)."""
    data = open_data_dir(path.parent, signer) if path.name == "events.sqlite3" else None
    marker = data.marker_path if data else None
    log = EventLog(path, load(path), snapshot_every, signer=signer, marker=marker)
    log.start()
    try:
        async with asyncio.timeout(20):
            await asyncio.gather(*(log.append([e]) for e in events))
    finally:
        await log.close()
        if data:
            data.close()
    return log


async def test_replay_with_and_without_snapshots_gives_the_same_state(tmp_path: Path) -> None:
    events, state = some_events()
    plain = tmp_path / "plain.sqlite3"
    snap = tmp_path / "snap.sqlite3"
    await write(plain, events)
    written = await write(snap, events, snapshot_every=7)
    assert written.snapshots >= 1, "snapshots were taken"
    from_plain, from_snap = load(plain), load(snap)
    assert from_snap.from_snapshot > 0 and from_snap.replayed < len(events)
    assert from_plain.state.visits == state.visits == from_snap.state.visits
    assert from_plain.state.desks == from_snap.state.desks
    assert from_plain.last_hash == from_snap.last_hash


async def test_verify_detects_an_edited_and_a_removed_event(tmp_path: Path) -> None:
    events, _ = some_events(5)
    path = tmp_path / "data" / "events.sqlite3"
    path.parent.mkdir()
    await write(path, events)
    report = verify_dir(path.parent)
    assert (report.count, report.problems) == (len(events), []), "an untouched log verifies"
    conn = sqlite3.connect(path)
    body = conn.execute("SELECT body FROM events WHERE seq = 4").fetchone()[0]
    conn.execute("UPDATE events SET body = ? WHERE seq = 4", (body.replace(b"approve", b"reject"),))
    conn.commit()
    problems = verify_dir(path.parent).problems
    assert any("event 4" in p for p in problems), f"the edit is found: {problems}"
    conn.execute("UPDATE events SET body = ? WHERE seq = 4", (body,))
    conn.execute("DELETE FROM events WHERE seq = 6")
    conn.commit()
    conn.close()
    problems = verify_dir(path.parent).problems
    assert any("6..6 missing" in p for p in problems), f"the removal is found: {problems}"
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM snapshots")  # replay from the start: it reads row 6's gap
    conn.commit()
    conn.close()
    with pytest.raises(LogError, match=r"^event 6\.\.6 missing$"):
        load(path)  # start-up names it as the audit does: one check of rows for both


async def test_audit_export_says_who_decided_what(tmp_path: Path) -> None:
    events, _ = some_events(2)
    await write(tmp_path / "events.sqlite3", events)
    rows = records(tmp_path, visit="V000001")
    kinds = [r["kind"] for r in rows]
    assert kinds == [
        "visit_started", "visit_routed", "step_decided", "visit_escalated",
        "escalation_taken", "step_decided", "visit_ended",
    ]  # fmt: skip
    decided = rows[2]
    assert (decided["by"], decided["role"]) == ("ana", "officer")
    assert decided["detail"]["decision"] == "approve"
    escalated, taken, resolved, ended = rows[3:]
    assert (escalated["by"], escalated["desk"]) == ("ana", "d1"), "escalated from desk d1"
    assert escalated["detail"]["note"] == "see supervisor"
    assert (taken["by"], taken["role"], taken["desk"]) == ("sri", "supervisor", None)
    assert (resolved["by"], resolved["role"]) == ("sri", "supervisor"), "who decided, as whom"
    assert (ended["by"], ended["detail"]["outcome"]) == ("sri", "rejected")
    assert "Siti" not in json.dumps(rows), "claimant names stay out of the export"
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "lapak.cli", "audit", "export", "--data-dir", str(tmp_path),
         "--visit", "V000002", "--format", "csv"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("seq,time,kind,visit") and len(lines) == 8
    verify = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "lapak.cli", "audit", "verify", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert verify.returncode == 0 and "0 problems" in verify.stdout


async def _connect_retry(url: str, token: str):  # type: ignore[no-untyped-def]
    from lapak.signaling.client import SignalClient

    deadline = time.monotonic() + 20
    while True:
        client = SignalClient(url, token)
        try:
            await client.connect()
            return client
        except OSError:
            await client.close()
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("kill_after_acks", [10, 60])
async def test_sigkill_loses_no_acknowledged_decision(tmp_path: Path, kill_after_acks: int) -> None:
    """Decisions stream in; the server is killed with SIGKILL mid-stream (early, and later
    with more of the stream behind it); every decision that was acknowledged is in the log
    after a restart, and the chain is intact."""
    from sigkill_rig import acked_then_sigkill

    data = tmp_path / "data"
    acked = await acked_then_sigkill(
        data, KeyRing.generate(), kill_after_acks=kill_after_acks, booths=18
    )
    loaded = load(data / "events.sqlite3")
    missing = [(v, s) for v, s in acked if loaded.state.visits[v].steps[s].status != "approved"]
    assert not missing, f"acknowledged decisions lost after SIGKILL: {missing[:5]}"
    problems = verify_dir(data).problems
    assert problems == [], "the chain is intact after a crash"


class _HeldConnection:
    """The writer's connection, with its event inserts held until the test lets them go."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.inside = threading.Event()  # the writer is in an insert (its commit)
        self.release = threading.Event()

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql.startswith("INSERT INTO events"):
            self.inside.set()
            assert self.release.wait(20), "the test never released the insert"
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


async def test_acks_follow_commits_in_order_and_never_precede_them(tmp_path: Path) -> None:
    """``append(..., then=f)``: f runs only once the batch is committed (another connection
    sees its rows), never while the commit is still under way, and in commit order; a batch
    too large for one INSERT statement takes the transaction path and also checks out."""
    from lapak.signaling.eventlog import ONE_STATEMENT_ROWS
    from lapak.signaling.logformat import connect

    events, state = some_events(40)
    path = tmp_path / "log.sqlite3"
    held = _HeldConnection(connect(path))
    log = EventLog(path, load(path))
    log.start(held)  # type: ignore[arg-type]  # duck-typed: the writer only calls execute & co
    reader = sqlite3.connect(path)
    seen: list[tuple[int, int]] = []  # (append index, rows visible to another connection)

    def then(i: int) -> Callable[[asyncio.Future[None]], None]:
        def ack(fut: asyncio.Future[None]) -> None:
            assert fut.done() and fut.exception() is None
            seen.append((i, reader.execute("SELECT count(*) FROM events").fetchone()[0]))

        return ack

    try:
        first = log.append(events[:1], then=then(0))
        assert await asyncio.to_thread(held.inside.wait, 20), "the writer reached its insert"
        rest = [log.append([e], then=then(i)) for i, e in enumerate(events[1:20], 1)]
        for _ in range(50):  # the loop runs freely while the first commit is held
            await asyncio.sleep(0)
        assert seen == [] and not first.done(), "no ack while its commit has not returned"
        held.release.set()
        big = events[20 : 20 + ONE_STATEMENT_ROWS + 5]
        rest.append(log.append(big, then=then(20)))
        async with asyncio.timeout(20):
            await asyncio.gather(first, *rest)
    finally:
        held.release.set()
        await log.close()
        reader.close()
    assert [i for i, _ in seen] == list(range(21)), "acks in commit order"
    written = [*range(1, 21), 20 + len(big)]  # rows committed by each append and all before
    assert all(rows >= n for (_, rows), n in zip(seen, written, strict=True)), seen
    loaded = load(path)  # replays and checks the whole hash chain
    assert loaded.last_seq == 20 + len(big) and len(big) > ONE_STATEMENT_ROWS
    assert loaded.state.visits.keys() <= state.visits.keys()
