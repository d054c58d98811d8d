"""The claimant's screen (``media.booth_status``): a pure function of the server's
``booth_state`` and whether the officer's media is up. The step asked for is the server's
``current_step`` and the wait is the server's ``estimated_wait_s``; nothing is recomputed."""

from __future__ import annotations

import pytest

from lapak.media.booth_status import STEP_PROMPTS, BoothScreen, booth_screen
from lapak.signaling.messages import BoothState, StepStatus, StepView, VisitState
from lapak.signaling.protocol import Outcome

STEPS = ("identity", "membership", "family_card")


def state(
    visit_state: VisitState = "active",
    *,
    on_air: bool = False,
    statuses: tuple[StepStatus, ...] = ("approved", "pending", "pending"),
    current: int | None = 1,
    position: int | None = None,
    wait_s: float | None = None,
    outcome: Outcome | None = None,
) -> BoothState:
    steps = [StepView(name=n, status=s, reason=None) for n, s in zip(STEPS, statuses, strict=True)]
    return BoothState(
        visit="V1", booth="b1", name="Siti", membership_no="1", claim_type="JHT",
        state=visit_state, desk="d1" if visit_state == "active" else None,
        slot=1 if visit_state == "active" else None, started_at=0.0, routed_at=None,
        last_on_air_at=None, on_air_since=None, outcome=outcome,
        current_step=current, steps=steps, booth_present=True, booth_away_since=None,
        on_air=on_air, position=position, estimated_wait_s=wait_s, queue=position or 0,
        video="full" if on_air else "thumbnail",
    )  # fmt: skip


def test_before_any_state_the_booth_is_starting() -> None:
    screen = booth_screen(None, media_connected=False)
    assert (screen.state, screen.title) == ("starting", "Welcome")


def test_queued_shows_the_position_and_the_servers_wait_in_minutes() -> None:
    screen = booth_screen(state("queued", position=3, wait_s=540.0), media_connected=False)
    assert screen.state == "queued"
    assert screen.lines == ("You are number 3 in the queue.", "Estimated wait: about 9 min.")


@pytest.mark.parametrize(("wait_s", "line"), [(10.0, "about 1 min."), (None, None)])
def test_a_short_wait_reads_one_minute_and_no_estimate_says_nothing(
    wait_s: float | None, line: str | None
) -> None:
    screen = booth_screen(state("queued", position=1, wait_s=wait_s), media_connected=False)
    waits = [x for x in screen.lines if x.startswith("Estimated wait")]
    assert waits == ([f"Estimated wait: {line}"] if line else []), (
        "the server's estimate only: no estimate from the client's own rule"
    )


def test_at_the_desk_before_media_the_booth_waits_for_the_officer() -> None:
    assert booth_screen(state(), media_connected=False).state == "waiting_officer"


def test_connected_off_air_names_the_step_the_server_says_is_current() -> None:
    screen = booth_screen(state(current=2), media_connected=True)
    assert screen.state == "connected"
    assert screen.lines[-1] == f"Next you will be asked for {STEP_PROMPTS['family_card']}."
    done = booth_screen(state(current=None), media_connected=True)
    assert not any("asked for" in line for line in done.lines), "every step decided"


def test_on_air_asks_for_the_current_step_by_name() -> None:
    screen = booth_screen(state(on_air=True), media_connected=True)
    assert screen.state == "on_air"
    assert screen.lines == (
        "The officer is speaking with you, Siti.",
        f"Please show {STEP_PROMPTS['membership']}.",
    )


def test_an_ended_visit_shows_its_outcome() -> None:
    screen = booth_screen(state("ended", outcome="completed", current=None), True)
    assert (screen.state, screen.lines) == ("finished", ("Your visit has completed.",))


def test_the_screen_renders_as_a_box_that_fits_its_width() -> None:
    text = BoothScreen("queued", "Please wait", ("x" * 100,)).render(width=40)
    lines = text.splitlines()
    assert all(len(line) == 40 for line in lines) and lines[1].startswith("| PLEASE WAIT")
