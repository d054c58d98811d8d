"""Real pixels for a zoomed tile: the kitty graphics protocol and sixel, encoders and decoders.

Pure: numpy (and Pillow for kitty's optional PNG form), no Textual, no I/O. Half-block cells
give a 64x24-cell tile 64x48 pixels; a zoomed tile drawn with these protocols shows the frame
at up to its own resolution. The decoders exist so tests can turn what the console emits back
into pixels and compare them with the source frame (``psnr``).

kitty: one APC command per 4096 base64 bytes (``m=1`` on all but the last), the image sent
and placed at once (``a=T``) under a fixed id so each new frame replaces the previous one;
``c=``/``r=`` size the placement in cells, ``C=1`` keeps the cursor still, ``q=2`` silences
the terminal's replies (Textual reads stdin; a reply would arrive as keys).

sixel: a fixed palette (the 6x6x6 cube plus a 24-step grey ramp, 240 registers), each pixel
to its nearest entry through a 5-bit-per-channel look-up table, bands of six rows, one pass per
colour present in a band, runs of four or more as ``!n``. A fixed palette costs nothing per
frame (median cut on a 640x480 frame costs tens of ms) and is the same for every frame.
"""

from __future__ import annotations

import base64
import io
import re
import zlib
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

import numpy as np

__all__ = [
    "CHUNK",
    "SIXEL_PALETTE",
    "GraphicsMode",
    "KittyCommand",
    "kitty_decode",
    "kitty_delete",
    "kitty_encode",
    "psnr",
    "sixel_decode",
    "sixel_encode",
]

GraphicsMode = Literal["kitty", "sixel", "blocks"]
CHUNK = 4096
"""Base64 bytes per kitty command: the protocol's limit for chunked transmission."""

APC, ST = "\x1b_G", "\x1b\\"


# -- kitty ---------------------------------------------------------------------------------


def kitty_encode(rgb: np.ndarray, *, image_id: int, cols: int, rows: int, png: bool = False) -> str:
    """Transmit and place ``rgb`` (h, w, 3 uint8) over ``cols`` x ``rows`` cells, as image
    ``image_id`` (a new frame under the same id replaces the old one). ``png``: f=100 (smaller on
    the wire, costs a PNG encode) instead of raw f=24."""
    height, width = rgb.shape[:2]
    if png:
        from PIL import Image

        out = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(out, "PNG", compress_level=1)
        data, fmt = out.getvalue(), "f=100"
    else:
        data, fmt = np.ascontiguousarray(rgb).tobytes(), "f=24"
    payload = base64.standard_b64encode(data)
    head = f"a=T,{fmt},s={width},v={height},i={image_id},c={cols},r={rows},C=1,q=2"
    parts: list[str] = []
    last = max(0, (len(payload) - 1) // CHUNK)
    for n in range(last + 1):
        chunk = payload[n * CHUNK : (n + 1) * CHUNK].decode("ascii")
        more = "m=1" if n < last else "m=0"
        keys = f"{head},{more}" if n == 0 else more
        parts.append(f"{APC}{keys};{chunk}{ST}")
    return "".join(parts)


def kitty_delete(image_id: int) -> str:
    """Delete image ``image_id``'s placements and free its data (``d=I``)."""
    return f"{APC}a=d,d=I,i={image_id},q=2{ST}"


@dataclass
class KittyCommand:
    """One decoded kitty command: its keys (of the first chunk) and, for a transmission, the
    pixels."""

    keys: dict[str, str]
    rgb: np.ndarray | None = field(default=None, repr=False)


_APC_RE = re.compile(r"\x1b_G([^;\x1b]*)(?:;([^\x1b]*))?\x1b\\")


def kitty_decode(text: str) -> list[KittyCommand]:
    """Every kitty command in ``text`` (other bytes ignored), chunks joined, pixels decoded."""
    commands: list[KittyCommand] = []
    pending: KittyCommand | None = None
    payload: list[str] = []
    for match in _APC_RE.finditer(text):
        keys = dict(kv.split("=", 1) for kv in match.group(1).split(",") if kv)
        if pending is None:
            pending, payload = KittyCommand(keys), []
        payload.append(match.group(2) or "")
        if keys.get("m", "0") == "1":
            continue
        if payload and any(payload) and pending.keys.get("a", "t") in ("t", "T"):
            pending.rgb = _kitty_pixels(pending.keys, base64.standard_b64decode("".join(payload)))
        commands.append(pending)
        pending = None
    return commands


def _kitty_pixels(keys: dict[str, str], data: bytes) -> np.ndarray:
    fmt = keys.get("f", "32")
    if fmt == "100":
        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    if keys.get("o") == "z":
        data = zlib.decompress(data)
    depth = 3 if fmt == "24" else 4
    pixels = np.frombuffer(data, np.uint8).reshape(int(keys["v"]), int(keys["s"]), depth)
    return pixels[..., :3].copy()


# -- sixel ---------------------------------------------------------------------------------

_CUBE = np.array([0, 51, 102, 153, 204, 255], dtype=np.int32)
_GREYS = np.array([8 + 10 * i for i in range(24)], dtype=np.int32)


@cache
def _palette() -> np.ndarray:
    """(240, 3) int32: the 6x6x6 cube, then the grey ramp."""
    r, g, b = np.meshgrid(_CUBE, _CUBE, _CUBE, indexing="ij")
    cube = np.stack([r.ravel(), g.ravel(), b.ravel()], axis=-1)
    greys = np.repeat(_GREYS[:, None], 3, axis=1)
    return np.concatenate([cube, greys]).astype(np.int32)


SIXEL_PALETTE = _palette()


@cache
def _lut() -> np.ndarray:
    """Nearest palette register for each 5-bit-per-channel colour (32768 entries, uint8)."""
    levels = (np.arange(32) * 255 + 15) // 31
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    rgb = np.stack([r.ravel(), g.ravel(), b.ravel()], axis=-1).astype(np.int32)
    best = np.zeros(len(rgb), dtype=np.uint8)
    best_d = np.full(len(rgb), np.iinfo(np.int32).max, dtype=np.int64)
    for i, colour in enumerate(_palette()):
        d = ((rgb - colour) ** 2).sum(axis=1)
        closer = d < best_d
        best[closer] = i
        best_d[closer] = d[closer]
    return best


@cache
def _sixel_header() -> str:
    """The palette in sixel's percent form, once."""
    regs = [
        f"#{i};2;{round(r * 100 / 255)};{round(g * 100 / 255)};{round(b * 100 / 255)}"
        for i, (r, g, b) in enumerate(_palette().tolist())
    ]
    return "".join(regs)


def _quantise(rgb: np.ndarray) -> np.ndarray:
    q = rgb >> 3
    key = (q[..., 0].astype(np.uint16) << 10) | (q[..., 1].astype(np.uint16) << 5) | q[..., 2]
    indices: np.ndarray = _lut()[key]
    return indices


_RUN = re.compile(rb"([?-~])\1{3,}")


def _run(match: re.Match[bytes]) -> bytes:
    return b"!%d%s" % (len(match[0]), match[1])


def sixel_encode(rgb: np.ndarray) -> str:
    """``rgb`` (h, w, 3 uint8) as one sixel image (DCS ... ST), the palette declared first.

    Every band's passes are built at once in numpy; the run-length coding is one regular
    expression over the whole image (C speed)."""
    height, width = rgb.shape[:2]
    idx = _quantise(rgb)
    pad = (-height) % 6
    if pad:  # register 255 is not in the palette: padding rows set no bit in any pass
        idx = np.concatenate([idx, np.full((pad, width), 255, np.uint8)])
    n_bands = idx.shape[0] // 6
    bands = idx.reshape(n_bands, 6, width)
    bits = np.zeros((n_bands, 256, width), dtype=np.uint8)
    band_i = np.arange(n_bands)[:, None]
    col_i = np.arange(width)[None, :]
    for k in range(6):
        bits[band_i, bands[:, k], col_i] |= np.uint8(1 << k)
    passes = bits[:, : len(_palette())]
    present = np.any(passes, axis=2)
    # Where each pass ends: after its last set sixel (the empty tail is left out).
    ends = (width - np.argmax(passes[:, :, ::-1] != 0, axis=2)).tolist()
    chars = passes + np.uint8(63)
    lines = []
    for band in range(n_bands):
        rows, end = chars[band], ends[band]
        lines.append(
            b"$".join(
                b"#%d%s" % (c, rows[c, : end[c]].tobytes()) for c in np.flatnonzero(present[band])
            )
        )
    body = _RUN.sub(_run, b"-".join(lines))
    head = f'\x1bP0;1;0q"1;1;{width};{height}{_sixel_header()}'
    return head + body.decode("ascii") + "-" + ST


_SIXEL_RE = re.compile(r"\x1bP[0-9;]*q(.*?)\x1b\\", re.S)
_TOKEN_RE = re.compile(r'"[0-9;]*|#(\d+)(?:;(\d+);(\d+);(\d+);(\d+))?|!(\d+)(.)|([?-~])|(\$)|(-)')


def sixel_decode(text: str) -> np.ndarray:
    """The first sixel image in ``text`` as (h, w, 3) uint8; pixels never drawn are black."""
    match = _SIXEL_RE.search(text)
    if match is None:
        raise ValueError("no sixel image in the text")
    body = match.group(1)
    raster = re.match(r'"(\d+);(\d+);(\d+);(\d+)', body)
    if raster is None:
        raise ValueError("sixel image without raster attributes")
    width, height = int(raster.group(3)), int(raster.group(4))
    out = np.zeros((height + 6, width, 3), np.uint8)
    palette: dict[int, tuple[int, int, int]] = {}
    colour = (0, 0, 0)
    x = y = 0
    for tok in _TOKEN_RE.finditer(body):
        reg, space, a, b, c, count, rep_ch, ch, cr, nl = tok.groups()
        if reg is not None:
            if space is not None:
                palette[int(reg)] = _percent_rgb(int(a), int(b), int(c))
            colour = palette.get(int(reg), (0, 0, 0))
        elif count is not None or ch is not None:
            n, char = (int(count), rep_ch) if count is not None else (1, ch)
            value = ord(char) - 63
            if value:
                for k in range(6):
                    if value >> k & 1:
                        out[y + k, x : x + n] = colour
            x += n
        elif cr is not None:
            x = 0
        elif nl is not None:
            x, y = 0, y + 6
    return out[:height]


def _percent_rgb(r: int, g: int, b: int) -> tuple[int, int, int]:
    return (round(r * 255 / 100), round(g * 255 / 100), round(b * 255 / 100))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images (inf when equal)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


# -- placement -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """Where a frame goes in a tile: pixels sent, and the cells they cover (offset, size)."""

    width: int  # pixels sent
    height: int
    x: int  # cells from the tile's left and top
    y: int
    cols: int  # cells covered
    rows: int


def place(
    src_w: int, src_h: int, cols: int, rows: int, cell: tuple[int, int], *, scales: bool
) -> Placement:
    """Fit a ``src_w`` x ``src_h`` frame, unstretched and centred, into ``cols`` x ``rows`` cells
    of ``cell`` (width, height) pixels. Never more pixels than the source: a terminal that
    ``scales`` (kitty, through ``c=``/``r=``) enlarges them to the cells; sixel cannot, so its
    picture stays at the source's size."""
    cw, ch = cell
    fit = min(cols * cw / src_w, rows * ch / src_h)
    sent = min(fit, 1.0)
    width, height = max(1, round(src_w * sent)), max(1, round(src_h * sent))
    shown = fit if scales else sent
    used_c = max(1, min(cols, round(src_w * shown / cw)))
    used_r = max(1, min(rows, round(src_h * shown / ch)))
    if not scales:  # the pixels must fit in the cells they are said to cover
        width, height = min(width, used_c * cw), min(height, used_r * ch)
    return Placement(width, height, (cols - used_c) // 2, (rows - used_r) // 2, used_c, used_r)


def encode(rgb: np.ndarray, mode: GraphicsMode, placement: Placement, image_id: int) -> str:
    """One frame, already at ``placement``'s pixel size, in ``mode`` ("kitty" or "sixel")."""
    if mode == "kitty":
        return kitty_encode(rgb, image_id=image_id, cols=placement.cols, rows=placement.rows)
    if mode == "sixel":
        return sixel_encode(rgb)
    raise ValueError(f"no pixel encoding for graphics mode {mode!r}")
