"""Signed access tokens: JWT (HS256) carrying role, identity, office and desk or booth.

A secret file holds one key per line; the first signs, all verify (rotation). Each key's
``kid`` is derived from the key so a token names the key that signed it. Every token carries a
``jti`` (its id, for revocation) and ``iat``; a lifetime (``exp - iat``) longer than its role's
cap is refused at hello (``check_lifetime``), whoever signed it.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import jwt
from jwt.types import Options

from lapak.signaling.errors import TokenError
from lapak.signaling.limits import MAX_ID
from lapak.signaling.protocol import ErrorCode, Role

__all__ = [
    "ALGORITHM",
    "CLOCK_SKEW_S",
    "DEFAULT_GRANTS",
    "GRANTS",
    "ROLES",
    "TTL_MAX_S",
    "Claims",
    "KeyRing",
    "TokenError",
    "check_lifetime",
    "default_ttl",
    "grants_of",
    "key_id",
    "new_jti",
    "parse_duration",
    "refresh_due",
]

ROLES = ("officer", "booth", "supervisor", "admin", "recorder")
ALGORITHM = "HS256"
CLOCK_SKEW_S = 60
HOUR = 3600.0
TTL_MAX_S: Mapping[str, float] = {
    "officer": 12 * HOUR,
    "booth": 7 * 24 * HOUR,
    "supervisor": 12 * HOUR,
    "admin": HOUR,
    "recorder": 7 * 24 * HOUR,  # a service on the server host, like a booth
}
"""Default longest lifetime per role (``[token_ttl_max_s]`` in the config overrides it)."""
DEFAULT_TTL_S = 12 * HOUR

GRANTS = ("monitor", "coach", "barge", "resolve")
"""What a supervisor's token may do beyond its role: ``monitor`` (watch, always held),
``coach`` (speak to the officer only), ``barge`` (speak to the on-air booth too) and
``resolve`` (take and decide escalated visits). An admin holds every grant."""
DEFAULT_GRANTS: tuple[str, ...] = ("monitor",)


def grants_of(role: str, named: Iterable[str] | None) -> tuple[str, ...]:
    """The grants a token of ``role`` holds, in ``GRANTS`` order: ``monitor`` always, every
    grant for an admin, none beyond monitor for other roles. ValueError for an unknown grant
    or grants on a role that cannot hold them (an officer or booth)."""
    names = set(named or ())
    unknown = sorted(names - set(GRANTS))
    if unknown:
        raise ValueError(f"unknown grant {unknown[0]!r} (use {', '.join(GRANTS)})")
    if role == "admin":
        return GRANTS
    if role != "supervisor":
        if names - set(DEFAULT_GRANTS):
            raise ValueError(f"only supervisor tokens carry grants (this is role {role})")
        return ()
    return tuple(g for g in GRANTS if g in names or g in DEFAULT_GRANTS)


_UNITS = {"s": 1.0, "m": 60.0, "h": HOUR, "d": 24 * HOUR}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``8h``, ``2d`` or a bare number of seconds; ValueError otherwise
    (zero, negative and unknown units included)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 8h, 2d or seconds)")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"a duration must be more than zero: {text!r}")
    return seconds


def default_ttl(role: str) -> float:
    """12 h, or the role's default cap when that is shorter (an admin token: 1 h)."""
    return min(DEFAULT_TTL_S, TTL_MAX_S.get(role, DEFAULT_TTL_S))


def new_jti() -> str:
    """A token id: random, short, URL-safe (the default id source of ``KeyRing.issue``)."""
    return secrets.token_urlsafe(12)


@dataclass(frozen=True)
class Claims:
    role: Role
    sub: str
    office: str
    desk: str | None = None
    booth: str | None = None
    exp: float = 0.0
    iat: float = 0.0
    jti: str | None = None  # tokens made before ids existed have none (cannot be revoked)
    grants: tuple[str, ...] = ()  # a supervisor's (``grants_of``); every grant for an admin


REFRESH_AT = 0.8  # of a token's lifetime: when a client swaps in its next token


def refresh_due(token: str) -> float | None:
    """When a client should refresh ``token`` (Unix time, ``REFRESH_AT`` of its lifetime);
    None when it does not say (read unverified: the server verifies)."""
    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    iat, exp = payload.get("iat"), payload.get("exp")
    if not isinstance(iat, int | float) or not isinstance(exp, int | float) or exp <= iat:
        return None
    return float(iat + REFRESH_AT * (exp - iat))


def check_lifetime(claims: Claims, cap_s: float) -> None:
    """A token living longer than its role's cap is refused, even if correctly signed (a
    leaked key's forgeries, or a token made before the cap was lowered)."""
    lifetime = claims.exp - claims.iat
    if lifetime > cap_s:
        raise TokenError(
            ErrorCode.BAD_TOKEN,
            f"token lifetime {lifetime:g} s exceeds the {cap_s:g} s allowed for role {claims.role}",
        )


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


@dataclass(frozen=True)
class KeyRing:
    """Keys accepted by a server; ``keys[0]`` signs new tokens."""

    keys: tuple[bytes, ...]

    @classmethod
    def from_file(cls, path: str | Path) -> KeyRing:
        lines = [ln.strip() for ln in Path(path).read_text().splitlines()]
        keys = tuple(ln.encode() for ln in lines if ln and not ln.startswith("#"))
        if not keys:
            raise ValueError(f"secret file {path} holds no key")
        return cls(keys)

    @classmethod
    def generate(cls) -> KeyRing:
        return cls((secrets.token_hex(32).encode(),))

    def write(self, path: str | Path) -> None:
        p = Path(path)
        # Created 0600 from the first byte: a secret never sits readable by others.
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write("\n".join(k.decode() for k in self.keys) + "\n")

    def issue(
        self,
        role: str,
        sub: str,
        office: str,
        desk: str | None = None,
        booth: str | None = None,
        ttl: float | None = None,
        now: float | None = None,
        new_id: Callable[[], str] = new_jti,
        grants: Iterable[str] | None = None,
    ) -> str:
        """A signed token; ``ttl`` defaults to ``default_ttl(role)``, ``new_id`` makes its jti;
        a supervisor's ``grants`` go in its ``grants`` claim (absent: monitor only)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        held = grants_of(role, grants)
        if role == "officer" and not desk:
            raise ValueError("an officer token needs a desk")
        if role == "booth" and not booth:
            raise ValueError("a booth token needs a booth")
        iat = int(now if now is not None else time.time())
        payload: dict[str, object] = {
            "role": role,
            "sub": sub,
            "office": office,
            "iat": iat,
            "exp": iat + int(default_ttl(role) if ttl is None else ttl),
            "jti": new_id(),
        }
        if desk:
            payload["desk"] = desk
        if booth:
            payload["booth"] = booth
        if role == "supervisor" and grants is not None:
            payload["grants"] = list(held)
        key = self.keys[0]
        return jwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": key_id(key)})

    def verify(self, token: str, now: float | None = None) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError(ErrorCode.BAD_TOKEN, f"malformed token: {exc}") from None
        except RecursionError:
            raise TokenError(ErrorCode.BAD_TOKEN, "malformed token: nested too deeply") from None
        by_kid = {key_id(k): k for k in self.keys}
        key = by_kid.get(str(header.get("kid")))
        if key is None:
            raise TokenError(ErrorCode.BAD_SIGNATURE, "token signed by an unknown key")
        # Time checks are ours, against the caller's clock, so the core stays testable.
        options: Options = {
            "require": ["exp", "iat", "role", "sub", "office"],
            "verify_exp": False,
            "verify_iat": False,
        }
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                options=options,
            )
        except jwt.InvalidSignatureError:
            raise TokenError(ErrorCode.BAD_SIGNATURE, "token signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise TokenError(ErrorCode.BAD_TOKEN, f"invalid token: {exc}") from None
        except RecursionError:
            raise TokenError(ErrorCode.BAD_TOKEN, "invalid token: nested too deeply") from None
        _check_types(payload)
        role = payload["role"]
        if role not in ROLES:
            raise TokenError(ErrorCode.BAD_TOKEN, f"unknown role {role!r}")
        now = time.time() if now is None else now
        if payload["exp"] <= now:
            raise TokenError(ErrorCode.TOKEN_EXPIRED, "token has expired")
        if payload["iat"] > now + CLOCK_SKEW_S:
            raise TokenError(ErrorCode.BAD_TOKEN, "token issued in the future")
        claims = Claims(
            role=role,
            sub=payload["sub"],
            office=payload["office"],
            desk=payload.get("desk"),
            booth=payload.get("booth"),
            exp=float(payload["exp"]),
            iat=float(payload["iat"]),
            jti=payload.get("jti"),
            grants=_grants_claim(role, payload.get("grants")),
        )
        if role == "officer" and not claims.desk:
            raise TokenError(ErrorCode.BAD_TOKEN, "officer token without desk")
        if role == "booth" and not claims.booth:
            raise TokenError(ErrorCode.BAD_TOKEN, "booth token without booth")
        return claims


MAX_CLAIM_CHARS = MAX_ID  # ids (sub, office, desk, booth) are short names


def _check_types(payload: dict[str, object]) -> None:
    """A signed token is trusted only as far as its claims have the types we use: a
    string ``exp`` or a list ``desk`` is refused as bad_token, never crashes the hub."""
    for name in ("exp", "iat"):
        value = payload.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise TokenError(ErrorCode.BAD_TOKEN, f"claim {name} must be a number")
    for name in ("role", "sub", "office", "desk", "booth", "jti"):
        value = payload.get(name)
        if value is None and name in ("desk", "booth", "jti"):
            continue
        if not isinstance(value, str) or not 0 < len(value) <= MAX_CLAIM_CHARS:
            raise TokenError(ErrorCode.BAD_TOKEN, f"claim {name} must be a short string")


def _grants_claim(role: str, value: object) -> tuple[str, ...]:
    """The ``grants`` claim as held grants: a list of known names on a supervisor's token
    (absent: monitor only); anything else is refused as bad_token."""
    if value is None:
        return grants_of(role, None)
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise TokenError(ErrorCode.BAD_TOKEN, "claim grants must be a list of strings")
    if len(value) > len(GRANTS):
        raise TokenError(ErrorCode.BAD_TOKEN, "claim grants names too many grants")
    try:
        return grants_of(role, value)
    except ValueError as exc:
        raise TokenError(ErrorCode.BAD_TOKEN, f"claim grants: {exc}") from None
