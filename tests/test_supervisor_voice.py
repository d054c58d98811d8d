"""The supervisor's voice pieces on their own (``media.supervisor_voice``): one microphone
shared by two tracks, the booth's barge mix, and the officer answering a coaching supervisor
over a real aiortc pair (no server: the signalling is handed across directly)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lapak.media.audio_out import MAX_BUFFER_SAMPLES, AudioMixer
from lapak.media.audio_tracks import AudioProbe
from lapak.media.supervisor_voice import (
    SUPERVISOR_FREQUENCY,
    BargeAudio,
    CoachLink,
    SharedVoice,
    SupervisorVoices,
    voice_source,
)
from lapak.media.tones import (
    BOOTH_BASE_FREQUENCY,
    OFFICER_FREQUENCY,
    SilenceSource,
    ToneSource,
    booth_frequency,
    tone_present,
)


class NextSamples:
    """A live-like source: hands out the next ``n`` samples whatever ``start`` says."""

    def __init__(self) -> None:
        self.served = 0

    def samples(self, start: int, n: int) -> np.ndarray:
        out = np.arange(self.served, self.served + n, dtype=np.int64) % 30000
        self.served += n
        return out.astype(np.int16)


def test_two_readers_of_a_live_voice_each_get_the_whole_stream_not_every_other_frame() -> None:
    shared = SharedVoice(NextSamples())
    a, b = shared.reader(), shared.reader()
    got_a = np.concatenate([a.samples(0, 960) for _ in range(5)])
    got_b = np.concatenate([b.samples(0, 960) for _ in range(5)])
    expected = np.arange(0, 4800, dtype=np.int16)
    assert np.array_equal(got_a, expected) and np.array_equal(got_b, expected)
    assert shared.source.served == 4800, "the microphone is read once, not once per reader"


def test_a_reader_left_behind_skips_to_the_present_rather_than_playing_old_voice() -> None:
    shared = SharedVoice(NextSamples())
    ahead, behind = shared.reader(), shared.reader()
    for _ in range(30):  # 600 ms read by one reader only (the other's gate was closed)
        ahead.samples(0, 960)
    first = behind.samples(0, 960)
    newest = 30 * 960
    assert int(first[0]) == newest - 48000 // 25, "resumes 40 ms behind the newest sample"


def test_voice_source_names() -> None:
    tone = voice_source("tone")
    assert isinstance(tone, ToneSource) and tone.freq == SUPERVISOR_FREQUENCY
    assert isinstance(voice_source("none"), SilenceSource)
    assert isinstance(voice_source(None), SilenceSource)
    assert SUPERVISOR_FREQUENCY not in {OFFICER_FREQUENCY, *map(booth_frequency, range(6))}
    assert SUPERVISOR_FREQUENCY % 50 == 0 and SUPERVISOR_FREQUENCY > BOOTH_BASE_FREQUENCY


def test_barge_mix_adds_the_voice_and_caps_its_backlog() -> None:
    barge = BargeAudio(lambda peer: True)
    voice = ToneSource(SUPERVISOR_FREQUENCY).samples(0, 960).astype(np.float32) / 32768
    officer = ToneSource(OFFICER_FREQUENCY).samples(0, 960).astype(np.float32) / 32768
    for _ in range(40):  # 800 ms arrives before the speaker takes any
        barge._buffer.append(voice)
        barge._pending += voice.size
        while barge._pending > MAX_BUFFER_SAMPLES and barge._buffer:
            barge._pending -= barge._buffer.popleft().size
    assert barge._pending <= MAX_BUFFER_SAMPLES
    mixed = barge.mix_into(officer)
    assert tone_present(mixed, SUPERVISOR_FREQUENCY) and tone_present(mixed, OFFICER_FREQUENCY)
    assert float(np.max(np.abs(mixed))) <= 1.0
    assert np.array_equal(BargeAudio(lambda p: True).mix_into(officer), officer)


class ListSink:
    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def write(self, mono: np.ndarray) -> None:
        self.frames.append(mono)

    def close(self) -> None:
        return None


@pytest.mark.integration  # real aiortc peers (made inside CoachLink)
async def test_the_officer_refuses_a_supervisor_the_server_has_not_announced() -> None:
    voices = SupervisorVoices(lambda: None)
    coach = CoachLink(lambda: ToneSource(SUPERVISOR_FREQUENCY))
    sent: list[tuple[str, str, str]] = []

    async def send(sdp_type: str, sdp: str, offer_id: str) -> None:
        sent.append((sdp_type, sdp, offer_id))

    try:
        await coach.offer(send)
        _, sdp, offer_id = sent[-1]
        assert await voices.answer("7", sdp, offer_id) is None
        assert voices.refused == 1 and not voices.peers
    finally:
        await coach.stop()
        await voices.close()


@pytest.mark.integration  # real aiortc peers (made inside CoachLink and SupervisorVoices)
async def test_a_coaching_supervisors_tone_reaches_the_officers_output_and_ends_on_monitor() -> (
    None
):
    sink = ListSink()
    mixer = AudioMixer(sink)
    heard = AudioProbe([SUPERVISOR_FREQUENCY])
    mixer.listeners.append(lambda mono: heard.feed_mono(mono))
    voices = SupervisorVoices(lambda: mixer)
    coach = CoachLink(lambda: ToneSource(SUPERVISOR_FREQUENCY))
    answers: list[str] = []

    async def send(sdp_type: str, sdp: str, offer_id: str) -> None:
        answer = await voices.answer("7", sdp, offer_id)
        assert answer is not None, "an announced coach is answered"
        answers.append(offer_id)
        assert await coach.on_answer(answer, offer_id)

    mixing = asyncio.create_task(mixer.run())
    try:
        await voices.set_mode("7", "coach")
        await coach.offer(send)
        async with asyncio.timeout(15):
            await heard.wait_until(lambda p: p.heard_within(SUPERVISOR_FREQUENCY, 0.2))
        assert voices.heard.last_heard[SUPERVISOR_FREQUENCY] is not None
        await voices.set_mode("7", "monitor")
        assert not voices.peers and "supervisor:7" not in mixer.gains
        ended = time.monotonic()
        await asyncio.sleep(0.6)  # bounded listening window for the absence
        last = heard.last_heard[SUPERVISOR_FREQUENCY]
        assert last is not None and last < ended + 0.1, "monitor ends the officer hearing it"
        assert heard.frames > 20, "the officer's output kept running (the check is live)"
    finally:
        mixing.cancel()
        await coach.stop()
        await voices.close()


@pytest.mark.parametrize("mode", ["coach", "barge"])
async def test_speaking_modes_are_listed(mode: str) -> None:
    voices = SupervisorVoices(lambda: None)
    await voices.set_mode("3", mode)  # type: ignore[arg-type]
    assert voices.speaking() == {"3": mode}
    await voices.set_mode("3", "monitor")
    assert voices.speaking() == {}


def test_supervise_with_a_missing_voice_file_is_one_line_and_exit_3(tmp_path: Path) -> None:
    missing = tmp_path / "nope.wav"
    out = subprocess.run(
        [sys.executable, "-m", "lapak.cli", "supervise", "--server", "127.0.0.1:1",
         "--token", "garbage", "--audio-in", str(missing)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    lines = [ln for ln in out.stderr.splitlines() if not ln.startswith("ts=")]
    assert out.returncode == 3 and "Traceback" not in out.stderr, out.stderr
    assert lines == [f"lapak supervise: --audio-in: no such file {missing}"], lines
