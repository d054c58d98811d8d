"""The console's terminal driver: Textual's own, plus what the paint timer needs to know
(how many writes still wait for the terminal, so a video tick is dropped rather than queued)
and, when the bench asks for a paint log, a marker after each screen update.

Textual has no public figure for the writer's backlog; this driver is the one place that
reads it, so the rest of the console never touches the app's or the driver's internals.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver

from lapak.console.paintlog import PaintLog, SpyFile


class TerminalDriver(LinuxDriver):
    """``backlog()``: writes queued and not yet written to the terminal."""

    paint_log: PaintLog | None = None
    started: Callable[[TerminalDriver], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.paint_log is not None:
            self._file = SpyFile(sys.__stderr__, self.paint_log)  # type: ignore[assignment,arg-type]  # the spy passes everything through
        if self.started is not None:
            self.started(self)

    def backlog(self) -> int:
        queue = getattr(getattr(self, "_writer_thread", None), "_queue", None)
        return queue.qsize() if queue is not None else 0

    def flush(self) -> None:
        """After each screen update: the frames it painted, for the paint log."""
        marker = self.paint_log.marker() if self.paint_log is not None else None
        if marker is not None:
            self.write(marker)
        super().flush()


def driver_class(
    paint_log: PaintLog | None, started: Callable[[TerminalDriver], None]
) -> type[Driver] | None:
    """The driver the app runs with (None: Textual's default, where Linux's does not fit)."""
    if sys.platform == "win32":
        return None
    return type(
        "ConsoleTerminalDriver",
        (TerminalDriver,),
        {"paint_log": paint_log, "started": staticmethod(started)},
    )
