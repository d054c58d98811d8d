"""When the server runs the garbage collector: once after start-up, the young generations
on a short clock, the whole heap per closed sockets.

Full collections walk everything alive; at 2,000 clients that stalled the loop 20-120 ms
(bench/signaling.py). So ``lapak signal`` freezes the loaded state out of the collector's
reach once, makes automatic full collections rare, and collects dead connections (reference
cycles) itself, in proportion to how many closed.

Young collections are clocked too (``collect_young`` every ``YOUNG_EVERY_S``). CPython starts
one when tracked allocations *minus deallocations* pass a threshold, and under steady
churn (visits ending as others start, their old objects freed) that count grows slowly while
the young generations fill with objects that live for seconds (steps of open visits,
waiting coroutines): each generation-1 collection walked ~27,000 objects and held the GIL
15-22 ms, every 1-2 s, and 83 % of the slowest 1 % of acks fell in those pauses. Collected
every 50 ms, each walks what the last 50 ms left alive: at most ~4 ms (BENCHMARKS.md).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger("lapak.signal")

GC_AFTER_CLOSED = 1000  # closed sockets (at least) between two full collections
YOUNG_EVERY_S = 0.05  # between two collections of the young generations (see above)


def freeze_loaded_state() -> None:
    """Once, after the state is loaded: collect, then move what survived (the replayed
    state, modules) out of the collector's reach, and make full collections rarer.

    Never on a timer: ``gc.freeze()`` also freezes cyclic garbage not yet collected, and
    under connection churn that kept every dead connection for good (RSS 43 -> 242 MB after
    30,000 half-open upgrades, never returned).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 1000)


def collect_young() -> None:
    """Collect generations 0 and 1 now (survivors move to the old generation, which only
    the rare full collections walk)."""
    gc.collect(1)


class DeadConnections:
    """A closed connection is a cycle (connection, protocol, tasks) that outlives the young
    generations; with full collections made rare they would pile up. Collect once every
    ``max(GC_AFTER_CLOSED, open connections)`` closes (the pause, proportional to what is
    alive, is paid once per that many: measured 50-130 ms with 2,000 clients connected on a
    busy 2-core machine, i.e. some 50 us per close), and when the last connection has gone
    (then there is little to walk)."""

    def __init__(self, after: int = GC_AFTER_CLOSED) -> None:
        self.after = after
        self.closed = 0

    def connection_closed(self) -> None:
        self.closed += 1

    def collect_if_due(self, open_now: int) -> None:
        closed = self.closed
        if not closed or (open_now and closed < max(self.after, open_now)):
            return
        started = time.perf_counter()
        found = gc.collect()
        self.closed = 0
        if not open_now:
            trim_heap()
        log.debug(
            "event=gc closed=%d collected=%d ms=%.1f",
            closed, found, (time.perf_counter() - started) * 1000,
        )  # fmt: skip


_malloc_trim: Callable[[int], int] | bool | None = None


def trim_heap() -> None:
    """Give freed heap pages back to the system (glibc keeps them after a burst of
    connections: their read buffers are malloc'd, not pooled). Cheap when idle; a no-op
    where there is no glibc."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if callable(_malloc_trim):
        _malloc_trim(0)
