"""The desk model every client shares (``media.desk_model``): snapshot plus deltas, a gap
that asks for a resync, decisions pending until the ack, refusals. Pure: no server, no clock."""

from __future__ import annotations

from lapak.media.desk_model import DeskModel
from lapak.signaling.messages import (
    Delta,
    DeskView,
    Snapshot,
    StepStatus,
    StepView,
    VisitState,
    VisitView,
)
from lapak.signaling.protocol import Outcome

STEP_NAMES = ("identity", "membership", "family_card")


def visit(
    vid: str,
    slot: int | None,
    started: float = 0.0,
    statuses: tuple[StepStatus, ...] = ("pending", "pending", "pending"),
    *,
    current: int | None = 0,
    state: VisitState = "active",
    desk: str | None = "d1",
    outcome: Outcome | None = None,
    on_air_since: float | None = None,
    last_on_air_at: float | None = None,
) -> VisitView:
    steps = [
        StepView(name=n, status=s, reason=None) for n, s in zip(STEP_NAMES, statuses, strict=True)
    ]
    return VisitView(
        visit=vid, booth=f"b-{vid}", name=f"Claimant {vid}", membership_no="1",
        claim_type="JHT", state=state, desk=desk, slot=slot, started_at=started,
        routed_at=None, last_on_air_at=last_on_air_at, on_air_since=on_air_since,
        outcome=outcome, current_step=current, steps=steps, booth_present=True,
        booth_away_since=None,
    )  # fmt: skip


def snapshot(visits: list[VisitView], on_air: str | None = None, seq: int = 1) -> Snapshot:
    state = DeskView(
        desk="d1", office="main", officer="ana", capacity=6, closed=False, vacant=False,
        on_air=on_air, visits=visits, queue=0,
    )  # fmt: skip
    return Snapshot(re=None, desk="d1", seq=seq, state=state)


def delta(seq: int, visits: list[VisitView], on_air: str | None = None, desk: str = "d1") -> Delta:
    return Delta(
        desk=desk, seq=seq, officer="ana", on_air=on_air, closed=False, vacant=False,
        capacity=6, queue=0, visits=visits,
    )  # fmt: skip


def test_a_desk_is_its_snapshot_plus_deltas() -> None:
    model = DeskModel()
    model.load_snapshot(snapshot([visit("A", 1), visit("B", 2)], seq=5))
    assert model.synced and model.seq == 5 and set(model.visits) == {"A", "B"}
    assert model.apply_delta(delta(6, [visit("C", 3)], on_air="A"))
    assert model.on_air == "A" and set(model.by_slot()) == {1, 2, 3}
    assert model.visit_in_slot(3) == visit("C", 3), "the server's view, as it came"
    gone = visit("B", None, state="queued", desk=None)
    assert model.apply_delta(delta(7, [gone], on_air="A"))
    assert set(model.visits) == {"A", "C"}, "a visit listed as not active here has left"


def test_deltas_already_in_the_snapshot_or_of_another_desk_change_nothing() -> None:
    model = DeskModel()
    model.load_snapshot(snapshot([visit("A", 1)], seq=5))
    assert model.apply_delta(delta(5, [visit("X", 2)]))
    assert model.apply_delta(delta(6, [visit("Y", 2)], desk="d2"))
    assert set(model.visits) == {"A"} and model.seq == 5


def test_a_gap_in_seq_applies_nothing_until_a_fresh_snapshot() -> None:
    model = DeskModel()
    model.load_snapshot(snapshot([visit("A", 1)], seq=5))
    assert model.apply_delta(delta(7, [visit("B", 2)])) is False, "seq 6 is missing: resync"
    assert not model.synced and "B" not in model.visits
    assert model.apply_delta(delta(8, [visit("C", 3)])), "ignored while out of sync"
    assert set(model.visits) == {"A"}
    model.load_snapshot(snapshot([visit("A", 1), visit("B", 2), visit("C", 3)], seq=8))
    assert model.synced and model.apply_delta(delta(9, [])) and model.seq == 9


def test_a_decision_shows_as_sending_until_the_ack_and_decided_after_it() -> None:
    model = DeskModel()
    model.load_snapshot(snapshot([visit("A", 1)]))
    model.mark_pending("A", 0, "approve")
    assert model.step_status("A", 0) == "sending"
    assert model.next_step("A") == 1, "a second key press decides the next step"
    model.acknowledged("A", 0)  # the ack comes before the delta that shows it
    assert model.step_status("A", 0) == "approved"
    assert model.approved_count("A") == (1, 3, False)
    approved = visit("A", 1, statuses=("approved", "pending", "pending"), current=1)
    model.apply_delta(delta(2, [approved]))
    assert model.step_status("A", 0) == "approved" and not model.acked, "the delta says it now"
    assert model.next_step("A") == 1


def test_the_next_step_is_the_servers_current_step_not_a_recount() -> None:
    model = DeskModel()
    model.load_snapshot(snapshot([visit("A", 1, current=2), visit("B", 2, current=None)]))
    assert model.next_step("A") == 2, "the server's current_step, even where a recount differs"
    assert model.next_step("B") is None, "the server says every step is decided"


def test_a_refusal_is_shown_with_the_servers_message_until_the_resync() -> None:
    model = DeskModel()
    model.load_snapshot(snapshot([visit("A", 1)]))
    model.mark_pending("A", 0, "approve")
    model.refuse("A", 0, "step_not_pending: step identity is already approved")
    assert model.step_status("A", 0) == "refused" and not model.pending
    assert model.refused[("A", 0)].startswith("step_not_pending")
    truth = visit("A", 1, statuses=("approved", "pending", "pending"), current=1)
    model.load_snapshot(snapshot([truth], seq=4))
    assert model.step_status("A", 0) == "approved", "the resync shows the server's truth"


def test_last_decided_and_reopen_ack() -> None:
    model = DeskModel()
    statuses = ("approved", "rejected", "pending")
    model.load_snapshot(snapshot([visit("A", 1, 0.0, statuses, current=2)]))
    assert model.last_decided("A") == 1
    model.mark_pending("A", 1, "reopen")
    assert model.step_status("A", 1) == "sending"
    assert model.last_decided("A") == 0, "a reopen in flight is not offered again"
    model.acknowledged("A", 1)
    assert model.step_status("A", 1) == "pending"
    assert model.next_step("A") == 1, "the reopened step is next, before the delta says so"


def test_a_visit_that_leaves_takes_its_pending_decisions_with_it() -> None:
    model = DeskModel()
    model.load_snapshot(snapshot([visit("A", 1)]))
    model.mark_pending("A", 0, "approve")
    ended = visit("A", None, state="ended", outcome="abandoned")
    model.apply_delta(delta(2, [ended]))
    assert not model.pending and model.step_status("A", 0) == "unknown"


def test_longest_waiting_counts_from_the_servers_last_time_on_air() -> None:
    model = DeskModel()
    model.load_snapshot(
        snapshot([visit("A", 1, 100.0), visit("B", 2, 110.0), visit("C", 3, 120.0)])
    )
    assert model.longest_waiting(130.0) == "A", "never spoken to: waiting since the start"
    model.apply_delta(delta(2, [visit("A", 1, 100.0, on_air_since=140.0)], on_air="A"))
    assert model.silent_for("A", 150.0) == 0.0
    # The server says A left the air at 200; the client's own clock plays no part.
    a_left = visit("A", 1, 100.0, last_on_air_at=200.0)
    b_on_air = visit("B", 2, 110.0, on_air_since=200.0)
    model.apply_delta(delta(3, [a_left, b_on_air], on_air="B"))
    assert model.silent_for("A", 210.0) == 10.0, "A left the air at 200"
    assert model.longest_waiting(210.0) == "C"
    assert model.spoken_to("A") and not model.spoken_to("C")
    restarted = DeskModel()  # a console started later knows the same from the snapshot
    restarted.load_snapshot(snapshot([a_left, b_on_air, visit("C", 3, 120.0)], on_air="B"))
    assert restarted.silent_for("A", 210.0) == 10.0


def test_a_visit_abandoned_while_watched_is_reported_once() -> None:
    model = DeskModel()
    model.load_snapshot(snapshot([visit("A", 1, 100.0), visit("B", 2, 110.0)]))
    gone = visit("B", None, 110.0, state="ended", outcome="abandoned")
    model.apply_delta(delta(2, [gone]))
    assert [(before.slot, after.outcome) for before, after in model.departed] == [(2, "abandoned")]
