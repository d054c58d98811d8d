"""Real-time pacing for the tracks this project generates (test card video, tone audio).

Frame ``n`` is due at ``start + n * period_s`` on the monotonic clock. A track whose loop falls
more than ``resync_after_s`` behind skips the frames it missed (its pts jumps; the receiver sees
a gap) instead of sending a burst of stale ones. A track that paused on purpose (a closed audio
gate) calls ``skip_to_now`` when it resumes, so its next frame is due at once and carries the
present's pts, however short the pause.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiortc.mediastreams import MediaStreamError

__all__ = ["FramePacer"]


class FramePacer:
    """Counts a generated track's frames and waits until each is due."""

    __slots__ = ("_clock", "_sleep", "_start", "n", "period_s", "resync_after_s")

    def __init__(
        self,
        period_s: float,
        resync_after_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.period_s = period_s
        self.resync_after_s = resync_after_s
        self._clock = clock
        self._sleep = sleep
        self.n = 0
        """The number of the frame last returned by ``next``."""
        self._start: float | None = None

    async def next(self, live: Callable[[], bool]) -> int:
        """Wait until the next frame is due and return its number (the first is 0 at once).

        ``live()`` is asked before and after waiting: a track stopped meanwhile raises
        ``MediaStreamError``, as aiortc expects from ``recv``.
        """
        if not live():
            raise MediaStreamError
        now = self._clock()
        if self._start is None:
            self._start = now
            self.n = 0
            return 0
        self.n += 1
        delay = self._start + self.n * self.period_s - now
        if delay > 0:
            await self._sleep(delay)
            if not live():
                raise MediaStreamError
        elif delay < -self.resync_after_s:
            self.n += int(-delay / self.period_s)
        return self.n

    def skip_to_now(self) -> None:
        """Make the next frame due now, its number (and so its pts) jumping over the pause.

        Called when a paused track resumes: the receiver sees a gap in timestamps, as after
        Opus DTX, instead of a burst of frames stamped in the past that its jitter buffer would
        play late. Nothing happens before the first frame (it is due at once anyway)."""
        if self._start is None:
            return
        due = int((self._clock() - self._start) / self.period_s + 1e-6)  # 0.52/0.02 is 25.99…
        self.n = max(self.n, due - 1)
