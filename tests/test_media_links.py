"""The link quality rule (``media.links``) with fixed figures: thresholds live here, not in
tests that measure a live link on a machine of unknown load."""

from __future__ import annotations

import pytest

from lapak.media.links import Counters, grade, link_stats


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
