"""``lapak recordings list|export|verify``: the recorder's files, checked against the trail.

``verify`` recomputes each file's SHA-256 and size and compares them with the visit's
``recording_closed`` event in the server's event log; a file that differs, is missing, or has
no such event (a recorder stopped before it could close it) fails, exit 1, one line each. It
needs no key: the trail's hash is over the encrypted file, so it works after a purge too.

``export`` decrypts a visit's files to plain WebM for an auditor, offline: the key comes from
the server's data directory (the visit key in ``visit_keys``, read-only, safe while the
server runs; the recording key is derived from it as the server does). A purged visit has no
key: "purged: the recording can no longer be read", exit 1. A chunk that does not open (a
damaged or altered file, a wrong key) is named, exit 1, and nothing of that file is kept.

A cluster keeps its trail and its visit keys in PostgreSQL, not in any node's data
directory: ``--store postgresql://...`` instead of ``--data-dir`` (as ``lapak audit``) reads
the same things there (``lapak_events``, ``lapak_visit_keys``; read-only, safe while the
nodes run), with the same messages and exit codes; a store that cannot be reached is one
line, exit 1, as ``lapak audit export`` says it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lapak.cli.errors import CliError
from lapak.cli.exit_codes import EXIT_FAILED, EXIT_NO_FILE, EXIT_OK, EXIT_USAGE

SUFFIX = ".rec"  # encrypted (media/recorder_crypt.py)
PLAIN = ".webm"  # files recorded before encryption: listed, verified and copied as they are
SUFFIXES = (SUFFIX, PLAIN)


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "recordings", help="list, export or verify visit recordings (lapak recorder's files)"
    )
    actions = p.add_subparsers(dest="recordings_command", required=True, metavar="ACTION")
    a = actions.add_parser("list", help="one line per recording: visit, start, length, gaps")
    a.add_argument("--dir", type=Path, required=True, help="the recorder's --dir")
    a.add_argument("--json", action="store_true", help="the sidecars as JSON lines")
    a = actions.add_parser(
        "export",
        help="decrypt a visit's recordings to plain WebM (with its audit trail) in a directory",
    )
    a.add_argument("--dir", type=Path, required=True, help="the recorder's --dir")
    a.add_argument("--visit", required=True)
    a.add_argument("--to", type=Path, required=True, help="directory to write into (created)")
    _source(a, "the visit's key (read-only) and its trail")
    a = actions.add_parser(
        "verify", help="recompute SHA-256 and size against the audit trail: exit 1 on any problem"
    )
    a.add_argument("--dir", type=Path, required=True, help="the recorder's --dir")
    _source(a, "its audit trail")
    a.add_argument("--visit", help="only this visit")


def _source(parser: argparse.ArgumentParser, what: str) -> None:
    """A data directory (SQLite) or a PostgreSQL store: exactly one (as ``lapak audit``)."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--data-dir", type=Path, help=f"the server's data directory: {what}")
    where.add_argument(
        "--store", metavar="URL", help=f"a cluster's PostgreSQL store (postgresql://...): {what}"
    )


Row = tuple[Any, float, str, bytes, str]
"""An event log row: seq (``<office>:<seq>`` on a store), at, kind, body, hash."""


class Source:
    """Where the trail and the visit keys are: a SQLite data directory or a cluster's
    PostgreSQL store. The store's rows are read once per command (one SELECT)."""

    def __init__(self, data_dir: Path | None = None, store: str | None = None) -> None:
        self.data_dir = data_dir
        self.store = store
        self._rows: list[Row] | None = None

    @classmethod
    def of(cls, args: argparse.Namespace) -> Source:
        store = getattr(args, "store", None)
        if store is None:
            return cls(data_dir=args.data_dir)
        from lapak.signaling.pglog import is_url

        if not is_url(store):
            raise CliError(f"--store must be a postgresql:// URL, not {store!r}", EXIT_USAGE)
        return cls(store=store)

    @property
    def name(self) -> str:
        if self.store is not None:
            from lapak.signaling.pglog import redact

            return redact(self.store)
        return str(self.data_dir)

    def _log_file(self) -> Path:
        assert self.data_dir is not None
        log_file = self.data_dir / "events.sqlite3"
        if not log_file.exists():
            raise CliError(f"no event log in {self.data_dir}", EXIT_NO_FILE)
        return log_file

    def rows(self) -> Iterable[Row]:
        """Every row of the log, in log order (a SQLite log is streamed, each time)."""
        if self.store is None:
            from lapak.signaling.logformat import iter_rows

            return iter_rows(self._log_file())
        if self._rows is not None:
            return self._rows
        from lapak.signaling.eventlog import LogError
        from lapak.signaling.pgaudit import store_rows

        try:
            self._rows = store_rows(self.store)
        except LogError as exc:
            raise CliError(str(exc), EXIT_FAILED) from None
        return self._rows

    def key(self, visit: str) -> bytes | None:
        """The visit key (not yet the recording key); None when there is none."""
        if self.store is not None:
            from lapak.signaling.eventlog import LogError
            from lapak.signaling.pgaudit import store_visit_key

            try:
                return store_visit_key(self.store, visit)
            except LogError as exc:
                raise CliError(str(exc), EXIT_FAILED) from None
        import sqlite3

        from lapak.signaling.logformat import connect_readonly
        from lapak.signaling.visitkeys import SqliteKeyStore

        log_file = self._log_file()
        try:
            conn = connect_readonly(log_file)
            try:
                return SqliteKeyStore(conn).get(visit)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise CliError(f"cannot read the keys in {log_file}: {exc}", EXIT_FAILED) from None


@dataclass(frozen=True)
class Closed:
    """A ``recording_closed`` event, as the trail has it."""

    visit: str
    file: str
    sha256: str
    bytes: int
    duration_s: float
    gaps: list[list[float]]
    seq: int | str  # ``<office>:<seq>`` on a store


def run(args: argparse.Namespace) -> int:
    if not args.dir.is_dir():
        raise CliError(f"no recordings directory {args.dir}", EXIT_NO_FILE)
    if args.recordings_command == "list":
        return _list(args.dir, args.json)
    source = Source.of(args)
    if args.recordings_command == "export":
        return _export(args.dir, args.visit, args.to, source)
    return _verify(args.dir, source, args.visit)


def sidecars(directory: Path) -> list[dict[str, Any]]:
    """Every recording's sidecar, by start time (an unreadable one is an operator error)."""
    from lapak.media.recorder_file import read_sidecar

    found = []
    paths = [p for suffix in SUFFIXES for p in directory.glob(f"*{suffix}.json")]
    for path in sorted(paths):
        try:
            found.append(read_sidecar(path))
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read {path}: {exc}", EXIT_FAILED) from None
    return sorted(found, key=lambda s: (s.get("start") or 0.0, s.get("file") or ""))


def _list(directory: Path, as_json: bool) -> int:
    for car in sidecars(directory):
        if as_json:
            sys.stdout.write(json.dumps(car) + "\n")
            continue
        state = "closed" if car.get("closed") else "UNCLOSED"
        length = car.get("duration_s")
        sys.stdout.write(
            f"{car['visit']}\t{car['file']}\t{car.get('start_utc')}\t"
            f"{'-' if length is None else f'{length:.1f}s'}\t"
            f"{car.get('bytes') if car.get('bytes') is not None else '-'} bytes\t"
            f"{len(car.get('gaps') or [])} gaps\t{state}\n"
        )
    return EXIT_OK


def trail(source: Path | Source) -> list[Closed]:
    """The ``recording_closed`` events of a data directory's log or a store, oldest first."""
    from lapak.signaling.events import RecordingClosed, decode_event

    out = []
    for seq, _, kind, body, _ in _source_of(source).rows():
        if kind != "recording_closed":
            continue
        event = decode_event(body)
        assert isinstance(event, RecordingClosed)
        gaps = [[a, b] for a, b in event.gaps]
        out.append(
            Closed(event.visit, event.file, event.sha256, event.bytes, event.duration_s, gaps, seq)
        )
    return out


def problems_of(directory: Path, closed: list[Closed], visit: str | None) -> tuple[list[str], int]:
    """Each problem as one line, and how many files matched their event."""
    from lapak.media.recorder_file import sha256_of

    problems: list[str] = []
    good = 0
    by_file = {c.file: c for c in closed if visit is None or c.visit == visit}
    for name, event in sorted(by_file.items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"MISSING {name}: visit {event.visit}'s recording (event {event.seq})")
            continue
        size = path.stat().st_size
        digest = sha256_of(path)
        if digest != event.sha256 or size != event.bytes:
            problems.append(
                f"ALTERED {name}: SHA-256 {digest[:16]}… and {size} bytes, but the audit trail "
                f"(event {event.seq}) says {event.sha256[:16]}… and {event.bytes} bytes"
            )
            continue
        good += 1
        sys.stdout.write(f"OK {name} (visit {event.visit}, event {event.seq})\n")
    for path in sorted(p for suffix in SUFFIXES for p in directory.glob(f"*{suffix}")):
        if path.name in by_file:
            continue
        owner = _visit_of(path)
        if visit is not None and owner != visit:
            continue
        problems.append(
            f"UNVERIFIED {path.name}: no recording_closed in the audit trail (the recorder "
            "stopped before closing it, or the file does not belong to this server)"
        )
    return problems, good


def _visit_of(path: Path) -> str | None:
    from lapak.media.recorder_file import read_sidecar, sidecar_path

    try:
        return str(read_sidecar(sidecar_path(path)).get("visit"))
    except (OSError, ValueError):
        return None


def _source_of(source: Path | Source) -> Source:
    return source if isinstance(source, Source) else Source(data_dir=source)


def _verify(directory: Path, source: Source, visit: str | None) -> int:
    closed = trail(source)
    problems, good = problems_of(directory, closed, visit)
    for problem in problems:
        sys.stdout.write(f"{problem}\n")
    sys.stdout.write(f"{good} recordings match the audit trail, {len(problems)} problems\n")
    if problems:
        sys.stderr.write(f"lapak recordings verify: {problems[0]}\n")
    return EXIT_FAILED if problems else EXIT_OK


def visit_key(source: Path | Source, visit: str) -> bytes:
    """The visit's recording key, from the server's data directory or the cluster's store
    (read-only); CliError "purged" when a purge destroyed it."""
    from lapak.signaling.personal_data import recording_key

    where = _source_of(source)
    key = where.key(visit)
    if key is not None:
        return recording_key(key, visit)
    if _purged(where, visit):
        raise CliError(f"visit {visit} is purged: the recording can no longer be read", EXIT_FAILED)
    raise CliError(
        f"no key for visit {visit} in {where.name}: not this server's visit, or logged before "
        "recordings were encrypted",
        EXIT_FAILED,
    )


def _purged(source: Source, visit: str) -> bool:
    from lapak.signaling.events import VisitPurged, decode_event

    for _, _, kind, body, _ in source.rows():
        if kind == "visit_purged":
            event = decode_event(body)
            if isinstance(event, VisitPurged) and event.visit == visit:
                return True
    return False


def _decrypt(source: Path, target: Path, key: bytes, closed: bool) -> int:
    """``source`` (encrypted) to ``target`` (plain WebM); the chunks read. A damaged chunk
    is a CliError naming it (and no partial ``target`` is left)."""
    from lapak.media.recorder_crypt import RecordingCryptError, decrypt_to

    tmp = target.with_name(target.name + ".part")
    try:
        with tmp.open("wb") as out:
            found = decrypt_to(source, key, out)
    except RecordingCryptError as exc:
        tmp.unlink(missing_ok=True)
        raise CliError(f"{source.name}: {exc}", EXIT_FAILED) from None
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CliError(f"cannot export {source.name}: {exc}", EXIT_FAILED) from None
    if not found.final and closed:
        tmp.unlink(missing_ok=True)
        raise CliError(
            f"{source.name}: ends after chunk {found.chunks - 1} without its final chunk, but "
            "its sidecar says it was closed: the file was cut short",
            EXIT_FAILED,
        )
    if not found.final:
        sys.stderr.write(
            f"lapak recordings export: {source.name} was cut short (the recorder stopped "
            f"without closing it): exported its {found.chunks} complete chunks\n"
        )
    _indexed(tmp, target)
    return found.chunks


def _indexed(tmp: Path, target: Path) -> None:
    """The decrypted WebM, remuxed with an index (cues, duration); as decrypted if FFmpeg
    cannot (a warning: it still plays, seeking by scanning)."""
    import av

    from lapak.media.recorder_file import remux

    try:
        remux(tmp, target)
    except (av.error.FFmpegError, ValueError) as exc:
        sys.stderr.write(
            f"lapak recordings export: {target.name} is written without an index ({exc})\n"
        )
        tmp.replace(target)
        return
    tmp.unlink()


def _export(directory: Path, visit: str, to: Path, where: Source) -> int:
    cars = [c for c in sidecars(directory) if c.get("visit") == visit]
    if not cars:
        raise CliError(f"no recording of visit {visit} in {directory}", EXIT_NO_FILE)
    if to.exists() and not to.is_dir():
        raise CliError(f"--to {to} is not a directory", EXIT_USAGE)
    encrypted = [c for c in cars if str(c["file"]).endswith(SUFFIX)]
    key = visit_key(where, visit) if encrypted else b""
    to.mkdir(parents=True, exist_ok=True)
    for car in cars:
        name = str(car["file"])
        source = directory / name
        if not source.is_file():
            raise CliError(f"{source} is missing (its sidecar is there)", EXIT_NO_FILE)
        if name.endswith(SUFFIX):
            target = to / (name[: -len(SUFFIX)] + PLAIN)
            _decrypt(source, target, key, bool(car.get("closed")))
        else:
            target = to / name
            shutil.copy2(source, target)
        sys.stdout.write(f"{target}\n")
        shutil.copy2(directory / f"{name}.json", to / f"{name}.json")
        sys.stdout.write(f"{to / f'{name}.json'}\n")
    from lapak.signaling.audit import records

    trail_file = to / f"{visit}.audit.jsonl"
    with trail_file.open("w") as out:
        for row in records(where.rows(), visit):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    sys.stdout.write(f"{trail_file}\n")
    return EXIT_OK
