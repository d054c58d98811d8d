"""A synthetic camera for simulated booths, readable back after WebRTC.

Each booth's card has its own saturated background colour, its name in big text, a white box
sweeping left and right (so motion and freezes are visible), a clock, and a machine-readable
**clock stamp**: the low 32 bits of the capture wall time in milliseconds, drawn as 4 x 12 big
black/white cells across the bottom quarter of the frame. Cells are 1/12 of the width and 1/16 of
the height, so they survive VP8 and a downscale to a 64x48 terminal tile (5.3 x 3 px per cell).
Columns are wide on purpose: swscale's FAST_BILINEAR (x86) shifts content left by up to 2 output
pixels towards the right edge when shrinking 10x; rows are exact with every scaler measured.
From a received frame, ``identify_booth`` tells which booth it came from (corner colours) and
``read_stamp`` recovers the capture time, giving glass-to-glass latency without extra channels.

Stamp layout, row-major over the 4 x 12 grid: columns 0 and 11 of each row are guard cells with a
fixed pattern (W..B on even rows, B..W on odd rows; white = 1); the 40 inner cells carry the 32
stamp bits (MSB first) and then a CRC-8 (poly 0x07) of the stamp's 4 big-endian bytes.
"""

from __future__ import annotations

import fractions
import time

import av
import numpy as np
from aiortc.mediastreams import VideoStreamTrack
from av.video.reformatter import VideoReformatter
from PIL import Image, ImageDraw, ImageFont

from lapak.media.pacing import FramePacer

BOOTH_COLOURS: list[tuple[int, int, int]] = [
    (210, 40, 40),  # 0 red
    (60, 180, 40),  # 1 green
    (40, 60, 220),  # 2 blue
    (230, 170, 20),  # 3 amber
    (180, 50, 190),  # 4 magenta
    (20, 180, 170),  # 5 teal
]
"""Background colour of booth 0..5; pairwise RGB distance >= 110, far above codec error."""

COLOUR_TOLERANCE = 60.0
"""Max RGB distance from a palette colour for ``identify_booth`` to accept a corner patch."""

VIDEO_CLOCK_RATE = 90000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
DEFAULT_FPS = 15.0

# Layout, as fractions of the frame height (y) or width (x).
_CORNER_Y = (0.02, 0.12)
_CORNER_XS = ((0.02, 0.12), (0.88, 0.98))
_NAME_Y = (0.14, 0.32)
_CLOCK_Y = (0.34, 0.46)
_BOX_Y = (0.50, 0.72)
_BOX_PERIOD_S = 4.0
STAMP_TOP = 0.75
STAMP_ROWS = 4
STAMP_COLS = 12
_STAMP_MIN_CONTRAST = 60.0  # luma units (0..255) between the darkest white and lightest black guard
_STAMP_MIN_MARGIN = 0.1  # each data cell must sit this share of the contrast away from threshold

_GUARDS: dict[tuple[int, int], int] = {
    (r, c): (1 - r % 2) if c == 0 else r % 2 for r in range(STAMP_ROWS) for c in (0, STAMP_COLS - 1)
}
_DATA_CELLS: list[tuple[int, int]] = [
    (r, c) for r in range(STAMP_ROWS) for c in range(STAMP_COLS) if (r, c) not in _GUARDS
]
assert len(_DATA_CELLS) == 32 + 8

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def crc8(data: bytes) -> int:
    """CRC-8, polynomial 0x07, initial 0: cheap and catches every 1-2 bit error in 4 bytes."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def stamp_bits(wall_ms: int) -> np.ndarray:
    """The 4 x 12 grid of cell values (1 = white) that encodes ``wall_ms``'s low 32 bits."""
    value = wall_ms & 0xFFFFFFFF
    payload = [(value >> (31 - i)) & 1 for i in range(32)]
    check = crc8(value.to_bytes(4, "big"))
    payload += [(check >> (7 - i)) & 1 for i in range(8)]
    grid = np.zeros((STAMP_ROWS, STAMP_COLS), dtype=np.uint8)
    for (r, c), bit in _GUARDS.items():
        grid[r, c] = bit
    rows, cols = zip(*_DATA_CELLS, strict=True)
    grid[list(rows), list(cols)] = payload
    return grid


def stamp_age_ms(stamp: int, now_ms: int | None = None) -> int:
    """Milliseconds from ``stamp`` (32-bit wall ms) to ``now_ms``, correct across the wrap.

    Negative when the stamp is in the future (clock skew between machines).
    """
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    diff = (now_ms - stamp) & 0xFFFFFFFF
    return diff - (1 << 32) if diff >= 1 << 31 else diff


_X_SHIFTS = (0.0, -0.25)
"""Horizontal sampling offsets tried, in cells: 0, then a quarter cell left, which recovers
FAST_BILINEAR's left shift on frames as narrow as 48 px. The CRC rejects wrong alignments."""


def _cell_centres(
    size: int, start: float, stop: float, count: int, shift: float = 0.0
) -> tuple[np.ndarray, int]:
    """Pixel index of each cell's centre along one axis, and a window half-width inside cells."""
    step = (stop - start) * size / count
    centres = np.floor(start * size + (np.arange(count) + 0.5 + shift) * step).astype(np.intp)
    centres = np.clip(centres, 0, size - 1)
    return centres, int(step * 0.15)


def _sample_cells(rgb: np.ndarray, shift: float) -> np.ndarray:
    """Mean luma in the middle of each stamp cell, as a (rows, cols) array."""
    h, w = rgb.shape[:2]
    ys, hy = _cell_centres(h, STAMP_TOP, 1.0, STAMP_ROWS)
    xs, hx = _cell_centres(w, 0.0, 1.0, STAMP_COLS, shift)
    dy = np.arange(-hy, hy + 1)
    dx = np.arange(-hx, hx + 1)
    yy = np.clip((ys[:, None] + dy[None, :]).ravel(), 0, h - 1)
    xx = np.clip((xs[:, None] + dx[None, :]).ravel(), 0, w - 1)
    patch = rgb[np.ix_(yy, xx)][..., :3].astype(np.float32) @ _LUMA
    return np.asarray(patch.reshape(STAMP_ROWS, dy.size, STAMP_COLS, dx.size).mean(axis=(1, 3)))


def _decode_cells(cells: np.ndarray) -> int | None:
    """The stamp from sampled cell lumas, or None unless guards, margins and CRC all agree."""
    whites = np.array([cells[rc] for rc, bit in _GUARDS.items() if bit])
    blacks = np.array([cells[rc] for rc, bit in _GUARDS.items() if not bit])
    contrast = float(whites.min() - blacks.max())
    if contrast < _STAMP_MIN_CONTRAST:
        return None
    threshold = (float(whites.mean()) + float(blacks.mean())) / 2.0
    values = np.array([cells[rc] for rc in _DATA_CELLS])
    if np.any(np.abs(values - threshold) < _STAMP_MIN_MARGIN * contrast):
        return None
    bits = (values > threshold).astype(np.int64)
    value = int(np.dot(bits[:32], 1 << np.arange(31, -1, -1, dtype=np.int64)))
    check = int(np.dot(bits[32:40], 1 << np.arange(7, -1, -1, dtype=np.int64)))
    if crc8(value.to_bytes(4, "big")) != check:
        return None
    return value


def read_stamp(rgb: np.ndarray) -> int | None:
    """Read the 32-bit wall-ms stamp from a (decoded, possibly scaled) RGB frame, or None.

    Samples the mean luma in the middle of each cell, takes the threshold from the guard cells,
    and accepts only if the guards have enough contrast, every cell is clearly black or white,
    and the CRC matches. Works on frames down to 48x36 with any swscale interpolation.
    """
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        return None
    h, w = rgb.shape[:2]
    if h < 24 or w < 32:
        return None
    for shift in _X_SHIFTS:
        value = _decode_cells(_sample_cells(rgb, shift))
        if value is not None:
            return value
    return None


def _patch_colour(
    rgb: np.ndarray, ybounds: tuple[float, float], xbounds: tuple[float, float]
) -> np.ndarray:
    """Median colour of one patch (fractions of the frame), robust to ringing and noise."""
    h, w = rgb.shape[:2]
    y0, y1 = int(ybounds[0] * h), max(int(ybounds[0] * h) + 1, int(ybounds[1] * h))
    x0, x1 = int(xbounds[0] * w), max(int(xbounds[0] * w) + 1, int(xbounds[1] * w))
    patch = rgb[y0:y1, x0:x1, :3].reshape(-1, 3)
    return np.asarray(np.median(patch, axis=0))


def identify_booth(rgb: np.ndarray, tolerance: float = COLOUR_TOLERANCE) -> int | None:
    """Which booth's test card ``rgb`` shows (0..5), or None if it looks like no card.

    Takes the median colour of the top-left and top-right background patches (the median
    ignores codec ringing and stray pixels); both must be within ``tolerance`` of the same
    palette colour.
    """
    if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.shape[0] < 8 or rgb.shape[1] < 8:
        return None
    palette = np.array(BOOTH_COLOURS, dtype=np.float64)
    found: set[int] = set()
    for xb in _CORNER_XS:
        colour = _patch_colour(rgb, _CORNER_Y, xb)
        distances = np.linalg.norm(palette - colour, axis=1)
        best = int(np.argmin(distances))
        if distances[best] > tolerance:
            return None
        found.add(best)
    return found.pop() if len(found) == 1 else None


def _fit_font(text: str, max_w: float, max_h: float) -> ImageFont.FreeTypeFont:
    """Largest default font (Pillow's bundled one, no font files needed) that fits the box."""
    size = max(6, int(max_h))
    while True:
        font = ImageFont.load_default(size=size)
        if not isinstance(font, ImageFont.FreeTypeFont):
            raise RuntimeError("Pillow without FreeType: cannot scale the default font")
        left, top, right, bottom = font.getbbox(text, stroke_width=max(1, size // 20))
        if (right - left <= max_w and bottom - top <= max_h) or size <= 6:
            return font
        size = max(6, int(size * 0.9))


class TestCard:
    """Renders one booth's synthetic camera picture.

    The static parts (background, name) are drawn once with Pillow; the clock is composed from
    pre-rendered glyph tiles, and the box and stamp are numpy slice writes, so a 640x480 frame
    costs well under a millisecond.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, name: str, index: int, width: int = 640, height: int = 480) -> None:
        if not 0 <= index < len(BOOTH_COLOURS):
            raise ValueError(f"booth index must be 0..{len(BOOTH_COLOURS) - 1}, got {index}")
        if width < 32 or height < 24:
            raise ValueError(f"test card needs at least 32x24 pixels, got {width}x{height}")
        self.name = name
        self.index = index
        self.width = width
        self.height = height
        self.colour = BOOTH_COLOURS[index]
        self._static = self._render_static()
        self._glyphs, self._clock_slots, self._clock_y = self._render_clock_glyphs()
        self._box = max(4, round(height * (_BOX_Y[1] - _BOX_Y[0])))
        self._box_border = max(1, self._box // 10)
        self._box_y = round(height * _BOX_Y[0])
        self._box_margin = round(width * 0.02)
        self._stamp_y = round(height * STAMP_TOP)
        ybounds = [
            round(height * (STAMP_TOP + (1 - STAMP_TOP) * r / STAMP_ROWS))
            for r in range(STAMP_ROWS + 1)
        ]
        xbounds = [round(width * c / STAMP_COLS) for c in range(STAMP_COLS + 1)]
        self._stamp_rows = np.diff(ybounds)
        self._stamp_cols = np.diff(xbounds)

    def _render_static(self) -> np.ndarray:
        """Background and name: everything that never changes, drawn once."""
        img = Image.new("RGB", (self.width, self.height), self.colour)
        draw = ImageDraw.Draw(img)
        top, bottom = (f * self.height for f in _NAME_Y)
        font = _fit_font(self.name, self.width * 0.9, bottom - top)
        draw.text(
            (self.width / 2, (top + bottom) / 2),
            self.name,
            font=font,
            anchor="mm",
            fill=(255, 255, 255),
            stroke_width=max(1, int(font.size) // 20),
            stroke_fill=(0, 0, 0),
        )
        return np.array(img, dtype=np.uint8)

    def _render_clock_glyphs(self) -> tuple[dict[str, np.ndarray], list[int], int]:
        """Pre-render each clock character on the background, one fixed-width tile per slot."""
        top, bottom = (round(f * self.height) for f in _CLOCK_Y)
        font = _fit_font("00:00:00.0", self.width * 0.8, bottom - top)
        stroke = max(1, int(font.size) // 20)
        digit_w = max(int(np.ceil(font.getlength(d))) for d in "0123456789") + 2 * stroke
        widths = {d: digit_w for d in "0123456789"}
        for ch in ":.":
            widths[ch] = int(np.ceil(font.getlength(ch))) + 2 * stroke
        tile_h = bottom - top
        glyphs: dict[str, np.ndarray] = {}
        for ch, tile_w in widths.items():
            img = Image.new("RGB", (tile_w, tile_h), self.colour)
            ImageDraw.Draw(img).text(
                (tile_w / 2, tile_h / 2),
                ch,
                font=font,
                anchor="mm",
                fill=(255, 255, 255),
                stroke_width=stroke,
                stroke_fill=(0, 0, 0),
            )
            glyphs[ch] = np.array(img, dtype=np.uint8)
        template = "00:00:00.0"
        total = sum(widths[ch] for ch in template)
        x = max(0, (self.width - total) // 2)
        slots = []
        for ch in template:
            slots.append(x)
            x += widths[ch]
        return glyphs, slots, top

    def _draw_clock(self, frame: np.ndarray, wall_ms: int) -> None:
        """Local wall time as HH:MM:SS.t, pasted from the glyph tiles (no text rendering)."""
        tm = time.localtime(wall_ms // 1000)
        text = f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}.{(wall_ms % 1000) // 100}"
        y = self._clock_y
        for ch, x in zip(text, self._clock_slots, strict=True):
            tile = self._glyphs[ch]
            tw = min(tile.shape[1], self.width - x)
            if tw > 0:
                frame[y : y + tile.shape[0], x : x + tw] = tile[:, :tw]

    def _draw_box(self, frame: np.ndarray, t: float) -> None:
        """A white, black-edged square sweeping back and forth every 4 s: shows motion/freezes."""
        phase = (t / _BOX_PERIOD_S) % 1.0
        sweep = 1.0 - abs(2.0 * phase - 1.0)  # 0 → 1 → 0, continuous
        span = max(0, self.width - 2 * self._box_margin - self._box)
        x0 = self._box_margin + round(sweep * span)
        y0, size, b = self._box_y, self._box, self._box_border
        frame[y0 : y0 + size, x0 : x0 + size] = 0
        frame[y0 + b : y0 + size - b, x0 + b : x0 + size - b] = 255

    def _draw_stamp(self, frame: np.ndarray, wall_ms: int) -> None:
        """The 4 x 12 stamp cells across the bottom quarter."""
        cells = stamp_bits(wall_ms) * np.uint8(255)
        band = np.repeat(np.repeat(cells, self._stamp_rows, axis=0), self._stamp_cols, axis=1)
        frame[self._stamp_y :] = band[:, :, None]

    def frame_rgb(self, t: float, wall_ms: int, out: np.ndarray | None = None) -> np.ndarray:
        """The card at stream time ``t`` (s, drives the box) stamped with ``wall_ms``.

        Returns an (H, W, 3) uint8 array; pass ``out`` (same shape) to reuse a buffer.
        """
        if out is None:
            out = self._static.copy()
        else:
            np.copyto(out, self._static)
        self._draw_clock(out, wall_ms)
        self._draw_box(out, t)
        self._draw_stamp(out, wall_ms)
        return out


class TestCardTrack(VideoStreamTrack):
    """aiortc video track showing a booth's ``TestCard`` at ``fps``, paced in real time.

    pts counts 90 kHz ticks from the first frame. Pacing uses the monotonic clock; if the
    event loop falls more than one frame behind, the track skips ahead (pts jumps) instead of
    sending a burst of stale frames. The stamp is the wall time at which each frame is made.
    ``last_cost_ms`` / ``mean_cost_ms`` report the render + RGB→yuv420p conversion cost.
    """

    __test__ = False

    def __init__(
        self,
        name: str,
        index: int,
        *,
        fps: float = DEFAULT_FPS,
        width: int = 640,
        height: int = 480,
    ) -> None:
        super().__init__()
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if width % 2 or height % 2:
            raise ValueError(f"yuv420p needs an even frame size, got {width}x{height}")
        self.card = TestCard(name, index, width, height)
        self.fps = float(fps)
        self.frames_sent = 0
        self.last_cost_ms = 0.0
        self._cost_total_ms = 0.0
        self._reformatter = VideoReformatter()
        # Draw straight into one reused rgb24 frame (a numpy view on its plane): saves the
        # allocation and copy of from_ndarray, ~20% of the per-frame cost.
        self._canvas = av.VideoFrame(width, height, "rgb24")
        plane = self._canvas.planes[0]
        rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(height, plane.line_size)
        self._canvas_rgb = rows[:, : width * 3].reshape(height, width, 3)
        self._pacer = FramePacer(1.0 / self.fps, 1.0 / self.fps)

    @property
    def mean_cost_ms(self) -> float:
        """Average per-frame render + conversion cost so far (ms)."""
        return self._cost_total_ms / self.frames_sent if self.frames_sent else 0.0

    async def next_timestamp(self) -> tuple[int, fractions.Fraction]:
        """Wait until the next frame is due; return its pts and time base."""
        n = await self._pacer.next(lambda: self.readyState == "live")
        return round(n * VIDEO_CLOCK_RATE / self.fps), VIDEO_TIME_BASE

    def render(self, t: float, wall_ms: int) -> av.VideoFrame:
        """One yuv420p frame of the card (no pts); used by ``recv`` and for measurements."""
        self.card.frame_rgb(t, wall_ms, out=self._canvas_rgb)
        # Always a new yuv420p frame (the formats differ), so reusing the canvas is safe.
        return self._reformatter.reformat(self._canvas, format="yuv420p", threads=1)

    async def recv(self) -> av.VideoFrame:
        """Next frame, due every 1/fps seconds, stamped with the wall time of its capture."""
        pts, time_base = await self.next_timestamp()
        started = time.perf_counter()
        wall_ms = int(time.time() * 1000)
        frame = self.render(self._pacer.n / self.fps, wall_ms)
        frame.pts = pts
        frame.time_base = time_base
        self.last_cost_ms = (time.perf_counter() - started) * 1000.0
        self._cost_total_ms += self.last_cost_ms
        self.frames_sent += 1
        return frame
