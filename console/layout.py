"""Which grid the tiles take: pure arithmetic on the booths present and the terminal size."""

from __future__ import annotations

MAX_SLOTS = 6


def visible_slots(occupied: set[int], capacity: int = MAX_SLOTS) -> int:
    """How many slots to show: up to the highest occupied one, at least one."""
    top = max(occupied, default=1)
    return max(1, min(top, capacity, MAX_SLOTS))


def grid_shape(tiles: int, width: int, height: int) -> tuple[int, int]:
    """(columns, rows) for ``tiles`` tiles: 1, 2, 2x2 or 3x2.

    Two tiles sit side by side unless the screen is so narrow that stacking gives each a
    squarer picture (a cell is about twice as tall as wide).
    """
    if tiles <= 1:
        return 1, 1
    if tiles == 2:
        return (2, 1) if width >= height * 2 else (1, 2)
    if tiles <= 4:
        return 2, 2
    return 3, 2
