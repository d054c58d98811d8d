"""One-time booth enrolment codes: an admin makes one on the server host (``lapak enrol``),
the booth PC or kiosk page trades it once for a booth token (``POST /enrol``). The office
and booth are fixed when the code is made: the client only proves it holds the code.

Codes are 10 characters of base32 shown as ``XXXXX-XXXXX`` (50 bits, short enough to type),
kept only as SHA-256 hashes in ``enrolments.json`` in the data directory (0600, replaced
atomically under a lock, shared by the command and the server). A code works once and until
it expires; wrong tries are rate-limited per client address."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lapak.signaling.revocation import write_private

ENROLMENTS_FILE = "enrolments.json"
CODE_CHARS = 10
TRIES_PER_MINUTE = 10  # per client address, answered 429 beyond
KEEP_USED_S = 7 * 24 * 3600.0  # used or expired codes are forgotten after this


class EnrolmentError(Exception):
    """A refused exchange: HTTP status, a machine code, a sentence."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def new_code() -> str:
    """``ABCDE-FGH23``: random base32 (no 0, 1, 8, 9: nothing to confuse with O, I, B, g)."""
    raw = base64.b32encode(secrets.token_bytes(7)).decode()[:CODE_CHARS]
    return f"{raw[:5]}-{raw[5:]}"


def normalize(code: str) -> str:
    """What the person typed, as the code: case, spaces and dashes do not matter."""
    return "".join(code.split()).replace("-", "").upper()


def code_hash(code: str) -> str:
    return hashlib.sha256(normalize(code).encode()).hexdigest()


@dataclass(frozen=True)
class Enrolment:
    office: str
    booth: str
    expires: float


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[list[dict[str, object]]]:
    """The list of codes, read and written back under an exclusive lock."""
    lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries = _read(path)
        before = json.dumps(entries)
        yield entries
        if json.dumps(entries) != before:
            write_private(path, json.dumps({"codes": entries}, indent=1) + "\n")
    finally:
        os.close(lock)


def _read(path: Path) -> list[dict[str, object]]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise EnrolmentError(500, "enrolments_unreadable", f"{path}: {exc}") from None
    codes = raw.get("codes") if isinstance(raw, dict) else None
    if not isinstance(codes, list) or not all(isinstance(c, dict) for c in codes):
        raise EnrolmentError(500, "enrolments_unreadable", f"{path}: not a list of codes")
    return codes


def _done_at(entry: dict[str, object]) -> float:
    """When a code stopped mattering: its use, else its expiry."""
    used, expires = entry.get("used"), entry.get("expires")
    moment = used if isinstance(used, int | float) else expires
    return float(moment) if isinstance(moment, int | float) else 0.0


def _prune(entries: list[dict[str, object]], now: float) -> None:
    entries[:] = [e for e in entries if now - _done_at(e) < KEEP_USED_S]


def create(
    path: Path,
    office: str,
    booth: str,
    ttl_s: float,
    now: float,
    make_code: Callable[[], str] = new_code,
) -> str:
    """A new code for ``booth`` of ``office``, valid ``ttl_s`` seconds; only its hash is kept."""
    code = make_code()
    with _locked(path) as entries:
        _prune(entries, now)
        entries.append(
            {
                "hash": code_hash(code),
                "office": office,
                "booth": booth,
                "created": now,
                "expires": now + ttl_s,
                "used": None,
            }
        )
    return code


def redeem(path: Path, code: str, now: float) -> Enrolment:
    """Use a code once: the enrolment it names, or EnrolmentError (unknown 400, used or
    expired 410). Marked used before the token is made, so a code never yields two."""
    wanted = code_hash(code)
    with _locked(path) as entries:
        entry = next((e for e in entries if e.get("hash") == wanted), None)
        if entry is None:
            raise EnrolmentError(400, "unknown_code", "no such enrolment code")
        if entry.get("used") is not None:
            raise EnrolmentError(410, "code_used", "this enrolment code was already used")
        expires = entry.get("expires")
        if not isinstance(expires, int | float) or expires <= now:
            raise EnrolmentError(410, "code_expired", "this enrolment code has expired")
        entry["used"] = now
    return Enrolment(str(entry["office"]), str(entry["booth"]), float(expires))


@dataclass
class EnrolDesk:
    """The server's side of ``POST /enrol``: rate limit, redeem, issue a booth token."""

    path: Path
    issue: Callable[[Enrolment], str]  # the booth token for an enrolment
    clock: Callable[[], float]
    per_minute: int = TRIES_PER_MINUTE
    _tries: dict[str, list[float]] = field(default_factory=dict)

    def exchange(self, code: str | None, address: str) -> tuple[int, dict[str, str]]:
        """(HTTP status, JSON body): ``{"token": ...}`` or ``{"error": ..., "message": ...}``."""
        now = self.clock()
        recent = [t for t in self._tries.get(address, []) if now - t < 60.0]
        if len(self._tries) > 10_000:  # many addresses: forget the quiet ones
            self._tries = {a: ts for a, ts in self._tries.items() if ts and now - ts[-1] < 60}
        if len(recent) >= self.per_minute:
            self._tries[address] = recent
            return 429, {"error": "rate_limited", "message": "too many tries; wait a minute"}
        self._tries[address] = [*recent, now]
        if not code or len(code) > 64:
            return 400, {
                "error": "bad_request",
                "message": "send the code: Authorization: Enrol CODE",
            }
        try:
            enrolment = redeem(self.path, code, now)
        except EnrolmentError as exc:
            return exc.status, {"error": exc.code, "message": exc.message}
        return 200, {
            "token": self.issue(enrolment),
            "office": enrolment.office,
            "booth": enrolment.booth,
        }


def code_from_header(value: str | None) -> str | None:
    """``Authorization: Enrol CODE`` (the code is never in a URL, so never in an access log)."""
    if value is None:
        return None
    scheme, _, code = value.partition(" ")
    return code.strip() if scheme.lower() == "enrol" and code.strip() else None
