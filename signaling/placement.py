"""Which live node should own each office: rendezvous hashing with bounded loads.

Every node computes the same answer from the same inputs (the live nodes of
``lapak_nodes`` and the offices each serves), so the nodes agree without talking. An office's
weight on a node is a hash of the pair; each office goes to its heaviest node among those
that serve it and still have room, a node's room being its fair share (``offices // nodes``,
the remainder going one each to the first nodes that reach it): a pure highest-random-weight
placement leaves 3 nodes with 4 and 9 of 20 offices as often as not; bounded, every node
holds ``offices // nodes`` or one more (when every node serves every office). A node joining or
leaving moves few offices: those the new node outweighs (or the leaving node held), and
the few pushed out of a node that is now full. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping

Nodes = Mapping[str, Collection[str]]  # node -> the offices it serves


def weight(office: str, node: str) -> int:
    """The pair's rendezvous weight (stable across processes and versions: sha256)."""
    digest = hashlib.sha256(f"{office}\0{node}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def place(nodes: Nodes) -> dict[str, str]:
    """Office -> the node that should own it, for every office some node serves."""
    offices = sorted({office for served in nodes.values() for office in served})
    if not offices:
        return {}
    fair, extra = divmod(len(offices), len(nodes))  # each holds fair, ``extra`` one more
    load = dict.fromkeys(nodes, 0)
    owner: dict[str, str] = {}
    for office in offices:
        ranked = sorted(
            (n for n, served in nodes.items() if office in served),
            key=lambda n: (weight(office, n), n),
            reverse=True,
        )
        fuller = sum(1 for n in nodes if load[n] > fair)
        room = [n for n in ranked if load[n] < fair or (load[n] == fair and fuller < extra)]
        chosen = room[0] if room else ranked[0]
        owner[office] = chosen
        load[chosen] += 1
    return owner


def share(nodes: Nodes, node: str) -> set[str]:
    """The offices ``node`` should own."""
    return {office for office, owner in place(nodes).items() if owner == node}
