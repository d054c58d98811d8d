"""The pure domain core: routing, capacity, queue, focus, decisions, replay."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.domain import Domain, DomainError, replay
from signaling.events import Event
from signaling.protocol import ErrorCode


def start(domain: Domain, booth: str, office: str = "main", now: float = 0.0) -> str:
    visit, _ = domain.start_visit(booth, office, "Siti", "12345678901", "JHT", now)
    return visit


def test_visit_goes_to_least_loaded_desk_then_queue_then_drains() -> None:
    d = Domain()
    d.open_desk("d1", "main", "o1", 0, capacity=2)
    d.open_desk("d2", "main", "o2", 0, capacity=1)
    a, b, c, e = (start(d, f"b{i}") for i in range(4))
    desks = {v: d.state.visits[v].desk for v in (a, b, c)}
    assert sorted(desks.values()) == ["d1", "d1", "d2"], f"two at d1, one at d2: {desks}"
    assert d.state.visits[e].state == "queued", "the fourth visit waits: no free slot"
    assert d.state.queues["main"] == [e]
    freed = (d.state.visits[a].desk, d.state.visits[a].slot)
    d.end_visit(a, "completed", None, "o1", 1)
    assert d.state.visits[e].state == "active", "a freed slot pulls the queue head at once"
    assert (d.state.visits[e].desk, d.state.visits[e].slot) == freed


def test_slots_are_numbered_from_one_and_reused() -> None:
    d = Domain()
    d.open_desk("d1", "main", "o1", 0)
    visits = [start(d, f"b{i}") for i in range(6)]
    assert [d.state.visits[v].slot for v in visits] == [1, 2, 3, 4, 5, 6]
    d.end_visit(visits[2], "completed", None, "o1", 1)
    later = start(d, "b9")
    assert d.state.visits[later].slot == 3, "the lowest free slot is reused"


def test_booth_resumes_its_open_visit() -> None:
    d = Domain()
    first = start(d, "b1")
    again, events = d.start_visit("b1", "main", "Other", "0", "JHT", 5)
    assert again == first and events == [], "a booth with an open visit resumes it"


def test_queued_visits_route_when_desk_opens() -> None:
    d = Domain()
    v = start(d, "b1")
    assert d.state.visits[v].state == "queued"
    d.open_desk("d1", "main", "o1", 1)
    assert d.state.visits[v].desk == "d1"
    assert d.state.queues["main"] == []


def test_focus_only_on_a_visit_at_the_desk() -> None:
    d = Domain()
    d.open_desk("d1", "main", "o1", 0)
    d.open_desk("d2", "other", "o2", 0)
    v = start(d, "b1")
    d.set_focus("d1", v, "o1", 1)
    assert d.state.desks["d1"].on_air == v
    assert d.set_focus("d1", v, "o1", 2) == [], "no event when nothing changes"
    with pytest.raises(DomainError) as err:
        d.set_focus("d2", v, "o2", 3)
    assert err.value.code == ErrorCode.VISIT_NOT_ACTIVE


def test_decisions_need_a_pending_step_and_rejections_a_reason() -> None:
    d = Domain()
    d.open_desk("d1", "main", "o1", 0)
    v = start(d, "b1")
    d.decide("d1", v, 0, "approve", None, "o1", "officer", 1)
    assert d.state.visits[v].steps[0].status == "approved"
    assert d.state.visits[v].current_step == 1
    with pytest.raises(DomainError) as err:
        d.decide("d1", v, 0, "approve", None, "o1", "officer", 2)
    assert err.value.code == ErrorCode.STEP_NOT_PENDING
    with pytest.raises(DomainError) as err:
        d.decide("d1", v, 1, "reject", None, "o1", "officer", 2)
    assert err.value.code == ErrorCode.INVALID_MESSAGE
    with pytest.raises(DomainError) as err:
        d.decide("d1", v, 99, "approve", None, "o1", "officer", 2)
    assert err.value.code == ErrorCode.NOT_FOUND


def test_ending_the_on_air_visit_clears_focus() -> None:
    d = Domain()
    d.open_desk("d1", "main", "o1", 0)
    v = start(d, "b1")
    d.set_focus("d1", v, "o1", 1)
    d.end_visit(v, "completed", None, "o1", 2)
    assert d.state.desks["d1"].on_air is None


# -- properties over random command sequences ------------------------------------------

commands = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.integers(0, 2), st.integers(1, 6)),
        st.tuples(st.just("start"), st.integers(0, 9)),
        st.tuples(st.just("end"), st.integers(0, 20)),
        st.tuples(st.just("focus"), st.integers(0, 2), st.integers(0, 20)),
        st.tuples(st.just("decide"), st.integers(0, 20), st.integers(0, 6)),
        st.tuples(st.just("reopen"), st.integers(0, 20), st.integers(0, 6)),
        st.tuples(st.just("close"), st.integers(0, 2)),
        st.tuples(st.just("configure"), st.integers(0, 2), st.integers(1, 6)),
        st.tuples(st.just("vacate"), st.integers(0, 2)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(commands)
def test_invariants_hold_and_replay_gives_the_same_state(cmds: list[tuple]) -> None:
    d = Domain()
    log: list[Event] = []
    for i, cmd in enumerate(cmds):
        now = float(i)
        visits = sorted(d.state.visits)
        try:
            match cmd:
                case ("open", desk, cap):
                    log += d.open_desk(f"d{desk}", "main", f"o{desk}", now, capacity=cap)
                case ("start", booth):
                    log += d.start_visit(f"b{booth}", "main", "n", "m", "JHT", now)[1]
                case ("end", vi) if visits:
                    log += d.end_visit(visits[vi % len(visits)], "completed", None, "o", now)
                case ("focus", desk, vi) if visits:
                    log += d.set_focus(f"d{desk}", visits[vi % len(visits)], "o", now)
                case ("decide", vi, step) if visits:
                    v = d.state.visits[visits[vi % len(visits)]]
                    log += d.decide(v.desk or "-", v.id, step, "approve", None, "o", "officer", now)
                case ("reopen", vi, step) if visits:
                    v = d.state.visits[visits[vi % len(visits)]]
                    log += d.decide(v.desk or "-", v.id, step, "reopen", None, "o", "officer", now)
                case ("close", desk):
                    log += d.close_desk(f"d{desk}", "admin", now)
                case ("configure", desk, cap):
                    log += d.configure_desk(f"d{desk}", "main", cap, "admin", now)
                case ("vacate", desk):
                    log += d.vacate_desk(f"d{desk}", now)
        except DomainError:
            pass
        s = d.state
        open_per_booth: dict[str, int] = {}
        for v in s.visits.values():
            if v.state != "ended":
                open_per_booth[v.booth] = open_per_booth.get(v.booth, 0) + 1
        assert all(n == 1 for n in open_per_booth.values()), "a booth is in at most one visit"
        seated = [v for desk in s.desks.values() for v in desk.slots.values()]
        assert len(seated) == len(set(seated)), "a visit sits in one slot only"
        for desk in s.desks.values():
            assert len(desk.slots) <= desk.capacity, f"desk {desk.id} over capacity"
            assert not (desk.closed and desk.slots), f"closed desk {desk.id} seats nobody"
            assert desk.on_air is None or desk.on_air in desk.slots.values(), "on air is seated"
        free = any(desk.free_slot() for desk in s.desks.values())
        assert not (free and s.queues.get("main")), "queue holds a visit while a slot is free"
    replayed = replay(log)
    assert replayed.visits == d.state.visits, "replaying the log rebuilds the same visits"
    assert replayed.desks == d.state.desks
    assert replayed.queues == d.state.queues


def test_memory_forgets_visits_ended_over_a_day_ago_and_ids_keep_counting() -> None:
    d = Domain()
    d.open_desk("d1", "main", "o1", 0)
    old = start(d, "b1", now=0)
    d.end_visit(old, "completed", None, "o1", 10)
    fresh = start(d, "b2", now=10 + 25 * 3600)
    assert old not in d.state.visits, "a visit ended over a day ago is dropped from memory"
    assert fresh == "V000002", "visit ids keep counting"
