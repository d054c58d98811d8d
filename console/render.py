"""Turn a tile's RGB pixels into finished ANSI rows of half-block cells.

Pure: numpy only, no Textual, no I/O, so it can be tested and benchmarked on its own.

Each cell is U+2580 '▀' with the foreground set to the top pixel and the background to the bottom
pixel. Per-cell rich ``Style``/``Segment`` objects cost ~10 ms per 64x24 tile frame on their own
and 20-40 ms inside Textual; building each row as one string from a precomputed table of SGR
fragments, with numpy choosing each cell's fragments, costs about 0.2 ms including the scaling
(``bench/render.py``). Textual gets each row as one control segment with an explicit cell length.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np

from lapak.media.tile_grid import TileGrid

__all__ = [
    "DEFAULT_THRESHOLD",
    "HALF_BLOCK",
    "RESET",
    "CellRenderer",
    "ColourMode",
    "RenderedFrame",
]

HALF_BLOCK = "\u2580"
RESET = "\x1b[0m"

ColourMode = Literal["truecolor", "256"]

DEFAULT_THRESHOLD = 8
"""Per-channel change (0-255) below which a cell counts as unchanged.

One step of the 5-bit quantization: camera noise left after AREA scaling is a few levels, so
this keeps still rows from repainting while visible changes still come through.
"""

# Truecolor keys have 5 bits per channel: 32768 colours, a fragment table of ~98k strings
# (~10 MB, built once in ~25 ms). 6 bits would need ~786k strings (~80 MB) for a difference of
# at most 4 levels per channel, below camera noise. Fewer distinct keys also means more cells
# whose colour repeats the previous cell's, so fewer SGR bytes.
_BITS = 5
_N_TRUE = 1 << (3 * _BITS)
# 256-colour mode looks its palette index up from a finer 6-bit key (a 256 KiB table), so that
# e.g. grey 128 is not first rounded to 132 and then sent to the wrong palette entry.
_BITS_256 = 6


def _channel_tables(bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rounded quantization of one channel, pre-shifted into its place in the colour key.

    The key is then three table look-ups and two ORs.
    """
    levels = 1 << bits
    q = ((np.arange(256, dtype=np.uint32) * (levels - 1) + 127) // 255).astype(np.uint32)
    dtype = np.uint16 if 3 * bits <= 16 else np.uint32
    return (q << (2 * bits)).astype(dtype), (q << bits).astype(dtype), q.astype(dtype)


def _level_values(bits: int) -> np.ndarray:
    """The 8-bit value each quantized level stands for (0 -> 0, max -> 255)."""
    levels = 1 << bits
    return (np.arange(levels) * 255 + (levels - 1) // 2) // (levels - 1)


def _key_rgb(bits: int) -> np.ndarray:
    """The (r, g, b) each colour key of ``bits`` per channel stands for, as an (n, 3) array."""
    keys = np.arange(1 << (3 * bits))
    mask = (1 << bits) - 1
    values = _level_values(bits)
    return np.stack(
        [values[keys >> (2 * bits)], values[(keys >> bits) & mask], values[keys & mask]], axis=-1
    )


_TRUE_TABLES = _channel_tables(_BITS)
_TABLES_256 = _channel_tables(_BITS_256)


@dataclass(slots=True)
class RenderedFrame:
    """One rendered tile.

    ``rows[i]`` is the row as it should stand on screen: for rows not in ``changed`` it is the
    string painted earlier (the same object), so a full repaint never shows a state that differs
    from the one the change tracking assumes.
    """

    rows: list[str]
    changed: list[bool]


@cache
def _fragment_table(mode: ColourMode) -> tuple[np.ndarray, int]:
    """Every SGR fragment a row can need, indexed by colour key; built once, shared by all tiles.

    Layout, with ``n`` colour keys: ``0`` empty; ``1 + k`` opens the foreground of key ``k``
    (no final ``m``); ``1 + n + k`` continues that sequence with background ``k`` and the block;
    ``1 + 2n + k`` sets background ``k`` alone and draws the block; ``1 + 3n`` closes a
    foreground-only sequence and draws the block; ``2 + 3n`` is a bare block; ``3 + 3n`` the reset.
    Joining one "foreground" and one "background" entry per cell gives the cell with SGR only
    where a colour changes, and one combined sequence when both change.
    """
    if mode == "truecolor":
        n = _N_TRUE
        params = [f"2;{r};{g};{b}" for r, g, b in _key_rgb(_BITS).tolist()]
    else:
        n = 256
        params = [f"5;{i}" for i in range(n)]
    table = np.empty(4 + 3 * n, dtype=object)
    table[0] = ""
    table[1 : 1 + n] = [f"\x1b[38;{p}" for p in params]
    table[1 + n : 1 + 2 * n] = [f";48;{p}m{HALF_BLOCK}" for p in params]
    table[1 + 2 * n : 1 + 3 * n] = [f"\x1b[48;{p}m{HALF_BLOCK}" for p in params]
    table[1 + 3 * n] = f"m{HALF_BLOCK}"
    table[2 + 3 * n] = HALF_BLOCK
    table[3 + 3 * n] = RESET
    return table, n


@cache
def _xterm256_lut() -> np.ndarray:
    """Nearest xterm-256 index (16-255: cube and grey ramp) for every 18-bit colour key.

    The 16 system colours are left out: terminals theme them, so their RGB is unknown.
    """
    rgb = _key_rgb(_BITS_256).astype(np.int32)
    cube_levels = np.array([0, 95, 135, 175, 215, 255], dtype=np.int32)
    # The cube is separable: the nearest cube colour is the nearest level per channel.
    cube_idx = np.abs(rgb[..., None] - cube_levels).argmin(axis=-1)
    cube_rgb = cube_levels[cube_idx]
    cube_dist = ((rgb - cube_rgb) ** 2).sum(axis=-1)
    cube_code = 16 + 36 * cube_idx[:, 0] + 6 * cube_idx[:, 1] + cube_idx[:, 2]
    grey_levels = 8 + 10 * np.arange(24, dtype=np.int32)
    grey_idx = np.abs(rgb.mean(axis=-1, keepdims=True) - grey_levels).argmin(axis=-1)
    grey_dist = ((rgb - grey_levels[grey_idx][:, None]) ** 2).sum(axis=-1)
    grey_code = 232 + grey_idx
    codes: np.ndarray = np.where(grey_dist < cube_dist, grey_code, cube_code).astype(np.intp)
    return codes


class CellRenderer(TileGrid):
    """Render ``(rows * 2, cols, 3)`` uint8 RGB arrays to half-block ANSI rows.

    Keeps the pixels each row was last painted from, and marks a row changed only when some cell
    moved by at least ``threshold`` in some channel against that painted state (not against the
    previous frame, so slow drift still repaints once it adds up). Unchanged rows are not rebuilt.
    """

    __slots__ = (
        "_mode",
        "_n",
        "_painted",
        "_ref",
        "_reset_index",
        "_table",
        "_threshold",
    )

    def __init__(
        self,
        cols: int,
        rows: int,
        colour_mode: ColourMode = "truecolor",
        threshold: int = DEFAULT_THRESHOLD,
    ) -> None:
        if colour_mode not in ("truecolor", "256"):
            raise ValueError(f"colour_mode must be 'truecolor' or '256', got {colour_mode!r}")
        if not 0 <= threshold <= 255:
            raise ValueError(f"threshold must be within 0..255, got {threshold}")
        self._mode: ColourMode = colour_mode
        self._table, self._n = _fragment_table(colour_mode)
        self._reset_index = 3 + 3 * self._n
        # 0 and 1 both mean "any difference".
        self._threshold = max(threshold, 1)
        self._ref: np.ndarray | None = None
        self._painted: list[str] = []
        if colour_mode == "256":
            _xterm256_lut()
        self.resize(cols, rows)

    @property
    def colour_mode(self) -> ColourMode:
        return self._mode

    def resize(self, cols: int, rows: int) -> None:
        """Change the tile size; the next render repaints every row."""
        super().resize(cols, rows)
        self._painted = [""] * rows
        self.invalidate()

    def invalidate(self) -> None:
        """Make the next render mark every row changed (after resize, overlays, a keyframe)."""
        self._ref = None

    def render(self, rgb: np.ndarray) -> RenderedFrame:
        """Render one frame; only rows that changed beyond the threshold are rebuilt."""
        rows, cols = self._rows, self._cols
        if rgb.shape != (rows * 2, cols, 3) or rgb.dtype != np.uint8:
            raise ValueError(
                f"expected a uint8 array of shape {(rows * 2, cols, 3)}, "
                f"got {rgb.dtype} {rgb.shape}"
            )
        pixels = rgb.reshape(rows, 2, cols, 3)
        ref = self._ref
        if ref is None:
            self._ref = pixels.copy()
            self._build(pixels, range(rows))
            return RenderedFrame(list(self._painted), [True] * rows)
        diff = np.maximum(pixels, ref)
        diff -= np.minimum(pixels, ref)
        changed = diff.reshape(rows, -1).max(axis=1) >= self._threshold
        selected = np.flatnonzero(changed)
        if len(selected) == rows:
            ref[...] = pixels
            self._build(pixels, range(rows))
        elif len(selected):
            fresh = pixels[selected]
            ref[selected] = fresh
            self._build(fresh, selected.tolist())
        return RenderedFrame(list(self._painted), changed.tolist())

    def _build(self, pixels: np.ndarray, targets: range | list[int]) -> None:
        """Build the rows of ``pixels`` (k, 2, cols, 3) and store them at ``targets``."""
        n = self._n
        qr, qg, qb = _TABLES_256 if self._mode == "256" else _TRUE_TABLES
        keys = qr[pixels[..., 0]]
        keys |= qg[pixels[..., 1]]
        keys |= qb[pixels[..., 2]]
        keys = _xterm256_lut()[keys] if self._mode == "256" else keys.astype(np.intp)
        top = keys[:, 0]
        bottom = keys[:, 1]
        k, cols = top.shape
        fg_new = np.empty((k, cols), dtype=bool)
        fg_new[:, 0] = True
        np.not_equal(top[:, 1:], top[:, :-1], out=fg_new[:, 1:])
        bg_new = np.empty((k, cols), dtype=bool)
        bg_new[:, 0] = True
        np.not_equal(bottom[:, 1:], bottom[:, :-1], out=bg_new[:, 1:])
        fg = fg_new.astype(np.intp)
        index = np.empty((k, 2 * cols + 1), dtype=np.intp)
        index[:, 0 : 2 * cols : 2] = (top + 1) * fg
        index[:, 1 : 2 * cols : 2] = np.where(
            bg_new, bottom + (1 + 2 * n) - n * fg, (2 + 3 * n) - fg
        )
        index[:, 2 * cols] = self._reset_index
        painted = self._painted
        join = "".join
        for target, pieces in zip(targets, self._table[index].tolist(), strict=True):
            painted[target] = join(pieces)
