"""A desk's media without a screen: the officer engine driven straight from server messages.

The console does the same through its desk model; tests and ``bench/focus.py`` use this to
exercise the real media path (real signalling, real aiortc) without a terminal. It follows the
desk's snapshot and deltas: active visits get a link, departed ones are dropped, and the
server's ``on_air`` opens the gates. A supervisor session does the same receive-only after
``watch``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from lapak.media.officer import OfficerMedia, OfficerMediaOptions, SupervisorMedia, _MediaEngine
from lapak.media.peer import cancel_tasks
from lapak.signaling.client import SignalClient

log = logging.getLogger("lapak.headless")


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
        self.client = SignalClient(url, token, self._on_message)
        self.supervise = supervise
        self.engine: _MediaEngine = (
            SupervisorMedia(self._send_sdp)
            if supervise is not None
            else OfficerMedia(self._send_sdp, options)
        )
        self.visits: dict[str, dict[str, Any]] = {}
        self.desk: str | None = supervise
        self.on_air: str | None = None
        self.on_air_changed_at: float | None = None
        self.on_focus: Callable[[str | None], None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def officer(self) -> OfficerMedia:
        assert isinstance(self.engine, OfficerMedia)
        return self.engine

    async def start(self) -> None:
        await self.client.connect()
        if self.supervise is not None:
            # The answer to ``watch`` is a snapshot, which arrives through ``_on_message``.
            await self.client.send({"type": "watch", "desk": self.supervise, "id": 1_000_000})

    async def focus(self, visit: str | None) -> dict[str, Any]:
        """The officer's focus key: the request; the gates move on the server's event."""
        return await self.client.request({"type": "focus", "visit": visit})

    async def close(self) -> None:
        await cancel_tasks(self._tasks)
        await self.engine.close()
        await self.client.close()

    async def _send_sdp(self, visit: str, sdp_type: str, sdp: str, offer_id: str) -> None:
        """An offer; a refusal raises ``RequestError`` for the engine (``not_connected``: the
        booth is away)."""
        await self.client.request(
            {"type": "sdp", "visit": visit, "sdp_type": sdp_type, "sdp": sdp, "offer_id": offer_id}
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _apply_state(self, state: dict[str, Any]) -> None:
        self.desk = state.get("desk", self.desk)
        self.visits = {v["visit"]: v for v in state.get("visits", [])}
        self._set_on_air(state.get("on_air"))
        self._sync()

    def _set_on_air(self, visit: str | None) -> None:
        if isinstance(self.engine, OfficerMedia):
            self.engine.set_on_air(visit)
        if visit != self.on_air:
            self.on_air = visit
            self.on_air_changed_at = time.monotonic()
            if self.on_focus is not None:
                self.on_focus(visit)

    def _sync(self) -> None:
        wanted = {
            v
            for v, view in self.visits.items()
            if view.get("state") == "active" and view.get("desk") in (None, self.desk)
        }
        for visit in wanted:
            self.engine.set_booth_present(visit, self.visits[visit].get("booth_present"))
            if self.engine.needs_offer(visit):
                self._spawn(self.engine.ensure(visit))
        for visit in set(self.engine.links) - wanted:
            self._spawn(self.engine.drop(visit))

    async def _on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "snapshot":
            self._apply_state(message.get("state", {}))
        elif kind == "delta":
            self._set_on_air(message.get("on_air"))
            for view in message.get("visits", []):
                self.visits[view["visit"]] = view
            self._sync()
        elif kind == "sdp" and message.get("sdp_type") == "answer":
            await self.engine.on_answer(message["visit"], message["sdp"], message.get("offer_id"))
