"""The browser booth kiosk in real Chromium, against the real server and a real officer console.

Debian's Chromium (``/usr/bin/chromium``) driven by Playwright for Python, with fake devices
(camera and microphone granted per browser context, as a kiosk's profile would have them):
Chromium's fake camera and a tone WAV generated here as its microphone, so the claimant speaks
at ``KIOSK_FREQUENCY``; the officer's console speaks at ``OFFICER_FREQUENCY``. Media is real
WebRTC between Chromium and aiortc on loopback. Without Chromium the module skips and says how
to enable it. The page's ``window.lapakKiosk.snapshot()`` reports what it shows and plays
(screen, visit, WebAudio analysers on the officer's voice before and after the on-air gain,
the officer's video element). The page's CSP forbids string evaluation, so waits poll from
Python rather than with ``wait_for_function``.

Screenshots of every screen are taken as the tests go; they are written to ``docs/`` when
``LAPAK_SCREENSHOTS=1`` (to refresh the README's pictures), else to the test's temp folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import warnings
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import pytest_asyncio

from lapak.signaling.client import SignalClient
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

CHROMIUM = Path(os.environ.get("LAPAK_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    _why = (
        f"kiosk browser tests skipped: no Chromium at {CHROMIUM}. Install it with "
        "`apt-get install -y chromium` (as root; .ci/run does this) or point LAPAK_CHROMIUM at a "
        "Chromium binary."
    )
    warnings.warn(_why, stacklevel=1)  # shown in the summary even without -rs
    pytest.skip(_why, allow_module_level=True)
async_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is in the dev extra: pip install -e '.[dev]'"
)

from lapak.console.app import LapakConsole  # noqa: E402
from lapak.media.headless import HeadlessDesk  # noqa: E402
from lapak.media.tones import OFFICER_FREQUENCY, ToneSource  # noqa: E402

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(150)]

KIOSK_FREQUENCY = 650.0
DOCS = Path(__file__).resolve().parent.parent / "docs"
VIEWPORT = {"width": 1280, "height": 720}
BASE_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--allow-loopback-in-peer-connection",
]
TONE_DB = -60.0
"""A tone counts as heard when the analyser's spectrum near it is above this (dBFS)."""
SILENT_DB = -80.0


def write_tone(path: Path, freq: float, seconds: float = 2.0, rate: int = 48000) -> Path:
    """A 16-bit mono WAV of a whole number of cycles, so Chromium's loop has no click."""
    t = np.arange(int(rate * seconds)) / rate
    samples = (0.5 * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def server_validators() -> dict[str, Any]:
    """docs/protocol.schema.json, one validator per server message ``type`` (the branches of
    ``$defs/ServerMessage``), so a failure says what is wrong rather than "no branch fits"."""
    document = json.loads((DOCS / "protocol.schema.json").read_text())
    validators = {}
    for branch in document["$defs"]["ServerMessage"]["anyOf"]:
        name = branch["$ref"].rsplit("/", 1)[1]
        kind = document["$defs"][name]["properties"]["type"]["enum"][0]
        validators[kind] = jsonschema.Draft202012Validator({"$defs": document["$defs"], **branch})
    return validators


SERVER_SCHEMA = server_validators()


class FrameLog:
    """Every websocket frame the server sends to the pages of one browser context, to check
    against docs/protocol.schema.json: the page is a client written from the docs alone."""

    def __init__(self, context: Any) -> None:
        self.frames: list[str | bytes] = []
        context.on("page", self._watch)

    def _watch(self, page: Any) -> None:
        page.on("websocket", lambda ws: ws.on("framereceived", self._received))

    def _received(self, payload: str | bytes) -> None:
        self.frames.append(payload)

    def types(self) -> set[str]:
        return {json.loads(f).get("type") for f in self.frames if isinstance(f, str)}

    def check(self) -> None:
        """Fail naming every frame that the schema refuses."""
        problems = []
        for payload in self.frames:
            if isinstance(payload, bytes):
                problems.append(f"a binary frame: {payload[:120]!r}")
                continue
            frame = json.loads(payload)
            validator = SERVER_SCHEMA.get(frame.get("type") if isinstance(frame, dict) else None)
            if validator is None:
                problems.append(f"{payload[:300]} -> not a server message type")
                continue
            errors = sorted(
                f"{'/'.join(map(str, e.absolute_path)) or '(frame)'}: {e.message}"
                for e in validator.iter_errors(frame)
            )
            if errors:
                problems.append(f"{payload[:300]} -> {errors}")
        assert not problems, (
            "frames the server sent to the page break docs/protocol.schema.json:\n"
            + "\n".join(problems)
        )


@dataclass
class Env:
    keys: KeyRing
    server: SignalServer
    browser: Any
    bare: Any
    shots: Path
    tmp: Path

    @property
    def base(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    def booth_token(self, booth: str, **kwargs: Any) -> str:
        return self.keys.issue("booth", booth, "main", booth=booth, **kwargs)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp = tmp_path_factory.mktemp("kiosk")
    keys = KeyRing.generate()
    server = SignalServer(tmp / "data", keys, host="127.0.0.1", port=0)
    await server.start()
    tone = write_tone(tmp / "claimant.wav", KIOSK_FREQUENCY)
    shots = DOCS if os.environ.get("LAPAK_SCREENSHOTS") == "1" else tmp
    pw = await async_api.async_playwright().start()
    browser = bare = None
    try:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                *BASE_FLAGS,
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={tone}",
            ],
            timeout=30000,
        )
        # No fake devices: this machine has no camera, like a kiosk with its cable out.
        bare = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=BASE_FLAGS, timeout=30000
        )
        yield Env(keys, server, browser, bare, shots, tmp)
    finally:
        for b in (browser, bare):
            if b is not None:
                await b.close()
        await pw.stop()
        await server.close()


@pytest_asyncio.fixture(loop_scope="module")
async def context(env: Env) -> AsyncIterator[Any]:
    """A fresh browser profile per test (its own localStorage), always closed."""
    ctx = await env.browser.new_context(viewport=VIEWPORT, permissions=["camera", "microphone"])
    ctx.lapak_frames = FrameLog(ctx)
    try:
        yield ctx
    finally:
        await ctx.close()
    ctx.lapak_frames.check()


async def snapshot(page: Any, *tones: float) -> dict[str, Any]:
    """The page's state; ``tones``: more frequencies to listen for (e.g. a supervisor's)."""
    snap = await page.evaluate(
        "(fs) => window.lapakKiosk ? window.lapakKiosk.snapshot(...fs) : null",
        [KIOSK_FREQUENCY, OFFICER_FREQUENCY, *tones],
    )
    return snap or {"screen": "loading", "media": {}}


async def until(
    page: Any,
    check: Callable[[dict[str, Any]], bool],
    what: str,
    timeout: float = 15.0,
    tones: tuple[float, ...] = (),
) -> dict[str, Any]:
    """Poll the page's snapshot until ``check`` holds; fail with the last snapshot."""
    deadline = time.monotonic() + timeout
    while True:
        snap = await snapshot(page, *tones)
        if snap["media"] and check(snap):
            return snap
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for: {what}; got {snap}")
        await asyncio.sleep(0.1)


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for: {what}")
        await asyncio.sleep(0.1)


async def shot(env: Env, page: Any, name: str) -> None:
    await page.screenshot(path=str(env.shots / f"kiosk-{name}.png"))


def heard(tone: dict[str, Any] | None, freq: float) -> bool:
    """The analyser's strongest frequency is the tone's and it is loud enough."""
    return tone is not None and tone["db"] > TONE_DB and abs(tone["peakHz"] - freq) < 30


def silent(tone: dict[str, Any] | None) -> bool:
    return tone is None or tone["db"] < SILENT_DB


async def open_kiosk(context: Any, env: Env, token: str, extra: str = "") -> Any:
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.lapak_errors = errors
    await page.goto(f"{env.base}/booth#token={token}{extra}")
    return page


# -- enrolment ------------------------------------------------------------------------------------


async def test_token_moves_to_storage_and_leaves_the_address(env: Env, context: Any) -> None:
    token = env.booth_token("booth-11")
    logged: list[str] = []
    page = await context.new_page()
    page.on("console", lambda m: logged.append(m.text))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    await page.goto(f"{env.base}/booth#token={token}")
    await page.wait_for_selector("body[data-screen=start]", timeout=10000)
    assert page.url == f"{env.base}/booth", "the token is removed from the address bar"
    stored = await page.evaluate("localStorage.getItem('lapak.booth.token')")
    assert stored == token
    assert not any(token in url for url in requests), "the token never goes into a URL"
    assert not any(token in text for text in logged), "the token is never logged"
    assert await page.locator("#claim-type option").all_inner_texts() == ["JHT", "JKK"]
    await shot(env, page, "start")

    # A reload (no fragment now) still finds the token; the English switch works.
    await page.reload()
    await page.wait_for_selector("body[data-screen=start]", timeout=10000)
    await page.click("#lang")
    await page.wait_for_selector("html[lang=en]", timeout=5000)
    assert await page.inner_text("[data-for=start] h1") == "Welcome"


@pytest.mark.parametrize(
    ("case", "reason"),
    [("missing", "missing"), ("expired", "expired"), ("forged", "invalid"), ("garbage", "invalid")],
)
async def test_token_problems_have_their_own_screen(
    env: Env, context: Any, case: str, reason: str
) -> None:
    if case == "missing":
        page = await context.new_page()
        await page.goto(f"{env.base}/booth")
    else:
        token = {
            "expired": env.booth_token("booth-12", ttl=60, now=time.time() - 3600),
            "forged": KeyRing.generate().issue("booth", "booth-12", "main", booth="booth-12"),
            "garbage": "not-a-token",
        }[case]
        page = await open_kiosk(context, env, token)
    await page.wait_for_selector("body[data-screen=token]", timeout=10000)
    title = await page.inner_text("#token-title")
    expected = {
        "missing": "Bilik ini belum didaftarkan",
        "expired": "Izin bilik ini sudah kedaluwarsa",
        "invalid": "Izin bilik ini tidak berlaku",
    }[reason]
    assert title == expected, f"{case} token: expected {expected!r}, page says {title!r}"
    await asyncio.sleep(1.0)  # a refused token is final: no reconnect loop
    assert (await snapshot(page))["reconnects"] == 0
    if case != "garbage":  # the same screen as a forged token
        await shot(env, page, f"token-{reason}")


# -- device errors --------------------------------------------------------------------------------


async def reach_device_check(page: Any) -> None:
    await page.wait_for_selector("body[data-screen=start]", timeout=10000)
    await page.fill("#name", "Siti Aminah")
    await page.fill("#membership", "0012345678")
    await page.click("#start-submit")


async def test_no_camera_and_permission_denied_screens(env: Env) -> None:
    """Chromium without fake devices on a machine with no camera, and a profile that was not
    granted the camera: precise screens with a retry, never a blank page."""
    for browser, permissions, error, title in [
        (env.bare, ["camera", "microphone"], "no_camera", "Kamera tidak ditemukan"),
        (env.browser, [], "denied", "Izin kamera ditolak"),
    ]:
        ctx = await browser.new_context(viewport=VIEWPORT, permissions=permissions)
        frames = FrameLog(ctx)
        try:
            page = await open_kiosk(ctx, env, env.booth_token("booth-13"))
            await reach_device_check(page)
            await page.wait_for_selector(f"[data-for=devices][data-error={error}]", timeout=10000)
            assert await page.inner_text("#devices-title") == title
            assert await page.is_visible("#devices-retry"), "a retry, never a dead end"
            assert await page.is_disabled("#devices-continue")
            await shot(env, page, f"devices-{error.replace('_', '-')}")
            # Retry asks again and lands on the same precise screen (still no camera).
            await page.click("#devices-retry")
            await page.wait_for_selector(f"[data-for=devices][data-error={error}]", timeout=10000)
        finally:
            await ctx.close()
        frames.check()


async def test_busy_camera_then_retry_succeeds(env: Env, context: Any) -> None:
    """Another app holding the camera cannot exist here: the first getUserMedia call fails as
    Chromium reports it (NotReadableError); the retry goes to the real (fake-device) camera."""
    await context.add_init_script(
        "(() => { const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);"
        " let first = true; navigator.mediaDevices.getUserMedia = (c) => { if (first) {"
        " first = false; return Promise.reject(new DOMException('Could not start video source',"
        " 'NotReadableError')); } return real(c); }; })();"
    )
    page = await open_kiosk(context, env, env.booth_token("booth-14"))
    await reach_device_check(page)
    await page.wait_for_selector("[data-for=devices][data-error=busy]", timeout=10000)
    assert await page.inner_text("#devices-title") == "Kamera sedang dipakai"
    await shot(env, page, "devices-busy")
    await page.click("#devices-retry")
    await page.wait_for_selector("[data-for=devices][data-error=ok]", timeout=10000)
    await page.wait_for_selector("#devices-continue:enabled", timeout=10000)


# -- the whole visit ------------------------------------------------------------------------------


async def test_kiosk_visit_end_to_end(env: Env, context: Any) -> None:
    server = env.server
    assert server.hub is not None
    hub = server.hub

    # Another booth is already queued (no desk is open yet): the kiosk will be second.
    other = SignalClient(server.url, env.booth_token("booth-01"), reconnect=False)
    await other.connect()
    first = await other.request(
        {"type": "start_visit", "claimant": {"name": "Budi", "membership_no": "1"}}
    )

    page = await open_kiosk(context, env, env.booth_token("booth-07"), "&audio=raw")
    app: LapakConsole | None = None
    try:
        await reach_device_check(page)
        snap = await until(
            page,
            lambda s: s["screen"] == "devices" and heard(s["media"]["micTone"], KIOSK_FREQUENCY),
            "the device check hears the claimant's tone in the microphone meter",
        )
        await page.wait_for_selector("#devices-continue:enabled", timeout=10000)
        await shot(env, page, "devices")

        await page.click("#devices-continue")
        snap = await until(page, lambda s: s["screen"] == "queue", "the queue screen")
        visit = snap["visit"]
        assert visit and hub.state.visits[visit].state == "queued"
        await page.wait_for_selector("#queue-position:text-is('2')", timeout=10000)
        # The queue moves live: the booth ahead leaves.
        await other.request({"type": "end_visit", "visit": first.visit, "outcome": "abandoned"})
        await page.wait_for_selector("#queue-position:text-is('1')", timeout=10000)
        await shot(env, page, "queue")

        # The officer arrives: the desk opens and takes the kiosk's visit.
        app = LapakConsole(
            server.url,
            env.keys.issue("officer", "ana", "main", desk="d1"),
            voice=ToneSource(OFFICER_FREQUENCY),
        )
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_until(lambda: visit in app.model.visits, "the visit reaches the desk")
            assert hub.state.visits[visit].desk == "d1"
            await wait_until(lambda: visit in app.media.links, "the console opens a media link")
            link = app.media.links[visit]
            link.audio.watch(KIOSK_FREQUENCY)
            await until(
                page,
                lambda s: s["screen"] == "waiting" and s["media"]["pcState"] == "connected",
                "the waiting screen with the media link up",
                timeout=20,
            )
            await wait_until(
                lambda: app.media.links[visit].frames > 10, "the console receives kiosk video"
            )
            slot = app.model.visits[visit].slot
            assert slot is not None, "a seated visit has a slot"
            await wait_until(
                lambda: app.tile(slot).video.last_rgb is not None,
                "the tile paints the kiosk's camera",
            )
            rgb = app.tile(slot).video.last_rgb
            assert rgb is not None and float(np.std(rgb)) > 5, "the tile shows a picture"
            assert (await snapshot(page))["media"]["videoTier"] == "thumbnail"
            await wait_until(
                lambda: 0 < (link.frame_size or (0, 0))[0] <= 160,
                "off air the kiosk sends a thumbnail, 160 wide at most (Chromium may send less "
                "under load)",
            )
            await wait_until(
                lambda: app.media.links[visit].audio.last_heard.get(KIOSK_FREQUENCY) is not None,
                "the console hears the claimant's tone",
            )
            snap = await snapshot(page)
            assert silent(snap["media"]["played"]), f"off air the page plays nothing: {snap}"
            assert await page.inner_text("[data-for=waiting] .next-ready") == "Siapkan e-KTP Anda."
            await shot(env, page, "waiting")

            # On air: the page plays the officer's voice and shows the officer's picture.
            await pilot.press(str(slot))
            snap = await until(
                page,
                lambda s: (
                    s["screen"] == "on-air" and heard(s["media"]["played"], OFFICER_FREQUENCY)
                ),
                "the on-air page plays the officer's tone",
            )
            frames = snap["media"]["officerVideo"]["frames"]
            await until(
                page,
                lambda s: (
                    s["media"]["officerVideo"]["width"] > 0
                    and s["media"]["officerVideo"]["frames"] > frames + 5
                ),
                "the officer's video plays on the page",
            )
            assert (await snapshot(page))["media"]["videoTier"] == "full"
            await wait_until(
                lambda: (link.frame_size or (0, 0))[0] > 160,
                "on air the kiosk sends more than a thumbnail (its camera's 640 unless Chromium "
                "adapts to load)",
            )
            assert await page.is_visible("#officer-video")

            # An approval appears on the page, and the prompt moves on.
            await pilot.press("a")
            await page.wait_for_selector(
                "[data-for=on-air] li[data-step=identity][data-status=approved]", timeout=10000
            )
            assert "kartu kepesertaan" in (await page.inner_text("#prompt-text")).lower()
            await shot(env, page, "on-air")

            # Focus away: silence and the waiting screen.
            await app.session.focus(None)
            snap = await until(
                page,
                lambda s: (
                    s["screen"] == "waiting"
                    and silent(s["media"]["played"])
                    and silent(s["media"]["received"])
                ),
                "off air: the waiting screen, and the officer's voice gated off",
            )

            # A supervisor watching the desk gets the kiosk's camera and voice, receive-only.
            sup = HeadlessDesk(
                server.url, env.keys.issue("supervisor", "sri", "main"), supervise="d1"
            )
            await sup.start()
            try:
                await wait_until(
                    lambda: visit in sup.engine.links and sup.engine.links[visit].frames > 3,
                    "the supervisor receives the kiosk's video",
                    timeout=20,
                )
                sup_link = sup.engine.links[visit]
                sup_link.audio.watch(KIOSK_FREQUENCY)
                await wait_until(
                    lambda: sup_link.audio.last_heard.get(KIOSK_FREQUENCY) is not None,
                    "the supervisor hears the claimant's tone",
                )
                snap = await snapshot(page)
                assert snap["media"]["supervisors"] == 1, f"one supervisor peer: {snap}"
                assert snap["screen"] == "waiting" and silent(snap["media"]["played"])
            finally:
                await sup.close()

            # A network drop: the page reconnects and resumes its session.
            for conn_id in hub.booth_connections("main", "booth-07"):
                peer = server._peers[conn_id]
                peer.ws.transport.abort()
            snap = await until(
                page,
                lambda s: s["reconnects"] >= 1 and s["resumed"] and s["net"] == "online",
                "the page reconnects with back-off and resumes its session",
            )
            assert snap["visit"] == visit and hub.state.visits[visit].state == "active"

            # A reload resumes the visit, and the media link is rebuilt.
            answered = snap["media"]["answered"]
            await page.reload()
            snap = await until(
                page,
                lambda s: (
                    s["visit"] == visit
                    and s["resumed"]
                    and s["screen"] == "waiting"
                    and s["media"]["pcState"] == "connected"
                ),
                "the reloaded page resumes the visit with a new media link",
                timeout=30,
            )
            assert snap["media"]["answered"] >= 1 and answered >= 1
            frames_before = app.media.links[visit].frames
            await wait_until(
                lambda: (
                    visit in app.media.links and app.media.links[visit].frames > frames_before + 10
                ),
                "kiosk video flows to the console again after the reload",
                timeout=20,
            )

            # The officer approves the remaining steps and finishes: outcome and reference
            # number on the page (completed needs every step approved).
            for step in range(1, len(hub.state.visits[visit].steps)):
                await app.session.decide(visit, step, "approve")
            await app.session.end_visit(visit, "completed")
            await page.wait_for_selector("body[data-screen=finished]", timeout=10000)
            assert await page.inner_text("#reference") == visit
            assert "diterima" in await page.inner_text("#outcome-title")
            await shot(env, page, "finished")
        assert page.lapak_errors == [], f"page errors: {page.lapak_errors}"
        # Everything the page was sent matches the published schema.
        frames = context.lapak_frames
        seen = frames.types()
        want = {"welcome", "ack", "booth_state", "sdp"}
        assert want <= seen, f"the page received {sorted(seen)}; expected at least {sorted(want)}"
        frames.check()
    finally:
        await other.close()
        await page.close()


async def test_kiosk_escalation_says_a_supervisor_will_join(env: Env, context: Any) -> None:
    """The officer escalates: the kiosk keeps the visit open and says a supervisor will join;
    a supervisor with grant ``resolve`` takes it: the kiosk says one is with the claimant;
    they end it: the finished screen. Office ``esc`` keeps this visit off the other tests'
    desks; no media is involved (signalling clients for officer and supervisor)."""
    hub = env.server.hub
    assert hub is not None
    url = env.server.url
    officer = SignalClient(url, env.keys.issue("officer", "ana", "esc", desk="e1"), reconnect=False)
    resolver = SignalClient(
        url, env.keys.issue("supervisor", "sri", "esc", grants=["resolve"]), reconnect=False
    )
    await officer.connect()
    await resolver.connect()
    token = env.keys.issue("booth", "booth-11", "esc", booth="booth-11")
    page = await open_kiosk(context, env, token)
    try:
        await reach_device_check(page)
        await page.wait_for_selector("#devices-continue:enabled", timeout=10000)
        await page.click("#devices-continue")
        snap = await until(page, lambda s: s["screen"] == "waiting", "seated at desk e1")
        visit = snap["visit"]
        assert hub.state.visits[visit].desk == "e1"

        end = {"type": "end_visit", "visit": visit, "outcome": "escalated", "note": "check"}
        await officer.request(end)
        snap = await until(page, lambda s: s["screen"] == "escalated", "the escalated screen")
        assert snap["visitState"] == "escalated" and hub.state.visits[visit].desk is None
        title = "Seorang supervisor akan bergabung dengan Anda"
        await page.wait_for_selector(f"#escalated-title:text-is('{title}')", timeout=10000)
        assert "diteruskan ke supervisor" in await page.inner_text("#escalated-body")
        await shot(env, page, "escalated")

        await resolver.request({"type": "take_escalation", "visit": visit})
        present = "Supervisor sedang bersama Anda"
        await page.wait_for_selector(f"#escalated-title:text-is('{present}')", timeout=10000)
        await page.click("#lang")  # English too
        await page.wait_for_selector("#escalated-title:text-is('A supervisor is with you')")

        await resolver.request({"type": "end_visit", "visit": visit, "outcome": "abandoned"})
        await page.wait_for_selector("body[data-screen=finished]", timeout=10000)
        assert page.lapak_errors == [], f"page errors: {page.lapak_errors}"
        assert "booth_state" in context.lapak_frames.types()
    finally:
        await officer.close()
        await resolver.close()


async def test_kiosk_says_the_visit_is_recorded_from_routing_and_logs_it(
    env: Env, context: Any
) -> None:
    """Issue 15: with recording on, the page shows the notice once the visit is routed (before
    the officer can speak) and the server logs that it was shown, once."""
    from lapak.signaling.events import RecordingNoticeShown
    from lapak.signaling.logformat import read_events

    hub = env.server.hub
    assert hub is not None
    hub.projection.recording = True
    officer = SignalClient(
        env.server.url, env.keys.issue("officer", "rec-o", "main", desk="d9"), reconnect=False
    )
    page = await open_kiosk(context, env, env.booth_token("booth-09"))
    try:
        await officer.connect()
        await reach_device_check(page)
        await page.wait_for_selector("#devices-continue:enabled", timeout=10000)
        await page.click("#devices-continue")
        snap = await until(page, lambda s: bool(s["visit"]), "the visit starts")
        visit = snap["visit"]
        await wait_until(lambda: hub.state.visits[visit].desk is not None, "the visit is routed")
        await page.wait_for_selector("#recording-notice:visible", timeout=10000)
        assert await page.inner_text("#recording-notice") == "Kunjungan ini direkam."

        def logged() -> list[Any]:
            log = env.server.data_dir / "events.sqlite3"
            return [
                e
                for e in read_events(log)
                if isinstance(e, RecordingNoticeShown) and e.visit == visit
            ]

        await wait_until(lambda: bool(logged()), "the server logs the notice")
        await page.click("#lang")  # English too; rendering again logs nothing more
        await page.wait_for_selector("#recording-notice:text-is('This visit is recorded.')")
        assert [e.by for e in logged()] == ["booth-09"], "logged once, by the booth"
    finally:
        hub.projection.recording = False
        await officer.close()
        await page.close()
