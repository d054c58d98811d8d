"""The resolver sees the claimant (issue 15), for real: a server on loopback, a Python booth
with the test card, an officer who escalates, and a ``SupervisorConsole`` (``run_test``) with
grant ``resolve``. After ``t`` the alerts screen draws the booth's frames with the tiles' own
renderer: the cells the widget hands Textual, replayed through an SGR interpreter, show the
booth's test-card colour in its corners; the link's text line stays beside the picture;
finishing with ``d`` takes the picture away."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import wait_for
from resolver_rig import connected_engine, end_as_abandoned, escalate, open_alerts, resolver_console
from test_render import parse_row

from lapak.console.claimant_view import ClaimantPicture
from lapak.console.config import ConsoleConfig
from lapak.console.render import HALF_BLOCK
from lapak.console.video import VideoView
from lapak.media.booth import BoothMediaConfig
from lapak.media.simulator import make_booths
from lapak.media.testcard import BOOTH_COLOURS, identify_booth
from lapak.signaling.client import SignalClient
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

pytestmark = [pytest.mark.integration]

SIZE = (160, 48)


def drawn_picture(video: VideoView) -> np.ndarray | None:
    """The pixels the widget paints, read back from the strips Textual gets (each row one
    raw ANSI string of half-blocks: foreground the top pixel, background the bottom one),
    cropped to the picture (the letterbox bars are black). None while no picture is drawn."""
    rows = []
    for y in range(video.size.height):
        text = "".join(segment.text for segment in video.render_line(y))
        cells = parse_row(text)
        if len(cells) != video.size.width or any(ch != HALF_BLOCK for ch, _, _ in cells):
            return None  # a placeholder line, or not painted yet
        top = [fg for _, fg, _ in cells]
        bottom = [bg for _, _, bg in cells]
        if not all(isinstance(c, tuple) for c in top + bottom):
            return None
        rows += [top, bottom]
    if not rows:
        return None
    pixels = np.array(rows, dtype=np.uint8)
    ys, xs = np.nonzero(pixels.max(axis=2) > 40)
    if not ys.size:
        return None
    return pixels[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


async def test_the_resolver_sees_the_claimants_picture_beside_the_link_line(
    server: SignalServer, keys: KeyRing
) -> None:
    officer = SignalClient(server.url, keys.issue("officer", "ana", "main", desk="d1"))
    (booth,) = make_booths(
        server.url, keys, 1, media=BoothMediaConfig(width=160, height=120, fps=10), seed=7
    )
    supervisor = resolver_console(server, keys, config=ConsoleConfig(colour="truecolor"))
    assert server.hub is not None
    visits = server.hub.state.visits
    try:
        visit = await escalate(officer, booth, visits, "face differs")
        async with supervisor.run_test(size=SIZE) as pilot:
            engine = await connected_engine(supervisor)
            screen = await open_alerts(supervisor, pilot)
            picture = screen.query_one("#resolver-pane", ClaimantPicture)
            video = picture.video
            assert not video.display, "no picture before the escalation is taken"
            assert drawn_picture(video) is None

            await pilot.press("t")
            await wait_for(lambda: visits[visit].taken_by == "sri", "taken by sri")
            await wait_for(lambda: visit in engine.links, "the console links to the booth")
            await wait_for(
                lambda: engine.links[visit].state == "connected", "the link connects", timeout=30
            )
            await wait_for(
                lambda: (
                    (drawn := drawn_picture(video)) is not None
                    and identify_booth(drawn) == booth.index
                ),
                f"the picture shows booth {booth.index}'s test card "
                f"{BOOTH_COLOURS[booth.index]} in its drawn cells",
                timeout=30,
            )
            drawn = drawn_picture(video)
            assert drawn is not None
            # the picture keeps the card's shape (4:3; a cell is one pixel wide, two tall)
            assert abs(drawn.shape[1] / drawn.shape[0] - 160 / 120) < 0.15, drawn.shape
            assert drawn.shape[1] >= 40, "drawn at a size a face can be judged at"
            painted = video.frames_painted
            await wait_for(
                lambda: video.frames_painted > painted + 5, "the picture keeps moving", timeout=20
            )
            line = str(screen.query_one("#resolver-link").render())
            assert "booth-" in line and "connected" in line, line
            link_region = screen.query_one("#resolver-link").region
            assert link_region.x >= video.region.right, "the link's line is beside the picture"

            await end_as_abandoned(supervisor, pilot, visits, visit)
            await wait_for(lambda: supervisor.screen is screen, "back on the alerts")
            await wait_for(lambda: not video.display, "the picture is gone", timeout=10)
            assert video.last_frame is None and drawn_picture(video) is None
            line = str(screen.query_one("#resolver-link").render())
            assert "booth-" not in line, line
    finally:
        await booth.close()
        await officer.close()
