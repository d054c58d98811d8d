"""The pure domain core: routing, capacity, queue, focus, decisions, replay."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lapak.signaling.domain import OUTCOMES, Domain, DomainError, Rules, replay
from lapak.signaling.errors import LapakError
from lapak.signaling.events import Event
from lapak.signaling.permissions import SYSTEM, Actor
from lapak.signaling.protocol import ErrorCode
from lapak.signaling.workflows import default_workflows

ADMIN = Actor("admin", "admin", "*")


def new_domain(reasons: tuple[str, ...] = (), strict_outcomes: bool = True) -> Domain:
    """A domain with the shipped workflows (the domain itself reads no file)."""
    rules = Rules(default_workflows(), reasons=reasons, strict_outcomes=strict_outcomes)
    return Domain(rules=rules)


def officer(desk: str, office: str = "main") -> Actor:
    return Actor("officer", f"o{desk[1:]}", office, desk=desk)


def booth(name: str, office: str = "main") -> Actor:
    return Actor("booth", name, office, booth=name)


def start(domain: Domain, name: str, office: str = "main", now: float = 0.0) -> str:
    visit, _ = domain.start_visit(booth(name, office), "Siti", "12345678901", "JHT", now)
    return visit


def complete(domain: Domain, visit_id: str, now: float) -> list[Event]:
    """Approve every step at the visit's desk, then end it ``completed`` (the only way)."""
    visit = domain.state.visits[visit_id]
    at = officer(visit.desk or "-", visit.office)
    events: list[Event] = []
    for step in range(len(visit.steps)):
        events += domain.decide(at, visit_id, step, "approve", None, now)
    return events + domain.end_visit(at, visit_id, "completed", None, now)


def test_visit_goes_to_least_loaded_desk_then_queue_then_drains() -> None:
    d = new_domain()
    d.open_desk(officer("d1", "main"), 0, capacity=2)
    d.open_desk(officer("d2", "main"), 0, capacity=1)
    a, b, c, e = (start(d, f"b{i}") for i in range(4))
    desks = {v: d.state.visits[v].desk for v in (a, b, c)}
    assert sorted(desks.values()) == ["d1", "d1", "d2"], f"two at d1, one at d2: {desks}"
    assert d.state.visits[e].state == "queued", "the fourth visit waits: no free slot"
    assert d.state.queues["main"] == [e]
    freed = (d.state.visits[a].desk, d.state.visits[a].slot)
    complete(d, a, 1)
    assert d.state.visits[e].state == "active", "a freed slot pulls the queue head at once"
    assert (d.state.visits[e].desk, d.state.visits[e].slot) == freed


def test_slots_are_numbered_from_one_and_reused() -> None:
    d = new_domain()
    d.open_desk(officer("d1", "main"), 0)
    visits = [start(d, f"b{i}") for i in range(6)]
    assert [d.state.visits[v].slot for v in visits] == [1, 2, 3, 4, 5, 6]
    complete(d, visits[2], 1)
    later = start(d, "b9")
    assert d.state.visits[later].slot == 3, "the lowest free slot is reused"


def test_booth_resumes_its_open_visit() -> None:
    d = new_domain()
    first = start(d, "b1")
    again, events = d.start_visit(booth("b1"), "Other", "0", "JHT", 5)
    assert again == first and events == [], "a booth with an open visit resumes it"


def test_queued_visits_route_when_desk_opens() -> None:
    d = new_domain()
    v = start(d, "b1")
    assert d.state.visits[v].state == "queued"
    d.open_desk(officer("d1", "main"), 1)
    assert d.state.visits[v].desk == "d1"
    assert d.state.queues["main"] == []


def test_focus_only_on_a_visit_at_the_desk() -> None:
    d = new_domain()
    d.open_desk(officer("d1", "main"), 0)
    d.open_desk(officer("d2", "other"), 0)
    v = start(d, "b1")
    d.set_focus(officer("d1"), v, 1)
    assert d.state.desks["d1"].on_air == v
    assert d.set_focus(officer("d1"), v, 2) == [], "no event when nothing changes"
    with pytest.raises(DomainError) as err:
        d.set_focus(officer("d2", "other"), v, 3)
    assert err.value.code == ErrorCode.VISIT_NOT_ACTIVE


def test_decisions_need_a_pending_step_and_rejections_a_reason() -> None:
    d = new_domain()
    d.open_desk(officer("d1", "main"), 0)
    v = start(d, "b1")
    d.decide(officer("d1"), v, 0, "approve", None, 1)
    assert d.state.visits[v].steps[0].status == "approved"
    assert d.state.visits[v].current_step == 1
    with pytest.raises(DomainError) as err:
        d.decide(officer("d1"), v, 0, "approve", None, 2)
    assert err.value.code == ErrorCode.STEP_NOT_PENDING
    with pytest.raises(DomainError) as err:
        d.decide(officer("d1"), v, 1, "reject", None, 2)
    assert err.value.code == ErrorCode.INVALID_MESSAGE
    with pytest.raises(DomainError) as err:
        d.decide(officer("d1"), v, 99, "approve", None, 2)
    assert err.value.code == ErrorCode.NOT_FOUND


def test_ending_the_on_air_visit_clears_focus() -> None:
    d = new_domain()
    d.open_desk(officer("d1", "main"), 0)
    v = start(d, "b1")
    d.set_focus(officer("d1"), v, 1)
    complete(d, v, 2)
    assert d.state.desks["d1"].on_air is None


# -- properties over random command sequences ------------------------------------------

OFFICES = ("main", "north")


def office_of_desk(desk: int) -> str:
    return "main" if desk < 2 else "north"


commands = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.integers(0, 2), st.integers(1, 6)),
        st.tuples(st.just("start"), st.integers(0, 5), st.integers(0, 1), st.integers(0, 1)),
        st.tuples(st.just("end"), st.integers(0, 20), st.sampled_from(OUTCOMES)),
        st.tuples(st.just("focus"), st.integers(0, 2), st.integers(0, 20)),
        st.tuples(st.just("decide"), st.integers(0, 20), st.integers(0, 6)),
        st.tuples(st.just("reject"), st.integers(0, 20), st.integers(0, 6)),
        st.tuples(st.just("reopen"), st.integers(0, 20), st.integers(0, 6)),
        st.tuples(st.just("close"), st.integers(0, 2)),
        st.tuples(st.just("configure"), st.integers(0, 2), st.integers(1, 6)),
        st.tuples(st.just("vacate"), st.integers(0, 2)),
        st.tuples(st.just("workflow"), st.sampled_from(("main", "north", "*")), st.integers(1, 3)),
    ),
    max_size=60,
)


def run(d: Domain, cmd: tuple, now: float) -> list[Event]:
    """One random command: booths b0..b5 exist in both offices, d0/d1 are main's, d2 north's."""
    visits = sorted(d.state.visits)
    pick = d.state.visits[visits[cmd[1] % len(visits)]] if visits and cmd[0] in VISIT_CMDS else None
    match cmd:
        case ("open", desk, cap):
            return d.open_desk(officer(f"d{desk}", office_of_desk(desk)), now, capacity=cap)
        case ("start", b, office, kind):
            claim = ("JHT", "X")[kind]
            return d.start_visit(booth(f"b{b}", OFFICES[office]), "n", "m", claim, now)[1]
        case ("end", _, outcome) if pick:  # its desk's officer, or the server for a queued one
            by = officer(pick.desk, pick.office) if pick.desk else SYSTEM
            return d.end_visit(by, pick.id, outcome, "note", now)
        case ("focus", desk, vi) if visits:
            at = officer(f"d{desk}", office_of_desk(desk))
            return d.set_focus(at, visits[vi % len(visits)], now)
        case ("decide" | "reject" | "reopen", _, step) if pick:
            decision = {"decide": "approve"}.get(cmd[0], cmd[0])
            reason = "r" if decision == "reject" else None
            at = officer(pick.desk or "-", pick.office)
            return d.decide(at, pick.id, step, decision, reason, now)
        case ("close", desk):
            return d.close_desk(ADMIN, f"d{desk}", now)
        case ("configure", desk, cap):
            return d.configure_desk(ADMIN, f"d{desk}", office_of_desk(desk), cap, now)
        case ("vacate", desk):
            return d.vacate_desk(f"d{desk}", now)
        case ("workflow", office, n):
            return d.set_workflow(ADMIN, "X", [f"s{i}" for i in range(n)], office, now)
    return []


VISIT_CMDS = frozenset({"end", "decide", "reject", "reopen"})


def check_invariants(d: Domain) -> None:
    s = d.state
    open_per_booth: dict[tuple[str, str], int] = {}
    for v in s.visits.values():
        if v.state != "ended":
            key = (v.office, v.booth)
            open_per_booth[key] = open_per_booth.get(key, 0) + 1
            assert s.open_by_booth[v.office][v.booth] == v.id, "the booth index names it"
        if v.desk is not None:
            assert s.desks[v.desk].office == v.office, "a visit sits at a desk of its office"
        statuses = {st.status for st in v.steps}
        if v.outcome == "completed":
            assert statuses == {"approved"}, "completed only with every step approved"
        if v.outcome == "rejected":
            assert "rejected" in statuses, "rejected only with a rejected step"
    assert all(n == 1 for n in open_per_booth.values()), "a booth is in at most one visit"
    seated = [v for desk in s.desks.values() for v in desk.slots.values()]
    assert len(seated) == len(set(seated)), "a visit sits in one slot only"
    for desk in s.desks.values():
        assert len(desk.slots) <= desk.capacity, f"desk {desk.id} over capacity"
        assert not (desk.closed and desk.slots), f"closed desk {desk.id} seats nobody"
        assert desk.on_air is None or desk.on_air in desk.slots.values(), "on air is seated"
    for office in OFFICES:
        free = any(desk.free_slot() for desk in s.desks.values() if desk.office == office)
        assert not (free and s.queues.get(office)), "queue holds a visit while a slot is free"
        assert all(s.visits[v].office == office for v in s.queues.get(office, []))


@settings(max_examples=300, deadline=None)
@given(commands)
def test_invariants_hold_and_replay_gives_the_same_state(cmds: list[tuple]) -> None:
    d = new_domain(reasons=("r",))
    log: list[Event] = []
    for i, cmd in enumerate(cmds):
        with contextlib.suppress(LapakError):
            log += run(d, cmd, float(i))
        check_invariants(d)
    replayed = replay(log)
    assert replayed.visits == d.state.visits, "replaying the log rebuilds the same visits"
    assert replayed.desks == d.state.desks
    assert replayed.queues == d.state.queues
    assert replayed.open_by_booth == d.state.open_by_booth
    assert replayed.workflows == d.state.workflows


def test_same_booth_id_in_two_offices_is_two_booths() -> None:
    d = new_domain()
    d.open_desk(officer("d1", "main"), 0)
    mine = start(d, "booth-01", "main")
    theirs, events = d.start_visit(booth("booth-01", "north"), "Other", "2", "JHT", 1)
    assert theirs != mine and events, "north's booth-01 does not resume main's visit"
    assert d.state.visits[theirs].state == "queued", "north has no desk: it waits in north"
    assert d.state.queues["north"] == [theirs] and d.state.visits[mine].desk == "d1"


def test_workflows_are_scoped_by_office() -> None:
    d = new_domain()
    log = d.set_workflow(ADMIN, "JHT", ["only"], "north", 0)
    assert d.steps_for("JHT", "north") == ["only"]
    assert d.steps_for("JHT", "main") != ["only"], "north's workflow leaves main alone"
    log += d.set_workflow(ADMIN, "JKM", ["a", "b"], "*", 1)
    assert d.steps_for("JKM", "main") == ["a", "b"] == d.steps_for("JKM", "north")
    assert "JKM" in d.claim_types("north") and replay(log).workflows == d.state.workflows


def test_outcomes_must_match_the_steps_unless_configured_otherwise() -> None:
    d = new_domain()
    d.open_desk(officer("d1", "main"), 0)
    v = start(d, "b1")
    for outcome in ("completed", "rejected"):
        with pytest.raises(DomainError) as err:
            d.end_visit(officer("d1"), v, outcome, None, 1)
        assert err.value.code == ErrorCode.OUTCOME_MISMATCH, outcome
    d.decide(officer("d1"), v, 0, "reject", "r", 2)
    with pytest.raises(DomainError):
        d.end_visit(officer("d1"), v, "completed", None, 3)
    d.end_visit(officer("d1"), v, "rejected", None, 3)
    lax = new_domain(strict_outcomes=False)
    lax.open_desk(officer("d1", "main"), 0)
    w = start(lax, "b1")
    lax.end_visit(officer("d1"), w, "completed", None, 1)
    assert lax.state.visits[w].outcome == "completed", "strict_outcomes = false allows it"


def test_memory_forgets_visits_ended_over_a_day_ago_and_ids_keep_counting() -> None:
    d = new_domain()
    d.open_desk(officer("d1", "main"), 0)
    old = start(d, "b1", now=0)
    complete(d, old, 10)
    fresh = start(d, "b2", now=10 + 25 * 3600)
    assert old not in d.state.visits, "a visit ended over a day ago is dropped from memory"
    assert fresh == "V000002", "visit ids keep counting"
