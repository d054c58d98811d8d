"""The revocation list: token ids (``jti``) refused from now on, in ``revoked.json`` in the
data directory. ``lapak token revoke`` appends to it (0600, atomic replace); the server
reads it at start, on SIGHUP and whenever its modification time changes (checked on the
one-second tick), then hands the set to the hub, which closes connections holding one."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("lapak.revocation")

REVOKED_FILE = "revoked.json"


class RevocationError(ValueError):
    """The list cannot be read or written (named with its path)."""


def read_revoked(path: Path) -> frozenset[str]:
    """The revoked token ids; none when the file does not exist yet."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return frozenset()
    except (OSError, ValueError) as exc:
        raise RevocationError(f"{path}: cannot read the revocation list: {exc}") from None
    entries = raw.get("revoked") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("jti"), str) for e in entries
    ):
        raise RevocationError(f"{path}: not a revocation list (expected {{'revoked': [...]}})")
    return frozenset(e["jti"] for e in entries)


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a 0600 file (a reader never sees half a list)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def revoke(path: Path, jti: str, now: float, note: str | None = None) -> bool:
    """Add ``jti`` to the list; False when it was already there."""
    if not jti or len(jti) > 256:
        raise RevocationError("a token id (--jti) is 1 to 256 characters")
    entries: list[dict[str, object]] = []
    if path.exists():
        read_revoked(path)  # refuses a damaged list before it is overwritten
        entries = json.loads(path.read_text())["revoked"]
    if any(e.get("jti") == jti for e in entries):
        return False
    entry: dict[str, object] = {"jti": jti, "at": int(now)}
    if note:
        entry["note"] = note
    entries.append(entry)
    write_private(path, json.dumps({"revoked": entries}, indent=1) + "\n")
    return True


@dataclass
class RevocationWatch:
    """Re-reads the list when its modification time (or size) changes: one ``stat`` a tick."""

    path: Path
    _seen: tuple[int, int] | None = None

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def poll(self, force: bool = False) -> frozenset[str] | None:
        """The new set when the file changed (or ``force``), else None. A damaged list is
        logged and the previous set stays in force."""
        stamp = self._stamp()
        if stamp == self._seen and not force:
            return None
        self._seen = stamp
        try:
            revoked = read_revoked(self.path)
        except RevocationError as exc:
            log.error("event=revocations_unreadable error=%s", exc)
            return None
        log.info("event=revocations_loaded path=%s count=%d", self.path, len(revoked))
        return revoked
