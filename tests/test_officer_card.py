"""The officer's card (no camera): each bar position is drawn once and reused, frames paced."""

from __future__ import annotations

import asyncio

import numpy as np

from lapak.media.video_tracks import OfficerCardTrack


async def test_card_frames_sweep_the_bar_and_repeat_each_position_exactly() -> None:
    fps = 50  # 2 * fps = 100 bar positions; 50 fps keeps the test short
    track = OfficerCardTrack("Ana Putri", "Desk 1", fps=fps)
    try:
        async with asyncio.timeout(10):
            frames = [await track.recv() for _ in range(2 * fps + 2)]
    finally:
        track.stop()
    assert all(f.format.name == "yuv420p" and (f.width, f.height) == (320, 240) for f in frames)
    pts = [f.pts for f in frames]
    assert pts == sorted(set(pts)), "pts rises frame by frame"
    pictures = [f.to_ndarray() for f in frames]
    assert not np.array_equal(pictures[0], pictures[1]), "the bar moves"
    assert np.array_equal(pictures[0], pictures[2 * fps]), "a full sweep repeats the picture"
    assert np.array_equal(pictures[1], pictures[2 * fps + 1])
    rgb = frames[0].to_ndarray(format="rgb24")
    bar = rgb[int(240 * 0.8) + 2, : 320 // 5].mean()
    assert bar > 200, "the bar starts at the left, drawn white"
    assert rgb[int(240 * 0.8) + 2, -20:].mean() < 120, "and only there"
    assert len(track._pictures) == 2 * fps, "each position drawn once"
