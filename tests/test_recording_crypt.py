"""Encrypted recordings (issue 15), the file format alone: the real WebM muxer writing into
the sealed writer (media/recorder_crypt.py) from synthetic frames, then read back. No clear
WebM on disk; a file cut anywhere opens up to its last complete chunk; a flipped byte, a
moved chunk, a wrong key or a forged final flag are named by chunk."""

from __future__ import annotations

import io
import os
import struct
import time
from pathlib import Path

import av
import numpy as np
import pytest

from lapak.cli.main import main as lapak
from lapak.media.recorder_crypt import (
    MAGIC,
    ChunkError,
    Opened,
    RecordingCryptError,
    decrypt_to,
    visit_of,
)
from lapak.media.recorder_file import SUFFIX, RecordingFile, RecordingInfo
from lapak.signaling.logformat import connect
from lapak.signaling.personal_data import recording_key
from lapak.signaling.visitkeys import SqliteKeyStore

# Matroska/WebM element ids a clear file is full of: EBML header, Segment, Cluster, SimpleBlock
# (+ track 1), and the codec ids as text.
CLEAR_MARKERS = (b"\x1a\x45\xdf\xa3", b"\x18\x53\x80\x67", b"\x1f\x43\xb6\x75", b"V_VP8", b"webm")
HEAD = struct.Struct(">IB")


def record(directory: Path, key: bytes, seconds: float = 3.0) -> tuple[Path, RecordingInfo]:
    """A file of ``seconds`` of booth video (grey level = frame number) and silence, written
    at a fake clock 20 frames a second (the writer thread keeps up: we wait on its queue)."""
    start = 1_800_000_000.0
    now = [start]
    info = RecordingInfo(
        visit="V-main-000001", file=f"V-main-000001{SUFFIX}", office="main", desk="d1",
        booth="b1", start=start, start_utc="2027-01-15T08:00:00+00:00",
    )  # fmt: skip
    path = directory / info.file
    rec = RecordingFile(path, info, key, booth_size=(160, 120), officer_size=(80, 60),
                        clock=lambda: now[0])  # fmt: skip
    for i in range(round(seconds * 20)):
        now[0] = start + i / 20
        grey = np.full((120, 160, 3), 40 + (i * 5) % 200, np.uint8)
        rec.put("booth_video", av.VideoFrame.from_ndarray(grey, format="rgb24"))
        audio = av.AudioFrame.from_ndarray(np.zeros((1, 2400), np.int16), layout="mono")
        audio.sample_rate = 48000
        rec.put("booth_audio", audio)
        deadline = time.monotonic() + 10
        while rec._queue.qsize() > 50 and time.monotonic() < deadline:  # bounded: keep up
            time.sleep(0.005)
    return path, rec.close()


def clear(path: Path, key: bytes) -> tuple[bytes, Opened]:
    out = io.BytesIO()
    found = decrypt_to(path, key, out)
    return out.getvalue(), found


def video_frames(webm: bytes) -> int:
    with av.open(io.BytesIO(webm)) as container:
        assert container.metadata["LAPAK_VISIT"] == "V-main-000001"
        return sum(1 for _ in container.decode(video=0))


def chunk_offsets(path: Path) -> list[tuple[int, int, int]]:
    """(offset, length, flags) of every chunk, from the framing alone."""
    data = path.read_bytes()
    with path.open("rb") as f:
        visit_of(path)
        f.seek(len(MAGIC) + 2 + data[len(MAGIC) + 1] + 16)
        offset = f.tell()
    out = []
    while offset < len(data):
        size, flags = HEAD.unpack_from(data, offset)
        out.append((offset, size, flags))
        offset += HEAD.size + size
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, RecordingInfo]:
    key = os.urandom(32)
    path, info = record(tmp_path_factory.mktemp("rec"), key)
    return path, key, info


def test_the_file_holds_no_clear_webm_and_decrypts_to_all_of_it(
    made: tuple[Path, bytes, RecordingInfo],
) -> None:
    path, key, info = made
    raw = path.read_bytes()
    assert raw.startswith(MAGIC)
    for marker in CLEAR_MARKERS:
        assert marker not in raw, f"{marker!r} in the file: clear WebM on disk"
    assert info.closed and info.chunks == len(chunk_offsets(path)) and info.chunks > 3
    assert oct(path.stat().st_mode & 0o777) == "0o600", "the recorder's own file"
    webm, found = clear(path, key)
    assert found.final and found.tail == 0 and found.chunks == info.chunks
    assert webm.startswith(b"\x1a\x45\xdf\xa3"), "the clear side is a WebM"
    assert video_frames(webm) == 60, "every frame put in comes back"


def test_a_file_cut_anywhere_opens_up_to_its_last_complete_chunk(
    made: tuple[Path, bytes, RecordingInfo], tmp_path: Path
) -> None:
    path, key, _ = made
    raw = path.read_bytes()
    chunks = chunk_offsets(path)
    (offset, size, _) = chunks[-3]  # a cluster in the middle of being written: cut inside it
    cut = tmp_path / "cut.rec"
    cut.write_bytes(raw[: offset + HEAD.size + size // 2])
    webm, found = clear(cut, key)
    assert not found.final, "no final chunk: the file was cut short"
    assert found.chunks == len(chunks) - 3 and found.tail == HEAD.size + size // 2
    whole, _ = clear(path, key)
    assert whole.startswith(webm) and len(webm) < len(whole)
    frames = video_frames(webm)
    assert 20 < frames < 60, f"the complete clusters decode: {frames} frames"


def test_damage_is_named_by_chunk(made: tuple[Path, bytes, RecordingInfo], tmp_path: Path) -> None:
    path, key, _ = made
    raw = path.read_bytes()
    chunks = chunk_offsets(path)
    bad = tmp_path / "bad.rec"

    flipped = bytearray(raw)
    offset, size, _ = chunks[2]
    flipped[offset + HEAD.size + size // 2] ^= 0x01
    bad.write_bytes(bytes(flipped))
    with pytest.raises(ChunkError, match=rf"^chunk 2 \(byte {offset}\) does not decrypt") as err:
        clear(bad, key)
    assert err.value.index == 2

    (a, la, _), (b, lb, _) = chunks[1], chunks[2]  # two chunks swapped
    swapped = (
        raw[:a]
        + raw[b : b + HEAD.size + lb]
        + raw[a : a + HEAD.size + la]
        + raw[b + HEAD.size + lb :]
    )
    bad.write_bytes(swapped)
    with pytest.raises(ChunkError, match=r"^chunk 1 "):
        clear(bad, key)

    forged = bytearray(raw)  # a middle chunk relabelled final, to hide what follows
    forged[chunks[3][0] + 4] = 1
    bad.write_bytes(bytes(forged))
    with pytest.raises(ChunkError, match=r"^chunk 3 "):
        clear(bad, key)

    with pytest.raises(ChunkError, match=r"^chunk 0 .*wrong key"):
        clear(path, os.urandom(32))

    bad.write_bytes(b"\x1a\x45\xdf\xa3 a clear webm")
    with pytest.raises(RecordingCryptError, match="not an encrypted Lapak recording"):
        clear(bad, key)


def test_each_file_gets_its_own_key_so_counter_nonces_never_repeat(tmp_path: Path) -> None:
    """Two files of one visit (a restarted recorder) under the same recording key: each has
    a fresh salt, so a different file key, so chunk 0 of both never shares key and nonce."""
    key = os.urandom(32)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one, _ = record(tmp_path / "a", key, seconds=1.0)
    two, _ = record(tmp_path / "b", key, seconds=1.0)
    salts = {
        p.read_bytes()[chunk_offsets(p)[0][0] - 16 : chunk_offsets(p)[0][0]] for p in (one, two)
    }
    assert len(salts) == 2, "a fresh salt per file"
    assert clear(one, key)[1].final and clear(two, key)[1].final


# -- lapak recordings export, offline, on a data directory ---------------------------------


def data_dir_with(tmp_path: Path, visit: str, key: bytes | None) -> Path:
    """A server's data directory whose ``visit_keys`` holds ``key`` for ``visit`` (or none)."""
    data = tmp_path / "data"
    data.mkdir()
    conn = connect(data / "events.sqlite3")
    try:
        if key is not None:
            SqliteKeyStore(conn).put(visit, key)
    finally:
        conn.close()
    return data


def export(rec_dir: Path, data: Path, to: Path) -> list[str]:
    return ["recordings", "export", "--dir", str(rec_dir), "--visit", "V-main-000001",
            "--to", str(to), "--data-dir", str(data)]  # fmt: skip


def test_export_decrypts_with_the_data_dirs_key_and_says_why_when_it_cannot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    visit_key = os.urandom(32)
    rec_dir = tmp_path / "rec"
    rec_dir.mkdir()
    record(rec_dir, recording_key(visit_key, "V-main-000001"), seconds=1.0)
    good = data_dir_with(tmp_path, "V-main-000001", visit_key)
    assert lapak(export(rec_dir, good, tmp_path / "out")) == 0
    assert video_frames((tmp_path / "out" / "V-main-000001.webm").read_bytes()) == 20
    with av.open(str(tmp_path / "out" / "V-main-000001.webm")) as exported:
        assert exported.duration, "remuxed with an index: a player can seek"
    assert (tmp_path / "out" / "V-main-000001.rec.json").is_file()

    capsys.readouterr()
    (tmp_path / "data").rename(tmp_path / "data-good")
    wrong = data_dir_with(tmp_path, "V-main-000001", os.urandom(32))  # another server's
    assert lapak(export(rec_dir, wrong, tmp_path / "out-2")) == 1
    err = capsys.readouterr().err
    # the header: 8 magic + 2 + 13 visit id + 16 salt = 39 bytes
    assert "V-main-000001.rec: chunk 0 (byte 39) does not decrypt: a wrong key" in err, err
    assert not list((tmp_path / "out-2").glob("*.webm*")), "nothing half-written is left"

    (tmp_path / "data").rename(tmp_path / "data-wrong")
    none = data_dir_with(tmp_path, "V-main-000001", None)
    assert lapak(export(rec_dir, none, tmp_path / "out-3")) == 1
    err = capsys.readouterr().err
    assert "no key for visit V-main-000001" in err and "Traceback" not in err, err

    assert lapak(export(rec_dir, tmp_path / "nowhere", tmp_path / "out-4")) == 3
    assert "no event log in" in capsys.readouterr().err
