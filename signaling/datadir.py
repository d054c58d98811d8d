"""The server's data directory: checked, locked and private before any client is accepted.

Layout (directory 0700, files 0600):

- ``events.sqlite3`` (+ ``-wal``, ``-shm``): the event log (signaling/eventlog.py);
- ``checkpoint.json``: the latest checkpoint (chain head, signed), written after each
  checkpoint commits. It lives outside the database on purpose: a log that was deleted,
  truncated or cut short no longer reaches it, and startup refuses to run on it;
- ``lock``: held with ``flock`` while a server runs (it holds the pid), so a second server
  on the same directory is refused instead of interleaving writes.

Startup fails with one clear message (``DataDirError``) when the directory cannot be made
private, is read-only, is locked, its disk is full, the database is malformed or of the
old format, or the log no longer reaches its checkpoint.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

from lapak.signaling import signing
from lapak.signaling.logformat import (
    GENESIS,
    LogError,
    connect,
    is_disk_full,
    last_seq,
    log_id,
)
from lapak.signaling.signing import Checkpoint, Signer

log = logging.getLogger("lapak.datadir")

LOG_NAME = "events.sqlite3"
MARKER_NAME = "checkpoint.json"
LOCK_NAME = "lock"
MIN_FREE_BYTES = 1024 * 1024  # below this a restart would fail at the first write anyway
PRIVATE_FILES = (LOG_NAME, f"{LOG_NAME}-wal", f"{LOG_NAME}-shm", MARKER_NAME, LOCK_NAME)


class DataDirError(LogError):
    """The data directory cannot be used; the message says why and what to do."""


@dataclass
class DataDir:
    path: Path
    log_id: str
    _lock_fd: int | None
    _conn: sqlite3.Connection | None = None  # the checked log, until someone takes it

    @property
    def log_path(self) -> Path:
        return self.path / LOG_NAME

    @property
    def marker_path(self) -> Path:
        return self.path / MARKER_NAME

    def take_connection(self) -> sqlite3.Connection:
        """The log's connection, opened and checked here: start-up replays from it and the
        log's writer keeps it (one open of the database per server start). The caller
        closes it."""
        conn, self._conn = self._conn, None
        return conn if conn is not None else connect(self.log_path)

    def close(self) -> None:
        """Release the lock (also released by the kernel if the process dies)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def open_data_dir(path: Path, signer: Signer | None = None) -> DataDir:
    """Create or check ``path``, lock it and check the log against its checkpoint."""
    _make_private_dir(path)
    fd = _lock(path)
    try:
        _check_free_space(path)
        marker = _read_marker(path)
        conn = _open_log(path, marker)
        try:
            identity = log_id(conn)
            if marker is None:
                _first_marker(conn, path, identity, signer)
            else:
                _check_marker(conn, path, marker, identity, signer)
            _tighten_files(path)
        except BaseException:
            conn.close()
            raise
    except BaseException:
        os.close(fd)
        raise
    return DataDir(path, identity, fd, conn)


def _make_private_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise DataDirError(f"cannot create data directory {path}: {exc.strerror}") from None
    if not path.is_dir():
        raise DataDirError(f"data directory {path} is not a directory")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        try:
            path.chmod(0o700)
        except OSError as exc:
            raise DataDirError(
                f"data directory {path} is readable by others (mode {mode:o}) and cannot be "
                f"made private: {exc.strerror}"
            ) from None
        log.warning("event=data_dir_mode_tightened path=%s from=%o to=700", path, mode)
    if not os.access(path, os.W_OK):
        raise DataDirError(f"data directory {path} is read-only")


def _lock(path: Path) -> int:
    try:
        fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise DataDirError(_write_refused(path, exc)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise DataDirError(
            f"data directory {path} is in use by another lapak signal (pid {holder}); "
            "one server per data directory"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        os.close(fd)
        raise DataDirError(_write_refused(path, exc)) from None
    return fd


def _write_refused(path: Path, exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return f"data directory {path} is on a read-only file system"
    if is_disk_full(exc):
        return f"disk full: cannot write in data directory {path}"
    return f"cannot write in data directory {path}: {exc.strerror}"


def _check_free_space(path: Path) -> None:
    fs = os.statvfs(path)
    free = fs.f_bavail * fs.f_frsize
    if free < MIN_FREE_BYTES:
        raise DataDirError(
            f"disk full: {free} bytes free on the file system of {path} "
            f"(the log needs at least {MIN_FREE_BYTES // 1024} KiB); free some space and restart"
        )


def _read_marker(path: Path) -> Checkpoint | None:
    try:
        return signing.read_file(path / MARKER_NAME)
    except ValueError as exc:
        raise DataDirError(f"{path / MARKER_NAME} is damaged ({exc})") from None
    except OSError as exc:
        raise DataDirError(f"cannot read {path / MARKER_NAME}: {exc.strerror}") from None


def _open_log(path: Path, marker: Checkpoint | None) -> sqlite3.Connection:
    db = path / LOG_NAME
    size = db.stat().st_size if db.exists() else None
    if marker is not None and marker.seq > 0 and not size:
        state = "missing" if size is None else "empty (0 bytes)"
        raise DataDirError(
            f"{db} is {state}, but {MARKER_NAME} says the log held {marker.seq} events: it was "
            "deleted or truncated. Restore events.sqlite3 from a backup, or move the data "
            "directory aside to start a new log (the old checkpoint stays as evidence)"
        )
    if size is None:
        with contextlib.suppress(FileExistsError):
            os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        return connect(db)
    except sqlite3.DatabaseError as exc:
        if "readonly" in str(exc) or "read-only" in str(exc):
            raise DataDirError(f"data directory {path} is read-only ({exc})") from None
        if is_disk_full(exc):
            raise DataDirError(f"disk full: cannot open {db} ({exc})") from None
        raise DataDirError(
            f"{db} is not a readable SQLite database ({exc}); restore it from a backup"
        ) from None


def _first_marker(
    conn: sqlite3.Connection, path: Path, identity: str, signer: Signer | None
) -> None:
    """A new log gets its marker before its first event; a log with events but no marker
    lost it (or was copied without it)."""
    events = last_seq(conn)
    if events > 0:
        raise DataDirError(
            f"{path / MARKER_NAME} is missing but {path / LOG_NAME} holds {events} events: "
            "restore the checkpoint file with the log (a backup is both files), or run "
            "`lapak audit verify` and move the directory aside"
        )
    mark = Checkpoint(identity, 0, GENESIS, "", 0.0)
    signing.write_file(path / MARKER_NAME, signer.sign(mark) if signer else mark)


def _check_marker(
    conn: sqlite3.Connection,
    path: Path,
    marker: Checkpoint,
    identity: str,
    signer: Signer | None,
) -> None:
    events = last_seq(conn)
    if marker.seq == 0 and events == 0 and marker.log_id != identity:
        # The log was recreated before its first event: nothing was lost.
        mark = Checkpoint(identity, 0, GENESIS, "", 0.0)
        signing.write_file(path / MARKER_NAME, signer.sign(mark) if signer else mark)
        return
    if marker.log_id != identity:
        raise DataDirError(
            f"{path / LOG_NAME} is not the log {path / MARKER_NAME} vouches for "
            f"(log id {identity}, checkpoint for {marker.log_id}): the file was replaced"
        )
    if events < marker.seq:
        raise DataDirError(
            f"{path / LOG_NAME} ends at event {events} but its checkpoint is at event "
            f"{marker.seq}: events were removed from the tail. Restore it from a backup"
        )
    if marker.seq > 0:
        row = conn.execute("SELECT hash FROM events WHERE seq = ?", (marker.seq,)).fetchone()
        if row is None or row[0] != marker.hash:
            raise DataDirError(
                f"event {marker.seq} of {path / LOG_NAME} differs from its checkpoint: "
                "the history was rewritten. Run `lapak audit verify`"
            )
    if signer is not None and marker.key_id == signer.key_id:
        if not signing.is_valid(marker, signer.public):
            raise DataDirError(
                f"{path / MARKER_NAME} carries a signature that does not verify: the "
                "checkpoint was forged. Run `lapak audit verify --public-key`"
            )
    elif signer is not None and marker.key_id:
        log.warning("event=checkpoint_other_key key_id=%s ours=%s", marker.key_id, signer.key_id)


def _tighten_files(path: Path) -> None:
    """Claimants' personal data is in the log: owner-only, whatever the umask was."""
    for name in PRIVATE_FILES:
        with contextlib.suppress(FileNotFoundError):
            mode = stat.S_IMODE((path / name).stat().st_mode)
            if mode & 0o077:
                (path / name).chmod(0o600)
                log.warning("event=file_mode_tightened file=%s from=%o to=600", name, mode)
