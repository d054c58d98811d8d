"""The server's sans-I/O core, driven frame by frame without sockets."""

from __future__ import annotations

from typing import Any

import pytest
from hub_driver import HubDriver

from lapak.signaling.config import ServerConfig
from lapak.signaling.protocol import CloseCode
from lapak.signaling.tokens import KeyRing


@pytest.fixture
def hub() -> HubDriver:
    return HubDriver()


def send(hub: HubDriver, conn: int, message: dict[str, Any] | str) -> list[tuple[int, dict]]:
    return hub.send(conn, message).outputs


def to(outputs: list[tuple[int, dict]], conn: int) -> list[dict]:
    return [m for c, m in outputs if c == conn]


def hello(hub: HubDriver, role: str, **kw: str) -> int:
    return hub.join(role, **kw)


def start_visit(hub: HubDriver, booth: int) -> str:
    return hub.start_visit(booth)


def test_nothing_before_hello(hub: HubDriver) -> None:
    conn = hub.connect()
    out = send(hub, conn, {"type": "focus", "id": 7, "visit": None})
    assert to(out, conn) == [
        {
            "type": "error",
            "re": 7,
            "code": "hello_required",
            "message": "send hello with a token first",
        }
    ]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_json"),
        ('{"type": "teleport", "id": 3}', "unknown_type"),
        ('{"type": "decide", "id": 4, "visit": "V1"}', "invalid_message"),
        ('{"type": "hello", "id": 5, "token": "x", "extra": 1}', "invalid_message"),
        ("[1, 2]", "unknown_type"),
        ("x" * 70_000, "too_big"),
    ],
)
def test_bad_frames_get_stable_codes(hub: HubDriver, frame: str, code: str) -> None:
    conn = hub.connect()
    result = hub.send(conn, frame)
    assert [m["code"] for m in result.to(conn)] == [code]
    assert result.events == [] and result.closes == [], "bad input changes nothing"


def test_forged_token_is_refused_and_closes(hub: HubDriver) -> None:
    conn = hub.connect()
    forged = KeyRing.generate().issue("officer", "eve", "main", desk="d1")
    result = hub.send(conn, {"type": "hello", "id": 1, "token": forged})
    assert result.to(conn)[0]["code"] == "bad_signature"
    assert [c[:2] for c in result.closes] == [(conn, CloseCode.AUTH_FAILED)]
    assert hub.state.desks == {}, "a refused hello opens nothing"


def test_visit_routing_focus_and_decision_fan_out(hub: HubDriver) -> None:
    officer = hello(hub, "officer", desk="d1")
    booth = hello(hub, "booth", booth="b1")
    out = send(
        hub,
        booth,
        {"type": "start_visit", "id": 2, "claimant": {"name": "Siti", "membership_no": "1"}},
    )
    ack = to(out, booth)[0]
    assert ack["type"] == "ack" and ack["re"] == 2
    visit = ack["visit"]
    delta = to(out, officer)[0]
    assert delta["type"] == "delta" and delta["visits"][0]["slot"] == 1
    assert to(out, booth)[1]["type"] == "booth_state" and to(out, booth)[1]["state"] == "active"

    out = send(hub, officer, {"type": "focus", "id": 3, "visit": visit})
    assert to(out, booth)[-1]["on_air"] is True, "the booth is told it is on air"
    assert to(out, officer)[-1]["on_air"] == visit

    out = send(
        hub, officer, {"type": "decide", "id": 4, "visit": visit, "step": 0, "decision": "approve"}
    )
    assert to(out, officer)[0] == {"type": "ack", "re": 4, "visit": visit, "step": 0}
    assert to(out, officer)[1]["visits"][0]["steps"][0]["status"] == "approved"
    assert to(out, officer)[1]["seq"] == delta["seq"] + 2, "per-desk seq counts every delta"


def test_supervisor_is_read_only_and_booth_cannot_steer(hub: HubDriver) -> None:
    hello(hub, "officer", desk="d1")
    sup = hello(hub, "supervisor")
    booth = hello(hub, "booth", booth="b1")
    for message in (
        {"type": "focus", "id": 1, "visit": None},
        {"type": "decide", "id": 2, "visit": "V000001", "step": 0, "decision": "approve"},
        {"type": "start_visit", "id": 3, "claimant": {"name": "x", "membership_no": "1"}},
        {"type": "end_visit", "id": 4, "visit": "V000001", "outcome": "completed"},
    ):
        result = hub.send(sup, message)
        assert result.to(sup)[0]["code"] == "read_only", message["type"]
        assert result.events == []
    out = send(hub, booth, {"type": "focus", "id": 5, "visit": None})
    assert to(out, booth)[0]["code"] == "forbidden"
    out = send(hub, sup, {"type": "watch", "id": 6, "desk": "d1"})
    assert to(out, sup)[0]["type"] == "snapshot"


def test_sdp_relays_between_the_peers_of_a_visit_only(hub: HubDriver) -> None:
    officer = hello(hub, "officer", desk="d1")
    booth = hello(hub, "booth", booth="b1")
    other = hello(hub, "booth", booth="b2", sub="b2")
    visit = start_visit(hub, booth)
    offer = {"type": "sdp", "id": 3, "visit": visit, "sdp_type": "offer", "sdp": "v=0",
             "offer_id": "o-1"}  # fmt: skip
    out = send(hub, officer, offer)
    assert to(out, booth)[0]["sdp"] == "v=0" and to(out, booth)[0]["from"] == "officer"
    out = send(hub, other, {**offer, "sdp_type": "answer"})
    assert to(out, other)[0]["code"] == "forbidden"
    assert to(out, officer) == [], "nothing reaches the officer from a stranger"


def test_officer_watches_only_own_desk(hub: HubDriver) -> None:
    hello(hub, "officer", desk="d1")
    other = hello(hub, "officer", desk="d2", sub="o2")
    out = send(hub, other, {"type": "watch", "id": 2, "desk": "d1"})
    assert to(out, other)[0]["code"] == "forbidden"


def test_supervisor_may_offer_receive_only_media_to_a_watched_booth(hub: HubDriver) -> None:
    hello(hub, "officer", desk="d1")
    booth = hello(hub, "booth", booth="b1")
    sup = hello(hub, "supervisor")
    visit = start_visit(hub, booth)
    offer = {"type": "sdp", "id": 3, "visit": visit, "sdp_type": "offer", "sdp": "v=0",
             "offer_id": "s-1"}  # fmt: skip
    out = send(hub, sup, offer)
    assert to(out, sup)[0]["code"] == "forbidden", "not before watching the desk"
    send(hub, sup, {"type": "watch", "id": 4, "desk": "d1"})
    out = send(hub, sup, offer)
    relayed = to(out, booth)[0]
    assert relayed["from"] == "supervisor" and relayed["peer"] == str(sup)
    answer = {
        "type": "sdp",
        "id": 5,
        "visit": visit,
        "sdp_type": "answer",
        "sdp": "a",
        "peer": str(sup),
        "offer_id": "s-1",
    }
    out = send(hub, booth, answer)
    assert [m["sdp"] for m in to(out, sup)] == ["a"], "the answer reaches that supervisor only"
    out = send(hub, booth, {**answer, "peer": "999"})
    assert to(out, booth)[0]["code"] == "stale_answer", "peer 999 never offered to this booth"


def test_booths_hear_when_a_watching_supervisor_leaves(hub: HubDriver) -> None:
    hello(hub, "officer", desk="d1")
    booth = hello(hub, "booth", booth="b1")
    sup = hello(hub, "supervisor")
    visit = start_visit(hub, booth)
    send(hub, sup, {"type": "watch", "id": 3, "desk": "d1"})
    gone = hub.disconnect(sup)
    assert gone.to(booth) == [{"type": "peer_left", "visit": visit, "peer": str(sup)}]


def test_sdp_offer_id_is_required_and_relayed(hub: HubDriver) -> None:
    officer = hello(hub, "officer", desk="d1")
    booth = hello(hub, "booth", booth="b1")
    visit = start_visit(hub, booth)
    offer = {"type": "sdp", "id": 3, "visit": visit, "sdp_type": "offer", "sdp": "v=0"}
    out = send(hub, officer, {**offer, "offer_id": "o-1"})
    assert to(out, booth)[0]["offer_id"] == "o-1", "the booth learns which offer it answers"
    out = send(hub, booth, {**offer, "id": 4, "sdp_type": "answer", "offer_id": "o-1"})
    assert to(out, officer)[0]["offer_id"] == "o-1"
    out = send(hub, officer, {**offer, "id": 5, "offer_id": "x" * 65})
    assert to(out, officer)[0]["code"] == "invalid_message", "offer_id is 1..64 characters"
    out = send(hub, officer, {**offer, "id": 6})
    assert to(out, officer)[0]["code"] == "invalid_message", "an offer without a name is refused"
    out = send(hub, booth, {**offer, "id": 7, "sdp_type": "answer"})
    assert to(out, booth)[0]["code"] == "invalid_message", "so is an answer naming none"


def sdp(visit: str, sdp_type: str, offer_id: str, **kw: str) -> dict[str, Any]:
    return {"type": "sdp", "id": 9, "visit": visit, "sdp_type": sdp_type, "sdp": "v=0",
            "offer_id": offer_id, **kw}  # fmt: skip


def test_sdp_relays_only_what_the_protocol_allows(hub: HubDriver) -> None:
    officer = hello(hub, "officer", desk="d1")
    booth = hello(hub, "booth", booth="b1")
    sup = hello(hub, "supervisor")
    visit = start_visit(hub, booth)
    send(hub, sup, {"type": "watch", "id": 3, "desk": "d1"})
    out = send(hub, booth, sdp(visit, "offer", "b-1"))
    assert to(out, booth)[0]["code"] == "forbidden" and to(out, officer) == [], "booths answer"
    out = send(hub, officer, sdp(visit, "answer", "o-1"))
    assert to(out, officer)[0]["code"] == "forbidden", "the officer is always the offerer"
    out = send(hub, booth, sdp(visit, "answer", "o-1"))
    assert to(out, booth)[0]["code"] == "stale_answer", "no offer was relayed yet"
    send(hub, officer, sdp(visit, "offer", "o-1"))
    send(hub, officer, sdp(visit, "offer", "o-2"))
    out = send(hub, booth, sdp(visit, "answer", "o-1"))
    assert to(out, booth)[0]["code"] == "stale_answer" and to(out, officer) == [], "replaced"
    out = send(hub, booth, sdp(visit, "answer", "o-2"))
    assert [m["offer_id"] for m in to(out, officer)] == ["o-2"], "the latest offer's answer"
    out = send(hub, booth, sdp(visit, "answer", "s-1", peer=str(sup)))
    assert to(out, booth)[0]["code"] == "stale_answer", "that supervisor never offered"
    assert to(out, sup) == [], "nothing unsolicited reaches the supervisor"
    send(hub, sup, sdp(visit, "offer", "s-1"))
    out = send(hub, booth, sdp(visit, "answer", "s-1", peer=str(sup)))
    assert [m["offer_id"] for m in to(out, sup)] == ["s-1"]
    hub.disconnect(sup)
    out = send(hub, booth, sdp(visit, "answer", "s-1", peer=str(sup)))
    assert to(out, booth)[0]["code"] == "stale_answer", "a gone supervisor's offer is void"


def test_workflows_are_set_per_office(hub: HubDriver) -> None:
    main_admin = hello(hub, "admin", sub="a-main")
    root = hello(hub, "admin", sub="root", office="*")
    steps = {"type": "set_workflow", "id": 5, "claim_type": "JKM", "steps": ["x", "y"]}
    out = send(hub, main_admin, steps)
    assert to(out, main_admin)[0] == {"type": "ack", "re": 5, "claim_type": "JKM", "office": "main"}
    for office in ("north", "*"):
        out = send(hub, main_admin, {**steps, "office": office})
        assert to(out, main_admin)[0]["code"] == "forbidden", f"main's admin may not set {office}"
    north_booth = hello(hub, "booth", booth="b1", office="north")
    jkm = {"name": "N", "membership_no": "1", "claim_type": "JKM"}
    out = send(hub, north_booth, {"type": "start_visit", "id": 6, "claimant": jkm})
    assert to(out, north_booth)[0]["code"] == "invalid_message", "north has no JKM workflow"
    out = send(hub, root, {**steps, "office": "north", "steps": ["z"]})
    assert to(out, root)[0]["office"] == "north", "an office * admin sets a named office's"
    out = send(hub, north_booth, {"type": "start_visit", "id": 7, "claimant": jkm})
    visit = to(out, north_booth)[0]["visit"]
    assert [s.name for s in hub.state.visits[visit].steps] == ["z"]
    main_booth = hello(hub, "booth", booth="b1")
    out = send(hub, main_booth, {"type": "start_visit", "id": 8, "claimant": jkm})
    assert [s.name for s in hub.state.visits[to(out, main_booth)[0]["visit"]].steps] == ["x", "y"]


def test_outcomes_that_contradict_the_steps_are_refused(hub: HubDriver) -> None:
    officer = hello(hub, "officer", desk="d1")
    booth = hello(hub, "booth", booth="b1")
    visit = start_visit(hub, booth)
    end = {"type": "end_visit", "id": 4, "visit": visit}
    result = hub.send(officer, {**end, "outcome": "completed"})
    assert result.to(officer)[0]["code"] == "outcome_mismatch" and not result.events
    out = send(hub, officer, {**end, "outcome": "rejected"})
    assert to(out, officer)[0]["code"] == "outcome_mismatch", "rejected needs a rejected step"
    lax = HubDriver(ServerConfig(strict_outcomes=False))
    officer, booth = hello(lax, "officer", desk="d1"), hello(lax, "booth", booth="b1")
    visit = start_visit(lax, booth)
    out = send(lax, officer, {**end, "visit": visit, "outcome": "completed"})
    assert to(out, officer)[0]["type"] == "ack", "strict_outcomes = false lets it through"


def test_a_booth_without_an_open_visit_gets_only_welcome(hub: HubDriver) -> None:
    conn = hub.connect()
    out = send(hub, conn, {"type": "hello", "id": 1, "token": hub.token("booth", booth="b1")})
    assert [m["type"] for m in to(out, conn)] == ["welcome"]


def test_the_newer_officer_connection_takes_over_the_desk(hub: HubDriver) -> None:
    older = hello(hub, "officer", desk="d1")
    conn = hub.connect()
    result = hub.send(conn, {"type": "hello", "id": 1, "token": hub.token("officer", desk="d1")})
    assert result.to(older)[0]["code"] == "replaced"
    assert result.closes == [(older, CloseCode.REPLACED, "replaced")]
    assert hub.send(older, {"type": "focus", "visit": None}).outputs == []
    booth = hello(hub, "booth", booth="b1")
    out = send(hub, booth, {"type": "start_visit", "id": 2,
                            "claimant": {"name": "S", "membership_no": "1"}})  # fmt: skip
    assert to(out, older) == [] and to(out, conn)[0]["type"] == "delta", "only the newer hears"
    assert hub.disconnect(older).outputs == [] and not hub.hub.away, "the desk is still held"


def test_only_supervisors_and_admins_span_offices(hub: HubDriver) -> None:
    conn = hub.connect()
    token = hub.token("booth", office="*", booth="b1")
    result = hub.send(conn, {"type": "hello", "id": 1, "token": token})
    assert result.to(conn)[0]["code"] == "bad_token", "a booth of office * is refused"
    assert [c[:2] for c in result.closes] == [(conn, CloseCode.AUTH_FAILED)]
    hub.join("supervisor", office="*")


def test_a_desk_belongs_to_one_named_office(hub: HubDriver) -> None:
    root = hello(hub, "admin", sub="root", office="*")
    out = send(hub, root, {"type": "configure_desk", "id": 2, "desk": "d9", "capacity": 2})
    assert to(out, root)[0]["code"] == "invalid_message", "office * is not an office of desks"
    out = send(hub, root, {"type": "configure_desk", "id": 3, "desk": "d9", "capacity": 2,
                           "office": "north"})  # fmt: skip
    assert to(out, root)[0]["type"] == "ack" and hub.state.desks["d9"].office == "north"


def test_an_answer_to_the_officer_of_a_desk_the_visit_left_is_stale(hub: HubDriver) -> None:
    officer = hello(hub, "officer", desk="d1")
    booth = hello(hub, "booth", booth="b1")
    visit = start_visit(hub, booth)
    send(hub, officer, sdp(visit, "offer", "o-1"))
    hub.disconnect(officer)
    hub.tick(
        hub.now + hub.hub.config.grace_s + 1
    )  # the officer is gone: the visit goes back to queue
    assert hub.state.visits[visit].state == "queued"
    other = hello(hub, "officer", desk="d2", sub="o2")
    assert hub.state.visits[visit].desk == "d2"
    out = send(hub, booth, sdp(visit, "answer", "o-1"))
    assert to(out, booth)[0]["code"] == "stale_answer" and to(out, other) == []


def test_office_stats_for_every_office_counts_every_office_queue_and_visits() -> None:
    """An office-``*`` supervisor's overview lists the queues and visits of every office, not an
    empty queue looked up under the office name ``*``."""
    config = ServerConfig(offices=("main", "north"))
    hub = HubDriver(config)
    booths = {o: hello(hub, "booth", office=o, booth="booth-01") for o in ("main", "north")}
    for booth in booths.values():  # no desk is open: both visits wait in their office queue
        start_visit(hub, booth)
    sup = hello(hub, "supervisor", office="*")
    stats = to(send(hub, sup, {"type": "office_stats", "id": 3, "office": "*"}), sup)[0]
    assert stats["type"] == "ack", stats
    assert len(stats["queue"]) == 2, f"both offices' queued visits expected: {stats['queue']}"
    assert stats["visits_today"] == 2, stats
