"""A terminal tile's size in cells, kept and checked in one place.

The frame scaler (media) and the cell renderer (console) both work on one tile's grid; the
console may import media but not the other way round, so the shared base lives here.
"""

from __future__ import annotations

__all__ = ["TileGrid"]


class TileGrid:
    """Base for whatever works on a ``cols`` x ``rows`` tile (``rows * 2`` pixels high)."""

    __slots__ = ("_cols", "_rows")

    @property
    def cols(self) -> int:
        """Width in cells (= pixels)."""
        return self._cols

    @property
    def rows(self) -> int:
        """Height in cells (pixels are twice as many)."""
        return self._rows

    def resize(self, cols: int, rows: int) -> None:
        """Change the tile size (at least 1x1 cells)."""
        if cols < 1 or rows < 1:
            raise ValueError(f"tile size must be at least 1x1 cells, got {cols}x{rows}")
        self._cols = cols
        self._rows = rows
