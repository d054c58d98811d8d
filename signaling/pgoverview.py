"""Office overviews in PostgreSQL for ``*`` supervisors and admins (signaling/overview.py
says why the store and not a fan-out): ``lapak_office_stats(office, node, at, body)``, one
row per office, written each tick by the node that owns it (one statement for all its
offices, off the path of any request) and read back by every node.

A row is written only while the writing node owns the office (joined with
``lapak_offices`` in the same statement), so a node that lost an office never overwrites
the new owner's figures."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import msgspec

from lapak.signaling.overview import OfficeDigest
from lapak.signaling.pglog import SCHEMA_LOCK

log = logging.getLogger("lapak.pgoverview")

SCHEMA = """
CREATE TABLE IF NOT EXISTS lapak_office_stats (
    office text PRIMARY KEY,
    node text NOT NULL,
    at double precision NOT NULL,
    body bytea NOT NULL
);
"""
_PUBLISH = """
INSERT INTO lapak_office_stats (office, node, at, body)
SELECT u.office, $1, u.at, u.body
FROM unnest($2::text[], $3::float8[], $4::bytea[]) AS u(office, at, body)
JOIN lapak_offices o ON o.office = u.office AND o.owner_node = $1
ON CONFLICT (office) DO UPDATE SET node = EXCLUDED.node, at = EXCLUDED.at, body = EXCLUDED.body
"""
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(OfficeDigest)


class Overviews:
    """One node's side of the table: publish its offices, read everybody's."""

    def __init__(self, pool: asyncpg.Pool, node: str) -> None:
        self.pool = pool
        self.node = node
        self._ready = False

    async def _schema(self) -> None:
        if self._ready:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
            await conn.execute(SCHEMA)
        self._ready = True

    async def publish(self, digests: list[OfficeDigest]) -> None:
        """Upsert the digests of the offices this node owns (others are skipped)."""
        await self._schema()
        if not digests:
            return
        await self.pool.execute(
            _PUBLISH, self.node, [d.office for d in digests], [d.at for d in digests],
            [_encoder.encode(d) for d in digests],
        )  # fmt: skip

    async def read(self) -> dict[str, OfficeDigest]:
        """Every office's latest digest; an unreadable row is logged and left out."""
        await self._schema()
        rows: Any = await self.pool.fetch("SELECT office, body FROM lapak_office_stats")
        found: dict[str, OfficeDigest] = {}
        for row in rows:
            try:
                found[str(row["office"])] = _decoder.decode(row["body"])
            except msgspec.DecodeError as exc:
                log.warning("event=office_stats_unreadable office=%s error=%s", row["office"], exc)
        return found
