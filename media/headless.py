"""A desk's media without a screen: the desk session with a media engine and nothing else.

Tests and ``bench/focus.py`` use it to exercise the real media path (real signalling, real
aiortc) without a terminal. ``DeskSession`` does the work (links for active visits, departed
ones dropped, gates on the server's ``on_air``); this adds only the officer's engine by
default, a supervisor's receive-only one with ``supervise``, and ``on_focus`` for the bench.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lapak.media.desk_session import DeskChange, DeskSession, Engine
from lapak.media.officer import OfficerMedia, OfficerMediaOptions, SupervisorMedia
from lapak.signaling.client import SignalClient
from lapak.signaling.messages import Ack


class HeadlessDesk:
    """Follows one desk and keeps a media engine's links matching its active visits."""

    def __init__(
        self,
        url: str,
        token: str,
        options: OfficerMediaOptions | None = None,
        *,
        supervise: str | None = None,
    ) -> None:
        self.engine: Engine = (
            SupervisorMedia() if supervise is not None else OfficerMedia(None, options)
        )
        self.session = DeskSession(
            url,
            token,
            engine=self.engine,
            watch=supervise,
            read_only=supervise is not None,
            on_change=self._changed,
        )
        self.on_air: str | None = None
        self.on_air_changed_at: float | None = None
        self.on_focus: Callable[[str | None], None] | None = None
        """Called when the officer's gates move (the server's ``on_air`` changed)."""

    @property
    def client(self) -> SignalClient:
        return self.session.client

    @property
    def officer(self) -> OfficerMedia:
        assert isinstance(self.engine, OfficerMedia)
        return self.engine

    async def start(self) -> None:
        await self.session.start()

    async def focus(self, visit: str | None) -> Ack:
        """The officer's focus key: the request; the gates move on the server's delta."""
        return await self.session.focus(visit)

    async def close(self) -> None:
        await self.session.close()

    def _changed(self, change: DeskChange) -> None:
        on_air = self.session.model.on_air
        if change.desk and on_air != self.on_air:
            self.on_air = on_air
            self.on_air_changed_at = time.monotonic()
            if self.on_focus is not None:
                self.on_focus(on_air)
