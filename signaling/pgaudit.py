"""``lapak audit verify/export --store postgresql://...``: the same checks as on SQLite
(signaling/audit.py), stream by stream. Never raises on a damaged log: problems are named.

Each office's stream is checked on its own (``logverify.check_rows``: no gap, the row hash
over the row and its predecessor, a body that decodes and agrees with its columns); each
stream's checkpoints must sit on its chain and, with a public key, be signed by it; each
snapshot's state must hash to what it says, sit on every stream head it names and, with a
public key, carry a valid signature.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from lapak.signaling import signing
from lapak.signaling.logformat import SCHEMA_VERSION, LogError, state_hash
from lapak.signaling.logverify import Verification, check_rows
from lapak.signaling.pglog import CONNECT_ERRORS, STORE_ERRORS, redact, snapshot_mark
from lapak.signaling.signing import Checkpoint

Row = tuple[Any, float, str, bytes, str]


async def _connect(url: str) -> Any:
    try:
        return await asyncpg.connect(url, timeout=10)
    except CONNECT_ERRORS as exc:
        raise LogError(f"cannot connect to the store {redact(url)}: {exc}") from None


async def _has_log(conn: Any) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass('lapak_events') IS NOT NULL"))


def verify_store(url: str, public: Ed25519PublicKey | None = None) -> Verification:
    """Every check an auditor can make on the store at ``url``."""
    return asyncio.run(_verify(url, public))


async def _verify(url: str, public: Ed25519PublicKey | None) -> Verification:
    report = Verification()
    try:
        conn = await _connect(url)
    except LogError as exc:
        report.problems.append(str(exc))
        return report
    try:
        if not await _has_log(conn):
            report.problems.append(f"{redact(url)} holds no lapak event log")
            return report
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await _verify_in(conn, public, report)
    except STORE_ERRORS as exc:
        report.problems.append(f"the store cannot be read: {exc}")
    finally:
        await conn.close()
    return report


async def _verify_in(conn: Any, public: Ed25519PublicKey | None, report: Verification) -> None:
    identity = str(await conn.fetchval("SELECT value FROM lapak_meta WHERE key = 'log_id'"))
    streams = [r[0] for r in await conn.fetch("SELECT DISTINCT stream FROM lapak_events")]
    chains: dict[str, dict[int, str]] = {}
    ends: dict[str, int] = {}
    for stream in sorted(streams):
        rows = await conn.fetch(
            "SELECT seq, at, kind, body, hash FROM lapak_events WHERE stream = $1 ORDER BY seq",
            stream,
        )
        hashes: dict[int, str] = {}
        for seq, row_hash, _, problems in check_rows([tuple(r) for r in rows], SCHEMA_VERSION):
            report.problems += [f"stream {stream}: {p}" for p in problems]
            if seq is not None and row_hash is not None:
                hashes[seq] = row_hash
                ends[stream] = seq
            report.count += 1
        chains[stream] = hashes
    report.last_seq = report.count
    signed = await _verify_checkpoints(conn, identity, chains, ends, public, report)
    await _verify_snapshots(conn, identity, chains, public, report)
    if public is None:
        report.notes.append(
            "no --public-key: the chains are consistent, but whoever can write the database "
            "could have recomputed them"
        )
    else:
        for stream, end in sorted(ends.items()):
            if signed.get(stream, 0) == 0:
                report.problems.append(f"stream {stream}: no checkpoint signed by this key")
            elif signed[stream] < end:
                report.notes.append(
                    f"stream {stream}: events {signed[stream] + 1}..{end} come after its "
                    "newest signed checkpoint"
                )


async def _verify_checkpoints(
    conn: Any,
    identity: str,
    chains: dict[str, dict[int, str]],
    ends: dict[str, int],
    public: Ed25519PublicKey | None,
    report: Verification,
) -> dict[str, int]:
    signed: dict[str, int] = {}
    rows = await conn.fetch(
        "SELECT stream, seq, hash, at, log_id, signature, key_id FROM lapak_checkpoints "
        "ORDER BY stream, seq"
    )
    for r in rows:
        stream, seq = r["stream"], int(r["seq"])
        mark = Checkpoint(r["log_id"], seq, r["hash"], "", r["at"], r["signature"], r["key_id"])
        name = f"stream {stream}: checkpoint at event {seq}"
        if mark.log_id != f"{identity}:{stream}":
            report.problems.append(f"{name} belongs to another log or stream ({mark.log_id})")
        if seq > ends.get(stream, 0):
            report.problems.append(
                f"{name} is ahead of the stream, which ends at event {ends.get(stream, 0)}: "
                "events were removed from the tail"
            )
        elif chains.get(stream, {}).get(seq) != mark.hash:
            report.problems.append(f"{name} differs from the chain: the history was rewritten")
        if public is None:
            continue
        if signing.is_valid(mark, public):
            signed[stream] = max(signed.get(stream, 0), seq)
        else:
            report.problems.append(f"{name}: not signed by this key")
    return signed


async def _verify_snapshots(
    conn: Any,
    identity: str,
    chains: dict[str, dict[int, str]],
    public: Ed25519PublicKey | None,
    report: Verification,
) -> None:
    rows = await conn.fetch(
        "SELECT id, node, pos, heads, state_hash, body, at, signature, key_id "
        "FROM lapak_snapshots ORDER BY id"
    )
    for r in rows:
        name = f"snapshot {r['id']} of node {r['node']}"
        if state_hash(r["body"]) != r["state_hash"]:
            report.problems.append(f"{name}: its state was edited")
            continue
        try:
            heads = {s: (int(h[0]), str(h[1])) for s, h in json.loads(r["heads"]).items()}
        except (ValueError, TypeError, IndexError, AttributeError):
            report.problems.append(f"{name}: its stream heads are unreadable")
            continue
        for stream, (seq, head) in sorted(heads.items()):
            if chains.get(stream, {}).get(seq) != head:
                report.problems.append(f"{name} does not match the chain of stream {stream}")
        if public is not None:
            mark = snapshot_mark(identity, r["pos"], heads, r["state_hash"], r["at"])
            mark = Checkpoint(
                mark.log_id, mark.seq, mark.hash, mark.state_hash, mark.at,
                r["signature"], r["key_id"],
            )  # fmt: skip
            if not signing.is_valid(mark, public):
                report.problems.append(f"{name}: not signed by this key")


def store_rows(url: str) -> list[Row]:
    """Every row in commit order, ``seq`` as ``<office>:<seq>`` (for ``audit export``);
    LogError when the store cannot be reached or holds no log."""
    return asyncio.run(_rows(url))


async def _rows(url: str) -> list[Row]:
    conn = await _connect(url)
    try:
        if not await _has_log(conn):
            raise LogError(f"{redact(url)} holds no lapak event log")
        rows = await conn.fetch(
            "SELECT stream, seq, at, kind, body, hash FROM lapak_events ORDER BY pos"
        )
    except STORE_ERRORS as exc:
        raise LogError(f"the store cannot be read: {exc}") from None
    finally:
        await conn.close()
    return [(f"{r['stream']}:{r['seq']}", r["at"], r["kind"], r["body"], r["hash"]) for r in rows]


def store_visit_key(url: str, visit: str) -> bytes | None:
    """The visit key the store holds for ``visit`` (``lapak recordings export``), None when
    there is none (purged, or not this store's visit); LogError when the store cannot be
    reached or holds no log. Read-only: one SELECT on ``lapak_visit_keys``."""
    return asyncio.run(_visit_key(url, visit))


async def _visit_key(url: str, visit: str) -> bytes | None:
    conn = await _connect(url)
    try:
        if not await _has_log(conn):
            raise LogError(f"{redact(url)} holds no lapak event log")
        key = await conn.fetchval("SELECT key FROM lapak_visit_keys WHERE visit = $1", visit)
    except STORE_ERRORS as exc:
        raise LogError(f"the store cannot be read: {exc}") from None
    finally:
        await conn.close()
    return None if key is None else bytes(key)
