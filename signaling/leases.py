"""Office leases with a fencing epoch, in PostgreSQL (``lapak signal --node-url URL``).

``lapak_offices(office, owner_node, epoch, lease_until)`` says which node owns each office
and until when; ``lapak_nodes(node, url, heartbeat)`` which nodes are alive and where
clients reach them. Every time is PostgreSQL's own clock (``clock_timestamp()``), so the
nodes' clocks may disagree. Taking an office bumps its ``epoch``; every append of the
event log checks, in its own transaction, that the epoch of each office it writes is still
the one this node took (signaling/pglog.py, ``SELECT ... FOR SHARE``), so a node that was
paused or cut off past its lease can never write again once another node took the office:
its batch is refused (``Fenced``), nothing is acknowledged.

Which node should own which office is not decided here: every node reads the live nodes
(``live()``: heartbeat fresher than a lease, with the offices each serves) and computes the
same placement (signaling/placement.py); it takes its share when free and hands over
(``release_one``) what belongs to another live node.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

log = logging.getLogger("lapak.leases")

_NOW = "extract(epoch from clock_timestamp())"


class Leases:
    """This node's view of its leases: ``held`` maps each office it owns to its epoch (the
    same dict the event log fences with)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        node: str,
        url: str,
        lease_s: float,
        offices: list[str] | None = None,
    ) -> None:
        self.pool = pool
        self.node = node
        self.url = url
        self.lease_s = lease_s
        self.offices = sorted(offices or [])  # what this node serves (placement's input)
        self.held: dict[str, int] = {}
        self.urls: dict[str, str] = {}  # node -> URL, of the live nodes last read

    async def heartbeat(self) -> None:
        """Say this node is alive, where clients reach it and which offices it serves."""
        await self.pool.execute(
            f"INSERT INTO lapak_nodes (node, url, heartbeat, offices) VALUES ($1, $2, {_NOW}, $3) "
            f"ON CONFLICT (node) DO UPDATE SET url = $2, heartbeat = {_NOW}, offices = $3",
            self.node, self.url, self.offices,
        )  # fmt: skip

    async def live(self) -> dict[str, list[str]]:
        """The live nodes (heartbeat within a lease; this one always) and what each serves."""
        rows: Any = await self.pool.fetch(
            f"SELECT node, url, offices FROM lapak_nodes WHERE heartbeat >= {_NOW} - $1",
            self.lease_s,
        )
        nodes = {str(r["node"]): list(r["offices"]) for r in rows}
        self.urls = {str(r["node"]): str(r["url"]) for r in rows}
        nodes[self.node], self.urls[self.node] = self.offices, self.url
        return nodes

    async def leave(self) -> None:
        """A clean stop: this node is no longer live (the others re-plan without it now,
        not a lease later)."""
        await self.pool.execute("DELETE FROM lapak_nodes WHERE node = $1", self.node)

    async def release_one(self, office: str) -> bool:
        """Hand ``office`` over (its lease ends now, if still ours at our epoch); it is no
        longer held either way. True if it was ours to release."""
        epoch = self.held.pop(office, None)
        if epoch is None:
            return False
        done = await self.pool.execute(
            "UPDATE lapak_offices SET lease_until = 0, owner_node = NULL "
            "WHERE office = $1 AND owner_node = $2 AND epoch = $3",
            office, self.node, epoch,
        )  # fmt: skip
        released = str(done).endswith(" 1")
        log.info("event=lease_released office=%s node=%s ok=%s", office, self.node, released)
        return released

    async def acquire(self, office: str) -> int | None:
        """Take ``office`` if it is free, its lease ran out, or it is ours already: its new
        epoch (bumped unless we held it), else None. The bump waits for any append of the
        old owner in flight (it holds the row ``FOR SHARE``); every later one is refused."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO lapak_offices (office) VALUES ($1) ON CONFLICT DO NOTHING", office
            )
            epoch = await conn.fetchval(
                "UPDATE lapak_offices SET "
                "epoch = CASE WHEN owner_node = $2 AND epoch = $4 THEN epoch ELSE epoch + 1 END, "
                f"owner_node = $2, lease_until = {_NOW} + $3 "
                f"WHERE office = $1 AND (owner_node IS NULL OR owner_node = $2 "
                f"OR lease_until < {_NOW}) RETURNING epoch",
                office, self.node, self.lease_s, self.held.get(office, -1),
            )  # fmt: skip
        if epoch is None:
            return None
        if self.held.get(office) != epoch:
            log.info("event=lease_taken office=%s epoch=%d node=%s", office, epoch, self.node)
        self.held[office] = int(epoch)
        return int(epoch)

    async def renew(self) -> list[str]:
        """Extend every lease still ours (same owner, same epoch); the offices lost (another
        node took them) are dropped from ``held`` and returned."""
        if not self.held:
            return []
        offices = sorted(self.held)
        rows = await self.pool.fetch(
            f"UPDATE lapak_offices o SET lease_until = {_NOW} + $2 "
            "FROM unnest($3::text[], $4::bigint[]) AS h(office, epoch) "
            "WHERE o.office = h.office AND o.epoch = h.epoch AND o.owner_node = $1 "
            "RETURNING o.office",
            self.node, self.lease_s, offices, [self.held[o] for o in offices],
        )  # fmt: skip
        kept = {r["office"] for r in rows}
        lost = [o for o in offices if o not in kept]
        for office in lost:
            self.held.pop(office, None)
            log.warning("event=lease_lost office=%s node=%s", office, self.node)
        return lost

    async def release(self) -> None:
        """Hand every office back at a clean stop (lease ended now: any node may take it)."""
        if not self.held:
            return
        offices = sorted(self.held)
        await self.pool.execute(
            "UPDATE lapak_offices SET lease_until = 0, owner_node = NULL "
            "WHERE office = ANY($1::text[]) AND owner_node = $2",
            offices, self.node,
        )  # fmt: skip
        self.held.clear()

    async def owners(self) -> dict[str, str]:
        """Office -> URL of its live owner, for the offices other nodes hold."""
        rows: Any = await self.pool.fetch(
            "SELECT o.office, n.url FROM lapak_offices o JOIN lapak_nodes n "
            f"ON n.node = o.owner_node WHERE o.lease_until >= {_NOW} AND o.owner_node <> $1",
            self.node,
        )  # fmt: skip
        return {str(r["office"]): str(r["url"]) for r in rows}
