"""The resolver's view of a taken escalation's booth: the claimant's picture beside the line
about the link (state, frames, how loud the claimant is heard).

A resolver deciding "face does not match the photo" must see the face, so the picture is
drawn exactly as the officer's tiles draw theirs: the same ``VideoView`` (half-block cells
from ``CellRenderer``, letterboxed) and, when the terminal has a graphics protocol, the same
``ZoomImage`` (real pixels over the covered view; the console has one, shared with the desk
screen's zoom, which is cleared while this screen is on top). No second frame-to-cells path.

The widget only shows: the alerts screen says which link it follows (``follow``) and calls
``paint`` from its timer; the newest frame is taken once, like a tile's.
"""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from lapak.console.desk_screen import FrameSource
from lapak.console.i18n import t
from lapak.console.render import ColourMode
from lapak.console.video import VideoView
from lapak.console.zoom_image import ZoomImage


def placeholder(state: str, booth_away: bool) -> str | None:
    """What the picture says instead of the claimant, or None to show the frames."""
    if booth_away:
        return t("resolver.picture_away")
    if state in ("reconnecting", "failed"):
        return t(f"tile.{state}")
    if state != "connected":
        return t("tile.connecting")
    return None


class ClaimantPicture(Horizontal):
    """The booth's picture (hidden while no link is followed) and the link's text line."""

    def __init__(
        self,
        colour_mode: ColourMode = "truecolor",
        *,
        raw: bool = True,
        zoom_image: ZoomImage | None = None,
    ) -> None:
        super().__init__(id="resolver-pane")
        self.video = VideoView(colour_mode, raw=raw, id="claimant-video")
        self.line = Static(t("resolver.none"), id="resolver-link")
        self.zoom_image = zoom_image or ZoomImage("blocks", (10, 20))
        self.visit: str | None = None
        """The visit whose booth is shown, or None (no picture)."""

    def compose(self) -> ComposeResult:
        yield self.video
        yield self.line

    def on_mount(self) -> None:
        self.video.paused_text = t("tile.paused")
        self.video.display = False

    def follow(self, visit: str | None, state: str = "", booth_away: bool = False) -> None:
        """Show this visit's booth (None: nobody's). A link that is not connected says why
        instead of keeping an old picture."""
        if visit != self.visit:
            self.uncover()
            self.video.clear(t("tile.connecting"))
            self.visit = visit
        self.video.display = visit is not None
        if visit is None:
            return
        wanted = placeholder(state, booth_away)
        video = self.video
        if wanted is not None and not (video.placeholder == wanted and video.last_frame is None):
            self.uncover()
            video.clear(wanted)

    def say(self, text: str) -> None:
        self.line.update(text)

    def paint(self, link: FrameSource | None, min_gap: float) -> bool:
        """The link's newest frame, if one came, at most once per ``min_gap``; True when it
        was handed to the picture."""
        video = self.video
        if link is None or self.visit is None or not video.display:
            return False
        now = time.monotonic()
        if now - video.painted_at < min_gap:
            return False
        frame = link.take_frame()
        if frame is None:
            return False
        video.painted_at = now
        if self.zoom_image.enabled:
            return self.zoom_image.draw(video, frame)
        return video.show(frame)

    def uncover(self) -> None:
        """Take real pixels away (a dialog opens, the screen closes, the link changes): an
        image would stay above whatever Textual draws next."""
        if self.zoom_image.video is self.video:
            self.zoom_image.clear()

    def pause(self, paused: bool) -> None:
        """Raw rows cannot be composited under an overlay: paused while one is open."""
        if paused:
            self.uncover()
        self.video.paused = paused
