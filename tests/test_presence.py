"""Grace periods, resume, rate limits and new server rules, on the pure hub."""

from __future__ import annotations

from typing import Any

from hub_driver import NOW, HubDriver

from lapak.signaling.config import ServerConfig
from lapak.signaling.protocol import CloseCode


def make_hub(**config: Any) -> HubDriver:
    return HubDriver(ServerConfig(**config))


def say(hub: HubDriver, conn: int, message: dict[str, Any], now: float = NOW) -> list[dict]:
    return hub.say(conn, message, now)


def join(
    hub: HubDriver, role: str, now: float = NOW, session: str | None = None, **kw: str
) -> tuple[int, dict]:
    return hub.hello(role, session=session, now=now, sub=kw.pop("sub", f"{role}-1"), **kw)


def start(hub: HubDriver, booth: int, now: float = NOW) -> str:
    claimant = {"name": "Siti", "membership_no": "1"}
    return say(hub, booth, {"type": "start_visit", "id": 2, "claimant": claimant}, now)[0]["visit"]


def test_booth_resumes_within_grace_and_is_abandoned_after() -> None:
    hub = make_hub(grace_s=30)
    join(hub, "officer", desk="d1")
    booth, welcome = join(hub, "booth", booth="b1")
    visit = start(hub, booth)
    hub.disconnect(booth, NOW + 1)
    assert hub.tick(NOW + 20).events == [], "within grace nothing happens"
    again, welcome2 = join(hub, "booth", now=NOW + 25, session=welcome["session"], booth="b1")
    assert welcome2["resumed"] is True and welcome2["session"] == welcome["session"]
    assert hub.state.visits[visit].state == "active", "the visit kept its slot"
    hub.disconnect(again, NOW + 30)
    result = hub.tick(NOW + 61)
    assert [type(e).__name__ for e in result.events] == ["VisitEnded"]
    assert hub.state.visits[visit].outcome == "abandoned"
    assert hub.state.desks["d1"].slots == {}, "the slot is free again"


def test_officer_gone_past_grace_sends_visits_back_to_queue_head() -> None:
    hub = make_hub(grace_s=10)
    officer, _ = join(hub, "officer", desk="d1")
    booths = [join(hub, "booth", booth=f"b{i}", sub=f"b{i}")[0] for i in range(2)]
    seated = [start(hub, b) for b in booths]
    waiting_booth, _ = join(hub, "booth", booth="b9", sub="b9")
    hub.state.desks["d1"].capacity = 2  # a full desk so the next visit queues
    queued = start(hub, waiting_booth)
    assert hub.state.queues["main"] == [queued]
    hub.disconnect(officer, NOW + 1)
    assert hub.tick(NOW + 5).events == []
    hub.tick(NOW + 12)
    assert hub.state.queues["main"] == [*seated, queued], "seated visits go to the head, in order"
    assert hub.state.desks["d1"].slots == {}
    join(hub, "officer", now=NOW + 20, desk="d1")
    assert sorted(hub.state.desks["d1"].slots.values()) == sorted(seated), "they come back"


def test_everyone_is_away_after_a_restart_until_they_say_hello() -> None:
    hub = make_hub(grace_s=5)
    join(hub, "officer", desk="d1")
    booth, _ = join(hub, "booth", booth="b1")
    visit = start(hub, booth)
    restarted = hub.restart(ServerConfig(grace_s=5), now=NOW + 100)
    away = restarted.hub.away
    assert ("booth", "main", "b1") in away and ("desk", "main", "d1") in away
    join(restarted, "booth", now=NOW + 102, booth="b1")
    restarted.tick(NOW + 106)
    assert restarted.state.visits[visit].state == "queued", "officer gone: back to the queue"


def test_rate_limit_then_flood_close() -> None:
    hub = make_hub(rate_per_s=10, rate_burst=5)
    conn, _ = join(hub, "supervisor")
    codes = [
        m.get("code")
        for i in range(10)
        for m in say(hub, conn, {"type": "office_stats", "id": 10 + i})
    ]
    assert codes[:4] == [None] * 4 and codes[-1] == "rate_limited", codes
    result = None
    for _ in range(300):
        result = hub.send(conn, "{}", NOW)
        if result.closes:
            break
    assert result is not None and result.closes == [(conn, CloseCode.FLOOD, "flood")]
    later = say(hub, conn, {"type": "office_stats", "id": 99}, NOW + 2)
    assert later[0]["type"] == "ack", "tokens refill with time"


def test_wrong_office_is_refused_with_its_own_code() -> None:
    hub = make_hub(offices=["main"])
    conn = hub.connect()
    token = hub.token("officer", sub="ana", office="elsewhere", desk="d9")
    result = hub.send(conn, {"type": "hello", "token": token})
    assert [m["code"] for _, m in result.outputs] == ["wrong_office"]
    assert [c[:2] for c in result.closes] == [(conn, CloseCode.AUTH_FAILED)]


def test_reject_needs_a_configured_reason_and_reopen_undoes() -> None:
    hub = make_hub(reasons=["document missing"])
    officer, welcome = join(hub, "officer", desk="d1")
    assert welcome["reasons"] == ["document missing"]
    booth, _ = join(hub, "booth", booth="b1")
    visit = start(hub, booth)
    bad = {
        "type": "decide",
        "id": 5,
        "visit": visit,
        "step": 0,
        "decision": "reject",
        "reason": "x",
    }
    assert say(hub, officer, bad)[0]["code"] == "bad_reason"
    ok = say(hub, officer, {**bad, "reason": "document missing"})
    assert ok[0]["type"] == "ack"
    assert hub.state.visits[visit].steps[0].status == "rejected"
    say(hub, officer, {"type": "decide", "id": 6, "visit": visit, "step": 0, "decision": "reopen"})
    assert hub.state.visits[visit].steps[0].status == "pending"
    again = {"type": "decide", "id": 7, "visit": visit, "step": 0, "decision": "reopen"}
    assert say(hub, officer, again)[0]["code"] == "step_not_decided"


def test_pinned_booth_goes_to_its_desk_and_queue_reports_estimated_wait() -> None:
    hub = make_hub(pins={"b2": "d2"}, default_visit_minutes=10)
    join(hub, "officer", desk="d1")
    join(hub, "officer", desk="d2", sub="o2")
    b1, _ = join(hub, "booth", booth="b1", sub="b1")
    b2, _ = join(hub, "booth", booth="b2", sub="b2")
    start(hub, b1)
    v2 = start(hub, b2)
    assert hub.state.visits[v2].desk == "d2", "pinned desk first"
    for desk in hub.state.desks.values():
        desk.capacity = len(desk.slots)  # full office
    b3, _ = join(hub, "booth", booth="b3", sub="b3")
    claimant = {"name": "S", "membership_no": "3"}
    out = hub.say(b3, {"type": "start_visit", "id": 1, "claimant": claimant}, NOW)
    state = next(m for m in out if m["type"] == "booth_state")
    assert state["position"] == 1 and state["estimated_wait_s"] == 600 / 2


def test_escalation_needs_a_note_and_focus_history_records_waits() -> None:
    hub = make_hub()
    officer, _ = join(hub, "officer", desk="d1")
    booth, _ = join(hub, "booth", booth="b1")
    visit = start(hub, booth)
    say(hub, officer, {"type": "focus", "id": 3, "visit": visit}, NOW + 40)
    assert hub.state.focus_history[-1].waited_s == 40
    say(hub, officer, {"type": "focus", "id": 4, "visit": None}, NOW + 50)
    assert hub.state.visits[visit].last_on_air_at == NOW + 50
    end = {"type": "end_visit", "id": 5, "visit": visit, "outcome": "escalated"}
    assert say(hub, officer, end)[0]["code"] == "invalid_message"
    assert say(hub, officer, {**end, "note": "signature differs"})[0]["type"] == "ack"


def test_admin_configures_and_closes_desks_and_sets_workflows() -> None:
    hub = make_hub()
    admin, _ = join(hub, "admin")
    booth, _ = join(hub, "booth", booth="b1")
    visit = start(hub, booth)
    assert hub.state.visits[visit].state == "queued"
    say(hub, admin, {"type": "configure_desk", "id": 2, "desk": "d5", "capacity": 2})
    assert hub.state.visits[visit].desk == "d5", "a new desk fills from the queue"
    say(hub, admin, {"type": "close_desk", "id": 3, "desk": "d5"})
    assert hub.state.visits[visit].state == "queued" and hub.state.desks["d5"].closed
    say(
        hub,
        admin,
        {"type": "set_workflow", "id": 4, "claim_type": "JKM", "steps": ["identity", "decision"]},
    )
    b2, _ = join(hub, "booth", booth="b2", sub="b2")
    out = say(
        hub,
        b2,
        {
            "type": "start_visit",
            "id": 5,
            "claimant": {"name": "A", "membership_no": "9", "claim_type": "JKM"},
        },
    )
    assert out[0]["type"] == "ack"
    assert [s.name for s in hub.state.visits[out[0]["visit"]].steps] == ["identity", "decision"]
    other, _ = join(hub, "admin", office="elsewhere", sub="adm2")
    assert say(hub, other, {"type": "close_desk", "id": 6, "desk": "d5"})[0]["code"] == "forbidden"


def test_office_stats_for_the_overview() -> None:
    hub = make_hub()
    officer, _ = join(hub, "officer", desk="d1")
    sup, _ = join(hub, "supervisor")
    booth, _ = join(hub, "booth", booth="b1")
    visit = start(hub, booth)
    say(hub, officer, {"type": "focus", "id": 3, "visit": visit})
    for step in range(len(hub.state.visits[visit].steps)):  # completed needs every step approved
        decide = {"type": "decide", "id": 10 + step, "visit": visit, "step": step}
        say(hub, officer, {**decide, "decision": "approve"})
    say(
        hub,
        officer,
        {"type": "end_visit", "id": 4, "visit": visit, "outcome": "completed"},
        NOW + 600,
    )
    stats = say(hub, sup, {"type": "office_stats", "id": 5}, NOW + 600)[0]
    assert stats["desks"][0]["desk"] == "d1" and stats["desks"][0]["present"] is True
    assert stats["outcomes"] == {"completed": 1}
    assert stats["median_wait_s"] == 0 and stats["visits_per_hour"] > 0


def test_grace_runs_on_the_monotonic_clock_not_the_wall_clock() -> None:
    hub = HubDriver(ServerConfig(grace_s=30), mono=100.0)
    join(hub, "officer", desk="d1")
    booth, _ = join(hub, "booth", booth="b1")
    visit = start(hub, booth)
    hub.disconnect(booth, NOW + 1, mono=101.0)
    stepped = hub.tick(NOW + 3600 + 2, mono=102.0)  # the wall clock jumps an hour ahead
    assert stepped.events == [], "a +1 h wall step does not abandon a booth 2 s after it drops"
    assert hub.state.visits[visit].state == "active"
    assert hub.tick(NOW + 3600 + 31, mono=131.0).events, "30 s later by the monotonic clock"
    assert hub.state.visits[visit].outcome == "abandoned"


def test_visit_views_say_whether_the_booth_is_there_or_since_when_it_is_away() -> None:
    hub = make_hub()
    officer, _ = join(hub, "officer", desk="d1")
    booth, _ = join(hub, "booth", booth="b1")
    claimant = {"name": "S", "membership_no": "1"}
    out = hub.send(booth, {"type": "start_visit", "id": 2, "claimant": claimant}, NOW).outputs
    state = next(m for c, m in out if c == booth and m["type"] == "booth_state")
    assert (state["booth_present"], state["booth_away_since"]) == (True, None)
    visit = state["visit"]
    gone = hub.disconnect(booth, NOW + 5)
    delta = next(m for c, m in gone.outputs if c == officer)
    assert [(v["visit"], v["booth_present"], v["booth_away_since"]) for v in delta["visits"]] == [
        (visit, False, NOW + 5)
    ], "the officer's desk sees the booth leave, and since when"
    watch = say(hub, officer, {"type": "watch", "id": 3, "desk": "d1"}, NOW + 6)[0]
    assert watch["state"]["visits"][0]["booth_away_since"] == NOW + 5, "snapshots say it too"
    conn = hub.connect()
    token = hub.token("booth", sub="booth-1", booth="b1", now=NOW)
    back = hub.send(conn, {"type": "hello", "id": 1, "token": token}, NOW + 9)
    delta = next(m for c, m in back.outputs if c == officer)
    assert delta["visits"][0]["booth_present"] is True, "and come back"
    state = next(m for c, m in back.outputs if c == conn and m["type"] == "booth_state")
    assert state["booth_present"] is True and state["visit"] == visit


def test_an_expired_token_is_closed_by_the_tick_unless_refreshed() -> None:
    hub = make_hub()
    token = hub.token("supervisor", sub="sup", ttl=60)
    lapsed, kept = hub.connect(), hub.connect()
    for conn in (lapsed, kept):
        say(hub, conn, {"type": "hello", "id": 1, "token": token})
    fresh = hub.token("supervisor", sub="sup", now=NOW + 30, ttl=3600)
    assert (
        say(hub, kept, {"type": "refresh", "id": 2, "token": fresh}, NOW + 30)[0]["type"] == "ack"
    )
    other = hub.token("supervisor", sub="someone", now=NOW + 30)
    refused = say(hub, kept, {"type": "refresh", "id": 3, "token": other}, NOW + 30)
    assert refused[0]["code"] == "bad_token", "a refresh keeps the identity"
    result = hub.tick(NOW + 61)
    assert result.closes == [(lapsed, CloseCode.AUTH_FAILED, "token_expired")]
    assert [m["code"] for c, m in result.outputs if c == lapsed] == ["token_expired"]
    assert say(hub, lapsed, {"type": "office_stats", "id": 4}, NOW + 62) == [], "not heard"
    assert say(hub, kept, {"type": "office_stats", "id": 5}, NOW + 62)[0]["type"] == "ack"
