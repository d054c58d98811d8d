"""Every office's overview on a cluster node (signaling/overview.py, hub): digests of the
offices other nodes own merge with this node's into the ``*`` answer exactly as one node
holding every office would answer; a desk of another node's office is answered ``moved``."""

from __future__ import annotations

from typing import Any

import msgspec
from hub_driver import HubDriver

from lapak.signaling.config import ServerConfig
from lapak.signaling.messages import Ack
from lapak.signaling.office_stats import office_stats
from lapak.signaling.overview import RemoteOffices, merge

OFFICES = ("north", "south", "west")


def _busy() -> HubDriver:
    """One hub holding three offices: desks, seated, queued, escalated and ended visits."""
    hub = HubDriver(ServerConfig(grace_s=30))
    for n, office in enumerate(OFFICES):
        officer = hub.join("officer", sub=f"o-{office}", desk=f"d-{office}", office=office)
        hub.state.desks[f"d-{office}"].capacity = 1 + n % 2
        visits = []
        for i in range(3 + n):
            booth = hub.join("booth", sub=f"b{i}", booth=f"b{i}", office=office)
            visits.append(hub.start_visit(booth, name=f"{office} {i}"))
            hub.at(hub.now + 7 + i)
        hub.say(officer, {"type": "focus", "id": 5, "visit": visits[0]})
        if n != 1:
            end = {"type": "end_visit", "id": 6, "visit": visits[0], "outcome": "abandoned"}
            assert hub.say(officer, end)[0]["type"] == "ack"
    hub.at(hub.now + 400)  # queued long enough for queue_wait alerts
    return hub


def _figures(hub: HubDriver, office: str) -> Any:
    return office_stats(
        hub.state, office, hub.now, hub.hub.tz, hub.hub._officer_present,
        hub.hub.domain.rules.default_visit_s, hub.hub.sessions.presence, hub.hub.alert_rules,
    )  # fmt: skip


def test_merging_each_offices_digest_equals_one_node_answering_for_all() -> None:
    hub = _busy()
    digests = hub.hub.office_digests(list(OFFICES))
    merged = merge(digests, hub.now)
    whole = _figures(hub, "*")
    assert merged == whole
    assert len(merged.desks) == 3 and merged.queue and merged.alerts and merged.outcomes


def test_a_star_supervisor_sees_the_offices_other_nodes_own() -> None:
    """Node B owns west; the digests of north and south come from the store."""
    a = _busy()
    theirs = {g.office: g for g in a.hub.office_digests(["north", "south"])}
    b = HubDriver(ServerConfig(grace_s=30), now=a.now)
    officer = b.join("officer", sub="o-west", desk="d-west", office="west")
    booth = b.join("booth", sub="b0", booth="b0", office="west")
    b.start_visit(booth, name="west 0")
    b.hub.remote = RemoteOffices(
        local={"west"}, digests=theirs, owners={"north": "ws://a/ws", "south": "ws://a/ws"}
    )
    sup, welcome = b.hello("supervisor", sub="s", office="*")
    assert welcome["desks"] == ["d-north", "d-south", "d-west"], "every office's desks"
    stats = b.say(sup, {"type": "office_stats", "id": 2})[0]
    assert stats["type"] == "ack"
    desks = {d["desk"]: d for d in stats["desks"]}
    assert set(desks) == {"d-north", "d-south", "d-west"}
    assert desks["d-west"]["present"] is True and desks["d-west"]["load"] == 1
    want = merge([*theirs.values(), *b.hub.office_digests(["west"])], b.now)
    assert stats == msgspec.to_builtins(Ack.of_figures(2, want)), "the merge, as it is"
    assert stats["visits_today"] == sum(g.figures.visits_today for g in theirs.values()) + 1
    one = b.say(sup, {"type": "office_stats", "id": 3, "office": "south"})[0]
    assert [d["desk"] for d in one["desks"]] == ["d-south"], "another node's office: its digest"
    assert officer


def test_watching_a_desk_of_an_office_owned_elsewhere_answers_moved() -> None:
    a = _busy()
    theirs = {g.office: g for g in a.hub.office_digests(["north", "south"])}
    b = HubDriver(ServerConfig(grace_s=30), now=a.now)
    b.hub.remote = RemoteOffices(local={"west"}, digests=theirs, owners={"north": "ws://a/ws"})
    sup = b.join("supervisor", sub="s", office="*")
    moved = b.say(sup, {"type": "watch", "id": 4, "desk": "d-north"})
    assert moved == [{"type": "moved", "re": 4, "office": "north", "url": "ws://a/ws"}]
    assert b.hub.conns[sup].gone is False, "the connection stays: only that watch moves"
    gone = b.say(sup, {"type": "watch", "id": 5, "desk": "d-south"})[0]
    assert gone["type"] == "error" and gone["code"] == "not_found", "no live owner right now"
    local_sup = b.join("supervisor", sub="t", office="west")
    refused = b.say(local_sup, {"type": "watch", "id": 6, "desk": "d-north"})[0]
    assert refused["type"] == "error" and refused["code"] == "forbidden", "not their office"


def test_a_single_node_answers_star_from_its_own_state_as_before() -> None:
    hub = _busy()
    sup = hub.join("supervisor", sub="s", office="*")
    stats = hub.say(sup, {"type": "office_stats", "id": 2})[0]
    assert stats == msgspec.to_builtins(Ack.of_figures(2, _figures(hub, "*")))
    assert len(stats["desks"]) == 3
    assert hub.say(sup, {"type": "watch", "id": 3, "desk": "d-north"})[0]["type"] == "snapshot"
