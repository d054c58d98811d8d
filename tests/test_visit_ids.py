"""Visit ids in the pure core: ``V000001`` per node on one store; per office in a cluster
(``Rules.visit_ids_per_office``, set for a node with ``--node-url``), so that nodes owning
different offices of one PostgreSQL store never mint the same id without asking each other.
The counters are state: replay (and an office adopted from its stream) rebuilds them."""

from __future__ import annotations

import json

import msgspec

from lapak.signaling.domain import Domain, Rules, State, apply, office_tag, replay
from lapak.signaling.events import Event
from lapak.signaling.permissions import Actor
from lapak.signaling.workflows import default_workflows


def cluster_domain(state: State | None = None) -> Domain:
    return Domain(state, Rules(default_workflows(), visit_ids_per_office=True))


def start(domain: Domain, booth: str, office: str, events: list[Event] | None = None) -> str:
    visit, new = domain.start_visit(
        Actor("booth", booth, office, booth=booth), "Siti", "12345678901", "JHT", 0.0
    )
    if events is not None:
        events += new
    return visit


def test_a_single_node_keeps_its_ids() -> None:
    d = Domain(rules=Rules(default_workflows()))
    assert [start(d, "b1", "north"), start(d, "b1", "south")] == ["V000001", "V000002"]


def test_two_nodes_owning_different_offices_mint_different_ids() -> None:
    """Each node's state holds only its own office: with per-node numbering both would
    mint ``V000001``; numbered per office they cannot meet."""
    a, b = cluster_domain(), cluster_domain()
    ids_a = [start(a, f"b{i}", "north") for i in range(3)]
    ids_b = [start(b, f"b{i}", "south") for i in range(3)]
    assert ids_a == ["V-north-000001", "V-north-000002", "V-north-000003"]
    assert ids_b[0] == "V-south-000001"
    assert not set(ids_a) & set(ids_b)


def test_replay_of_an_office_stream_continues_its_numbering() -> None:
    """A node that takes an office over replays its stream: the next id follows the old
    owner's last, whatever the new node numbered in its own offices."""
    old_owner = cluster_domain()
    stream: list[Event] = []
    for i in range(4):
        start(old_owner, f"b{i}", "north", stream)
    new_owner = cluster_domain()
    start(new_owner, "x", "south")
    for event in stream:  # what adopt() applies
        apply(new_owner.state, event)
    assert start(new_owner, "b9", "north") == "V-north-000005"
    assert start(new_owner, "y", "south") == "V-south-000002"
    assert replay(stream).office_visits == {"north": 4}


def test_a_snapshot_from_before_the_counters_still_loads_and_never_reuses_an_id() -> None:
    """Snapshots written before ``office_visits`` existed decode (the field defaults to
    empty); minting then skips any id the state already holds."""
    d = cluster_domain()
    first = start(d, "b1", "north")
    body = json.loads(msgspec.json.encode(d.state))
    del body["office_visits"]
    old = msgspec.json.decode(json.dumps(body).encode(), type=State)
    assert old.office_visits == {} and first in old.visits
    again = cluster_domain(old)
    assert start(again, "b2", "north") == "V-north-000002", "V-north-000001 is taken"


def test_an_office_name_unsafe_in_a_file_name_is_hashed() -> None:
    """Recordings are named after visits: an office with ``/``, spaces or a long name
    appears as ``_`` and 12 hex digits; two such offices get different tags."""
    assert office_tag("jkt-selatan_2") == "jkt-selatan_2"
    tag = office_tag("../etc")
    assert tag.startswith("_") and len(tag) == 13 and "/" not in tag
    assert office_tag("a b") != office_tag("a  b")
    assert office_tag("x" * 41).startswith("_") and office_tag("x" * 40) == "x" * 40
    d = cluster_domain()
    visit = start(d, "b1", "Kantor Cabang/1")
    assert visit == f"V-{office_tag('Kantor Cabang/1')}-000001" and len(visit) <= 64
