"""Each ownership rule of signaling/permissions.py, once, on a small state (no hub)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lapak.signaling import permissions as perm
from lapak.signaling.domain import Domain, Rules
from lapak.signaling.errors import LapakError
from lapak.signaling.permissions import SYSTEM, Actor
from lapak.signaling.protocol import ErrorCode
from lapak.signaling.state import State

OFFICER = Actor("officer", "ana", "main", desk="d1")
OTHER_OFFICER = Actor("officer", "budi", "main", desk="d2")
BOOTH = Actor("booth", "b1", "main", booth="b1")
NORTH_BOOTH = Actor("booth", "b1", "north", booth="b1")  # same booth id, another office
SUPERVISOR = Actor("supervisor", "sup", "main")
NORTH_SUPERVISOR = Actor("supervisor", "sup", "north")
ROOT = Actor("admin", "root", "*")


def code_of(call: Callable[..., object], *args: object) -> ErrorCode:
    with pytest.raises(LapakError) as err:
        call(*args)
    return err.value.code


@pytest.fixture
def state() -> State:
    """d1 (main) seats visit V000001 of booth b1; d2 (main) is empty; V000002 waits in
    north's queue."""
    d = Domain(rules=Rules({"JHT": ["identity"]}))
    d.open_desk(OFFICER, 0.0, capacity=1)
    d.open_desk(OTHER_OFFICER, 0.0, capacity=1)
    d.start_visit(BOOTH, "Siti", "1", "JHT", 1.0)
    d.start_visit(NORTH_BOOTH, "Nur", "2", "JHT", 2.0)
    return d.state


def test_the_role_table_answers_forbidden_or_read_only() -> None:
    perm.authorize(OFFICER, "decide")
    assert code_of(perm.authorize, SUPERVISOR, "decide") == ErrorCode.READ_ONLY
    assert code_of(perm.authorize, BOOTH, "decide") == ErrorCode.FORBIDDEN
    assert code_of(perm.authorize, SUPERVISOR, "no_such_message") == ErrorCode.FORBIDDEN


def test_the_place_an_actor_holds() -> None:
    assert OFFICER.place == ("desk", "main", "d1")
    assert BOOTH.place == ("booth", "main", "b1") != NORTH_BOOTH.place
    assert SUPERVISOR.place is None and SYSTEM.place is None


def test_office_is_the_actors_own_or_every_office() -> None:
    perm.check_office(SUPERVISOR, "main")
    perm.check_office(ROOT, "north")
    assert code_of(perm.check_office, NORTH_SUPERVISOR, "main") == ErrorCode.FORBIDDEN


def test_a_desk_named_must_exist(state: State) -> None:
    assert perm.desk_named(state, "d1").id == "d1"
    assert code_of(perm.desk_named, state, "d9") == ErrorCode.NOT_FOUND


def test_only_an_officer_has_a_desk() -> None:
    assert perm.officer_desk(OFFICER) == "d1"
    assert code_of(perm.officer_desk, SUPERVISOR) == ErrorCode.FORBIDDEN


def test_an_officers_desk_belongs_to_their_office(state: State) -> None:
    assert perm.desk_in_office(state, Actor("officer", "x", "main", desk="new")) is None
    elsewhere = Actor("officer", "eve", "north", desk="d1")
    assert code_of(perm.desk_in_office, state, elsewhere) == ErrorCode.WRONG_OFFICE


def test_an_officer_acts_on_visits_seated_at_their_desk(state: State) -> None:
    assert perm.seated_here(state, OFFICER, "V000001").id == "V000001"
    assert code_of(perm.seated_here, state, OFFICER, "V000099") == ErrorCode.NOT_FOUND
    assert code_of(perm.seated_here, state, OTHER_OFFICER, "V000001") == ErrorCode.VISIT_NOT_ACTIVE
    assert code_of(perm.seated_here, state, OFFICER, "V000002") == ErrorCode.VISIT_NOT_ACTIVE


def test_a_booth_acts_on_its_own_visit_only(state: State) -> None:
    assert perm.own_booth(BOOTH) == ("booth", "main", "b1")
    assert code_of(perm.own_booth, OFFICER) == ErrorCode.FORBIDDEN
    assert perm.booth_visit(BOOTH, state.visits["V000001"]).id == "V000001"
    north_visit = state.visits["V000002"]
    assert code_of(perm.booth_visit, BOOTH, north_visit) == ErrorCode.FORBIDDEN
    assert code_of(perm.booth_visit, BOOTH, None) == ErrorCode.FORBIDDEN, "no probing ids"


def test_who_may_end_a_visit(state: State) -> None:
    assert perm.ending_visit(state, SYSTEM, "V000002", "abandoned").id == "V000002"
    assert code_of(perm.ending_visit, state, SYSTEM, "V000099", "abandoned") == ErrorCode.NOT_FOUND
    assert perm.ending_visit(state, BOOTH, "V000001", "abandoned").id == "V000001"
    assert code_of(perm.ending_visit, state, BOOTH, "V000001", "completed") == ErrorCode.FORBIDDEN
    assert perm.ending_visit(state, OFFICER, "V000001", "completed").id == "V000001"
    assert (
        code_of(perm.ending_visit, state, OTHER_OFFICER, "V000001", "completed")
        == ErrorCode.VISIT_NOT_ACTIVE
    )


def test_who_may_watch_a_desk(state: State) -> None:
    assert perm.may_watch(state, OFFICER, "d1").id == "d1"
    assert code_of(perm.may_watch, state, OFFICER, "d2") == ErrorCode.FORBIDDEN
    assert perm.may_watch(state, SUPERVISOR, "d2").id == "d2"
    assert perm.may_watch(state, ROOT, "d1").id == "d1"
    assert code_of(perm.may_watch, state, NORTH_SUPERVISOR, "d1") == ErrorCode.FORBIDDEN
    assert code_of(perm.may_watch, state, SUPERVISOR, "d9") == ErrorCode.NOT_FOUND


def test_domain_commands_check_ownership_through_the_actor(state: State) -> None:
    """The rules above are what the commands apply: one example per command kind."""
    d = Domain(state, Rules({"JHT": ["identity"]}))
    assert code_of(d.decide, OTHER_OFFICER, "V000001", 0, "approve", None, 3.0) == (
        ErrorCode.VISIT_NOT_ACTIVE
    )
    assert code_of(d.close_desk, NORTH_SUPERVISOR, "d1", 3.0) == ErrorCode.FORBIDDEN
    assert code_of(d.set_workflow, NORTH_SUPERVISOR, "X", ["a"], "main", 3.0) == (
        ErrorCode.FORBIDDEN
    )
    assert code_of(d.configure_desk, ROOT, "d9", "*", 1, 3.0) == ErrorCode.INVALID_MESSAGE
    assert code_of(d.start_visit, OFFICER, "n", "m", "JHT", 3.0) == ErrorCode.FORBIDDEN
