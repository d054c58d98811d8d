"""A recording on disk: the WebM muxer's output cut into AES-256-GCM chunks (issue 15).

The recorder never writes a clear byte of media. The muxer writes into ``SealedWriter`` (a
file object PyAV muxes into, not seekable, so the WebM is written front to back like a live
stream); each write it makes (its header, then one cluster, about a second of media) becomes
one sealed chunk appended to the file with a single ``write`` call. A killed recorder leaves
every complete chunk readable; a cut-off last chunk is ignored.

Layout (docs/recording.md, "Encrypted files")::

    header  MAGIC "LAPAKREC" | version u8 (1) | len(visit) u8 | visit (UTF-8) | salt (16 bytes)
    chunk   len(ciphertext) u32 BE | flags u8 (1 = final) | AES-256-GCM ciphertext + 16-byte tag

The file key is HKDF-SHA256(recording key, salt, ``FILE_INFO``): a fresh salt per file, so
two files of one visit (a restarted recorder) never share a key and the nonce can be the
chunk's index (96-bit big-endian). The associated data binds the visit id, the index and
the flags: a chunk moved, dropped, reordered or relabelled final fails to open, and a file
without its final (empty) chunk was cut short. No crypto here beyond that framing: the AEAD
and the KDF are ``cryptography``'s.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"LAPAKREC"
VERSION = 1
SALT_BYTES = 16
KEY_BYTES = 32
TAG_BYTES = 16
FINAL = 0x01
FILE_INFO = b"lapak/recording-file/v1"
MAX_CHUNK = 64 << 20
"""No muxer write is near this (a cluster is ~100 KB); a bigger length is damage."""
_CHUNK_HEAD = struct.Struct(">IB")


class RecordingCryptError(Exception):
    """A file that cannot be read back: not a Lapak recording, wrong key, or damaged."""


class ChunkError(RecordingCryptError):
    """One chunk that does not open (``index`` counts from 0, ``offset`` in the file)."""

    def __init__(self, index: int, offset: int, why: str) -> None:
        super().__init__(f"chunk {index} (byte {offset}) {why}")
        self.index, self.offset = index, offset


def _file_key(key: bytes, salt: bytes) -> AESGCM:
    if len(key) != KEY_BYTES:
        raise RecordingCryptError(f"a recording key is {KEY_BYTES} bytes, not {len(key)}")
    return AESGCM(HKDF(algorithm=SHA256(), length=KEY_BYTES, salt=salt, info=FILE_INFO).derive(key))


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def _aad(visit: bytes, index: int, flags: int) -> bytes:
    return b"lapak/recording-chunk/v1\x00" + visit + b"\x00" + struct.pack(">QB", index, flags)


def header(visit: str, salt: bytes) -> bytes:
    raw = visit.encode()
    if not 0 < len(raw) < 256:
        raise ValueError(f"visit id {visit!r} does not fit the header")
    return MAGIC + bytes([VERSION, len(raw)]) + raw + salt


class SealedWriter:
    """What the muxer writes into: every ``write`` is sealed and appended as one chunk.

    Not seekable on purpose (no ``seek``/``tell``): the muxer then never goes back to patch
    its header, so each chunk is final when written. The key lives in this object only."""

    def __init__(self, path: Path, visit: str, key: bytes, salt: bytes | None = None) -> None:
        self.salt = salt if salt is not None else os.urandom(SALT_BYTES)
        self._aead = _file_key(key, self.salt)
        self._visit = visit.encode()
        self.index = 0
        self.bytes_in = 0
        self.finished = False
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        os.write(self._fd, header(visit, self.salt))

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        plain = bytes(data)
        if plain:
            self._append(plain, 0)
        return len(plain)

    def _append(self, plain: bytes, flags: int) -> None:
        if self.finished:
            raise ValueError("the recording is already finished")
        sealed = self._aead.encrypt(_nonce(self.index), plain, _aad(self._visit, self.index, flags))
        os.write(self._fd, _CHUNK_HEAD.pack(len(sealed), flags) + sealed)  # one call: a chunk
        self.index += 1
        self.bytes_in += len(plain)

    def finish(self) -> None:
        """The final, empty chunk (a file without it was cut short), then close."""
        if self.finished:
            return
        self._append(b"", FINAL)
        self.finished = True
        os.fsync(self._fd)
        os.close(self._fd)

    def abandon(self) -> None:
        """Close without the final chunk (the muxer failed: the file is cut short)."""
        if not self.finished:
            self.finished = True
            os.close(self._fd)


@dataclass
class Opened:
    """What ``open_chunks`` found once the file was read."""

    visit: str = ""
    chunks: int = 0
    final: bool = False
    tail: int = 0  # bytes of a cut-off last chunk, ignored


def read_header(f: BinaryIO) -> tuple[str, bytes]:
    """(visit, salt); RecordingCryptError for anything that is not a Lapak recording."""
    head = f.read(len(MAGIC) + 2)
    if len(head) < len(MAGIC) + 2 or not head.startswith(MAGIC):
        raise RecordingCryptError("not an encrypted Lapak recording (no LAPAKREC header)")
    if head[len(MAGIC)] != VERSION:
        raise RecordingCryptError(f"unknown recording format version {head[len(MAGIC)]}")
    raw = f.read(head[-1])
    salt = f.read(SALT_BYTES)
    if len(raw) != head[-1] or len(salt) != SALT_BYTES:
        raise RecordingCryptError("the recording's header is cut short")
    try:
        return raw.decode(), salt
    except UnicodeDecodeError:
        raise RecordingCryptError("the recording's header is damaged") from None


def open_chunks(f: BinaryIO, key: bytes, found: Opened) -> Iterator[bytes]:
    """The clear WebM, chunk by chunk. Stops at the final chunk, or at the end of a file
    cut short (``found.final`` False; a partial last chunk counted in ``found.tail``).
    ``ChunkError`` names the first chunk that does not open (wrong key or damage)."""
    found.visit, salt = read_header(f)
    aead = _file_key(key, salt)
    visit = found.visit.encode()
    offset = f.tell()
    index = 0
    while True:
        head = f.read(_CHUNK_HEAD.size)
        if not head:
            return
        if len(head) < _CHUNK_HEAD.size:
            found.tail = len(head)
            return
        size, flags = _CHUNK_HEAD.unpack(head)
        if size < TAG_BYTES or size > MAX_CHUNK or flags & ~FINAL:
            raise ChunkError(index, offset, "has a damaged length or flags field")
        sealed = f.read(size)
        if len(sealed) < size:
            found.tail = len(head) + len(sealed)
            return
        try:
            plain = aead.decrypt(_nonce(index), sealed, _aad(visit, index, flags))
        except InvalidTag:
            why = "does not decrypt: the file is damaged or altered there"
            if index == 0:
                why = "does not decrypt: a wrong key, or the file is damaged there"
            raise ChunkError(index, offset, why) from None
        found.chunks = index + 1
        if flags & FINAL:
            found.final = True
            if f.read(1):
                end = offset + _CHUNK_HEAD.size + size
                raise ChunkError(index + 1, end, "follows the final chunk")
            return
        yield plain
        offset += _CHUNK_HEAD.size + size
        index += 1


def decrypt_to(path: Path, key: bytes, out: BinaryIO) -> Opened:
    """Write ``path``'s clear WebM to ``out``; what was found (final or cut short)."""
    found = Opened()
    with path.open("rb") as f:
        for plain in open_chunks(f, key, found):
            out.write(plain)
    return found


def visit_of(path: Path) -> str:
    """The visit a recording file names in its header."""
    with path.open("rb") as f:
        return read_header(f)[0]
