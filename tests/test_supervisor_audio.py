"""Coach and barge, tone-proven over real signalling and real aiortc media.

One server, two simulated booths, the officer's media engine (speaking 1200 Hz, its output
mixed to a WAV sink that the test listens to) and a supervisor with grants coach and barge
speaking 1600 Hz (``SUPERVISOR_FREQUENCY``). Each absence is measured over a bounded window
in which a control tone proves the same path is live: the on-air booth keeps playing the
officer, the officer's output keeps running.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import pytest
import pytest_asyncio
from conftest import wait_for
from voice_peer import VoicePeer

from lapak.media.booth import BoothAgent, BoothMediaConfig
from lapak.media.desk_session import DeskSession
from lapak.media.headless import HeadlessDesk
from lapak.media.officer import OfficerMediaOptions, SupervisorMedia
from lapak.media.simulator import make_booths
from lapak.media.supervisor_voice import SUPERVISOR_FREQUENCY
from lapak.media.tones import OFFICER_FREQUENCY, tone_present
from lapak.signaling.client import RequestError
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.integration]

WINDOW_S = 1.5
"""How long an absence is listened for (75 frames of 20 ms)."""
SETTLE_S = 0.5
"""After a switch, before the window: jitter buffers and mixer backlog drain."""


@dataclass
class Rig:
    server: SignalServer
    keys: KeyRing
    booths: list[BoothAgent]
    officer: HeadlessDesk
    supervisor: DeskSession
    engine: SupervisorMedia
    heard: dict[float, int]
    """Frames of the officer's output holding each tone, since the last ``reset``."""
    frames: list[int]
    sup_heard: dict[float, int]
    """Frames of the supervisor's output holding each tone, since the last ``reset``."""
    sup_frames: list[int]

    def reset(self) -> None:
        for counts, frames in ((self.heard, self.frames), (self.sup_heard, self.sup_frames)):
            for f in counts:
                counts[f] = 0
            frames[0] = 0


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    tmp = tmp_path_factory.mktemp("voice")
    keys = KeyRing.generate()
    server = SignalServer(tmp / "data", keys, port=0)
    await server.start()
    booths = make_booths(
        server.url, keys, 2, media=BoothMediaConfig(width=160, height=120, fps=10), seed=5
    )
    for booth in booths:  # what reaches the booth from the officer, watched for both voices
        booth.officer_audio.watch(SUPERVISOR_FREQUENCY)
        booth.played_audio.watch(SUPERVISOR_FREQUENCY)
    officer = HeadlessDesk(
        server.url,
        keys.issue("officer", "ana", "main", desk="d1"),
        OfficerMediaOptions(audio_in="tone", audio_out=str(tmp / "officer.wav"), desk="d1"),
    )
    engine = SupervisorMedia(audio_in="tone", audio_out=str(tmp / "supervisor.wav"))
    supervisor = DeskSession(
        server.url,
        keys.issue("supervisor", "sri", "main", grants=["coach", "barge"]),
        engine=engine,
        watch="d1",
        read_only=True,
    )
    heard = {SUPERVISOR_FREQUENCY: 0, OFFICER_FREQUENCY: 0}
    frames = [0]

    def listen(mono: np.ndarray) -> None:
        frames[0] += 1
        for f in heard:
            heard[f] += tone_present(mono, f)

    sup_heard = {SUPERVISOR_FREQUENCY: 0, OFFICER_FREQUENCY: 0}
    sup_frames = [0]

    def listen_supervisor(mono: np.ndarray) -> None:
        sup_frames[0] += 1
        for f in sup_heard:
            sup_heard[f] += tone_present(mono, f)

    try:
        await officer.start()
        assert officer.officer.mixer is not None, "a .wav audio_out gives the officer a mixer"
        officer.officer.mixer.listeners.append(listen)
        assert engine.mixer is not None, "a .wav audio_out gives the supervisor a mixer"
        engine.mixer.listeners.append(listen_supervisor)
        for booth in booths:
            await booth.start()
        await supervisor.start()
        await wait_for(
            lambda: (
                len(officer.engine.links) == 2
                and len(engine.links) == 2
                and all(
                    link.state == "connected" and link.frames > 3
                    for link in [*officer.engine.links.values(), *engine.links.values()]
                )
            ),
            "officer and supervisor links to both booths delivering video",
            timeout=30,
        )
        await officer.focus(booths[0].visit)
        await wait_for(lambda: booths[0].hears_officer(0.2), "booth-0 plays the officer")
        yield Rig(
            server, keys, booths, officer, supervisor, engine, heard, frames, sup_heard, sup_frames
        )
    finally:
        await supervisor.close()
        await officer.close()
        await asyncio.gather(*(b.close() for b in booths))
        await server.close()


def since(last: float | None, start: float) -> bool:
    return last is not None and last >= start


async def listen_window(rig: Rig) -> float:
    """Settle, reset the officer-output counters, listen for ``WINDOW_S``; the start time."""
    await asyncio.sleep(SETTLE_S)
    rig.reset()
    start = time.monotonic()
    await asyncio.sleep(WINDOW_S)
    return start


def supervisor_heard_by_booth(booth: BoothAgent, start: float) -> list[str]:
    """Every way the supervisor's tone could have reached ``booth`` since ``start``."""
    ways = {
        "officer's track": booth.officer_audio.last_heard[SUPERVISOR_FREQUENCY],
        "played": booth.played_audio.last_heard[SUPERVISOR_FREQUENCY],
        "barge played": booth.barge.heard.last_heard[SUPERVISOR_FREQUENCY],
        "barge received": booth.barge.received.last_heard[SUPERVISOR_FREQUENCY],
    }
    return [way for way, last in ways.items() if since(last, start)]


async def test_1_coach_reaches_the_officers_output_and_never_the_booth(rig: Rig) -> None:
    on_air, other = rig.booths
    await rig.supervisor.supervise("d1", "coach")
    supervisors = rig.officer.officer.supervisors
    await wait_for(
        lambda: supervisors.heard.heard_within(SUPERVISOR_FREQUENCY, 0.2),
        "the officer receives the supervisor's voice",
        timeout=20,
    )
    start = await listen_window(rig)
    assert rig.heard[SUPERVISOR_FREQUENCY] > 30, (
        f"the officer's output should hold the coach's tone (75 frames in the window), "
        f"got {rig.heard[SUPERVISOR_FREQUENCY]} of {rig.frames[0]}"
    )
    assert since(on_air.played_audio.last_heard[OFFICER_FREQUENCY], start), (
        "control: the on-air booth kept playing the officer through the window"
    )
    for booth in (on_air, other):
        leaked = supervisor_heard_by_booth(booth, 0.0)
        assert not leaked, f"{booth.name} must never hear a coach, heard via {leaked}"
    assert not rig.heard[OFFICER_FREQUENCY], "the officer does not hear himself"
    assert not on_air.status or not on_air.status.supervisor_present, "coach is not announced"


async def test_2_barge_reaches_the_on_air_booth_and_the_officer(rig: Rig) -> None:
    on_air, other = rig.booths
    await rig.supervisor.supervise("d1", "barge")
    await wait_for(
        lambda: on_air.barge.heard.heard_within(SUPERVISOR_FREQUENCY, 0.2),
        f"{on_air.name} plays the barging supervisor",
        timeout=20,
    )
    assert on_air.status is not None and on_air.status.supervisor_present
    start = await listen_window(rig)
    assert since(on_air.barge.heard.last_heard[SUPERVISOR_FREQUENCY], start)
    assert rig.heard[SUPERVISOR_FREQUENCY] > 30, "the officer hears the barging supervisor"
    assert since(on_air.played_audio.last_heard[OFFICER_FREQUENCY], start), (
        "the claimant still hears the officer"
    )
    assert not supervisor_heard_by_booth(other, 0.0), f"{other.name} is not on air"
    assert not since(on_air.officer_audio.last_heard[SUPERVISOR_FREQUENCY], 0.0), (
        "the supervisor reaches the booth on its own link, never through the officer"
    )


async def test_3_barge_follows_the_air_to_another_booth(rig: Rig) -> None:
    first, second = rig.booths
    await rig.officer.focus(second.visit)
    await wait_for(
        lambda: second.barge.heard.heard_within(SUPERVISOR_FREQUENCY, 0.2),
        f"{second.name}, now on air, plays the barging supervisor",
        timeout=20,
    )
    start = await listen_window(rig)
    assert not since(first.barge.heard.last_heard[SUPERVISOR_FREQUENCY], start), (
        f"{first.name} left the air and must stop hearing the supervisor"
    )
    assert since(second.barge.heard.last_heard[SUPERVISOR_FREQUENCY], start)
    assert since(second.played_audio.last_heard[OFFICER_FREQUENCY], start), "control"
    await rig.officer.focus(first.visit)
    await wait_for(
        lambda: first.barge.heard.heard_within(SUPERVISOR_FREQUENCY, 0.2),
        f"{first.name} is barged again when back on air",
        timeout=20,
    )


async def test_4_back_to_monitor_the_booth_and_the_officer_stop_hearing_it(rig: Rig) -> None:
    on_air = rig.booths[0]
    await rig.supervisor.supervise("d1", "monitor")
    await wait_for(
        lambda: on_air.status is not None and not on_air.status.supervisor_present,
        "the booth is told the supervisor left",
    )
    await wait_for(lambda: not rig.officer.officer.supervisors.peers, "the officer drops it")
    start = await listen_window(rig)
    assert not supervisor_heard_by_booth(on_air, start), "monitor: the booth hears nobody"
    assert not rig.heard[SUPERVISOR_FREQUENCY], "monitor: the officer hears nobody"
    assert rig.frames[0] > 50, "control: the officer's output ran through the window"
    assert since(on_air.played_audio.last_heard[OFFICER_FREQUENCY], start), "control"
    assert rig.engine.coach.state == "closed" and rig.engine.barged is None


async def test_5_a_token_without_the_grant_is_refused_and_nothing_is_sent(rig: Rig) -> None:
    engine = SupervisorMedia(audio_in="tone")
    plain = DeskSession(
        rig.server.url,
        rig.keys.issue("supervisor", "tono", "main"),
        engine=engine,
        watch="d1",
        read_only=True,
    )
    try:
        await plain.start()
        for mode in ("coach", "barge"):
            with pytest.raises(RequestError) as refused:
                await plain.supervise("d1", mode)  # type: ignore[arg-type]
            assert refused.value.code == "forbidden"
        assert plain.supervising == "monitor" and engine.mode == "monitor"
        assert engine.coach.state == "closed" and engine.coach.offers == 0
    finally:
        await plain.close()


HAND_CRAFTED_FREQUENCY = 1800.0
"""A monitor-only supervisor's tone, apart from the barging one's."""


async def test_6_a_monitor_only_supervisor_offering_audio_is_not_heard(rig: Rig) -> None:
    on_air = rig.booths[0]
    for probe in (on_air.barge.heard, on_air.barge.received):
        probe.watch(HAND_CRAFTED_FREQUENCY)
    await rig.supervisor.supervise("d1", "barge")
    await wait_for(
        lambda: on_air.barge.heard.heard_within(SUPERVISOR_FREQUENCY, 0.2),
        f"{on_air.name} plays the barging supervisor",
        timeout=20,
    )
    assert on_air.status is not None and on_air.status.barge_peer is not None
    wati = VoicePeer(
        rig.server.url, rig.keys.issue("supervisor", "wati", "main"), HAND_CRAFTED_FREQUENCY
    )
    try:
        await wati.start(watch="d1")
        assert on_air.visit is not None
        await wati.offer(on_air.visit)  # the server relays it: wati watches the desk
        await wait_for(
            lambda: on_air.barge.received.heard_within(HAND_CRAFTED_FREQUENCY, 0.3),
            "the hand-crafted voice reaches the booth",
            timeout=20,
        )
        start = await listen_window(rig)
        assert since(on_air.barge.received.last_heard[HAND_CRAFTED_FREQUENCY], start), (
            "control: it kept arriving through the window"
        )
        assert since(on_air.barge.heard.last_heard[SUPERVISOR_FREQUENCY], start), (
            "control: the barging supervisor is played through the window"
        )
        assert on_air.barge.heard.last_heard[HAND_CRAFTED_FREQUENCY] is None, (
            "a supervisor that is not barge_peer is never played"
        )
    finally:
        await wati.close()
        await rig.supervisor.supervise("d1", "monitor")


async def test_7_the_supervisor_hears_the_officer_while_on_air(rig: Rig) -> None:
    """Relayed by the on-air booth as it played it: in monitor, coach and barge; never by
    an off-air booth; never the supervisor's own voice echoed back."""
    on_air = rig.booths[0]
    await wait_for(
        lambda: rig.engine.officer_heard.heard_within(OFFICER_FREQUENCY, 0.3),
        "the supervisor receives the officer's voice from the on-air booth",
        timeout=20,
    )
    off_air = rig.booths[1]
    assert off_air.peers.relay is not None and on_air.peers.relay is not None
    relayed = (off_air.peers.relay.audio.published, on_air.peers.relay.audio.published)
    for mode in ("monitor", "coach", "barge"):
        await rig.supervisor.supervise("d1", mode)  # type: ignore[arg-type]
        if mode == "barge":
            await wait_for(
                lambda: on_air.barge.heard.heard_within(SUPERVISOR_FREQUENCY, 0.2),
                "the booth plays the barging supervisor",
                timeout=20,
            )
        start = await listen_window(rig)
        assert rig.sup_heard[OFFICER_FREQUENCY] > 30, (
            f"{mode}: the supervisor's output should hold the officer's tone (75 frames), "
            f"got {rig.sup_heard[OFFICER_FREQUENCY]} of {rig.sup_frames[0]}"
        )
        assert not rig.sup_heard[SUPERVISOR_FREQUENCY], f"{mode}: no echo of its own voice"
        assert since(on_air.played_audio.last_heard[OFFICER_FREQUENCY], start), "control"
    await rig.supervisor.supervise("d1", "monitor")
    assert off_air.peers.relay.audio.has_subscribers, "the supervisor's link asks it too"
    assert off_air.peers.relay.audio.published == relayed[0], "off air: it relayed nothing"
    assert on_air.peers.relay.audio.published > relayed[1] + 50, "control: the on-air one did"
