"""Ed25519 signatures over the event log's chain head (checkpoints).

The hash chain alone proves only that rows agree with each other: whoever can write the
file can recompute it. A checkpoint is the chain head (sequence number and hash), the hash
of the snapshot taken at that point if any, and the log's id, signed with a key kept
outside the data directory. An auditor holding only the public key can then tell a
rewritten history, a removed tail or an emptied file from the real log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

MESSAGE_PREFIX = b"lapak-checkpoint/1"


class SigningKeyError(Exception):
    """A signing or public key that cannot be used; the message says why, for the operator."""


@dataclass(frozen=True)
class Checkpoint:
    """The chain head at ``seq``; ``state_hash`` is the snapshot's hash when one was taken
    at the same point (else empty). ``signature`` is hex, empty when written unsigned."""

    log_id: str
    seq: int
    hash: str
    state_hash: str
    at: float
    signature: str = ""
    key_id: str = ""

    def message(self) -> bytes:
        """The exact bytes signed: every field but the signature itself."""
        fields = (self.log_id, str(self.seq), self.hash, self.state_hash, repr(self.at))
        return b"\n".join([MESSAGE_PREFIX, *(f.encode() for f in fields)])


def key_id(public: Ed25519PublicKey) -> str:
    """A short name for a public key: which key signed a checkpoint."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Signer:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    def sign(self, checkpoint: Checkpoint) -> Checkpoint:
        signature = self._private.sign(checkpoint.message()).hex()
        return dataclasses.replace(checkpoint, signature=signature, key_id=self.key_id)

    def public_pem(self) -> str:
        return public_pem(self.public)


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def is_valid(checkpoint: Checkpoint, public: Ed25519PublicKey) -> bool:
    """True only for a checkpoint signed by the private half of ``public``."""
    if not checkpoint.signature:
        return False
    try:
        public.verify(bytes.fromhex(checkpoint.signature), checkpoint.message())
    except (InvalidSignature, ValueError):
        return False
    return True


def _inside(path: Path, directory: Path) -> bool:
    path, directory = path.resolve(), directory.resolve()
    return path == directory or directory in path.parents


def load_or_create(path: Path, data_dir: Path | None = None) -> Signer:
    """The server's signing key; created (mode 0600) when missing.

    Refused inside the data directory: a key stored beside the log it vouches for lets
    anyone who can rewrite the log re-sign it too.
    """
    if data_dir is not None and _inside(path, data_dir):
        raise SigningKeyError(
            f"signing key {path} is inside the data directory {data_dir}: keep it elsewhere "
            "(--signing-key FILE), or whoever can rewrite the log can re-sign it"
        )
    try:
        return load(path)
    except FileNotFoundError:
        pass
    signer = Signer.generate()
    pem = signer._private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Written whole to a temporary file, then linked in place: servers started together
    # on one key path (a cluster's nodes) never read another's half-written key, and the
    # first link wins.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    except OSError as exc:
        raise SigningKeyError(f"cannot create signing key {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)
    except FileExistsError:  # another server created it just now
        return load(path)
    except OSError as exc:
        raise SigningKeyError(f"cannot create signing key {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return signer


def load(path: Path) -> Signer:
    """Read a PEM (PKCS8) Ed25519 private key; FileNotFoundError when it is not there."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SigningKeyError(f"cannot read signing key {path}: {exc.strerror}") from None
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"signing key {path} is not a PEM private key: {exc}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise SigningKeyError(f"signing key {path} is not an Ed25519 key")
    return Signer(private)


def load_public(path: Path) -> Ed25519PublicKey:
    """A public key as ``lapak audit public-key`` prints it (PEM), from a file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read public key {path}: {exc.strerror}") from None
    try:
        public = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"public key {path} is not a PEM public key: {exc}") from None
    if not isinstance(public, Ed25519PublicKey):
        raise SigningKeyError(f"public key {path} is not an Ed25519 key")
    return public


def to_json(checkpoint: Checkpoint) -> bytes:
    return json.dumps({"format": 1, **dataclasses.asdict(checkpoint)}, indent=1).encode() + b"\n"


def from_json(data: bytes) -> Checkpoint:
    """ValueError when the text is not a checkpoint."""
    try:
        raw = json.loads(data)
        return Checkpoint(
            log_id=str(raw["log_id"]),
            seq=int(raw["seq"]),
            hash=str(raw["hash"]),
            state_hash=str(raw["state_hash"]),
            at=float(raw["at"]),
            signature=str(raw.get("signature", "")),
            key_id=str(raw.get("key_id", "")),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a checkpoint: {exc}") from None


def write_file(path: Path, checkpoint: Checkpoint) -> None:
    """Replace ``path`` atomically (write, fsync, rename), mode 0600: after a crash it holds
    either the old checkpoint or the new one, never a torn file."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, to_json(checkpoint))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_file(path: Path) -> Checkpoint | None:
    """None when there is no file; ValueError when it is damaged."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return from_json(data)
