"""FramePacer: frame n is due at start + n * period; a stall skips ahead; a stopped track ends."""

from __future__ import annotations

import pytest
from aiortc.mediastreams import MediaStreamError

from lapak.media.pacing import FramePacer


class Clock:
    """A monotonic clock the test moves; sleeping moves it by the delay."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.slept.append(delay)
        self.now += delay


@pytest.fixture
def clock() -> Clock:
    return Clock()


def paced(clock: Clock, period_s: float, resync_after_s: float) -> FramePacer:
    return FramePacer(period_s, resync_after_s, clock=clock.monotonic, sleep=clock.sleep)


async def test_frames_are_counted_and_waited_for(clock: Clock) -> None:
    pacer = paced(clock, 0.02, 1.0)
    assert [await pacer.next(lambda: True) for _ in range(3)] == [0, 1, 2]
    assert clock.slept == pytest.approx([0.02, 0.02]), "expected one period's wait per frame"


async def test_a_stall_longer_than_the_limit_skips_the_missed_frames(clock: Clock) -> None:
    pacer = paced(clock, 0.1, 0.5)
    await pacer.next(lambda: True)
    clock.now += 0.35  # behind, within the limit: frames 1-3 go out at once
    assert [await pacer.next(lambda: True) for _ in range(3)] == [1, 2, 3]
    clock.now += 2.0  # a stall: frame 4 was due 1.95 s ago
    assert await pacer.next(lambda: True) == 23, "expected a jump to the frame due now"


async def test_a_track_stopped_while_waiting_ends(clock: Clock) -> None:
    pacer = paced(clock, 0.02, 1.0)
    answers = iter([True, True, False])  # first frame; before and after the wait
    await pacer.next(lambda: next(answers))
    with pytest.raises(MediaStreamError):
        await pacer.next(lambda: next(answers))


async def test_skip_to_now_makes_the_next_frame_due_at_once_with_the_present_pts(
    clock: Clock,
) -> None:
    pacer = paced(clock, 0.02, 1.0)
    pacer.skip_to_now()  # before the first frame: nothing to skip
    assert await pacer.next(lambda: True) == 0
    assert await pacer.next(lambda: True) == 1
    clock.now += 0.5  # a pause shorter than the resync limit: without the skip, a burst
    pacer.skip_to_now()
    slept = len(clock.slept)
    assert await pacer.next(lambda: True) == 26, "expected the frame due now (0.52 s / 20 ms)"
    assert len(clock.slept) == slept, "expected no wait for the first frame after the pause"
    assert await pacer.next(lambda: True) == 27
    assert clock.slept[-1] == pytest.approx(0.02), "then one period a frame again"
    pacer.skip_to_now()  # not behind: the count never goes back
    assert await pacer.next(lambda: True) == 28
