"""Capture-to-paint latency for bench/console.py: read each painted frame's clock stamp and
log it when the paint reaches the terminal.

Enabled only when ``LAPAK_PAINT_LOG`` names a file. The booth draws its capture time into the
pixels (``media.testcard``); the console reads it back from the scaled tile pixels when it
paints that frame, and a spy around the terminal file logs the frame when the write that
carries it is flushed. Lines: ``slot stamp_ms paint_ms flush_ms waited_ms`` (stamp ``-`` when
unreadable; ``waited_ms``: from the frame's arrival at the link, decoded, to its paint).
"""

from __future__ import annotations

import os
import time
from typing import IO, Any

import numpy as np

from lapak.media.testcard import read_stamp

ENV = "LAPAK_PAINT_LOG"


class Marker(str):
    """An empty write queued right after a screen update; carries the frames it painted."""

    frames: list[tuple[int, int | None, int, int]]


class PaintLog:
    def __init__(self, path: str) -> None:
        self._out = open(path, "a", buffering=1)  # noqa: SIM115 - closed in close()
        self._painted: list[tuple[int, int | None, int, int]] = []

    @staticmethod
    def from_env() -> PaintLog | None:
        path = os.environ.get(ENV)
        return PaintLog(path) if path else None

    def painted(self, slot: int, rgb: np.ndarray, arrived: float | None = None) -> None:
        """``arrived``: monotonic time the decoded frame reached the link."""
        waited = -1 if arrived is None else int((time.monotonic() - arrived) * 1000)
        self._painted.append((slot, read_stamp(rgb), int(time.time() * 1000), waited))

    def marker(self) -> Marker | None:
        if not self._painted:
            return None
        mark = Marker("")
        mark.frames, self._painted = self._painted, []
        return mark

    def flushed(self, marks: list[Marker]) -> None:
        now = int(time.time() * 1000)
        lines = [
            f"{slot} {'-' if stamp is None else stamp} {painted} {now} {waited}\n"
            for mark in marks
            for slot, stamp, painted, waited in mark.frames
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
