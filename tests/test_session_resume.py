"""Sessions that survive a move to another node (signaling/resume.py, sessions.py), on the
pure hub: node A issues the sessions, node B takes the office over (its state gains the
office, as ``PgLog.adopt`` applies the stream) and resumes them within the grace period, as
a single node resumes its own; after it, or for another place, a new session."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from hub_driver import NOW, HubDriver

from lapak.signaling.config import ServerConfig
from lapak.signaling.resume import SessionSeal
from lapak.signaling.state import State
from lapak.signaling.tokens import KeyRing

GRACE = 30.0


def _node_a() -> tuple[HubDriver, dict[str, Any]]:
    """Node A: an officer at d1, a booth b1 whose visit is seated and on air, a second
    booth b2 whose visit is seated off air."""
    a = HubDriver(ServerConfig(grace_s=GRACE))
    officer, officer_welcome = a.hello("officer", sub="o1", desk="d1")
    booth, booth_welcome = a.hello("booth", sub="b1", booth="b1")
    visit = a.start_visit(booth)
    other = a.join("booth", sub="b2", booth="b2")
    second = a.start_visit(other)
    assert a.say(officer, {"type": "focus", "id": 3, "visit": visit})[0]["type"] == "ack"
    return a, {
        "officer": officer_welcome["session"], "booth": booth_welcome["session"],
        "visit": visit, "second": second,
    }  # fmt: skip


def _take_over(a: HubDriver, at: float) -> HubDriver:
    """Node B: running since NOW (its own start-up grace long past at ``at``), then it takes
    the office over: the state gains A's office, and the hub is told."""
    b = HubDriver(ServerConfig(grace_s=GRACE), keys=a.keys, state=State(), now=NOW)
    b.at(at)
    moved = copy.deepcopy(a.state)
    for f in dataclasses.fields(State):
        setattr(b.state, f.name, getattr(moved, f.name))
    b.hub.adopted("main")
    return b


def test_booth_and_officer_resume_their_sessions_on_the_node_that_took_the_office() -> None:
    a, known = _node_a()
    b = _take_over(a, NOW + 100)
    booth, welcome = b.hello("booth", sub="b1", booth="b1", session=known["booth"], now=NOW + 110)
    assert welcome["resumed"] is True and welcome["session"] == known["booth"]
    state = b.inbox[booth][-1]
    assert state["type"] == "booth_state" and state["visit"] == known["visit"]
    slot = a.state.visits[known["visit"]].slot
    assert state["on_air"] is True and state["slot"] == slot, "its seat and the air kept"
    officer, welcome = b.hello("officer", sub="o1", desk="d1", session=known["officer"])
    assert welcome["resumed"] is True and welcome["session"] == known["officer"]
    snapshot = next(m for m in b.inbox[officer] if m["type"] == "snapshot")
    assert snapshot["state"]["on_air"] == known["visit"]
    seated = {v["visit"]: v["slot"] for v in snapshot["state"]["visits"]}
    assert seated == {v: a.state.visits[v].slot for v in (known["visit"], known["second"])}
    assert set(seated.values()) == {1, 2}, "the desk kept, both seats"
    b.disconnect(booth, NOW + 111)
    _, welcome = b.hello("booth", sub="b1", booth="b1", session=known["booth"], now=NOW + 112)
    assert welcome["resumed"] is True, "then resumes on B as on any single node"


def test_after_the_grace_period_the_documented_expiry_applies() -> None:
    a, known = _node_a()
    b = _take_over(a, NOW + 100)
    ended = b.tick(NOW + 100 + GRACE + 1)
    kinds = sorted(type(e).__name__ for e in ended.events)
    assert "VisitEnded" in kinds and "DeskVacated" in kinds, f"abandoned, vacated: {kinds}"
    assert b.state.visits[known["visit"]].outcome == "abandoned"
    _, welcome = b.hello("booth", sub="b1", booth="b1", session=known["booth"])
    assert welcome["resumed"] is False and welcome["session"] != known["booth"]
    _, welcome = b.hello("officer", sub="o1", desk="d1", session=known["officer"])
    assert welcome["resumed"] is False, "a vacated desk is a new session"


def test_a_late_return_within_grace_of_the_take_over_but_not_of_the_leaving_resumes() -> None:
    """Grace counts from the take-over (as from a restart): B cannot know when the client
    left A. A client back after that window gets a new session even with its place held."""
    a, known = _node_a()
    b = _take_over(a, NOW + 100)
    _, welcome = b.hello("booth", sub="b1", booth="b1", session=known["booth"],
                         now=NOW + 100 + GRACE - 1)  # fmt: skip
    assert welcome["resumed"] is True
    c = _take_over(a, NOW + 200)
    _, welcome = c.hello("booth", sub="b2", booth="b2", session=known["booth"], now=NOW + 201)
    assert welcome["resumed"] is False, "b1's session is not b2's"


def test_a_session_for_another_place_or_forged_does_not_resume() -> None:
    a, known = _node_a()
    b = _take_over(a, NOW + 100)
    nonce = known["booth"].split(".")[0]
    for forged in (nonce, f"{nonce}.AAAAAAAAAAAAAAAAAAAAAA", "", ".", known["officer"]):
        _, welcome = b.hello("booth", sub="b1", booth="b1", session=forged or None)
        assert welcome["resumed"] is False, forged
    other_keys = HubDriver(keys=KeyRing.generate())  # a node outside this cluster
    _, foreign = other_keys.hello("booth", sub="b1", booth="b1")
    c = _take_over(a, NOW + 100)
    _, welcome = c.hello("booth", sub="b1", booth="b1", session=foreign["session"])
    assert welcome["resumed"] is False, "sealed with a key this cluster does not hold"


def test_another_office_with_the_same_booth_name_gets_its_own_session() -> None:
    a, known = _node_a()
    b = _take_over(a, NOW + 100)
    b.hub.adopted("north")
    _, welcome = b.hello("booth", sub="b1", booth="b1", office="north", session=known["booth"])
    assert welcome["resumed"] is False


def test_a_rotated_key_ring_still_checks_sessions_sealed_under_the_old_key() -> None:
    old, new = b"o" * 32, b"n" * 32
    place = ("booth", "main", "b1")
    issued = SessionSeal(lambda: (old,), lambda: "nonce").issue(place)
    assert SessionSeal(lambda: (new, old), lambda: "x").check(place, issued)
    assert not SessionSeal(lambda: (new,), lambda: "x").check(place, issued)
    assert len(issued) <= 64, "fits the hello's session limit"


def test_a_restarted_node_resumes_its_own_sessions_within_the_grace_period() -> None:
    a, known = _node_a()
    restarted = a.restart(now=a.now + 5)
    _, welcome = restarted.hello("booth", sub="b1", booth="b1", session=known["booth"])
    assert welcome["resumed"] is True and welcome["session"] == known["booth"]
    late = a.restart(now=a.now + 5)
    late.tick(a.now + 5 + GRACE + 1)
    _, welcome = late.hello("officer", sub="o1", desk="d1", session=known["officer"])
    assert welcome["resumed"] is False, "past the grace period after the restart"
