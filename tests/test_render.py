"""CellRenderer: output checked by replaying the ANSI rows through a tiny SGR interpreter."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lapak.console.render import HALF_BLOCK, RESET, CellRenderer, RenderedFrame

COLS, ROWS = 64, 24
# 5-bit rounded quantization: a channel is off by at most half a step (255 / 31 / 2 ~ 4.1).
QUANT_TOLERANCE = 5

SGR = re.compile(r"\x1b\[([0-9;]*)m")
ANY_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

Colour = tuple[int, int, int] | int | None
Cell = tuple[str, Colour, Colour]


def _apply_sgr(params: str, fg: Colour, bg: Colour) -> tuple[Colour, Colour]:
    codes = [int(p) for p in params.split(";")] if params else [0]
    i = 0
    while i < len(codes):
        code = codes[i]
        if code == 0:
            fg = bg = None
            i += 1
        elif code in (38, 48) and codes[i + 1] == 2:
            colour: Colour = (codes[i + 2], codes[i + 3], codes[i + 4])
            i += 5
            fg, bg = (colour, bg) if code == 38 else (fg, colour)
        elif code in (38, 48) and codes[i + 1] == 5:
            colour = codes[i + 2]
            i += 3
            fg, bg = (colour, bg) if code == 38 else (fg, colour)
        else:
            raise AssertionError(f"unexpected SGR code {code} in {params!r}")
    return fg, bg


def parse_row(row: str) -> list[Cell]:
    """Replay one row: each printed character with the foreground and background in force."""
    cells: list[Cell] = []
    fg: Colour = None
    bg: Colour = None
    pos = 0
    for match in SGR.finditer(row):
        cells.extend((ch, fg, bg) for ch in row[pos : match.start()])
        fg, bg = _apply_sgr(match.group(1), fg, bg)
        pos = match.end()
    cells.extend((ch, fg, bg) for ch in row[pos:])
    return cells


def sgr_params(row: str) -> list[str]:
    return [m.group(1) for m in SGR.finditer(row)]


def assert_close(got: Colour, want: np.ndarray, where: str) -> None:
    assert isinstance(got, tuple), f"{where}: expected a truecolor triple, got {got!r}"
    diff = np.abs(np.array(got) - want.astype(int)).max()
    assert diff <= QUANT_TOLERANCE, (
        f"{where}: expected about {tuple(int(v) for v in want)} (±{QUANT_TOLERANCE}), got {got}"
    )


def colour_bars(cols: int = COLS, rows: int = ROWS) -> np.ndarray:
    """Top pixels: 8 classic bars left to right; bottom pixels: the same bars reversed."""
    bars = np.array(
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
    index = np.arange(cols) * len(bars) // cols
    img = np.empty((rows * 2, cols, 3), dtype=np.uint8)
    img[0::2] = bars[index]
    img[1::2] = bars[::-1][index]
    return img


def random_image(seed: int, cols: int = COLS, rows: int = ROWS) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (rows * 2, cols, 3), dtype=np.uint8)


def test_colour_bars_give_top_pixel_as_foreground_and_bottom_as_background() -> None:
    img = colour_bars()
    out = CellRenderer(COLS, ROWS).render(img)
    for y, row in enumerate(out.rows):
        cells = parse_row(row)
        assert len(cells) == COLS, f"row {y}: expected {COLS} cells, got {len(cells)}"
        for x, (ch, fg, bg) in enumerate(cells):
            assert ch == HALF_BLOCK, f"row {y} col {x}: expected the upper half block, got {ch!r}"
            assert_close(fg, img[2 * y, x], f"row {y} col {x} foreground (top pixel)")
            assert_close(bg, img[2 * y + 1, x], f"row {y} col {x} background (bottom pixel)")


def test_pure_colours_come_out_exact() -> None:
    out = CellRenderer(COLS, ROWS).render(colour_bars())
    fgs = {fg for _, fg, _ in parse_row(out.rows[0])}
    expected = {
        (255, 255, 255),
        (255, 255, 0),
        (0, 255, 255),
        (0, 255, 0),
        (255, 0, 255),
        (255, 0, 0),
        (0, 0, 255),
        (0, 0, 0),
    }
    assert fgs == expected, f"expected exactly the 8 bar colours as foregrounds, got {sorted(fgs)}"


@pytest.mark.parametrize("mode", ["truecolor", "256"])
@pytest.mark.parametrize(("cols", "rows"), [(64, 24), (1, 1), (7, 3), (120, 40)])
def test_rows_are_exactly_cols_cells_and_end_with_reset(mode: str, cols: int, rows: int) -> None:
    out = CellRenderer(cols, rows, mode).render(random_image(1, cols, rows))  # type: ignore[arg-type]
    assert len(out.rows) == rows, f"expected {rows} rows, got {len(out.rows)}"
    for y, row in enumerate(out.rows):
        visible = ANY_ESCAPE.sub("", row)
        assert visible == HALF_BLOCK * cols, (
            f"row {y}: expected {cols} half blocks once escapes are stripped, got {visible!r}"
        )
        assert row.endswith(RESET), f"row {y}: expected to end with a reset, got {row[-12:]!r}"
        assert "\n" not in row, f"row {y}: expected no newline inside a row"


def test_random_image_round_trips_within_quantization() -> None:
    img = random_image(2)
    out = CellRenderer(COLS, ROWS).render(img)
    for y, row in enumerate(out.rows):
        for x, (_, fg, bg) in enumerate(parse_row(row)):
            assert_close(fg, img[2 * y, x], f"row {y} col {x} foreground")
            assert_close(bg, img[2 * y + 1, x], f"row {y} col {x} background")


def test_sgr_only_where_the_colour_changes() -> None:
    img = np.zeros((4, 8, 3), dtype=np.uint8)
    img[0] = (200, 0, 0)  # row 0 top: one colour all along
    img[1, :4] = (0, 0, 200)  # row 0 bottom: changes once, at x = 4
    img[1, 4:] = (0, 200, 0)
    img[2, ::2] = (255, 255, 255)  # row 1 top: alternates every cell
    out = CellRenderer(8, 2).render(img)
    params = sgr_params(out.rows[0])
    assert params == ["38;2;197;0;0;48;2;0;0;197", "48;2;0;197;0", "0"], (
        "row 0: expected fg+bg once at the start, the background once where it changes, then "
        f"the reset; got {params}"
    )
    row1 = sgr_params(out.rows[1])
    assert len(row1) == 8 + 1, f"row 1: expected one SGR per alternating cell plus reset, {row1}"
    assert all(not p.startswith("48") and ";48;" not in p for p in row1[1:-1]), (
        f"row 1: the background never changes, so expected no background codes after the "
        f"first cell; got {row1}"
    )


def test_same_frame_again_changes_no_row() -> None:
    img = random_image(3)
    renderer = CellRenderer(COLS, ROWS)
    first = renderer.render(img)
    assert first.changed == [True] * ROWS, "expected the first render to mark every row changed"
    second = renderer.render(img.copy())
    assert not any(second.changed), f"expected no changed row, got {second.changed}"
    assert second.rows == first.rows, "expected the same row strings for the same frame"


def test_noise_under_threshold_changes_no_row() -> None:
    img = random_image(4).clip(10, 245)
    renderer = CellRenderer(COLS, ROWS, threshold=8)
    renderer.render(img)
    rng = np.random.default_rng(5)
    for i in range(5):
        noisy = (img.astype(np.int16) + rng.integers(-7, 8, img.shape)).astype(np.uint8)
        out = renderer.render(noisy)
        assert not any(out.changed), (
            f"frame {i}: noise of at most 7 levels with threshold 8 should change no row, "
            f"got changed rows {[y for y, c in enumerate(out.changed) if c]}"
        )


@pytest.mark.parametrize("pixel_row", [10, 11])
def test_change_in_one_pixel_row_marks_only_its_cell_row(pixel_row: int) -> None:
    img = random_image(6)
    renderer = CellRenderer(COLS, ROWS, threshold=8)
    before = renderer.render(img)
    img2 = img.copy()
    img2[pixel_row, 30] = 255 - img2[pixel_row, 30]  # at least 1 channel moves by >= 128
    out = renderer.render(img2)
    cell_row = pixel_row // 2
    changed = [y for y, c in enumerate(out.changed) if c]
    assert changed == [cell_row], f"expected only cell row {cell_row} changed, got {changed}"
    assert out.rows[cell_row] != before.rows[cell_row], "expected the changed row to be rebuilt"
    for y in range(ROWS):
        if y != cell_row:
            assert out.rows[y] is before.rows[y], f"row {y}: expected the painted string kept"
    _, fg, bg = parse_row(out.rows[cell_row])[30]
    new = fg if pixel_row % 2 == 0 else bg
    assert_close(new, img2[pixel_row, 30], f"cell ({cell_row}, 30) after the change")


def test_change_of_exactly_threshold_counts() -> None:
    img = np.full((2 * ROWS, COLS, 3), 100, dtype=np.uint8)
    renderer = CellRenderer(COLS, ROWS, threshold=8)
    renderer.render(img)
    img2 = img.copy()
    img2[5, 5, 1] = 107
    assert not any(renderer.render(img2).changed), "expected a move of 7 (< 8) to change nothing"
    img2[5, 5, 1] = 108
    changed = [y for y, c in enumerate(renderer.render(img2).changed) if c]
    assert changed == [2], f"expected a move of 8 (= threshold) to change row 2, got {changed}"


def test_slow_drift_repaints_once_it_adds_up() -> None:
    """Changes are measured against what was painted, so drift below the threshold cannot hide."""
    img = np.full((2 * ROWS, COLS, 3), 100, dtype=np.uint8)
    renderer = CellRenderer(COLS, ROWS, threshold=8)
    renderer.render(img)
    seen: list[int] = []
    for step in range(1, 12):
        out = renderer.render(np.full_like(img, 100 + 3 * step))
        if any(out.changed):
            seen.append(step)
    assert seen == [3, 6, 9], f"expected repaints when drift reaches 9, 18, 27; at steps {seen}"


def test_threshold_zero_means_any_difference() -> None:
    img = np.full((2 * ROWS, COLS, 3), 100, dtype=np.uint8)
    renderer = CellRenderer(COLS, ROWS, threshold=0)
    renderer.render(img)
    img2 = img.copy()
    img2[47, 63, 2] = 101
    changed = [y for y, c in enumerate(renderer.render(img2).changed) if c]
    assert changed == [23], f"expected a 1-level move to change row 23, got {changed}"


def test_invalidate_marks_all_rows_changed() -> None:
    img = random_image(7)
    renderer = CellRenderer(COLS, ROWS)
    renderer.render(img)
    renderer.invalidate()
    out = renderer.render(img)
    assert out.changed == [True] * ROWS, f"expected every row changed, got {out.changed}"


def test_resize_takes_the_new_shape_and_repaints() -> None:
    renderer = CellRenderer(COLS, ROWS)
    renderer.render(random_image(8))
    renderer.resize(20, 5)
    out = renderer.render(random_image(9, 20, 5))
    assert out.changed == [True] * 5, f"expected all 5 rows changed after resize, {out.changed}"
    assert [ANY_ESCAPE.sub("", r) for r in out.rows] == [HALF_BLOCK * 20] * 5, (
        "expected 5 rows of 20 cells after resize"
    )


def test_wrong_shape_is_rejected_with_the_expected_shape() -> None:
    renderer = CellRenderer(COLS, ROWS)
    with pytest.raises(ValueError, match=r"\(48, 64, 3\)"):
        renderer.render(np.zeros((24, 64, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        renderer.render(np.zeros((48, 64, 3), dtype=np.float32))


def test_non_contiguous_input_is_accepted() -> None:
    img = random_image(10, COLS * 2)[:, ::2]
    assert not img.flags["C_CONTIGUOUS"]
    out = CellRenderer(COLS, ROWS).render(img)
    _, fg, bg = parse_row(out.rows[3])[17]
    assert_close(fg, img[6, 17], "cell (3, 17) foreground from a strided view")
    assert_close(bg, img[7, 17], "cell (3, 17) background from a strided view")


def test_256_colour_mode_uses_only_indexed_codes() -> None:
    img = random_image(11)
    out = CellRenderer(COLS, ROWS, "256").render(img)
    for y, row in enumerate(out.rows):
        for params in sgr_params(row):
            assert "38;2" not in params and "48;2" not in params, (
                f"row {y}: expected only 38;5/48;5 codes in 256 mode, got {params!r}"
            )
            assert params == "0" or re.fullmatch(r"(38;5;\d+)?;?(48;5;\d+)?", params), (
                f"row {y}: expected 38;5;N and/or 48;5;N, got {params!r}"
            )
        for x, (_, fg, bg) in enumerate(parse_row(row)):
            assert isinstance(fg, int) and 16 <= fg <= 255, f"({y},{x}): fg index {fg!r}"
            assert isinstance(bg, int) and 16 <= bg <= 255, f"({y},{x}): bg index {bg!r}"


def test_256_colour_mode_picks_nearest_palette_entries() -> None:
    img = np.zeros((2, 4, 3), dtype=np.uint8)
    img[0] = [(255, 0, 0), (0, 0, 0), (128, 128, 128), (95, 135, 175)]
    img[1] = [(255, 255, 255), (0, 255, 0), (238, 238, 238), (8, 8, 8)]
    cells = parse_row(CellRenderer(4, 1, "256").render(img).rows[0])
    got = [(fg, bg) for _, fg, bg in cells]
    # 196 red, 16 black, 244 grey 128, 67 = cube (1, 2, 3); 231 white, 46 green, 255 grey 238,
    # 232 grey 8.
    assert got == [(196, 231), (16, 46), (244, 255), (67, 232)], f"got palette indices {got}"


def test_256_colour_mode_merges_colours_that_map_to_the_same_entry() -> None:
    img = np.zeros((2, 8, 3), dtype=np.uint8)
    img[0] = [(250 - i, 2 * i, 0) for i in range(8)]  # distinct truecolours, all near red 196
    cells = parse_row(CellRenderer(8, 1, "256").render(img).rows[0])
    assert {fg for _, fg, _ in cells} == {196}, f"expected every fg to be 196, got {cells}"
    params = sgr_params(CellRenderer(8, 1, "256").render(img).rows[0])
    assert len(params) == 2, f"expected one SGR for the whole row plus the reset, got {params}"


def test_rendered_frame_lists_are_fresh_copies() -> None:
    renderer = CellRenderer(COLS, ROWS)
    first = renderer.render(random_image(12))
    kept = list(first.rows)
    renderer.render(random_image(13))
    assert isinstance(first, RenderedFrame)
    assert first.rows == kept, "expected an earlier RenderedFrame not to change under later renders"


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="colour_mode"):
        CellRenderer(COLS, ROWS, "16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        CellRenderer(COLS, ROWS, threshold=256)
    with pytest.raises(ValueError, match="1x1"):
        CellRenderer(0, ROWS)
