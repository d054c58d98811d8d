"""The browser kiosk relays the officer's side to a recorder (issue 15), in real Chromium.

The fixtures and helpers of tests/test_kiosk.py (real server, Chromium with a fake camera and
a 650 Hz microphone tone, WebRTC with aiortc) and the decoding helpers of
tests/test_recording.py. A real ``lapak recorder`` process records the kiosk's visit while a
headless officer (1200 Hz tone, a card as picture) goes on air and off again. The decoded
WebM must hold the kiosk's camera and tone throughout and the officer's tone and picture only
inside the on-air period that the event log gives: the kiosk relays the officer's tracks as
it received them, switched by replaceTrack on air and off (the page's relay senders say so,
and the recorder's link is answered once: no renegotiation).

During an escalation (no officer on air) the kiosk plays the resolving supervisor, named by
``booth_state.barge_peer``, and relays that to the recorder too.

Offices ``rec`` and ``rex`` keep these visits off the other kiosk tests' desks.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import wait_for
from test_kiosk import (  # the kiosk fixtures: one server and browser for this module
    KIOSK_FREQUENCY,
    Env,
    context,
    env,
    heard,
    open_kiosk,
    reach_device_check,
    shot,
    until,
)
from test_recording import DARK_LUMA, MARGIN_S, decode, decrypted, luma, tone_by_second
from voice_peer import VoicePeer

from lapak.cli.main import main as lapak
from lapak.media.headless import HeadlessDesk
from lapak.media.officer import OfficerMediaOptions
from lapak.media.recorder_file import SUFFIX, read_sidecar, sidecar_path
from lapak.media.supervisor_voice import SUPERVISOR_FREQUENCY
from lapak.media.tones import OFFICER_FREQUENCY
from lapak.signaling.events import (
    FocusChanged,
    RecordingClosed,
    RecordingNoticeShown,
    VisitEscalated,
)
from lapak.signaling.logformat import read_events
from lapak.signaling.protocol import EndVisit, TakeEscalation

__all__ = ["context", "env"]  # fixtures used by name

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(180),
    pytest.mark.integration,
]


@dataclass
class Recorded:
    """A kiosk visit seated at a desk, recorded by a real ``lapak recorder`` process."""

    page: Any
    officer: HeadlessDesk
    visit: str
    path: Path


@asynccontextmanager
async def recorded_visit(
    env: Env, context: Any, tmp_path: Path, office: str
) -> AsyncIterator[Recorded]:
    """Recording on, an officer at desk ``<office>1`` (it exists before the recorder says
    hello), the recorder, and the kiosk's visit seated there with the recorder's link
    answered and its file growing; everything stopped after."""
    hub = env.server.hub
    assert hub is not None
    hub.projection.recording = True  # as `lapak signal --recording on`
    desk = f"{office}1"
    rec_dir = tmp_path / "recordings"
    officer = HeadlessDesk(
        env.server.url,
        env.keys.issue("officer", "ana", office, desk=desk),
        OfficerMediaOptions(audio_in="tone", desk=desk),
    )
    recorder: asyncio.subprocess.Process | None = None
    page = None
    recorder_log = (tmp_path / "recorder.log").open("wb")  # read it when a test fails
    try:
        await officer.start()
        recorder = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lapak.cli", "recorder", "--server", env.server.url,
            "--token", env.keys.issue("recorder", "rec-1", office), "--dir", str(rec_dir),
            "--log-level", "INFO",
            stdout=asyncio.subprocess.DEVNULL, stderr=recorder_log,
            start_new_session=True,
        )  # fmt: skip
        token = env.keys.issue("booth", f"{office}-booth", office, booth=f"{office}-booth")
        page = await open_kiosk(context, env, token, "&audio=raw")
        await reach_device_check(page)
        await page.wait_for_selector("#devices-continue:enabled", timeout=10000)
        await page.click("#devices-continue")
        snap = await until(page, lambda s: bool(s["visit"]), "the visit starts")
        visit = snap["visit"]
        await wait_for(lambda: hub.state.visits[visit].desk == desk, f"seated at desk {desk}")
        await page.wait_for_selector("#recording-notice:visible", timeout=10000)
        snap = await until(
            page,
            lambda s: s["media"]["pcState"] == "connected" and s["media"]["recorders"] == 1,
            "the officer's link and the recorder's, answered",
            timeout=30,
        )
        assert relaying(snap) == [[]], f"off air the recorder gets nothing of the officer: {snap}"
        path = rec_dir / f"{visit}{SUFFIX}"  # the recorder's first file of the visit
        sizes: set[int] = set()

        def grown() -> int:
            if path.exists():
                sizes.add(path.stat().st_size)
            return len(sizes)

        await wait_for(lambda: grown() >= 3, "the recorder writes the kiosk's media", timeout=30)
        yield Recorded(page, officer, visit, path)
        await wait_for(
            lambda: any(isinstance(e, RecordingClosed) for e in logged(env, visit)),
            "the recorder closes the file and the trail records it",
            timeout=30,
        )
        assert page.lapak_errors == [], page.lapak_errors
    finally:
        hub.projection.recording = False
        if recorder is not None and recorder.returncode is None:
            os.killpg(recorder.pid, signal.SIGTERM)
            await recorder.wait()
        recorder_log.close()
        await officer.close()
        if page is not None:
            await page.close()


def logged(env: Env, visit: str) -> list[Any]:
    """The visit's events in the server's log (read-only, while it runs)."""
    return [
        e
        for e in read_events(env.server.data_dir / "events.sqlite3")
        if getattr(e, "visit", None) == visit or isinstance(e, FocusChanged)
    ]


def fake_camera(frame: object) -> bool:
    """Chromium's fake camera: a green picture (a timer and a turning shape), not a flat
    fill and not the recorder's black filler."""
    rgb = frame.to_ndarray(format="rgb24")  # type: ignore[attr-defined]
    r, g, b = rgb.reshape(-1, 3).mean(axis=0)
    return bool(g > 100 and g > 4 * max(r, b) and float(np.std(rgb[..., 1])) > 5)


def relaying(snap: dict[str, Any]) -> list[list[str]]:
    """Per recorder peer of the page: which of the officer's tracks it is sent now."""
    return list(snap["media"].get("relaying") or [])


async def test_the_kiosk_relays_the_officer_to_the_recorder_only_on_air(
    env: Env, context: Any, tmp_path: Path
) -> None:
    async with recorded_visit(env, context, tmp_path, "rec") as rec:
        page, officer, visit = rec.page, rec.officer, rec.visit
        await asyncio.sleep(2.5)  # a time window: off air, the kiosk alone
        await officer.focus(visit)
        snap = await until(
            page,
            lambda s: (
                s["screen"] == "on-air"
                and heard(s["media"]["played"], OFFICER_FREQUENCY)
                and relaying(s) == [["audio", "video"]]
            ),
            "on air: the page plays the officer and relays both tracks to the recorder",
        )
        assert await page.inner_text("#recording-notice") == "Kunjungan ini direkam."
        await shot(env, page, "recorded")
        await asyncio.sleep(3.0)  # a time window: on air
        await officer.focus(None)
        await until(page, lambda s: relaying(s) == [[]], "off air: the relay senders are empty")
        await asyncio.sleep(2.5)  # a time window: off air again
        snap = await until(page, lambda s: s["media"]["recorders"] == 1, "still one recorder")
        assert snap["media"]["recorderAnswers"] == 1, (
            f"going on and off air is replaceTrack, no new negotiation: {snap}"
        )
        await officer.session.end_visit(visit, "abandoned", None)

    path = rec.path
    events = logged(env, visit)
    (closed,) = [e for e in events if isinstance(e, RecordingClosed)]
    assert closed.gaps == [], "no link dropped"
    notice = [e for e in events if isinstance(e, RecordingNoticeShown)]
    on_at = next(e.at for e in events if isinstance(e, FocusChanged) and e.visit == visit)
    off_at = next(
        e.at for e in events if isinstance(e, FocusChanged) and e.visit is None and e.at > on_at
    )
    assert len(notice) == 1 and notice[0].at < on_at, "the claimant is told before on air"
    assert read_sidecar(sidecar_path(path))["closed"] is True

    # Encrypted with the visit's recording key: decrypted with the data directory's key, as
    # test_recording does (its helper reads only ``.server.data_dir``, which Env has too).
    _, streams = decode(decrypted(env, path, visit))  # type: ignore[arg-type]
    booth_times = [t for t, _ in streams["booth_video"]]
    end = booth_times[-1]
    assert end - booth_times[0] > 8, "the recording spans the visit"
    colours = [fake_camera(f) for _, f in streams["booth_video"][2:]]
    assert all(colours), "Chromium's fake camera (green, a moving shape) in every frame"
    first = booth_times[0] + 1.0
    kiosk_tone = tone_by_second(streams["booth_audio"], KIOSK_FREQUENCY, first, end)
    assert all(kiosk_tone.values()), f"the kiosk's tone in every second: {kiosk_tone}"

    officer_tone = tone_by_second(streams["officer_audio"], OFFICER_FREQUENCY, first, end)
    for i, tone in officer_tone.items():
        lo, hi = first + i, first + i + 1
        if on_at + MARGIN_S <= lo and hi <= off_at - MARGIN_S:
            assert tone, f"the officer's tone in second {i} (on air {on_at:.1f}..{off_at:.1f})"
        elif hi <= on_at - MARGIN_S or lo >= off_at + MARGIN_S:
            assert not tone, f"no officer tone in second {i}, off air"
    assert sum(officer_tone.values()) >= 2, f"the on-air stretch is in the file: {officer_tone}"
    officer_pictures = [t for t, f in streams["officer_video"] if luma(f) > DARK_LUMA]
    assert len(officer_pictures) >= 5, "the officer's picture, as the kiosk showed it"
    assert all(on_at - MARGIN_S <= t <= off_at + MARGIN_S for t in officer_pictures), (
        "the officer's picture only while on air"
    )
    verify = ["recordings", "verify", "--dir", str(path.parent), "--data-dir",
              str(env.server.data_dir)]  # fmt: skip
    assert lapak(verify) == 0, "the trail vouches for the file"


async def test_the_kiosk_plays_and_relays_the_resolver_during_an_escalation(
    env: Env, context: Any, tmp_path: Path
) -> None:
    """The officer escalates; a supervisor with ``resolve`` takes the visit and offers its
    voice (1600 Hz) to the booth: ``booth_state.barge_peer`` names it, the page plays it with
    no officer on air and relays it to the recorder, whose file holds it after the take."""
    resolver = VoicePeer(
        env.server.url,
        env.keys.issue("supervisor", "sri", "rex", grants=["resolve"]),
        SUPERVISOR_FREQUENCY,
    )
    try:
        async with recorded_visit(env, context, tmp_path, "rex") as rec:
            page, visit = rec.page, rec.visit
            await rec.officer.session.end_visit(visit, "escalated", "check the card")
            await until(page, lambda s: s["screen"] == "escalated", "the escalated screen")
            await resolver.start()
            await resolver.client.request(TakeEscalation(visit=visit))
            await resolver.offer(visit)
            await until(
                page,
                lambda s: (
                    s["media"]["barging"]
                    and heard(s["media"]["bargePlayed"], SUPERVISOR_FREQUENCY)
                    and relaying(s) == [["audio"]]
                ),
                "the page plays the resolver and relays that sound (no officer picture)",
                tones=(SUPERVISOR_FREQUENCY,),
            )
            await asyncio.sleep(2.5)  # a time window: the resolver speaks
            await resolver.client.request(EndVisit(visit=visit, outcome="abandoned", note=None))
    finally:
        await resolver.close()

    events = logged(env, visit)
    escalated_at = next(e.at for e in events if isinstance(e, VisitEscalated))
    _, streams = decode(decrypted(env, rec.path, visit))  # type: ignore[arg-type]
    end = streams["booth_audio"][-1][0]
    voice = tone_by_second(streams["officer_audio"], SUPERVISOR_FREQUENCY, escalated_at, end)
    assert sum(voice.values()) >= 2, f"the resolver as the kiosk played it is recorded: {voice}"
