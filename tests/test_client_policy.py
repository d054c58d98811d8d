"""The one reconnect policy (``signaling.client.Backoff``) and which codes end a session,
without sockets: the random source is injected, nothing sleeps."""

from __future__ import annotations

import pytest

from lapak.signaling.client import (
    FINAL_CLOSE_CODES,
    FINAL_ERROR_CODES,
    Backoff,
    final_reason,
)
from lapak.signaling.protocol import CloseCode, ErrorCode


def middle() -> float:
    return 0.5  # no jitter: (2 * 0.5 - 1) == 0


def test_delays_double_from_first_up_to_the_cap() -> None:
    policy = Backoff(first=0.25, cap=5.0, random=middle)
    delays = [policy.next_delay() for _ in range(8)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert policy.attempts == 8


def test_a_success_resets_the_next_wait_to_first() -> None:
    policy = Backoff(first=0.5, cap=10.0, random=middle)
    for _ in range(5):
        policy.next_delay()
    policy.reset()
    assert policy.next_delay() == 0.5, "after a connection the next loss waits `first` again"


@pytest.mark.parametrize(("draw", "expected"), [(0.0, 0.9), (1.0, 1.1), (0.75, 1.05)])
def test_jitter_spreads_each_wait_by_the_given_fraction(draw: float, expected: float) -> None:
    policy = Backoff(first=1.0, cap=10.0, jitter=0.1, random=lambda: draw)
    assert policy.next_delay() == pytest.approx(expected)


@pytest.mark.parametrize(("draw", "expected"), [(0.0, 0.9), (0.5, 1.0), (1.0, 1.1)])
def test_between_nodes_asks_again_after_a_short_spread_wait_without_growing(
    draw: float, expected: float
) -> None:
    """A failover under way (the office between nodes): about ``between_s`` each time, and
    the back-off stays where it was."""
    policy = Backoff(first=0.25, cap=5.0, jitter=0.1, random=lambda: draw)
    policy.next_delay()
    waits = [policy.between_nodes_delay() for _ in range(5)]
    assert waits == pytest.approx([expected] * 5)
    assert policy.attempts == 1, "between-nodes answers are not failed attempts"


def test_jitter_never_exceeds_the_cap_nor_goes_negative() -> None:
    high = Backoff(first=1.0, cap=2.0, jitter=0.5, random=lambda: 1.0)
    assert [high.next_delay() for _ in range(4)] == [1.5, 2.0, 2.0, 2.0]
    low = Backoff(first=1.0, cap=2.0, jitter=2.0, random=lambda: 0.0)
    assert low.next_delay() == 0.0


def test_clients_dropped_together_do_not_come_back_in_lockstep() -> None:
    import random

    rng = random.Random(7)
    waits = {round(Backoff(first=1.0, random=rng.random).next_delay(), 6) for _ in range(20)}
    assert len(waits) > 15, f"twenty clients should wait different times, got {sorted(waits)}"


@pytest.mark.parametrize(
    ("error", "close", "reason"),
    [
        (ErrorCode.BAD_TOKEN, None, "refused"),
        (ErrorCode.BAD_SIGNATURE, None, "refused"),
        (ErrorCode.TOKEN_EXPIRED, None, "refused"),
        (ErrorCode.WRONG_OFFICE, None, "refused"),
        (ErrorCode.REPLACED, None, "replaced"),
        (None, CloseCode.AUTH_FAILED, "refused"),
        (None, CloseCode.REPLACED, "replaced"),
        (ErrorCode.RATE_LIMITED, None, None),
        (ErrorCode.FORBIDDEN, None, None),
        (None, CloseCode.GOING_AWAY, None),
        (None, CloseCode.SLOW_CONSUMER, None),
        (None, CloseCode.FLOOD, None),
        (None, None, None),
    ],
)
def test_only_a_refused_token_or_a_takeover_ends_the_session(
    error: str | None, close: int | None, reason: str | None
) -> None:
    assert final_reason(error_code=error, close_code=close) == reason


def test_final_codes_are_the_protocol_codes() -> None:
    assert set(FINAL_ERROR_CODES) <= {str(code) for code in ErrorCode}
    assert set(FINAL_CLOSE_CODES) == {CloseCode.AUTH_FAILED, CloseCode.REPLACED}
