"""Recording (issue 15), for real: a server with ``recording`` on, one booth (test card and
tone), the officer (1200 Hz tone) and ``lapak recorder``'s engine; the WebM is decoded with
PyAV and compared with the event log: the booth's colour and tone throughout, the officer's
tone only while on air; the consent notice is logged before the officer first speaks; the
trail's SHA-256 verifies the file until one byte changes; a SIGKILLed recorder leaves a file
that decodes. The files are encrypted with the visit's recording key: each test decrypts with
the key the server's data directory holds before decoding (and `lapak recordings export` does
the same for the auditor); a purge makes that impossible while `verify` still passes."""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import av
import numpy as np
import pytest
import pytest_asyncio
from conftest import wait_for
from recording_rig import Rig, desk_rig

from lapak.cli.main import main as lapak
from lapak.cli.recordings import visit_key
from lapak.media.booth import BoothAgent
from lapak.media.booth_status import RECORDED_NOTICE
from lapak.media.recorder import Recorder
from lapak.media.recorder_crypt import decrypt_to
from lapak.media.recorder_file import STREAMS, read_sidecar, sidecar_path
from lapak.media.testcard import identify_booth
from lapak.media.tones import OFFICER_FREQUENCY, booth_frequency, to_mono, tone_present
from lapak.signaling.config import ServerConfig
from lapak.signaling.events import FocusChanged, RecordingClosed, RecordingNoticeShown
from lapak.signaling.logformat import connect_readonly, read_events
from lapak.signaling.tokens import KeyRing
from lapak.signaling.visitkeys import SqliteKeyStore

MARGIN_S = 0.6  # media latency and jitter either side of an on-air edge
DARK_LUMA = 24  # the recorder's filler is black (Y 16); the officer's card is brighter


def luma(frame: object) -> float:
    assert isinstance(frame, av.VideoFrame)
    return float(frame.to_ndarray(format="gray").mean())


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with desk_rig(tmp_path, ServerConfig(recording=True, grace_s=5.0), seed=5) as made:
        yield made


def events(rig: Rig) -> list[object]:
    return list(read_events(rig.server.data_dir / "events.sqlite3"))


CLEAR_MARKERS = (b"\x1a\x45\xdf\xa3", b"\x1f\x43\xb6\x75", b"V_VP8", b"A_OPUS", b"LAPAK_START")
"""WebM's EBML header and Cluster ids, codec ids and our tag: none may be on disk in clear."""


def decrypted(rig: Rig, path: Path, visit: str) -> io.BytesIO:
    """The file's clear WebM, with the key from the server's data directory (as the export)."""
    out = io.BytesIO()
    decrypt_to(path, visit_key(rig.server.data_dir, visit), out)
    out.seek(0)
    return out


def decode(source: Path | io.BytesIO) -> tuple[float, dict[str, list[tuple[float, object]]]]:
    """The WebM's start (Unix seconds) and, per stream key, (wall time, frame) pairs."""
    out: dict[str, list[tuple[float, object]]] = {k: [] for k in STREAMS}
    with av.open(source if isinstance(source, io.BytesIO) else str(source)) as container:
        start = float(container.metadata["LAPAK_START"])
        for packet in container.demux():
            key = STREAMS[packet.stream.index]
            for frame in packet.decode():
                assert frame.pts is not None and frame.time_base is not None
                out[key].append((start + float(frame.pts * frame.time_base), frame))
    return start, out


def tone_by_second(
    frames: list[tuple[float, object]], freq: float, start: float, end: float
) -> dict[int, bool]:
    """For each whole second [start + i, start + i + 1): whether ``freq`` sounds in it (a
    second with no audio at all counts as silent)."""
    samples: dict[int, list[np.ndarray]] = {}
    for t, frame in frames:
        assert isinstance(frame, av.AudioFrame)
        samples.setdefault(int(t - start), []).append(to_mono(frame))
    seconds = range(int(end - start))
    return {
        i: bool(samples.get(i)) and tone_present(np.concatenate(samples[i]), freq, min_share=0.1)
        for i in seconds
    }


async def recorded_visit(rig: Rig, recorder: Recorder) -> str:
    """The booth starts a visit; its id once the recorder writes its camera and microphone."""
    visit = await rig.booth.start()
    await wait_for(lambda: visit in recorder.recordings, "the recorder records the visit")
    rec = recorder.recordings[visit]
    await wait_for(
        lambda: rec.file.frames["booth_video"] > 10 and rec.file.frames["booth_audio"] > 50,
        "the booth's camera and microphone reach the recording",
        timeout=30,
    )
    return visit


async def test_a_recording_holds_the_booth_throughout_and_the_officer_only_on_air(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder(rig.server.url, rig.keys.issue("recorder", "rec-1", "main"), rig.rec_dir)
    await recorder.start()
    try:
        visit = await recorded_visit(rig, recorder)
        assert RECORDED_NOTICE in rig.booth.screen.lines, "the booth says it is recorded"
        await asyncio.sleep(2.5)  # off air: the booth alone
        await rig.desk.focus(visit)
        await wait_for(lambda: rig.booth.hears_officer(0.3), "the booth plays the officer")
        await asyncio.sleep(3.0)  # on air
        await rig.desk.focus(None)
        await asyncio.sleep(2.5)  # off air again
        await rig.desk.session.end_visit(visit, "abandoned", None)
        await wait_for(lambda: recorder.closed, "the recorder closes the file", timeout=20)
    finally:
        await recorder.close()
    info = recorder.closed[0]
    path = rig.rec_dir / info.file

    log = events(rig)
    notice = [e for e in log if isinstance(e, RecordingNoticeShown) and e.visit == visit]
    focus = [e for e in log if isinstance(e, FocusChanged)]
    closed = [e for e in log if isinstance(e, RecordingClosed) and e.visit == visit]
    assert len(notice) == 1, "the booth logs the notice once"
    on_at = next(e.at for e in focus if e.visit == visit)
    off_at = next(e.at for e in focus if e.visit is None and e.at > on_at)
    assert notice[0].at < on_at, "the claimant is told before the officer first speaks"
    assert [(c.file, c.sha256, c.bytes) for c in closed] == [(info.file, info.sha256, info.bytes)]
    assert closed[0].gaps == [], "no link dropped"

    raw = path.read_bytes()
    assert not [m for m in CLEAR_MARKERS if m in raw], "the file on disk holds no clear WebM"
    exported = rig.rec_dir.parent / "export"
    assert lapak(["recordings", "export", "--dir", str(rig.rec_dir), "--visit", visit,
                  "--to", str(exported), "--data-dir", str(rig.server.data_dir)]) == 0  # fmt: skip
    plain = exported / info.file.replace(".rec", ".webm")
    assert (exported / f"{visit}.audit.jsonl").is_file(), "the trail goes with it"
    start, streams = decode(plain)  # what the auditor gets: a plain WebM
    assert abs(start - info.start) < 1e-3, "the file's metadata carries its wall-clock start"
    booth_times = [t for t, _ in streams["booth_video"]]
    end = booth_times[-1]
    assert end - booth_times[0] > 8, "the recording spans the visit"
    colours = {identify_booth(f.to_ndarray(format="rgb24")) for _, f in streams["booth_video"][2:]}  # type: ignore[attr-defined]
    assert colours == {rig.booth.index}, f"the booth's test card throughout, saw {colours}"

    first = booth_times[0] + 1.0
    tone = booth_frequency(rig.booth.index)
    booth_tone = tone_by_second(streams["booth_audio"], tone, first, end)
    assert all(booth_tone.values()), f"the booth's tone in every second: {booth_tone}"

    officer = tone_by_second(streams["officer_audio"], OFFICER_FREQUENCY, first, end)
    for i, heard in officer.items():
        lo, hi = first + i, first + i + 1
        if on_at + MARGIN_S <= lo and hi <= off_at - MARGIN_S:
            assert heard, f"the officer's tone in second {i} (on air {on_at:.1f}..{off_at:.1f})"
        elif hi <= on_at - MARGIN_S or lo >= off_at + MARGIN_S:
            assert not heard, f"no officer tone in second {i}, off air"
    on_air_seconds = [i for i, h in officer.items() if h]
    assert len(on_air_seconds) >= 2, f"the on-air stretch is in the file: {officer}"
    pictures = [t for t, f in streams["officer_video"] if luma(f) > DARK_LUMA]
    assert len(pictures) >= 5, "the officer's picture, as the booth showed it, is recorded"
    assert all(on_at - MARGIN_S <= t <= off_at + MARGIN_S for t in pictures), (
        "the officer's picture only while on air (a dark frame otherwise)"
    )

    assert lapak(["recordings", "verify", "--dir", str(rig.rec_dir), "--data-dir",
                  str(rig.server.data_dir)]) == 0  # fmt: skip
    data = bytearray(raw)
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert lapak(["recordings", "verify", "--dir", str(rig.rec_dir), "--data-dir",
                  str(rig.server.data_dir)]) == 1, "one changed byte fails verify"  # fmt: skip
    capsys.readouterr()
    again = rig.rec_dir.parent / "export-2"
    code = lapak(["recordings", "export", "--dir", str(rig.rec_dir), "--visit", visit,
                  "--to", str(again), "--data-dir", str(rig.server.data_dir)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1, "a damaged file is not exported"
    assert re.search(rf"{info.file}: chunk \d+ \(byte \d+\) does not decrypt", err), err
    assert "Traceback" not in err and not list(again.glob("*.webm")), "no partial WebM left"


async def test_a_killed_recorder_leaves_a_readable_file(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    token = rig.keys.issue("recorder", "rec-1", "main")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lapak.cli", "recorder", "--server", rig.server.url,
        "--token", token, "--dir", str(rig.rec_dir), "--log-level", "INFO",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        visit = await rig.booth.start()
        path = rig.rec_dir / f"{visit}.rec"
        sizes: set[int] = set()

        def clusters() -> int:
            """Distinct sizes the file has had: it grows one cluster (about 1 s) at a time."""
            if path.exists():
                sizes.add(path.stat().st_size)
            return len(sizes)

        await wait_for(lambda: clusters() >= 5, "the recorder writes a few clusters", timeout=40)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
    assert read_sidecar(sidecar_path(path))["closed"] is False, "the sidecar says cut short"
    raw = path.read_bytes()
    assert not [m for m in CLEAR_MARKERS if m in raw], "never a clear byte, even cut short"
    _, streams = decode(decrypted(rig, path, visit))  # every complete chunk
    video = streams["booth_video"]
    assert len(video) > 5, "the file decodes up to where the recorder was killed"
    colours = {identify_booth(f.to_ndarray(format="rgb24")) for _, f in video[2:]}  # type: ignore[attr-defined]
    assert colours == {rig.booth.index}
    assert streams["booth_audio"], "the booth's audio too"
    code = lapak(["recordings", "verify", "--dir", str(rig.rec_dir), "--data-dir",
                  str(rig.server.data_dir)])  # fmt: skip
    assert code == 1, "a file never closed is not vouched for by the trail"
    capsys.readouterr()
    exported = rig.rec_dir.parent / "export"
    code = lapak(["recordings", "export", "--dir", str(rig.rec_dir), "--visit", visit,
                  "--to", str(exported), "--data-dir", str(rig.server.data_dir)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0 and "was cut short" in err, err
    _, again = decode(exported / f"{visit}.webm")
    assert len(again["booth_video"]) == len(video), "the export holds every complete chunk"


def test_recorder_refuses_a_token_of_another_role(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    token = KeyRing.generate().issue("booth", "b", "main", booth="b1")
    code = lapak(["recorder", "--server", "127.0.0.1:1", "--token", token, "--dir", str(tmp_path)])
    assert code == 5
    err = capsys.readouterr().err
    assert "not a recorder token" in err and "Traceback" not in err


def test_recordings_on_a_missing_directory_is_one_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = lapak(["recordings", "list", "--dir", str(tmp_path / "nope")])
    assert code == 3
    assert "no recordings directory" in capsys.readouterr().err


async def test_a_booth_that_drops_and_returns_leaves_a_gap_in_the_file_and_the_trail(
    rig: Rig,
) -> None:
    recorder = Recorder(rig.server.url, rig.keys.issue("recorder", "rec-1", "main"), rig.rec_dir)
    await recorder.start()
    booth = rig.booth
    try:
        visit = await booth.start()
        await wait_for(lambda: visit in recorder.recordings, "the recorder records the visit")
        rec = recorder.recordings[visit]
        await wait_for(lambda: rec.file.frames["booth_video"] > 5, "booth media", timeout=30)
        await booth.close()  # the booth's process dies: signalling and media gone
        dropped = time.time()
        back = BoothAgent(booth.url, booth.token, booth.name, booth.index, booth.claimant)
        back.media = booth.media
        await asyncio.sleep(2.0)  # away for longer than a gap (1 s), within the grace period
        assert await back.start() == visit, "the booth resumes its visit"
        rig.booth = back  # the fixture closes it
        before = rec.file.frames["booth_video"]
        await wait_for(
            lambda: rec.file.frames["booth_video"] > before + 5,
            "the recorder relinks and the booth's media come back",
            timeout=30,
        )
        await rig.desk.session.end_visit(visit, "abandoned", None)
        await wait_for(lambda: recorder.closed, "the recorder closes the file", timeout=20)
    finally:
        await recorder.close()
    info = recorder.closed[0]
    assert len(info.gaps) == 1, f"one gap: {info.gaps}"
    ((start, end),) = info.gaps
    assert start <= dropped + 0.5 and end - start > 1.5, (dropped, info.gaps)
    assert read_sidecar(rig.rec_dir / f"{info.file}.json")["gaps"] == [[start, end]]
    (event,) = [e for e in events(rig) if isinstance(e, RecordingClosed)]
    assert [list(g) for g in event.gaps] == [[start, end]], "the gap is in the audit trail"
    _, streams = decode(decrypted(rig, rig.rec_dir / info.file, visit))
    times = [t for t, _ in streams["booth_video"]]
    assert any(b - a > 1.5 for a, b in itertools.pairwise(times)), (
        "the file has no frames across the gap (wall-clock timestamps, not squeezed)"
    )
    assert times[-1] > end, "and frames after it"


def stored_key(rig: Rig, visit: str) -> bytes | None:
    conn = connect_readonly(rig.server.data_dir / "events.sqlite3")
    try:
        return SqliteKeyStore(conn).get(visit)
    finally:
        conn.close()


async def test_a_purge_erases_the_recording_while_verify_still_passes(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder(rig.server.url, rig.keys.issue("recorder", "rec-1", "main"), rig.rec_dir)
    await recorder.start()
    try:
        visit = await recorded_visit(rig, recorder)
        await rig.desk.session.end_visit(visit, "abandoned", None)
        await wait_for(lambda: recorder.closed, "the recorder closes the file", timeout=20)
    finally:
        await recorder.close()
    path = rig.rec_dir / recorder.closed[0].file
    key = stored_key(rig, visit)
    assert key is not None
    assert decode(decrypted(rig, path, visit))[1]["booth_video"], "readable before the purge"

    admin = rig.keys.issue("admin", "adm-1", "main")
    purge = ["purge", "--server", rig.server.url, "--token", admin, "--visit", visit]
    assert await asyncio.to_thread(lapak, purge) == 0
    assert stored_key(rig, visit) is None, "the key is gone from visit_keys"
    for part in rig.server.data_dir.glob("events.sqlite3*"):
        assert key not in part.read_bytes(), f"the key's bytes are gone from {part.name}"

    capsys.readouterr()
    exported = rig.rec_dir.parent / "export"
    code = lapak(["recordings", "export", "--dir", str(rig.rec_dir), "--visit", visit,
                  "--to", str(exported), "--data-dir", str(rig.server.data_dir)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"visit {visit} is purged: the recording can no longer be read" in err, err
    assert "Traceback" not in err and not exported.exists(), "nothing written"
    verify = ["recordings", "verify", "--dir", str(rig.rec_dir), "--data-dir"]
    assert lapak([*verify, str(rig.server.data_dir)]) == 0, "the hash is over the ciphertext"
