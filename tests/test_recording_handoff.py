"""Recording across an escalation hand-off, for real (issue 15): a server with ``recording``
on, ``lapak recorder``'s engine started before any desk exists (the server subscribes it to
the desk the officer's hello opens), one booth (test card and tone), the officer (1200 Hz)
and a resolving supervisor speaking 1600 Hz straight to the booth. The officer escalates;
the visit leaves the desk but the recorder keeps its file, relinks to the booth when its
link drops, and records the resolver's voice as the booth plays it; the file ends when the
resolver ends the visit. The WebM is decoded and compared with the event log."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from conftest import wait_for
from recording_rig import start_node
from test_recording import decode, tone_by_second
from voice_peer import VoicePeer

from lapak.cli.recordings import visit_key
from lapak.media.booth import BoothAgent
from lapak.media.headless import HeadlessDesk
from lapak.media.officer import OfficerMediaOptions
from lapak.media.peer import close_peers
from lapak.media.recorder import Recorder
from lapak.media.recorder_crypt import decrypt_to
from lapak.media.supervisor_voice import SUPERVISOR_FREQUENCY
from lapak.media.tones import OFFICER_FREQUENCY, booth_frequency
from lapak.signaling.config import ServerConfig
from lapak.signaling.events import EscalationTaken, RecordingClosed, VisitEnded, VisitEscalated
from lapak.signaling.logformat import read_events
from lapak.signaling.protocol import Decide, EndVisit, TakeEscalation
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

pytestmark = [pytest.mark.asyncio, pytest.mark.integration]

MARGIN_S = 0.8  # media latency and jitter either side of an edge


@dataclass
class Rig:
    server: SignalServer
    keys: KeyRing
    booth: BoothAgent
    recorder: Recorder
    rec_dir: Path


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    config = ServerConfig(recording=True, grace_s=5.0)
    server, keys, booth = await start_node(tmp_path / "data", config, seed=5)
    recorder = Recorder(server.url, keys.issue("recorder", "rec-1", "main"), tmp_path / "rec")
    try:
        welcome = await recorder.start()
        assert welcome.desks == [], "no desk exists when the recorder starts"
        yield Rig(server, keys, booth, recorder, tmp_path / "rec")
    finally:
        await recorder.close()
        await booth.close()
        await server.close()


async def test_a_recording_follows_the_escalated_visit_to_its_resolver(rig: Rig) -> None:
    desk = HeadlessDesk(
        rig.server.url,
        rig.keys.issue("officer", "ana", "main", desk="d1"),
        OfficerMediaOptions(audio_in="tone", desk="d1"),
    )
    resolver = VoicePeer(
        rig.server.url,
        rig.keys.issue("supervisor", "sri", "main", grants=["resolve"]),
        SUPERVISOR_FREQUENCY,
    )
    recorder, booth = rig.recorder, rig.booth
    booth.barge.heard.watch(SUPERVISOR_FREQUENCY)
    try:
        await desk.start()  # opens d1: the recorder is subscribed to it
        await resolver.start()
        visit = await booth.start()
        await wait_for(lambda: visit in recorder.recordings, "the recorder records the visit")
        assert "d1" in recorder.desks, "a desk created after the recorder started is watched"
        rec = recorder.recordings[visit]
        await wait_for(lambda: rec.file.frames["booth_video"] > 10, "booth media", timeout=30)
        await desk.focus(visit)
        await wait_for(lambda: booth.hears_officer(0.3), "the booth plays the officer")
        await asyncio.sleep(2.5)  # on air with the officer
        await desk.session.end_visit(visit, "escalated", "signature differs")
        await wait_for(lambda: booth.status is not None and booth.status.state == "escalated",
                       "the booth is told of the hand-off")  # fmt: skip
        await asyncio.sleep(1.5)  # waiting for a resolver: the booth alone
        assert visit in recorder.recordings, "the escalated visit is still being recorded"

        # The recorder's link drops: it must reach the booth again although no desk holds it.
        links = rec.links
        assert rec.pc is not None
        dropped = time.time()
        await close_peers([rec.pc])
        await wait_for(lambda: rec.links > links and rec.answered, "the recorder relinks")
        relinked = rec.file.frames["booth_video"]
        await wait_for(lambda: rec.file.frames["booth_video"] > relinked + 10,
                       "booth media flow on the new link", timeout=30)  # fmt: skip
        back = time.time()

        await resolver.client.request(TakeEscalation(visit=visit))
        await wait_for(lambda: booth.status is not None and booth.status.barge_peer is not None,
                       "the booth is told who speaks to it")  # fmt: skip
        await resolver.offer(visit)
        await wait_for(lambda: booth.barge.heard.heard_within(SUPERVISOR_FREQUENCY, 0.3),
                       "the booth plays the resolver", timeout=20)  # fmt: skip
        await asyncio.sleep(3.0)  # the resolver speaks with the claimant
        welcome = resolver.client.welcome
        assert welcome is not None
        reason = welcome.reasons[0]
        await resolver.client.request(Decide(visit=visit, step=0, decision="reject", reason=reason))
        await resolver.client.request(EndVisit(visit=visit, outcome="rejected"))
        await wait_for(lambda: recorder.closed, "the recorder closes the file", timeout=20)
    finally:
        await resolver.close()
        await desk.close()
    info = recorder.closed[0]
    log = list(read_events(rig.server.data_dir / "events.sqlite3"))
    escalated_at = next(e.at for e in log if isinstance(e, VisitEscalated))
    taken_at = next(e.at for e in log if isinstance(e, EscalationTaken))
    ended_at = next(e.at for e in log if isinstance(e, VisitEnded))
    (closed,) = [e for e in log if isinstance(e, RecordingClosed)]
    assert (closed.visit, closed.sha256) == (visit, info.sha256), "one file, in the trail"
    assert info.end is not None and ended_at - 2 <= info.end < ended_at + 5, (
        "the file ends when the resolver ends the visit"
    )

    clear = io.BytesIO()  # the file is encrypted with the visit's key (as the export reads it)
    decrypt_to(rig.rec_dir / info.file, visit_key(rig.server.data_dir, visit), clear)
    clear.seek(0)
    _, streams = decode(clear)
    booth_times = [t for t, _ in streams["booth_video"]]
    first, end = booth_times[0] + 1.0, booth_times[-1]
    assert end > taken_at + 2, "the file runs past the hand-off to the resolver"
    booth_tone = tone_by_second(streams["booth_audio"], booth_frequency(booth.index), first, end)
    gaps = [(a, b) for a, b in info.gaps] + [(dropped, back)]  # the relink may leave none
    assert all(
        heard or any(a - 1 <= first + i <= b + 1 for a, b in gaps)
        for i, heard in booth_tone.items()
    ), f"the booth's tone in every second but the relink's gap {gaps}: {booth_tone}"
    officer = tone_by_second(streams["officer_audio"], OFFICER_FREQUENCY, first, end)
    assert any(officer.values()), "the officer while on air, before the hand-off"
    assert not any(heard for i, heard in officer.items() if first + i >= escalated_at + MARGIN_S), (
        "no officer after the hand-off"
    )
    voice = tone_by_second(streams["officer_audio"], SUPERVISOR_FREQUENCY, first, end)
    heard_at = [first + i for i, heard in voice.items() if heard]
    assert len(heard_at) >= 2, f"the resolver's voice, as the booth played it: {voice}"
    assert all(t >= taken_at - MARGIN_S for t in heard_at), "only after the resolver took it"
