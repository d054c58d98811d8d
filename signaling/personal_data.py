"""Claimants' personal data, sealed with a per-visit key so that it can be erased.

A visit's name and membership number go into the hash-chained log only as AES-256-GCM
ciphertext (``Sealed``, inside ``visit_started``); the visit's key is kept apart from the
chain (``KeyStore``; the SQLite one is signaling/visitkeys.py). Destroying the key erases
the data (crypto-shredding) while every row of the chain, and so ``lapak audit verify``,
stays as it was. Each field has its own random 96-bit nonce, and the visit id and the field
name are the associated data, so a ciphertext moved to another visit or field fails to open.

Pure: the random source is injected (``Sealer(random_bytes)``), like the hub's clock, so
the core never reads ``os.urandom`` itself. The AEAD is ``cryptography``'s AESGCM.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Protocol

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's 96-bit nonce, random per field
ALGORITHM = "A256GCM"
PURGED = "purged"  # what a purged visit shows instead of its personal data

RandomBytes = Callable[[int], bytes]


class PersonalDataError(Exception):
    """Sealed data that cannot be opened: a wrong or missing key, or edited ciphertext."""


class Sealed(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A visit's personal data as the log carries it: ``base64(nonce || ciphertext+tag)``
    per field. The chain covers these bytes; the key is elsewhere."""

    name: str
    membership_no: str
    alg: str = ALGORITHM


class KeyStore(Protocol):
    """Where visit keys live, apart from the chain (SQLite: signaling/visitkeys.py; a
    PostgreSQL store implements the same three calls)."""

    def put(self, visit: str, key: bytes) -> None:
        """Keep ``key`` for ``visit`` (in the same transaction as its ``visit_started``)."""

    def get(self, visit: str) -> bytes | None:
        """The visit's key, or None once destroyed (or never held)."""

    def destroy(self, visit: str) -> bool:
        """Overwrite and delete the visit's key; False when there was none."""


def _aad(visit: str, field: str) -> bytes:
    return f"lapak/visit/{visit}/{field}".encode()


class Sealer:
    """Makes keys and seals fields with the injected random source."""

    def __init__(self, random_bytes: RandomBytes) -> None:
        self.random_bytes = random_bytes

    def new_key(self) -> bytes:
        key = self.random_bytes(KEY_BYTES)
        if len(key) != KEY_BYTES:
            raise ValueError(f"the random source gave {len(key)} bytes, not {KEY_BYTES}")
        return key

    def _seal_field(self, key: bytes, visit: str, field: str, text: str) -> str:
        nonce = self.random_bytes(NONCE_BYTES)
        if len(nonce) != NONCE_BYTES:
            raise ValueError(f"the random source gave {len(nonce)} bytes, not {NONCE_BYTES}")
        sealed = AESGCM(key).encrypt(nonce, text.encode(), _aad(visit, field))
        return base64.b64encode(nonce + sealed).decode("ascii")

    def seal(self, key: bytes, visit: str, name: str, membership_no: str) -> Sealed:
        return Sealed(
            name=self._seal_field(key, visit, "name", name),
            membership_no=self._seal_field(key, visit, "membership_no", membership_no),
        )


def _open_field(key: bytes, visit: str, field: str, text: str) -> str:
    try:
        raw = base64.b64decode(text, validate=True)
        if len(raw) < NONCE_BYTES + 16:
            raise PersonalDataError(f"visit {visit}: sealed {field} is too short")
        plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(visit, field))
        return plain.decode()
    except (InvalidTag, binascii.Error, UnicodeDecodeError, ValueError):
        raise PersonalDataError(
            f"visit {visit}: sealed {field} does not open with this key (wrong key or edited)"
        ) from None


def open_sealed(key: bytes, visit: str, sealed: Sealed) -> tuple[str, str]:
    """(name, membership_no); PersonalDataError for a wrong key or edited ciphertext."""
    if sealed.alg != ALGORITHM:
        raise PersonalDataError(f"visit {visit}: unknown algorithm {sealed.alg!r}")
    return (
        _open_field(key, visit, "name", sealed.name),
        _open_field(key, visit, "membership_no", sealed.membership_no),
    )


# -- recordings (issue 15): a key of their own, derived from the visit's ----------------

RECORDING_KEY_INFO = b"lapak/recording/v1/"
"""HKDF ``info`` prefix; the visit id follows, so a visit's recording key opens only its files."""


def recording_key(visit_key: bytes, visit: str) -> bytes:
    """The key a recorder encrypts ``visit``'s files with: HKDF-SHA256 of the visit's key,
    ``info`` bound to the visit id. The recorder gets this, never the visit key itself (it
    cannot open the sealed name); destroying the visit key leaves no way to it."""
    if len(visit_key) != KEY_BYTES:
        raise PersonalDataError(f"visit {visit}: a visit key is {KEY_BYTES} bytes")
    hkdf = HKDF(
        algorithm=SHA256(), length=KEY_BYTES, salt=None, info=RECORDING_KEY_INFO + visit.encode()
    )
    return hkdf.derive(visit_key)
