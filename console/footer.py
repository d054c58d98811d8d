"""The desk's footer: Textual's own, showing the bindings as the screen presents them
(``keys.presented``: labels in the console's language, only the essential keys when narrow)."""

from __future__ import annotations

from textual.widgets import Footer

from lapak.console.keys import WIDE_FOOTER


def is_narrow(width: int) -> bool:
    """Below ``WIDE_FOOTER`` columns the footer keeps only the keys needed to decide, so
    that help and quit never fall off the edge."""
    return width < WIDE_FOOTER


class DeskFooter(Footer):
    """Recomposed when the terminal crosses ``WIDE_FOOTER`` (the key set changes)."""

    _narrow: bool | None = None

    def on_mount(self) -> None:
        self._narrow = is_narrow(self.app.size.width)

    def on_resize(self) -> None:
        narrow = is_narrow(self.app.size.width)
        if self._narrow is not None and narrow != self._narrow:
            self.call_after_refresh(self.recompose)
        self._narrow = narrow
