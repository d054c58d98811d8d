"""FrameScaler on frames built from known RGB images, the way a decoder would hand them over."""

from __future__ import annotations

import av
import numpy as np
import pytest

from lapak.media.frames import FrameScaler

BARS = np.array(
    [
        (255, 255, 255),
        (255, 255, 0),
        (0, 255, 255),
        (0, 255, 0),
        (255, 0, 255),
        (255, 0, 0),
        (0, 0, 255),
        (0, 0, 0),
    ],
    dtype=np.uint8,
)
# yuv420p is limited-range 8-bit with halved chroma: pure colours come back a few levels off.
TOLERANCE = 8


def yuv_frame(rgb: np.ndarray) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def bars_image(width: int = 640, height: int = 480) -> np.ndarray:
    index = np.arange(width) * len(BARS) // width
    return np.ascontiguousarray(np.broadcast_to(BARS[index], (height, width, 3)))


def test_output_shape_and_dtype_for_a_640x480_yuv420p_frame() -> None:
    frame = yuv_frame(bars_image())
    assert frame.format.name == "yuv420p"
    out = FrameScaler(64, 24).scale(frame)
    assert out.shape == (48, 64, 3), f"expected (rows * 2, cols, 3) = (48, 64, 3), got {out.shape}"
    assert out.dtype == np.uint8, f"expected uint8, got {out.dtype}"


def test_colour_bars_keep_their_colours() -> None:
    out = FrameScaler(64, 24).scale(yuv_frame(bars_image())).astype(int)
    for i, colour in enumerate(BARS):
        # Columns well inside the bar: chroma subsampling and filtering blur the edges.
        inner = out[:, i * 8 + 2 : i * 8 + 6]
        worst = np.abs(inner - colour.astype(int)).max()
        assert worst <= TOLERANCE, (
            f"bar {i}: expected about {tuple(colour.tolist())} (±{TOLERANCE}) in every pixel, "
            f"got values up to {worst} off, e.g. {tuple(inner[24, 0].tolist())}"
        )


def test_vertical_layout_is_kept() -> None:
    """Pixel row order matters: even rows become cell tops, odd rows bottoms."""
    img = np.zeros((480, 640, 3), dtype=np.uint8)
    img[:240] = (250, 30, 30)
    img[240:] = (30, 30, 250)
    out = FrameScaler(64, 24).scale(yuv_frame(img)).astype(int)
    assert np.abs(out[:20] - (250, 30, 30)).max() <= TOLERANCE, "expected red in the top half"
    assert np.abs(out[28:] - (30, 30, 250)).max() <= TOLERANCE, "expected blue in the bottom half"


def test_fine_detail_is_averaged_not_aliased() -> None:
    """AREA scaling averages each cell's source pixels, so noise finer than a cell fades."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (480, 640), dtype=np.uint8)
    out = FrameScaler(64, 24).scale(yuv_frame(np.stack([grey] * 3, axis=-1))).astype(float)
    assert out.std() < 15, f"expected near-uniform grey (std < 15, input std 74), got {out.std()}"
    assert abs(out.mean() - 127.5) < 10, f"expected mean about 127.5, got {out.mean()}"


def test_resize_changes_the_output_shape() -> None:
    scaler = FrameScaler(64, 24)
    frame = yuv_frame(bars_image())
    scaler.resize(37, 11)
    assert (scaler.cols, scaler.rows, scaler.shape) == (37, 11, (22, 37, 3))
    out = scaler.scale(frame)
    assert out.shape == (22, 37, 3), f"expected (22, 37, 3) after resize, got {out.shape}"
    scaler.resize(64, 24)
    assert scaler.scale(frame).shape == (48, 64, 3), "expected (48, 64, 3) after resizing back"


@pytest.mark.parametrize("fmt", ["rgb24", "bgr24", "yuvj420p", "nv12", "rgba"])
def test_any_input_format_gives_rgb(fmt: str) -> None:
    img = np.zeros((480, 640, 3), dtype=np.uint8)
    img[:] = (200, 100, 50)
    frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=fmt)
    out = FrameScaler(16, 6).scale(frame).astype(int)
    assert out.shape == (12, 16, 3), f"{fmt}: expected (12, 16, 3), got {out.shape}"
    worst = np.abs(out - (200, 100, 50)).max()
    assert worst <= TOLERANCE, f"{fmt}: expected about (200, 100, 50), got up to {worst} off"


def test_small_source_is_upscaled() -> None:
    frame = yuv_frame(bars_image(160, 120))
    out = FrameScaler(64, 24).scale(frame)
    assert out.shape == (48, 64, 3), f"expected (48, 64, 3) from a 160x120 source, {out.shape}"


def test_invalid_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="1x1"):
        FrameScaler(0, 24)
    scaler = FrameScaler(64, 24)
    with pytest.raises(ValueError, match="1x1"):
        scaler.resize(64, 0)
