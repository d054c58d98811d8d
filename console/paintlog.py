"""Capture-to-paint latency, decoded sizes and inbound bitrate for bench/console.py: read each
painted frame's clock stamp and log it when the paint reaches the terminal.

Enabled only when ``LAPAK_PAINT_LOG`` names a file. The booth draws its capture time into the
pixels (``media.testcard``); the console reads it back from the scaled tile pixels when it
paints that frame, and a spy around the terminal file logs the frame when the write that
carries it is flushed. Two kinds of line, told apart by their first field:

* a painted frame: ``slot stamp_ms paint_ms flush_ms waited_ms width`` — wall-clock ms for
  ``paint_ms`` and ``flush_ms``; stamp ``-`` when unreadable; ``waited_ms``: from the frame's
  arrival at the link, decoded, to its paint (``-1`` when the link does not say); ``width``:
  the decoded frame's width in source pixels (640 full, 160 a thumbnail);
* the officer's inbound bitrate, about once a second: ``kbps wall_ms total_kbps links`` — the
  sum of ``link.stats.kbps`` (the media engine's getStats sample, all of a booth's RTP and
  RTCP) over the links the paint timer saw since the previous such line.
"""

from __future__ import annotations

import os
import time
from typing import IO, Any

import numpy as np

from lapak.media.testcard import read_stamp

ENV = "LAPAK_PAINT_LOG"
KBPS_PERIOD_S = 1.0


class Marker(str):
    """An empty write queued right after a screen update; carries the frames it painted."""

    frames: list[tuple[int, int | None, int, int, int]]


class PaintLog:
    def __init__(self, path: str) -> None:
        self._out = open(path, "a", buffering=1)  # noqa: SIM115 - closed in close()
        self._painted: list[tuple[int, int | None, int, int, int]] = []
        self._kbps: dict[int, float] = {}
        self._kbps_at = time.monotonic()

    @staticmethod
    def from_env() -> PaintLog | None:
        path = os.environ.get(ENV)
        return PaintLog(path) if path else None

    def painted(
        self, slot: int, rgb: np.ndarray, arrived: float | None = None, width: int = 0
    ) -> None:
        """``arrived``: monotonic time the decoded frame reached the link; ``width``: the
        decoded frame's width."""
        waited = -1 if arrived is None else int((time.monotonic() - arrived) * 1000)
        self._painted.append((slot, read_stamp(rgb), int(time.time() * 1000), waited, width))

    def seen(self, slot: int, link: object) -> None:
        """A link the paint timer went through: its latest bitrate sample counts towards the
        next ``kbps`` line, written once ``KBPS_PERIOD_S`` has passed."""
        stats = getattr(link, "stats", None)
        kbps = getattr(stats, "kbps", None)
        if kbps is not None:
            self._kbps[slot] = float(kbps)
        now = time.monotonic()
        if now - self._kbps_at < KBPS_PERIOD_S:
            return
        if self._kbps:
            total = sum(self._kbps.values())
            self._out.write(f"kbps {int(time.time() * 1000)} {total:.1f} {len(self._kbps)}\n")
        self._kbps, self._kbps_at = {}, now

    def marker(self) -> Marker | None:
        if not self._painted:
            return None
        mark = Marker("")
        mark.frames, self._painted = self._painted, []
        return mark

    def flushed(self, marks: list[Marker]) -> None:
        now = int(time.time() * 1000)
        lines = [
            f"{slot} {'-' if stamp is None else stamp} {painted} {now} {waited} {width}\n"
            for mark in marks
            for slot, stamp, painted, waited, width in mark.frames
        ]
        self._out.write("".join(lines))

    def close(self) -> None:
        self._out.close()


class SpyFile:
    """Passes writes through; on flush, logs the frames whose markers were written before."""

    def __init__(self, file: IO[str], log: PaintLog) -> None:
        self._file = file
        self._log = log
        self._marks: list[Marker] = []

    def write(self, text: str) -> int:
        if isinstance(text, Marker):
            self._marks.append(text)
            return 0
        return self._file.write(text)

    def flush(self) -> None:
        self._file.flush()
        if self._marks:
            marks, self._marks = self._marks, []
            self._log.flushed(marks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)
