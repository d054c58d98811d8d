"""Benchmark: decoded camera frames to a 64x24-cell half-block tile, three ways.

A camera-like source (fixed seed: a swaying head-and-shoulders shape in front of a still room,
plus per-pixel sensor noise of a few levels) is made as 640x480 yuv420p ``av.VideoFrame``s, then
rendered to a 64x24-cell tile by:

- ours: ``media.frames.FrameScaler`` + ``console.render.CellRenderer``;
- naive: the same scaler, then one rich ``Style`` built from RGB per cell and one ``Segment`` per
  cell, turned into terminal text by Textual's ``Strip.render`` (what Textual does with them);
- chafa: the same scaler, then libchafa from Debian's ``chafa`` package through the ``chafa.py``
  binding (half-block symbols, truecolor, no dithering, one thread like the others). It gets the
  already-scaled 64x48 pixels, its cheapest input. The bench installs nothing: when chafa is
  missing it says how to get it and reports null.

The zoom path (``console/graphics.py``): the same 640x480 frames as RGB (the conversion from
yuv420p included, as the console does it) encoded whole for the terminal's graphics protocol,
ours against textual-image's (``_sixel.image_to_sixels`` and its kitty form, a PNG in base64
in 4096-byte chunks), and each decoded back for its PSNR against the RGB frame.
``graphics_ms_per_frame`` and ``graphics_psnr_db`` are our sixel's (the one that costs and loses:
our kitty raw form is exact, its PSNR reported as null with ``graphics_kitty_exact``).
textual-image is not a project dependency: when it is missing its keys are null.

Every figure includes the scaling from the decoded frame and is the median over repetitions of
the mean per frame. ``bytes_per_tile_frame`` counts only the rows our renderer marks changed, as
only those would be repainted. Run from the repository root::

    .venv/bin/python bench/render.py [--frames N] [--reps N] [--quick]

Progress goes to stdout as lines starting with '#'; the last line is one JSON object.
Targets: speedup >= 10, vs_chafa >= 4, ms_per_tile_frame <= 1.5.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import io
import json
import math
import os
import statistics
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import av
import numpy as np

# Run as a script, this folder comes first on sys.path and bench/console.py would shadow the
# console package: look in the repository root instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

from lapak.console.graphics import (  # noqa: E402
    kitty_decode,
    kitty_encode,
    psnr,
    sixel_decode,
    sixel_encode,
)
from lapak.console.render import DEFAULT_THRESHOLD, HALF_BLOCK, CellRenderer  # noqa: E402
from lapak.media.frames import FrameScaler  # noqa: E402

COLS, ROWS = 64, 24
WIDTH, HEIGHT = 640, 480
FPS = 15
SEED = 20240917
NOISE_SIGMA = 2.0

CHAFA_HOW = (
    "chafa not available: install Debian's libchafa and the binding with "
    "`apt-get install -y chafa` and `.venv/bin/pip install chafa.py` (not a project dependency)"
)

# One tile frame: decoded frame in, terminal bytes out (and how many of them would be written).
Renderer = Callable[[av.VideoFrame], int]


def log(message: str) -> None:
    print(f"# {message}", flush=True)


def make_frames(count: int, seed: int = SEED) -> list[av.VideoFrame]:
    """Camera-like frames: a still room, a swaying person, sensor noise; fixed seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    room = np.stack(
        [90 + 60 * xx / WIDTH, 100 + 40 * yy / HEIGHT, 120 + 30 * (xx + yy) / (WIDTH + HEIGHT)],
        axis=-1,
    )
    room[60:200, 430:600] = (200, 190, 150)  # a window
    room[300:480, 0:160] = (70, 50, 40)  # a cupboard
    room += rng.normal(0, 6, room.shape).astype(np.float32)  # wall texture (static)
    frames: list[av.VideoFrame] = []
    for i in range(count):
        t = i / FPS
        cx = WIDTH / 2 + 60 * math.sin(2 * math.pi * t / 3.0)
        cy = 200 + 8 * math.sin(2 * math.pi * t / 1.3)
        img = room.copy()
        head = ((xx - cx) / 70) ** 2 + ((yy - cy) / 90) ** 2 <= 1
        body = ((xx - cx) / 180) ** 2 + ((yy - (cy + 260)) / 170) ** 2 <= 1
        img[body] = (40, 60, 110)
        img[head] = (205, 160, 130)
        img += rng.normal(0, NOISE_SIGMA, img.shape).astype(np.float32)
        rgb = np.clip(img, 0, 255).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        frames.append(frame)
    return frames


def ours_factory() -> Renderer:
    scaler = FrameScaler(COLS, ROWS)
    renderer = CellRenderer(COLS, ROWS, "truecolor", DEFAULT_THRESHOLD)

    def run(frame: av.VideoFrame) -> int:
        out = renderer.render(scaler.scale(frame))
        return sum(len(s.encode()) for s, c in zip(out.rows, out.changed, strict=True) if c)

    return run


def naive_factory() -> Renderer:
    from rich.color import Color
    from rich.console import Console
    from rich.segment import Segment
    from rich.style import Style
    from textual.strip import Strip

    scaler = FrameScaler(COLS, ROWS)
    console = Console(file=io.StringIO(), color_system="truecolor", force_terminal=True)

    def run(frame: av.VideoFrame) -> int:
        rgb = scaler.scale(frame).tolist()
        total = 0
        for y in range(ROWS):
            top, bottom = rgb[2 * y], rgb[2 * y + 1]
            segments = [
                Segment(
                    HALF_BLOCK,
                    Style(color=Color.from_rgb(*top[x]), bgcolor=Color.from_rgb(*bottom[x])),
                )
                for x in range(COLS)
            ]
            total += len(Strip(segments, COLS).render(console).encode())
        return total

    return run


def load_chafa() -> tuple[types.ModuleType | None, str | None]:
    """Import chafa.py bound to Debian's libchafa, not the copy inside the wheel.

    Returns (module, library path), or (None, None) when either is missing.
    """
    system_lib = ctypes.util.find_library("chafa")
    if system_lib is None:
        return None, None
    glib = ctypes.util.find_library("glib-2.0")
    try:
        # chafa.py loads its bundled libchafa at import time; pre-seeding the module it reads
        # the handle from makes every binding call go to the system library instead.
        shim = types.ModuleType("chafa.libraries")
        shim._Chafa = ctypes.CDLL(system_lib)  # type: ignore[attr-defined]
        shim._lib = system_lib  # type: ignore[attr-defined]
        shim._lib_glib = glib or "libglib-2.0.so.0"  # type: ignore[attr-defined]
        sys.modules["chafa.libraries"] = shim
        import chafa
    except (ImportError, OSError):
        sys.modules.pop("chafa.libraries", None)
        return None, None
    path = system_lib
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                if "libchafa" in line:
                    path = os.path.realpath(line.split()[-1])
                    break
    except OSError:
        pass
    return chafa, path


def chafa_factory(chafa: types.ModuleType) -> Renderer:
    lib = sys.modules["chafa.libraries"]._Chafa
    lib.chafa_set_n_threads(1)
    config = chafa.CanvasConfig()
    config.width = COLS
    config.height = ROWS
    config.canvas_mode = chafa.CanvasMode.CHAFA_CANVAS_MODE_TRUECOLOR
    config.pixel_mode = chafa.PixelMode.CHAFA_PIXEL_MODE_SYMBOLS
    config.dither_mode = chafa.DitherMode.CHAFA_DITHER_MODE_NONE
    config.preprocessing = False
    config.work_factor = 0.0  # one symbol shape: more work cannot improve the choice
    symbols = chafa.SymbolMap()
    symbols.add_by_tags(chafa.SymbolTags.CHAFA_SYMBOL_TAG_VHALF)  # upper/lower half blocks
    config.set_symbol_map(symbols)
    canvas = chafa.Canvas(config)
    # Detection reads the environment; pin a truecolor xterm so the output does not depend on
    # the terminal the bench runs in.
    os.environ["TERM"] = "xterm-256color"
    os.environ["COLORTERM"] = "truecolor"
    term_info = chafa.TermDb().detect()
    scaler = FrameScaler(COLS, ROWS)
    rgb_type = chafa.PixelType.CHAFA_PIXEL_RGB8

    def run(frame: av.VideoFrame) -> int:
        rgb = np.ascontiguousarray(scaler.scale(frame))
        height, width = rgb.shape[:2]
        canvas.draw_all_pixels(rgb_type, rgb, width, height, width * 3)
        return len(canvas.print(term_info))

    return run


def measure(name: str, factory: Callable[[], Renderer], frames: list[av.VideoFrame], reps: int):
    """Median over ``reps`` of the mean ms per frame, and mean bytes per frame."""
    per_rep: list[float] = []
    bytes_per_frame = 0.0
    for rep in range(reps):
        run = factory()
        total_bytes = 0
        elapsed = 0
        for frame in frames:
            start = time.perf_counter_ns()
            total_bytes += run(frame)
            elapsed += time.perf_counter_ns() - start
        ms = elapsed / 1e6 / len(frames)
        per_rep.append(ms)
        bytes_per_frame = total_bytes / len(frames)
        log(f"{name} rep {rep + 1}/{reps}: {ms:.3f} ms/tile frame, {bytes_per_frame:.0f} B/frame")
    return statistics.median(per_rep), bytes_per_frame


Encoder = Callable[[np.ndarray], str]


def graphics_encoders() -> dict[str, tuple[Encoder, Callable[[str], np.ndarray]]]:
    """name -> (encode an RGB frame to terminal text, decode it back to RGB)."""

    def kitty_pixels(text: str) -> np.ndarray:
        rgb = kitty_decode(text)[0].rgb
        assert rgb is not None
        return rgb

    encoders: dict[str, tuple[Encoder, Callable[[str], np.ndarray]]] = {
        "kitty_raw": (lambda rgb: kitty_encode(rgb, image_id=1, cols=64, rows=24), kitty_pixels),
        "kitty_png": (
            lambda rgb: kitty_encode(rgb, image_id=1, cols=64, rows=24, png=True),
            kitty_pixels,
        ),
        "sixel": (sixel_encode, sixel_decode),
    }
    try:
        from PIL import Image
        from textual_image._pixeldata import PixelData
        from textual_image._sixel import image_to_sixels
    except ImportError:
        log("textual-image not available: `.venv/bin/pip install textual-image` (not a dependency)")
        return encoders

    def ti_kitty(rgb: np.ndarray) -> str:
        """What textual-image's kitty renderable sends: a PNG in base64, 4096 bytes a chunk."""
        data = PixelData(Image.fromarray(rgb)).to_base64()
        parts = []
        while data:
            chunk, data = data[:4096], data[4096:]
            more = 1 if data else 0
            parts.append(f"\x1b_Gi=1,m={more},f=100,q=2;{chunk}\x1b\\")
        return "".join(parts)

    encoders["textual_image_kitty"] = (ti_kitty, kitty_pixels)
    encoders["textual_image_sixel"] = (
        lambda rgb: image_to_sixels(Image.fromarray(rgb)),
        sixel_decode,
    )
    return encoders


def measure_graphics(frames: list[av.VideoFrame], reps: int) -> dict[str, Any]:
    """Per encoder: median ms per 640x480 frame (RGB conversion included), bytes, PSNR."""
    out: dict[str, Any] = {}
    for name, (encode, decode) in graphics_encoders().items():
        per_rep: list[float] = []
        size = 0
        for _ in range(reps):
            start = time.perf_counter_ns()
            for frame in frames:
                size += len(encode(frame.to_ndarray(format="rgb24")))
            per_rep.append((time.perf_counter_ns() - start) / 1e6 / len(frames))
        rgb = frames[-1].to_ndarray(format="rgb24")
        value = psnr(decode(encode(rgb)), rgb)
        ms = statistics.median(per_rep)
        log(
            f"graphics {name}: {ms:.2f} ms/frame, {size / reps / len(frames):.0f} B, {value:.1f} dB"
        )
        out[f"graphics_{name}_ms_per_frame"] = round(ms, 3)
        out[f"graphics_{name}_bytes_per_frame"] = round(size / reps / len(frames))
        out[f"graphics_{name}_psnr_db"] = None if math.isinf(value) else round(value, 2)
    for name in ("textual_image_kitty", "textual_image_sixel"):
        for key in ("ms_per_frame", "bytes_per_frame", "psnr_db"):
            out.setdefault(f"graphics_{name}_{key}", None)
    out["graphics_ms_per_frame"] = out["graphics_sixel_ms_per_frame"]
    out["graphics_psnr_db"] = out["graphics_sixel_psnr_db"]
    out["graphics_kitty_exact"] = out["graphics_kitty_raw_psnr_db"] is None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=90, help="frames in the source (15 fps)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions; medians are quoted")
    parser.add_argument("--quick", action="store_true", help="tiny run for a smoke test")
    args = parser.parse_args(argv)
    frames_n = 6 if args.quick else args.frames
    reps = 2 if args.quick else args.reps
    if frames_n < 1 or reps < 1:
        parser.error("--frames and --reps must be at least 1")

    log(f"making {frames_n} camera-like 640x480 yuv420p frames (seed {SEED})")
    frames = make_frames(frames_n)

    start = time.perf_counter()
    CellRenderer(COLS, ROWS)  # builds the shared fragment table once; not part of a frame
    log(f"fragment table built in {(time.perf_counter() - start) * 1e3:.1f} ms (once per process)")

    ms, bytes_ours = measure("ours", ours_factory, frames, reps)
    naive_ms, naive_bytes = measure("naive", naive_factory, frames, reps)

    chafa, chafa_library = load_chafa()
    chafa_ms: float | None = None
    chafa_bytes: float | None = None
    if chafa is None:
        log(CHAFA_HOW)
    else:
        log(f"chafa: {chafa_library}")
        chafa_ms, chafa_bytes = measure("chafa", lambda: chafa_factory(chafa), frames, reps)

    result: dict[str, Any] = {
        "ms_per_tile_frame": round(ms, 4),
        "naive_ms_per_tile_frame": round(naive_ms, 4),
        "speedup": round(naive_ms / ms, 2),
        "chafa_ms_per_tile_frame": None if chafa_ms is None else round(chafa_ms, 4),
        "vs_chafa": None if chafa_ms is None else round(chafa_ms / ms, 2),
        "bytes_per_tile_frame": round(bytes_ours),
        "chafa_bytes_per_tile_frame": None if chafa_bytes is None else round(chafa_bytes),
        "naive_bytes_per_tile_frame": round(naive_bytes),
        "chafa_library": chafa_library,
        "tile": f"{COLS}x{ROWS}",
        "source": f"{WIDTH}x{HEIGHT} yuv420p",
        "frames": frames_n,
        "reps": reps,
        "threshold": DEFAULT_THRESHOLD,
        "targets": {"speedup": 10, "vs_chafa": 4, "ms_per_tile_frame": 1.5},
    }
    result.update(measure_graphics(frames[: max(1, min(len(frames), 15))], reps))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
