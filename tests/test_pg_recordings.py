"""``lapak recordings export|verify --store postgresql://...`` (issue 15 on a cluster): the
trail and the visit keys live in PostgreSQL, not in a node's data directory. A real node on a
real PostgreSQL records a real visit (``lapak recorder``'s engine, the booth's test card);
``export --store`` decrypts it to a WebM that decodes (PyAV) to that booth's colour;
``verify --store`` matches the trail; after ``lapak purge`` the export says the recording can
no longer be read (exit 1) while ``verify`` still passes; wrong inputs (an unreachable store,
a store without the visit, no URL, an unknown visit) are one line and a non-zero exit."""

# ruff: noqa: F811  (the cluster fixtures are imported, then named as test arguments)
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from conftest import wait_for
from pg_cluster import Cluster, pg_cluster, pg_url  # noqa: F401  (fixtures)
from recording_rig import Rig, desk_rig
from test_recording import decode, recorded_visit
from tests_support import free_port

from lapak.media.recorder import Recorder
from lapak.media.testcard import identify_booth
from lapak.signaling.config import Launch, ServerConfig
from lapak.signaling.pglog import connect_pool

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def rig(pg_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    """test_recording's rig, its server on the PostgreSQL store."""
    config = ServerConfig(recording=True, grace_s=5.0, launch=Launch(store=pg_url))
    async with desk_rig(tmp_path, config, seed=7) as made:
        yield made


async def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``lapak ARGV`` as its own process (as an operator runs it): exit code, stdout, stderr
    (the node in this process logs on this process's stderr, not on the command's)."""
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "lapak.cli", *argv],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, f"one line, no traceback: {err!r}"
    return lines[0]


async def test_export_from_the_store_decodes_until_a_purge(rig: Rig, pg_url: str) -> None:
    recorder = Recorder(rig.server.url, rig.keys.issue("recorder", "rec-1", "main"), rig.rec_dir)
    await recorder.start()
    try:
        visit = await recorded_visit(rig, recorder)
        frames = recorder.recordings[visit].file.frames
        await wait_for(lambda: frames["booth_video"] > 40, "seconds of the booth's camera", 30)
        await rig.desk.session.end_visit(visit, "abandoned", None)
        await wait_for(lambda: recorder.closed, "the recorder closes the file", timeout=20)
    finally:
        await recorder.close()
    info = recorder.closed[0]
    assert rig.server.health()["store"] == "postgresql"
    assert not (rig.server.data_dir / "events.sqlite3").exists(), (
        "the node keeps no SQLite log: the key can only come from the store"
    )

    # --data-dir would find nothing on a cluster node; --store does.
    exported = rig.rec_dir.parent / "export"
    base = ["recordings", "export", "--dir", str(rig.rec_dir), "--visit", visit]
    code, _, err = await run_cli(
        [*base, "--to", str(exported), "--data-dir", str(rig.server.data_dir)]
    )
    assert code == 3 and "no event log" in one_line(err)
    code, out, err = await run_cli([*base, "--to", str(exported), "--store", pg_url])
    assert code == 0, err
    plain = exported / info.file.replace(".rec", ".webm")
    assert str(plain) in out
    trail = (exported / f"{visit}.audit.jsonl").read_text()
    assert '"recording_closed"' in trail and f'"{visit}"' in trail, "the store's trail goes with it"
    _, streams = decode(plain)
    pictures = streams["booth_video"][2:]
    assert len(pictures) > 10, "the booth's camera is in the file"
    colours = {identify_booth(f.to_ndarray(format="rgb24")) for _, f in pictures}  # type: ignore[attr-defined]
    assert colours == {rig.booth.index}, f"the booth's test card throughout, saw {colours}"

    verify = ["recordings", "verify", "--dir", str(rig.rec_dir), "--store", pg_url]
    code, out, _ = await run_cli(verify)
    assert code == 0 and f"OK {info.file}" in out, out
    assert ":" in out.split("event ", 1)[1], f"the store's event names its office: {out}"

    # A claimant's request, through the node (an admin's token): the key leaves the store.
    admin = rig.keys.issue("admin", "root", "main")
    purge = ["purge", "--visit", visit, "--server", rig.server.url, "--token", admin]
    code, _, err = await run_cli(purge)
    assert code == 0, err
    again = rig.rec_dir.parent / "export-2"
    code, _, err = await run_cli([*base, "--to", str(again), "--store", pg_url])
    assert code == 1
    assert one_line(err).endswith(f"visit {visit} is purged: the recording can no longer be read")
    assert not again.exists() or not list(again.glob("*.webm")), "nothing decrypted"
    code, out, _ = await run_cli(verify)
    assert code == 0 and f"OK {info.file}" in out, "the trail still vouches for the ciphertext"

    # Wrong inputs, each one line and a non-zero exit.
    to = str(rig.rec_dir.parent / "x")
    unknown = ["recordings", "export", "--dir", str(rig.rec_dir), "--visit", "V999999"]
    code, _, err = await run_cli([*unknown, "--to", to, "--store", pg_url])
    assert code == 3 and "no recording of visit V999999" in one_line(err)
    nowhere = f"postgresql://lapak@127.0.0.1:{free_port()}/postgres"
    for argv in ([*base, "--to", to, "--store", nowhere], [*verify[:-1], nowhere]):
        code, _, err = await run_cli(argv)
        assert code == 1 and "cannot connect to the store" in one_line(err), (argv, err)
    code, _, err = await run_cli([*base, "--to", to, "--store", "/var/lib/lapak"])
    assert code == 2 and "--store must be a postgresql:// URL" in one_line(err)
    code, _, err = await run_cli([*base, "--to", to, "--store", pg_url, "--data-dir", to])
    assert code == 2 and "not allowed with argument" in one_line(err)


async def test_a_store_without_the_visit_names_it(pg_cluster: Cluster, tmp_path: Path) -> None:
    """Files brought to the wrong cluster: its store has a log but neither the visit's key
    nor its purge; an empty database holds no log at all."""
    rec = tmp_path / "rec"
    rec.mkdir()
    name = "V000042-20261203T120000Z.rec"
    (rec / name).write_bytes(b"\0" * 64)
    car = {"visit": "V000042", "file": name, "start": 1.0, "closed": True}
    (rec / f"{name}.json").write_text(json.dumps(car))
    other = pg_cluster.create_database()
    base = ["recordings", "export", "--dir", str(rec), "--visit", "V000042", "--to",
            str(tmp_path / "out"), "--store"]  # fmt: skip
    code, _, err = await run_cli([*base, other])
    assert code == 1 and "holds no lapak event log" in one_line(err)
    pool = await connect_pool(other)  # a lapak log, empty
    await pool.close()
    code, _, err = await run_cli([*base, other])
    assert code == 1
    assert "no key for visit V000042 in postgresql://" in one_line(err), err
