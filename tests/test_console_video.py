"""The tiles' video: its shape, the paint timer, one offer per visit (no server; the snapshot
key with live video is in tests/test_console_live.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import av
import numpy as np
import pytest
from conftest import wait_for
from console_fake import FakeDeskSession, snapshot, visit_view

from lapak.console.app import LapakConsole
from lapak.media.desk_model import DeskModel
from lapak.media.desk_session import DeskSession
from lapak.signaling.messages import Snapshot


def circle_frame(width: int = 320, height: int = 240, radius: int = 90) -> av.VideoFrame:
    """A white circle on black, in a 4:3 frame."""
    ys, xs = np.mgrid[0:height, 0:width]
    inside = (xs - width / 2) ** 2 + (ys - height / 2) ** 2 <= radius**2
    rgb = np.where(inside[..., None], 255, 0).astype(np.uint8).repeat(3, axis=2)
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")


def one_visit_snapshot() -> Snapshot:
    return snapshot([visit_view(1, visit="V1", name="Siti", membership_no="1029", started_at=-1)])


def offline(**kwargs: Any) -> LapakConsole:
    """A console with no server: its desk comes from a fake session."""
    return LapakConsole(None, "", media=False, raw_video=False, clock=lambda: 0.0,
                        session_factory=FakeDeskSession, **kwargs)  # fmt: skip


def feed(app: LapakConsole, message: Snapshot) -> None:
    session = app.session
    assert isinstance(session, FakeDeskSession)
    session.load(message)


@pytest.mark.parametrize("size", [(160, 30), (200, 50), (80, 24), (60, 40)])
async def test_video_keeps_its_shape_a_circle_stays_round(size: tuple[int, int]) -> None:
    """Zoomed on a wide terminal a 4:3 picture used to be stretched to ~2.2:1."""
    app = offline()
    async with app.run_test(size=size) as pilot:
        feed(app, one_visit_snapshot())
        await pilot.pause()
        await pilot.press("z")
        await pilot.pause()
        video = app.tile(1).video
        await wait_for(lambda: video.size.width > 0, "the zoomed tile has a size")
        video.show(circle_frame())
        canvas = video.canvas
        assert canvas is not None and canvas.shape[:2] == (2 * video.size.height, video.size.width)
        ys, xs = np.nonzero(canvas.mean(axis=2) > 128)
        width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
        assert abs(width - height) <= max(2, 0.06 * height), f"circle {width}x{height} px"


class FakeLink:
    """A link that always has a new frame (what the paint timer reads)."""

    state = "connected"
    stats = None

    def __init__(self) -> None:
        self.frame = circle_frame()

    def take_frame(self) -> av.VideoFrame:
        return self.frame


class FakeMedia:
    def __init__(self) -> None:
        self.links: dict[str, FakeLink] = {"V1": FakeLink()}

    def attach(self, send_sdp: Any) -> None:
        pass

    def set_booth_present(self, visit: str, present: bool | None) -> None:
        pass

    def needs_offer(self, visit: str) -> bool:
        return visit not in self.links

    async def ensure(self, visit: str) -> None:
        self.links.setdefault(visit, FakeLink())

    async def drop(self, visit: str) -> None:
        self.links.pop(visit, None)

    async def close(self) -> None:
        pass


async def test_paint_timer_never_looks_tiles_up_even_before_they_are_mounted() -> None:
    """The paint timer ran while the tiles were not mounted yet and crashed the app
    (``NoMatches`` for ``#slot-N``); tiles are now held by reference."""
    app = offline()
    app.engine = FakeMedia()  # type: ignore[assignment]  # a stand-in engine with a frame ready
    feed(app, one_visit_snapshot())  # a snapshot before anything is mounted
    tile = app.tile(1)
    assert not tile.is_mounted
    assert tile.video.show(circle_frame()) is False, "painting an unmounted tile is a no-op"
    screen = app.desk_screen
    async with app.run_test(size=(120, 40)):
        screen.paint(app._frame_sources(), 0, 0.0)  # first tick, whatever the mount order
        await wait_for(lambda: tile.video.frames_painted > 3, "the timer paints slot 1")
        assert app.return_code is None and app.is_running


async def test_several_syncs_in_one_turn_ask_the_media_engine_once() -> None:
    """A snapshot and its deltas arriving together each saw the link missing and each
    started an ``ensure``: one offer per visit is the engine's job only if asked once (the
    desk session reconciles the console's engine to its model)."""
    calls: list[str] = []

    class CountingMedia(FakeMedia):
        def __init__(self) -> None:
            self.links = {}

        async def ensure(self, visit: str) -> None:
            calls.append(visit)
            self.links.setdefault(visit, FakeLink())

    engine = CountingMedia()
    session = DeskSession("ws://unused", "", engine=engine)  # type: ignore[arg-type]  # counts ensure calls
    session.desk = "d1"
    model = session.models["d1"] = DeskModel()
    model.load_snapshot(one_visit_snapshot())
    try:
        for _ in range(3):  # no await between them: one loop turn
            session.reconcile()
        await wait_for(lambda: "V1" in engine.links, "the link exists")
        session.reconcile()  # the housekeeping tick: the link is there, nothing to do
        await asyncio.sleep(0)
        assert calls == ["V1"], calls
    finally:
        await session.close()


async def test_the_housekeeping_tick_sets_a_tiles_text_only_when_it_changed() -> None:
    """Each second every tile's lines are set again; unchanged text must not be re-parsed and
    laid out (it cost the console a few percent of a core), changed text must show."""
    app = offline()
    feed(app, one_visit_snapshot())
    async with app.run_test(size=(120, 40)):
        tile = app.tile(1)
        await wait_for(lambda: "Siti" in str(tile.who_line.render()), "the claimant's name")
        before = {line: line.visual for line in (tile.title_line, tile.who_line)}
        for _ in range(3):
            tile.update_info(tile.info)  # what the housekeeping tick does every second
        assert all(line.visual is visual for line, visual in before.items()), (
            "unchanged lines keep their parsed text"
        )
        tile.update_info(replace(tile.info, name="Siti Rahayu"))
        assert tile.who_line.visual is not before[tile.who_line]
        await wait_for(lambda: "Siti Rahayu" in str(tile.who_line.render()), "the new name")
