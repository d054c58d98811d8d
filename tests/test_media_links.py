"""The link quality rule (``media.links``) and the rebuild rules (``media.booth_link``) with
fixed figures: thresholds live here, not in tests that measure a live link on a machine of
unknown load."""

from __future__ import annotations

import pytest

from lapak.media.booth_link import (
    ANSWER_TIMEOUT_S,
    AWAY_RETRY_S,
    CONNECT_TIMEOUT_S,
    STALL_S,
    BoothLink,
    trouble,
    why_rebuild,
)
from lapak.media.links import Counters, grade, link_stats
from lapak.media.video_tier import fps_scale


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        ({"loss_pct": 0.0, "rtt_ms": 2.0, "jitter_ms": 1.0, "fps": 15.0}, "good"),
        ({"loss_pct": None, "rtt_ms": None, "jitter_ms": None, "fps": None}, "good"),
        ({"loss_pct": 1.0, "rtt_ms": 2.0, "jitter_ms": 1.0, "fps": 15.0}, "fair"),
        ({"loss_pct": 0.0, "rtt_ms": 150.0, "jitter_ms": 1.0, "fps": 15.0}, "fair"),
        ({"loss_pct": 0.0, "rtt_ms": 2.0, "jitter_ms": 30.0, "fps": 15.0}, "fair"),
        ({"loss_pct": 0.0, "rtt_ms": 2.0, "jitter_ms": 1.0, "fps": 7.9}, "fair"),
        ({"loss_pct": 5.0, "rtt_ms": 2.0, "jitter_ms": 1.0, "fps": 15.0}, "poor"),
        ({"loss_pct": 0.0, "rtt_ms": 400.0, "jitter_ms": 1.0, "fps": 15.0}, "poor"),
        ({"loss_pct": 0.0, "rtt_ms": 2.0, "jitter_ms": 60.0, "fps": 15.0}, "poor"),
        ({"loss_pct": 0.0, "rtt_ms": 2.0, "jitter_ms": 1.0, "fps": 3.9}, "poor"),
        ({"loss_pct": 1.5, "rtt_ms": 500.0, "jitter_ms": None, "fps": None}, "poor"),
    ],
)
def test_grade_by_the_documented_thresholds(
    figures: dict[str, float | None], expected: str
) -> None:
    assert grade(**figures) == expected


@pytest.mark.parametrize(
    ("figure", "below_fair", "below_poor"),
    [("loss_pct", 0.99, 4.99), ("rtt_ms", 149.9, 399.9), ("jitter_ms", 29.9, 59.9)],
)
def test_just_below_a_threshold_is_the_better_grade(
    figure: str, below_fair: float, below_poor: float
) -> None:
    good = {"loss_pct": 0.0, "rtt_ms": 2.0, "jitter_ms": 1.0, "fps": 15.0}
    assert grade(**{**good, figure: below_fair}) == "good"
    assert grade(**{**good, figure: below_poor}) == "fair"
    assert grade(**{**good, "fps": 8.0}) == "good" and grade(**{**good, "fps": 4.0}) == "fair"


def test_link_stats_turn_two_readings_into_rates_and_a_grade() -> None:
    before = Counters(at=10.0, packets_received=1000, packets_lost=0, bytes_received=0, frames=0)
    after = Counters(
        at=12.0, packets_received=1180, packets_lost=20, bytes_received=250_000, frames=20,
        jitter_ms=12.0, rtt_ms=40.0,
    )  # fmt: skip
    stats = link_stats(before, after)
    assert stats.loss_pct == pytest.approx(10.0)
    assert stats.fps == pytest.approx(10.0)
    assert stats.kbps == pytest.approx(1000.0)
    assert (stats.rtt_ms, stats.jitter_ms) == (40.0, 12.0)
    assert stats.grade == "poor", "10 % loss is poor"


def test_a_rebuilt_link_never_reports_negative_bitrate_and_no_packets_means_no_loss() -> None:
    before = Counters(at=1.0, bytes_received=5000, frames=10)
    after = Counters(at=2.0, bytes_received=100, frames=25)
    stats = link_stats(before, after)
    assert stats.kbps is None and stats.loss_pct is None
    assert stats.grade == "good", "unknown figures never make a link worse"


# -- when a link is rebuilt (``media.booth_link``) ------------------------------------------


class FakePeer:
    """The two fields of a peer connection the rules read."""

    def __init__(self, connection: str = "new", signaling: str = "stable") -> None:
        self.connectionState = connection
        self.signalingState = signaling


def link(connection: str = "new", signaling: str = "stable", **fields: object) -> BoothLink:
    made = BoothLink("V1", FakePeer(connection, signaling))  # type: ignore[arg-type]  # a stand-in
    for name, value in fields.items():
        setattr(made, name, value)
    return made


def test_a_failed_or_closed_peer_is_rebuilt() -> None:
    assert trouble(link("failed"), now=1.0) == "failed"
    assert trouble(link("closed"), now=1.0) == "failed"


def test_a_connected_link_is_stalled_only_when_nothing_at_all_arrives() -> None:
    quiet = link("connected", state="connected", connected_at=0.0, last_frame_at=1.0)
    assert trouble(quiet, now=1.0 + STALL_S + 0.1) == "stalled"
    assert trouble(quiet, now=1.0 + STALL_S - 0.1) is None
    talking = link("connected", state="connected", connected_at=0.0, last_frame_at=1.0)
    talking.audio.last_frame_at = 10.0  # video stopped, audio goes on: squeezed, not dead
    assert trouble(talking, now=11.0) is None


def test_an_unanswered_offer_and_a_connection_that_never_comes_are_rebuilt() -> None:
    waiting = link(signaling="have-local-offer", offered_at=0.0)
    assert trouble(waiting, now=ANSWER_TIMEOUT_S - 0.1) is None
    assert trouble(waiting, now=ANSWER_TIMEOUT_S + 0.1) == "no_answer"
    answered = link(signaling="stable", offered_at=0.0)
    assert trouble(answered, now=CONNECT_TIMEOUT_S + 0.1) == "connect_timeout"


def test_a_link_being_offered_is_left_alone() -> None:
    assert why_rebuild(link("failed", offering=True), now=100.0) is None


def test_a_booth_the_server_says_is_away_is_not_offered_on_a_timer() -> None:
    away = link("failed", state="connected", booth_away=True, booth_present=False)
    assert why_rebuild(away, now=3600.0) is None, "offered again when it is back, not before"
    assert away.state == "reconnecting", "the tile stops saying connected"
    unknown = link("failed", booth_away=True, booth_present=None, offered_at=0.0)
    assert why_rebuild(unknown, now=AWAY_RETRY_S - 0.1) is None
    assert why_rebuild(unknown, now=AWAY_RETRY_S + 0.1) == "booth_away", (
        "a server that never reports presence: retried now and then"
    )


def test_a_thumbnail_is_graded_against_its_own_rate() -> None:
    figures = {"loss_pct": 0.0, "rtt_ms": 10.0, "jitter_ms": 1.0, "fps": 5.0}
    assert grade(**figures) == "fair", "5 fps of a full-rate stream is a degraded link"
    third = fps_scale((160, 120))
    assert third == pytest.approx(1 / 3) and fps_scale((640, 480)) == 1.0 == fps_scale(None)
    assert grade(**figures, fps_scale=third) == "good", "5 fps is all a thumbnail sends"
    assert grade(**{**figures, "fps": 2.0}, fps_scale=third) == "fair"
    assert grade(**{**figures, "fps": 1.0}, fps_scale=third) == "poor"
