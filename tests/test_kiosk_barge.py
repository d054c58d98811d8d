"""The browser booth hears a barging supervisor, in real Chromium (the fixtures and helpers of
tests/test_kiosk.py: real server, fake devices, WebRTC between Chromium and aiortc).

The officer speaks 1200 Hz, the supervisor 1600 Hz (``SUPERVISOR_FREQUENCY``). The page's
analysers sit before and after the barge gain (``bargeReceived``, ``bargePlayed``); the
officer's voice after its own on-air gain (``played``) is the control that the page's audio
is running while the supervisor must be silent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from conftest import wait_for
from test_kiosk import (  # the kiosk fixtures: one server and browser for this module
    Env,
    context,
    env,
    heard,
    open_kiosk,
    reach_device_check,
    silent,
)
from test_kiosk import snapshot as kiosk_snapshot
from test_kiosk import until as kiosk_until
from voice_peer import VoicePeer

from lapak.media.desk_session import DeskSession
from lapak.media.headless import HeadlessDesk
from lapak.media.officer import OfficerMediaOptions, SupervisorMedia
from lapak.media.supervisor_voice import SUPERVISOR_FREQUENCY
from lapak.media.tones import OFFICER_FREQUENCY, tone_present

__all__ = ["context", "env"]  # fixtures used by name

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(150),
    pytest.mark.integration,
]


async def snapshot(page: Any) -> dict[str, Any]:
    """The page's state, listening for the supervisor's tone too."""
    return await kiosk_snapshot(page, SUPERVISOR_FREQUENCY)


async def until(
    page: Any, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 20.0
) -> dict[str, Any]:
    return await kiosk_until(page, check, what, timeout, tones=(SUPERVISOR_FREQUENCY,))


async def test_the_kiosk_plays_a_barging_supervisor_and_stops_on_monitor(
    env: Env, context: Any, tmp_path: Any
) -> None:
    server = env.server
    page = await open_kiosk(context, env, env.booth_token("booth-21"), "&audio=raw")
    officer = HeadlessDesk(
        server.url,
        env.keys.issue("officer", "ana", "main", desk="d1"),
        OfficerMediaOptions(audio_in="tone", audio_out=str(tmp_path / "officer.wav"), desk="d1"),
    )
    engine = SupervisorMedia(audio_in="tone")
    supervisor = DeskSession(
        server.url,
        env.keys.issue("supervisor", "sri", "main", grants=["barge"]),
        engine=engine,
        watch="d1",
        read_only=True,
    )
    try:
        await reach_device_check(page)
        await page.wait_for_selector("#devices-continue:enabled", timeout=10000)
        await page.click("#devices-continue")
        snap = await until(page, lambda s: bool(s["visit"]), "the visit starts")
        visit = snap["visit"]
        await officer.start()
        await until(page, lambda s: s["media"]["pcState"] == "connected", "the officer's link")
        await officer.focus(visit)
        await until(
            page,
            lambda s: s["screen"] == "on-air" and heard(s["media"]["played"], OFFICER_FREQUENCY),
            "on air, the page plays the officer",
        )
        await supervisor.start()
        await wait_for(
            lambda: visit in engine.links and engine.links[visit].frames > 3,
            "the supervisor receives the kiosk's video",
            timeout=20,
        )
        snap = await snapshot(page)
        assert not snap["media"]["barging"] and silent(snap["media"]["bargePlayed"])

        await supervisor.supervise("d1", "barge")
        snap = await until(
            page,
            lambda s: (
                s["media"]["barging"] and heard(s["media"]["bargePlayed"], SUPERVISOR_FREQUENCY)
            ),
            "the kiosk plays the barging supervisor's tone",
        )
        assert heard(snap["media"]["played"], OFFICER_FREQUENCY), "and still the officer"
        await wait_for(
            lambda: officer.officer.supervisors.heard.heard_within(SUPERVISOR_FREQUENCY, 0.3),
            "the officer hears the barging supervisor too",
        )

        await supervisor.supervise("d1", "monitor")
        await until(
            page,
            lambda s: not s["media"]["barging"] and silent(s["media"]["bargePlayed"]),
            "back to monitor: the kiosk stops playing the supervisor",
        )
        for _ in range(15):  # a bounded window: 1.5 s of the page's audio, read every 100 ms
            snap = await snapshot(page)
            assert silent(snap["media"]["bargePlayed"]), f"the supervisor is heard: {snap}"
            assert heard(snap["media"]["played"], OFFICER_FREQUENCY), f"control: {snap}"
            await asyncio.sleep(0.1)
        assert not page.lapak_errors, page.lapak_errors
    finally:
        await supervisor.close()
        await officer.close()
        await page.close()


OTHER_FREQUENCY = 2000.0
"""A monitor-only supervisor's hand-crafted voice: never to be heard at the booth."""


async def test_the_kiosk_plays_only_the_barge_peer_not_a_hand_crafted_monitor_voice(
    env: Env, context: Any
) -> None:
    """``booth_state.barge_peer`` names the barging supervisor: a supervisor holding only
    ``monitor`` that sends its own audio offer to the booth (``tests/voice_peer.py``; ``sdp``
    is open to every supervisor) during that barge is answered, but the page plays only the
    barging peer's voice. Office ``bp`` keeps these peers off the other test's desk."""
    url = env.server.url
    page = await open_kiosk(context, env, env.keys.issue("booth", "b-22", "bp", booth="b-22"))
    officer = HeadlessDesk(
        url,
        env.keys.issue("officer", "ana", "bp", desk="b1"),
        OfficerMediaOptions(audio_in="tone", desk="b1"),
    )
    engine = SupervisorMedia(audio_in="tone")
    barger = DeskSession(
        url,
        env.keys.issue("supervisor", "sri", "bp", grants=["barge"]),
        engine=engine,
        watch="b1",
        read_only=True,
    )
    monitor = VoicePeer(url, env.keys.issue("supervisor", "mon", "bp"), OTHER_FREQUENCY)
    try:
        await reach_device_check(page)
        await page.wait_for_selector("#devices-continue:enabled", timeout=10000)
        await page.click("#devices-continue")
        visit = (await until(page, lambda s: bool(s["visit"]), "the visit starts"))["visit"]
        await officer.start()
        await until(page, lambda s: s["media"]["pcState"] == "connected", "the officer's link")
        await officer.focus(visit)
        await until(page, lambda s: s["screen"] == "on-air", "on air")
        await barger.start()
        await wait_for(lambda: visit in engine.links, "the barging supervisor's link", 20)
        await barger.supervise("b1", "barge")
        await until(
            page,
            lambda s: (
                s["media"]["barging"] and heard(s["media"]["bargePlayed"], SUPERVISOR_FREQUENCY)
            ),
            "the kiosk plays the barging supervisor",
        )

        # The monitor-only supervisor offers its own voice to the booth, by hand.
        await monitor.start(watch="b1")
        await monitor.offer(visit)
        await wait_for(lambda: monitor.connected, "the booth answers the monitor's offer", 20)
        await until(
            page,
            lambda s: s["media"]["bargeVoices"] == 2,
            "the page receives the monitor's voice too (and must not play it)",
        )
        barging_heard = 0
        for _ in range(15):  # a bounded window: 1.5 s of the page's audio, read every 100 ms
            snap = await snapshot(page)
            played = snap["media"]["bargePlayed"]
            assert not heard(played, OTHER_FREQUENCY), (
                f"only the barging supervisor is played, not the monitor's {OTHER_FREQUENCY} Hz: "
                f"{snap}"
            )
            barging_heard += heard(played, SUPERVISOR_FREQUENCY)
            await asyncio.sleep(0.1)
        # The control: the path is live (a busy machine may drop a few 100 ms readings).
        assert barging_heard >= 5, f"the barging supervisor is played ({barging_heard}/15 readings)"
        assert not page.lapak_errors, page.lapak_errors
    finally:
        await monitor.close()
        await barger.close()
        await officer.close()
        await page.close()


async def test_the_kiosk_relays_the_officer_to_a_watching_supervisor_only_on_air(
    env: Env, context: Any, tmp_path: Any
) -> None:
    """The supervisor's offer's second audio transceiver (docs/protocol.md, "Supervisors'
    media"): the kiosk sends on it the officer's voice as received, on air only, switched by
    ``replaceTrack``. The real ``SupervisorMedia`` engine mixes it into its output; a listener
    on that mixer counts frames holding the officer's 1200 Hz tone. In barge the supervisor's
    own 1600 Hz tone must not come back (the relay is the officer's track, not the page's mix).
    A rebuilt officer link (a new console) swaps its new voice in. Office ``sh`` keeps these
    peers off the other tests' desks."""
    url = env.server.url
    page = await open_kiosk(
        context, env, env.keys.issue("booth", "b-23", "sh", booth="b-23"), "&audio=raw"
    )

    def new_officer() -> HeadlessDesk:
        return HeadlessDesk(
            url,
            env.keys.issue("officer", "ana", "sh", desk="h1"),
            OfficerMediaOptions(audio_in="tone", desk="h1"),
        )

    officer = new_officer()
    engine = SupervisorMedia(audio_in="tone", audio_out=str(tmp_path / "supervisor.wav"))
    supervisor = DeskSession(
        url,
        env.keys.issue("supervisor", "sri", "sh", grants=["barge"]),
        engine=engine,
        watch="h1",
        read_only=True,
    )
    out = {OFFICER_FREQUENCY: 0, SUPERVISOR_FREQUENCY: 0}
    frames = [0]

    def listen(mono: Any) -> None:
        frames[0] += 1
        for f in out:
            out[f] += tone_present(mono, f)

    async def window() -> dict[float, int]:
        """What the supervisor's output held over 1.5 s (bounded: read every 100 ms)."""
        for f in out:
            out[f] = 0
        start = frames[0]
        for _ in range(15):
            await asyncio.sleep(0.1)
        assert frames[0] - start > 30, f"control: the supervisor's output runs ({frames[0]})"
        return dict(out)

    try:
        await officer.start()  # the desk exists before the supervisor watches it
        await supervisor.start()
        assert engine.mixer is not None, "a .wav audio_out gives the supervisor a mixer"
        engine.mixer.listeners.append(listen)
        await reach_device_check(page)
        await page.wait_for_selector("#devices-continue:enabled", timeout=10000)
        await page.click("#devices-continue")
        visit = (await until(page, lambda s: bool(s["visit"]), "the visit starts"))["visit"]
        await until(page, lambda s: s["media"]["pcState"] == "connected", "the officer's link")
        await wait_for(
            lambda: visit in engine.links and engine.links[visit].frames > 3,
            "the supervisor receives the kiosk's video",
            timeout=20,
        )
        snap = await until(
            page,
            lambda s: s["media"]["supervisorRelays"] == 1,
            "the page answered the supervisor's offer with its relay transceiver",
        )
        assert snap["screen"] != "on-air" and snap["media"]["supervisorsHearing"] == 0, snap
        heard_off = await window()
        assert not heard_off[OFFICER_FREQUENCY], f"off air: no officer at the supervisor {out}"

        await officer.focus(visit)
        await until(page, lambda s: s["media"]["supervisorsHearing"] == 1, "on air: relayed")
        await wait_for(
            lambda: engine.officer_heard.heard_within(OFFICER_FREQUENCY, 0.3),
            "the supervisor receives the officer's voice from the kiosk",
            timeout=20,
        )
        heard_on = await window()
        assert heard_on[OFFICER_FREQUENCY] > 30, f"on air: the officer's tone {heard_on}"

        await supervisor.supervise("h1", "barge")
        await until(
            page,
            lambda s: (
                s["media"]["barging"] and heard(s["media"]["bargePlayed"], SUPERVISOR_FREQUENCY)
            ),
            "the kiosk plays the barging supervisor",
        )
        heard_barge = await window()
        assert heard_barge[OFFICER_FREQUENCY] > 30, f"barge: still the officer {heard_barge}"
        assert not heard_barge[SUPERVISOR_FREQUENCY], f"barge: no echo of itself {heard_barge}"
        await supervisor.supervise("h1", "monitor")

        await officer.focus(None)
        await until(page, lambda s: s["media"]["supervisorsHearing"] == 0, "off air: null")
        await wait_for(
            lambda: not engine.officer_heard.heard_within(OFFICER_FREQUENCY, 0.3),
            "off air: the officer's voice stops at the supervisor",
            timeout=20,
        )
        heard_off = await window()
        assert not heard_off[OFFICER_FREQUENCY], f"off air again: nothing {heard_off}"

        # A rebuilt officer link: a new console, a new track; on air it is relayed.
        await officer.close()
        officer = new_officer()
        await officer.start()
        await officer.focus(visit)
        await until(
            page,
            lambda s: s["media"]["pcState"] == "connected" and s["media"]["supervisorsHearing"],
            "the rebuilt link, on air",
        )
        await wait_for(
            lambda: engine.officer_heard.heard_within(OFFICER_FREQUENCY, 0.3),
            "the supervisor hears the officer through the rebuilt link",
            timeout=20,
        )
        snap = await snapshot(page)
        assert snap["media"]["supervisors"] == 1, f"the same supervisor link, no re-offer {snap}"
        assert not page.lapak_errors, page.lapak_errors
    finally:
        await supervisor.close()
        await officer.close()
        await page.close()
