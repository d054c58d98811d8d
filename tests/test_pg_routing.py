"""The pure side of a ``*`` watcher's commands on a cluster node (issue 14): node B owns
office west and knows north (owned by A) and south (no live owner) from their published
digests. Each command about north's visit, desk or office is answered ``moved {re, office,
url}`` and applies nothing on B; the role table still answers first; B's own office, an
office nobody published, an ended visit (in no digest) and a token of one office are
handled on B as before; an office with no live owner is ``not_found``. The real two-node
run is tests/test_pg_moved.py."""

from __future__ import annotations

from typing import Any

import pytest
from hub_driver import HubDriver

from lapak.signaling.config import ServerConfig
from lapak.signaling.overview import RemoteOffices

URL_A = "ws://a/ws"


def _nodes() -> tuple[HubDriver, dict[str, str]]:
    """Hub A holds north and south (an escalated, an on-air and a waiting visit in north),
    hub B west with A's digests; returns B and north's visit ids by what they are."""
    a = HubDriver(ServerConfig(grace_s=30))
    visits: dict[str, str] = {}
    for office in ("north", "south"):
        officer = a.join("officer", sub=f"o-{office}", desk=f"d-{office}", office=office)
        a.state.desks[f"d-{office}"].capacity = 2
        ids = []
        for i in range(4):  # two seated, two waiting; the escalation frees a seat
            booth = a.join("booth", sub=f"b{i}", booth=f"b{i}", office=office)
            ids.append(a.start_visit(booth, name=f"{office} {i}"))
        if office == "north":
            escalate = {"type": "end_visit", "id": 5, "visit": ids[0], "outcome": "escalated",
                        "note": "photo"}  # fmt: skip
            assert a.say(officer, escalate)[0]["type"] == "ack"
            assert a.say(officer, {"type": "focus", "id": 6, "visit": ids[1]})[0]["type"] == "ack"
            visits = {"escalated": ids[0], "on_air": ids[1], "queued": ids[3]}
    digests = {g.office: g for g in a.hub.office_digests(["north", "south"])}
    b = HubDriver(ServerConfig(grace_s=30), now=a.now)
    b.join("officer", sub="o-west", desk="d-west", office="west")
    b.hub.remote = RemoteOffices(local={"west"}, digests=digests, owners={"north": URL_A})
    return b, visits


def _moved(b: HubDriver, conn: int, message: dict[str, Any]) -> None:
    step = b.send(conn, {**message, "id": 9})
    assert step.to(conn) == [{"type": "moved", "re": 9, "office": "north", "url": URL_A}], message
    assert step.events == [] and step.closes == [], "nothing applied, the connection stays"


@pytest.mark.parametrize(
    "message",
    [
        {"type": "take_escalation", "visit": "escalated"},
        {"type": "decide", "visit": "escalated", "step": 0, "decision": "approve"},
        {"type": "end_visit", "visit": "escalated", "outcome": "abandoned"},
        {"type": "sdp", "visit": "on_air", "sdp_type": "offer", "sdp": "v=0", "offer_id": "o1"},
        {"type": "purge_visit", "visit": "queued"},
        {"type": "supervise", "desk": "d-north", "mode": "coach"},
        {"type": "sdp", "desk": "d-north", "sdp_type": "offer", "sdp": "v=0", "offer_id": "o2"},
        {"type": "close_desk", "desk": "d-north"},
        {"type": "configure_desk", "desk": "d-north", "capacity": 3},
        {"type": "configure_desk", "desk": "d-new", "capacity": 3, "office": "north"},
        {"type": "set_workflow", "claim_type": "death", "steps": ["id_card"], "office": "north"},
    ],
)
def test_a_star_admins_command_about_another_nodes_office_is_moved(message: dict[str, Any]) -> None:
    b, visits = _nodes()
    admin = b.join("admin", sub="root", office="*")
    if "visit" in message:
        message = {**message, "visit": visits[message["visit"]]}
    before = len(b.state.visits), dict(b.state.desks)
    _moved(b, admin, message)
    assert (len(b.state.visits), dict(b.state.desks)) == before


def test_a_star_resolver_is_moved_and_the_role_table_answers_first() -> None:
    """The role table (``read_only``) before the move; grants and visit state are checked
    by the owner, which holds them."""
    b, visits = _nodes()
    sup = b.join("supervisor", sub="s", office="*", grants=["resolve"])
    _moved(b, sup, {"type": "take_escalation", "visit": visits["escalated"]})
    closing = b.say(sup, {"type": "close_desk", "id": 3, "desk": "d-north"})[0]
    assert (closing["type"], closing["code"]) == ("error", "read_only"), "refused on any node"
    _moved(b, sup, {"type": "supervise", "desk": "d-north", "mode": "coach"})  # grants: the owner's


def test_what_this_node_holds_or_cannot_place_is_handled_here() -> None:
    b, _ = _nodes()
    admin = b.join("admin", sub="root", office="*")
    own = b.say(admin, {"type": "configure_desk", "id": 2, "desk": "d-w2", "capacity": 1,
                        "office": "west"})[0]  # fmt: skip
    assert own["type"] == "ack" and b.state.desks["d-w2"].office == "west"
    unknown = b.say(admin, {"type": "purge_visit", "id": 3, "visit": "V-north-000099"})[0]
    assert (unknown["type"], unknown["code"]) == ("error", "not_found"), "ended: in no digest"
    nobody = b.say(admin, {"type": "set_workflow", "id": 4, "claim_type": "death",
                           "steps": ["id_card"], "office": "east"})[0]  # fmt: skip
    assert nobody["type"] == "ack", "an office no node published: applied here, as before"
    orphan = b.say(admin, {"type": "close_desk", "id": 5, "desk": "d-south"})[0]
    assert (orphan["type"], orphan["code"]) == ("error", "not_found"), "south has no node now"
    assert "no node" in orphan["message"]


def test_a_token_of_one_office_is_not_routed() -> None:
    b, visits = _nodes()
    west = b.join("supervisor", sub="w", office="west", grants=["resolve"])
    answer = b.say(west, {"type": "take_escalation", "id": 2, "visit": visits["escalated"]})[0]
    assert answer["type"] == "error" and answer["code"] == "not_found"
