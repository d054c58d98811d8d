"""The browser kiosk keeps its session across a node kill (issue 14), in real Chromium, with
two real ``lapak signal`` nodes on one real PostgreSQL (tests/pg_nodes.py).

The page is served by node B, which does not own office ``main``: its ``hello`` there is
answered ``moved`` to the owner A (signaling/kiosk/signal.js follows it, keeping its
session). The claimant goes through the start form and the device check, a headless officer
(through B as well, moved to A) seats the visit and puts it on air. A is then killed with
SIGKILL. The page had only A's URL from ``moved`` and A is gone: it goes back to the node
that served it, B, which takes ``main`` over once A's lease runs out and answers the page's
``hello`` with ``resumed: true`` and the session id A gave it; ``booth_state`` has the same
visit, seat and ``on_air`` as before the kill, and the page shows the on-air screen; the
officer's voice and picture (a peer-to-peer link, which a signalling node's death does not
cut) play before the kill and go on after the resume.
What the page said and heard is read from the websocket frames Chromium saw (which node,
``welcome``, ``booth_state``) and from ``window.lapakKiosk.snapshot()``; every frame the
nodes sent is checked against docs/protocol.schema.json. The screenshot of the resumed page
goes to docs/kiosk-resumed.png with ``LAPAK_SCREENSHOTS=1``.
"""

# ruff: noqa: F811  (the cluster fixtures are imported, then named as test arguments)
from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from conftest import wait_for
from pg_nodes import Nodes, pg_cluster, pg_nodes, pg_url  # noqa: F401  (fixtures)
from test_kiosk import (  # Chromium's flags, the tone, the page's helpers
    BASE_FLAGS,
    CHROMIUM,
    DOCS,
    KIOSK_FREQUENCY,
    VIEWPORT,
    FrameLog,
    async_api,
    heard,
    reach_device_check,
    until,
    write_tone,
)

from lapak.media.headless import HeadlessDesk
from lapak.media.officer import OfficerMediaOptions
from lapak.media.tones import OFFICER_FREQUENCY

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

LEASE_S = 5.0  # as tests/test_pg_sessions.py: a late heartbeat under load does not re-plan
SESSION_KEY = "lapak.booth.session"  # signal.js keeps the session id there


class Frames:
    """Every JSON frame a node sent to the page, with the websocket URL it came over."""

    def __init__(self, page: Any) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        page.on("websocket", self._watch)

    def _watch(self, ws: Any) -> None:
        ws.on("framereceived", lambda payload: self._got(ws.url, payload))

    def _got(self, url: str, payload: str | bytes) -> None:
        if isinstance(payload, str):
            self.seen.append((url, json.loads(payload)))

    def last(self, kind: str) -> tuple[str, dict[str, Any]] | None:
        return next(((u, f) for u, f in reversed(self.seen) if f.get("type") == kind), None)


@pytest_asyncio.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Any]:
    """Chromium with a fake camera and the claimant's tone as its microphone."""
    tone = write_tone(tmp_path / "claimant.wav", KIOSK_FREQUENCY)
    pw = await async_api.async_playwright().start()
    try:
        launched = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                *BASE_FLAGS,
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={tone}",
            ],
            timeout=30000,
        )
        try:
            yield launched
        finally:
            await launched.close()
    finally:
        await pw.stop()


def media_flows(snap: dict[str, Any]) -> bool:
    """The page plays the officer's tone and shows a picture over a connected link."""
    media = snap["media"]
    return (
        media.get("pcState") == "connected"
        and heard(media.get("played"), OFFICER_FREQUENCY)
        and media["officerVideo"]["width"] > 0
    )


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


async def test_the_kiosk_resumes_its_session_on_b_after_a_is_killed(
    pg_nodes: Nodes, browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nodes = pg_nodes
    pair = [nodes.add(["main"], LEASE_S), nodes.add(["main"], LEASE_S)]
    # The page is served by one node and talks to the other: each allows both origins.
    origins = ",".join(f"http://127.0.0.1:{n.port}" for n in pair)
    monkeypatch.setenv("LAPAK_ALLOWED_ORIGINS", origins)
    for node in pair:
        await nodes.restart(node)
    await wait_for(nodes.settled, "main and * split over the two nodes", timeout=40)
    owner = nodes.placement()["main"]
    a = next(n for n in pair if n.url == owner)
    b = next(n for n in pair if n is not a)

    context = await browser.new_context(viewport=VIEWPORT, permissions=["camera", "microphone"])
    schema = FrameLog(context)
    officer = HeadlessDesk(
        b.url,
        nodes.keys.issue("officer", "ana", "main", desk="d1"),
        OfficerMediaOptions(audio_in="tone", desk="d1"),
    )
    try:
        page = await context.new_page()
        frames = Frames(page)
        token = nodes.keys.issue("booth", "kiosk-1", "main", booth="kiosk-1")
        await page.goto(f"http://127.0.0.1:{b.port}/booth#token={token}")
        await reach_device_check(page)
        await page.wait_for_selector("#devices-continue:enabled", timeout=20000)
        await page.click("#devices-continue")
        snap = await until(page, lambda s: s["screen"] == "queue", "the queue screen", 20)
        visit = snap["visit"]
        came = frames.last("welcome")
        assert came is not None and came[0] == a.url, f"the page was moved to A: {came}"
        assert any(f.get("type") == "moved" and u.startswith(f"ws://127.0.0.1:{b.port}")
                   for u, f in frames.seen), "B answered the page's hello with moved"  # fmt: skip

        await officer.start()
        await wait_for(lambda: officer.client.url == a.url, "the officer was moved to A")
        await wait_for(lambda: visit in officer.session.model.visits, "the visit is seated", 20)
        await officer.focus(visit)
        snap = await until(
            page, lambda s: s["screen"] == "on-air" and s["onAir"], "the kiosk on air", 20
        )
        snap = await until(page, media_flows, "the officer's voice and picture play", 30)
        session = await page.evaluate(f"sessionStorage.getItem({SESSION_KEY!r})")
        state = frames.last("booth_state")
        assert session and state is not None
        before = {k: state[1].get(k) for k in ("visit", "slot", "on_air", "state", "desk")}
        assert before["visit"] == visit and before["on_air"] is True and before["slot"] is not None

        nodes.kill(a)  # SIGKILL: no hand-over, no goodbye
        frames.seen.clear()
        snap = await until(
            page,
            lambda s: s["resumed"] and s["net"] == "online" and s["reconnects"] >= 1,
            "the kiosk resumed after the kill",
            timeout=90,
        )
        came = frames.last("welcome")
        assert came is not None, "a welcome after the kill"
        url, welcome = came
        assert url == b.url, f"resumed on B, the node that served the page: {url}"
        assert welcome["resumed"] is True and welcome["session"] == session, "the same session"
        assert await page.evaluate(f"sessionStorage.getItem({SESSION_KEY!r})") == session
        assert _port(url) in [n.port for n in nodes.live()] and "main" in b.owned()
        await wait_for(
            lambda: (frames.last("booth_state") or ("", {}))[1].get("visit") == visit,
            "B's booth_state for the visit",
        )
        after = frames.last("booth_state")
        assert after is not None
        assert {k: after[1].get(k) for k in before} == before, "same visit, seat and air"
        snap = await until(page, lambda s: s["screen"] == "on-air" and s["onAir"], "on air on B")
        assert snap["visit"] == visit and snap["visitState"] == before["state"]
        frames_before = snap["media"]["officerVideo"]["frames"]
        await until(
            page,
            lambda s: media_flows(s) and s["media"]["officerVideo"]["frames"] > frames_before + 5,
            "the officer's voice and picture play on after the resume",
            30,
        )
        shots = DOCS if os.environ.get("LAPAK_SCREENSHOTS") == "1" else tmp_path
        await page.screenshot(path=str(shots / "kiosk-resumed.png"))
    finally:
        await officer.close()
        await context.close()
    schema.check()
