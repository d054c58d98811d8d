"""The zoomed tile in real pixels: what the encoders emit decodes back to the frame (kitty
exactly, sixel within a stated PSNR), the terminal's answers choose the protocol, and the
console draws the zoomed tile through its driver and deletes it on unzoom."""

from __future__ import annotations

import io
import math
import sys
import threading

import av
import numpy as np
import pytest
from conftest import wait_for
from test_console_video import FakeMedia, circle_frame, feed, offline, one_visit_snapshot

from lapak.console.app import LapakConsole
from lapak.console.graphics import (
    CHUNK,
    GraphicsMode,
    Placement,
    kitty_decode,
    kitty_delete,
    kitty_encode,
    place,
    psnr,
    sixel_decode,
    sixel_encode,
)
from lapak.console.graphics_detect import (
    DEFAULT_CELL,
    TerminalGraphics,
    detect,
    forced,
    from_env,
    parse_answers,
)
from lapak.console.zoom_image import IMAGE_ID
from lapak.media.testcard import TestCard

SIXEL_PSNR_DB = 25.0
"""Bound for sixel's fixed 240-colour palette on the test card (measured: 30.2 dB)."""


@pytest.fixture(scope="module")
def card() -> np.ndarray:
    return TestCard("Booth 1", 0).frame_rgb(1.0, 1_234_567)


def test_kitty_raw_is_lossless_in_chunks_under_one_id(card: np.ndarray) -> None:
    text = kitty_encode(card, image_id=9, cols=64, rows=24)
    chunks = text.split("\x1b\\")[:-1]
    assert len(chunks) > 1, "a 640x480 frame takes many chunks"
    for chunk in chunks:
        assert len(chunk.split(";", 1)[1]) <= CHUNK, "each chunk carries at most 4096 bytes"
    keys = [c.split(";", 1)[0] for c in chunks]
    assert all(k.endswith("m=1") for k in keys[:-1]) and keys[-1].endswith("m=0")
    (image,) = kitty_decode(text)
    assert image.keys["i"] == "9" and image.keys["c"] == "64" and image.keys["r"] == "24"
    assert image.rgb is not None and np.array_equal(image.rgb, card), "raw f=24 is exact"
    assert psnr(image.rgb, card) == math.inf


def test_kitty_png_is_lossless_too(card: np.ndarray) -> None:
    (image,) = kitty_decode(kitty_encode(card, image_id=9, cols=64, rows=24, png=True))
    assert image.keys["f"] == "100"
    assert image.rgb is not None and np.array_equal(image.rgb, card)


def test_kitty_delete_names_the_image() -> None:
    (command,) = kitty_decode(kitty_delete(9))
    assert command.keys["a"] == "d" and command.keys["i"] == "9" and command.rgb is None


def test_sixel_decodes_to_the_frame_within_the_bound(card: np.ndarray) -> None:
    decoded = sixel_decode(sixel_encode(card))
    assert decoded.shape == card.shape
    value = psnr(decoded, card)
    assert value >= SIXEL_PSNR_DB, f"sixel PSNR {value:.1f} dB, expected >= {SIXEL_PSNR_DB}"


def test_sixel_height_not_a_multiple_of_six(card: np.ndarray) -> None:
    part = card[:100, :90]
    assert psnr(sixel_decode(sixel_encode(part)), part) >= SIXEL_PSNR_DB


def test_placement_keeps_the_shape_and_never_upscales_what_it_sends() -> None:
    spot = place(640, 480, 160, 40, (10, 20), scales=True)
    assert (spot.width, spot.height) == (640, 480)
    assert spot.rows == 40 and abs(spot.cols * 10 / (spot.rows * 20) - 4 / 3) < 0.05
    assert spot.x == (160 - spot.cols) // 2 and spot.y == 0
    small = place(640, 480, 40, 12, (10, 20), scales=False)
    assert small.width <= small.cols * 10 and small.height <= small.rows * 20
    assert abs(small.width / small.height - 4 / 3) < 0.05


def test_the_terminal_answers_choose_the_protocol() -> None:
    kitty = b"\x1b_Gi=31;OK\x1b\\\x1b[6;20;10t\x1b[?62;22c"
    assert parse_answers(kitty) == (True, False, (10, 20), True)
    sixel = b"\x1b[6;16;8t\x1b[?63;1;2;4;6;9;15;22c"
    assert parse_answers(sixel) == (False, True, (8, 16), True)
    assert parse_answers(b"\x1b[?1;2c") == (False, False, None, True)
    assert parse_answers(b"")[3] is False, "no device attributes: the wait timed out"
    assert from_env({"TERM": "xterm-kitty"}) == "kitty"
    assert from_env({"TERM_PROGRAM": "WezTerm"}) == "kitty"
    assert from_env({"TERM": "xterm-256color"}) == "blocks"
    assert forced("auto") is None and forced("sixel") == "sixel"


def console_with_a_frame(mode: GraphicsMode) -> tuple[LapakConsole, list[str]]:
    """An offline console in ``mode`` with a frame ready for slot 1, and what it writes past
    Textual (the zoomed tile's pixels) collected."""
    app = offline(graphics=TerminalGraphics(mode, (10, 20), "flag"))
    app.engine = FakeMedia()  # type: ignore[assignment]  # a stand-in engine with a frame ready
    written: list[str] = []
    app.desk_screen.zoom_image.write = written.append
    feed(app, one_visit_snapshot())
    return app, written


async def test_zoomed_tile_is_drawn_in_kitty_pixels_and_deleted_on_unzoom() -> None:
    app, written = console_with_a_frame("kitty")
    async with app.run_test(size=(120, 40)) as pilot:
        video = app.tile(1).video
        await wait_for(lambda: video.frames_painted > 0, "half-blocks before the zoom")
        assert not written, "nothing but half-blocks while not zoomed"
        await pilot.press("z")
        await wait_for(lambda: any("a=T" in w for w in written), "a kitty image after the zoom")
        assert video.covered, "Textual paints blank cells under the image"
        images = [c for c in kitty_decode("".join(written)) if c.rgb is not None]
        image = images[-1]
        assert image.keys["i"] == str(IMAGE_ID)
        region = video.region
        spot = place(320, 240, region.width, region.height, (10, 20), scales=True)
        expected = (
            circle_frame()
            .reformat(width=spot.width, height=spot.height, format="rgb24")
            .to_ndarray()
        )
        assert image.rgb is not None and np.array_equal(image.rgb, expected), (
            "the APC decodes to the tile's frame"
        )
        assert (int(image.keys["c"]), int(image.keys["r"])) == (spot.cols, spot.rows)
        at = f"\x1b[{region.y + spot.y + 1};{region.x + spot.x + 1}H\x1b_G"
        assert at in "".join(written), "the image is placed at the tile's cells"
        written.clear()
        await pilot.press("z")
        await wait_for(lambda: bool(written), "something written on unzoom")
        deletes = [c for c in kitty_decode("".join(written)) if c.keys.get("a") == "d"]
        assert deletes and deletes[0].keys["i"] == str(IMAGE_ID), written
        assert not video.covered, "half-blocks again"
        painted = video.frames_painted
        await wait_for(lambda: video.frames_painted > painted, "half-blocks paint again")
        after = "".join(written).split("a=d,", 1)[1]
        assert "a=T" not in after, "no image after the delete"


async def test_blocks_keeps_half_blocks_when_zoomed() -> None:
    app, written = console_with_a_frame("blocks")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("z")
        video = app.tile(1).video
        painted = video.frames_painted
        await wait_for(lambda: video.frames_painted > painted + 2, "half-blocks while zoomed")
        assert not written and not video.covered


async def test_sixel_zoom_draws_sixel_over_the_tile() -> None:
    app, written = console_with_a_frame("sixel")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("z")
        await wait_for(lambda: any("\x1bP" in w for w in written), "a sixel image")
        decoded = sixel_decode(written[-1])
        frame = (
            circle_frame()
            .reformat(width=decoded.shape[1], height=decoded.shape[0], format="rgb24")
            .to_ndarray()
        )
        assert psnr(decoded, frame) >= SIXEL_PSNR_DB


async def test_sixel_is_encoded_off_the_loop_one_frame_at_a_time_the_newest_kept() -> None:
    """A 640x480 sixel costs tens of ms: it is encoded in a worker thread, never two at once,
    and frames that come meanwhile wait as one (the newest), so what is drawn last is the
    newest frame."""
    app, written = console_with_a_frame("sixel")
    zoom = app.desk_screen.zoom_image
    encode = zoom._encode
    running, most, threads = [0], [0], set()
    lock = threading.Lock()

    def watched(frame: av.VideoFrame, spot: Placement) -> str:  # the real encoder, counted
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        threads.add(threading.get_ident())
        try:
            return encode(frame, spot)
        finally:
            with lock:
                running[0] -= 1

    zoom._encode = watched  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("z")
        await wait_for(lambda: zoom.frames_drawn >= 2, "sixel frames drawn")
        video = app.tile(1).video
        small = circle_frame(radius=40)
        app.engine.links["V1"].frame = small  # type: ignore[attr-defined]  # FakeMedia's link
        dropped = zoom.frames_dropped
        for radius in (60, 70, 40):  # in one turn of the loop: the first two never drawn
            zoom.draw(video, circle_frame(radius=radius))
        assert zoom.frames_dropped >= dropped + 1, "a waiting frame is replaced by a newer one"

        def newest_drawn() -> bool:
            if not written:
                return False
            decoded = sixel_decode(written[-1])
            want = small.reformat(
                width=decoded.shape[1], height=decoded.shape[0], format="rgb24"
            ).to_ndarray()
            return psnr(decoded, want) >= SIXEL_PSNR_DB

        await wait_for(newest_drawn, "the newest frame drawn last")
    assert most[0] == 1, f"expected one encoding at a time, saw {most[0]}"
    assert threads and threading.get_ident() not in threads, "encoded off the event loop"


def test_detect_without_a_terminal_obeys_the_flag_else_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """stdin is no terminal: nothing is asked, nothing waits."""
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    monkeypatch.setenv("TERM", "xterm-kitty")
    assert detect("auto") == TerminalGraphics("kitty", DEFAULT_CELL, "env")
    assert detect("sixel") == TerminalGraphics("sixel", DEFAULT_CELL, "flag")
    assert detect("blocks").mode == "blocks"
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("KITTY_WINDOW_ID", raising=False)
    monkeypatch.delenv("TERM_PROGRAM", raising=False)
    monkeypatch.delenv("GHOSTTY_RESOURCES_DIR", raising=False)
    assert detect("auto").mode == "blocks"
