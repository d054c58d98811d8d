"""``lapak backup``: a consistent copy of a live event log, taken while the server runs.

SQLite's online backup API copies the pages of one read transaction, so the copy is the log
as of one commit, never a mix of two; a file copy of a WAL database is not (the newest
commits sit in ``-wal`` until a checkpoint moves them). The copy is one self-contained file
(journal mode DELETE: no ``-wal`` beside it), 0600 and fsync'd. Beside it goes
``<output>.checkpoint.json``: the newest checkpoint *inside the copy* (signed when the server
signs), so the pair is a data directory's two files that agree with each other.

Restore: a new data directory holding the copy as ``events.sqlite3`` and the companion as
``checkpoint.json`` (``restore_files`` says where each goes); ``lapak signal`` checks both at
start and replays. ``lapak audit verify`` checks the copy like the live log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from lapak.signaling import signing
from lapak.signaling.datadir import LOG_NAME, MARKER_NAME
from lapak.signaling.logformat import (
    GENESIS,
    LogError,
    checkpoints,
    connect_readonly,
    last_seq,
    log_id,
)
from lapak.signaling.signing import Checkpoint

log = logging.getLogger("lapak.backup")

MARKER_SUFFIX = ".checkpoint.json"


class BackupError(LogError):
    """The backup cannot be made; the message says why, for the operator."""


@dataclass(frozen=True)
class BackupInfo:
    output: Path  # the copy of events.sqlite3
    checkpoint: Path  # its checkpoint.json
    log_id: str
    events: int  # the copy holds events 1..events
    checkpoint_seq: int  # the newest checkpoint in the copy (signed if the server signs)
    bytes: int
    seconds: float


def marker_for(output: Path) -> Path:
    return output.with_name(output.name + MARKER_SUFFIX)


def restore_files(output: Path, data_dir: Path) -> dict[Path, Path]:
    """Where a backup's two files go in the data directory a server will be started on."""
    return {output: data_dir / LOG_NAME, marker_for(output): data_dir / MARKER_NAME}


def backup_log(data_dir: Path, output: Path) -> BackupInfo:
    """Copy the log of ``data_dir`` to ``output`` (and its checkpoint beside it); refuses
    an existing output rather than overwrite a backup."""
    source_path = data_dir / LOG_NAME
    marker = marker_for(output)
    if not source_path.is_file() or source_path.stat().st_size == 0:
        raise BackupError(f"no event log at {source_path}")
    for path in (output, marker):
        if path.exists() or path.is_symlink():
            raise BackupError(f"{path} exists: a backup never overwrites a file")
    started = time.perf_counter()
    _create_private(output)
    try:
        identity, events, mark = _copy(source_path, output)
        _fsync(output)
        _write_new(marker, signing.to_json(mark))
        _fsync(output.parent)
    except BaseException:
        for path in (output, marker):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
    info = BackupInfo(
        output, marker, identity, events, mark.seq, output.stat().st_size,
        time.perf_counter() - started,
    )  # fmt: skip
    log.info(
        "event=backup_done output=%s events=%d checkpoint_seq=%d bytes=%d ms=%.1f",
        output, events, mark.seq, info.bytes, info.seconds * 1000,
    )  # fmt: skip
    return info


def _copy(source_path: Path, output: Path) -> tuple[str, int, Checkpoint]:
    """One backup step over all pages: the copy is one read transaction of the source."""
    try:
        source = connect_readonly(source_path)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {source_path}: {exc}") from None
    try:
        target = sqlite3.connect(output, isolation_level=None)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            problem = target.execute("PRAGMA quick_check").fetchone()[0]
            if problem != "ok":
                raise BackupError(f"the copy does not check out: {problem}")
            identity, events = log_id(target), last_seq(target)
            marks = checkpoints(target)
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise BackupError(f"backup of {source_path} failed: {exc}") from None
    finally:
        source.close()
    return identity, events, marks[-1] if marks else _genesis(source_path.parent, identity)


def _genesis(data_dir: Path, identity: str) -> Checkpoint:
    """No checkpoint row yet (a log younger than one checkpoint interval): the data
    directory's own first checkpoint (signed at creation), else an unsigned one."""
    with contextlib.suppress(OSError, ValueError):
        live = signing.read_file(data_dir / MARKER_NAME)
        if live is not None and live.seq == 0 and live.log_id == identity:
            return live
    return Checkpoint(identity, 0, GENESIS, "", 0.0)


def _create_private(path: Path) -> None:
    """0600 from the first byte (the log holds claimants' personal data)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise BackupError(f"{path} exists: a backup never overwrites a file") from None
    except OSError as exc:
        raise BackupError(f"cannot create {path}: {exc.strerror}") from None


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
