"""Tones, detectors and audio tracks: who is heard must be decidable from 20 ms frames."""

from __future__ import annotations

import asyncio
import fractions
import math

import av
import numpy as np
import pytest
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from conftest import wait_for

from lapak.media.audio_tracks import (
    CLOSE_TAIL_FRAMES,
    FRAME_SECONDS,
    RESYNC_AFTER_SECONDS,
    AudioProbe,
    GatedAudioTrack,
    SourceAudioTrack,
    make_audio_frame,
)
from lapak.media.pacing import FramePacer
from lapak.media.tones import (
    FRAME_SAMPLES,
    OFFICER_FREQUENCY,
    SAMPLE_RATE,
    SILENCE_DBFS,
    SilenceSource,
    ToneBurstSource,
    ToneSource,
    booth_frequency,
    goertzel_power,
    level_dbfs,
    to_mono,
    tone_present,
)

ALL_FREQUENCIES = [booth_frequency(i) for i in range(6)] + [OFFICER_FREQUENCY]


def sine(freq: float, amplitude: float = 1.0, n: int = FRAME_SAMPLES, start: int = 0) -> np.ndarray:
    t = np.arange(start, start + n) / SAMPLE_RATE
    return amplitude * np.sin(2 * np.pi * freq * t)


def test_frequencies() -> None:
    assert [booth_frequency(i) for i in range(6)] == [350, 450, 550, 650, 750, 850]
    assert OFFICER_FREQUENCY == 1200.0
    assert (SAMPLE_RATE, FRAME_SAMPLES) == (48000, 960)


def test_goertzel_scale_float_and_int16() -> None:
    assert goertzel_power(sine(650.0), 650.0) == pytest.approx(1.0, rel=0.02), (
        "expected ~1.0 for a full-scale sine"
    )
    assert goertzel_power(sine(650.0, 0.5), 650.0) == pytest.approx(0.25, rel=0.02)
    as_int16 = np.round(sine(650.0, 0.5) * 32767).astype(np.int16)
    assert goertzel_power(as_int16, 650.0) == pytest.approx(0.25, rel=0.02), (
        "expected int16 input scaled by 1/32768"
    )
    assert goertzel_power(np.zeros(960, dtype=np.int16), 650.0) == 0.0
    # Off-bin frequencies and other lengths keep the scale roughly.
    assert goertzel_power(sine(1000.0, n=2000), 1000.0) == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("freq", ALL_FREQUENCIES)
def test_detects_right_frequency_and_rejects_neighbours(freq: float) -> None:
    samples = ToneSource(freq, 0.3).samples(12345, FRAME_SAMPLES)
    assert tone_present(samples, freq), f"expected {freq} Hz to be detected"
    for other in ALL_FREQUENCIES:
        if other != freq:
            assert not tone_present(samples, other), f"{other} Hz detected in a {freq} Hz tone"


def test_detects_both_tones_in_a_mix_and_ignores_noise() -> None:
    mix = sine(booth_frequency(2), 0.3) + sine(OFFICER_FREQUENCY, 0.3)
    assert tone_present(mix, booth_frequency(2)) and tone_present(mix, OFFICER_FREQUENCY)
    assert not tone_present(mix, booth_frequency(3))
    noise = np.random.default_rng(3).normal(0.0, 0.3, FRAME_SAMPLES)
    assert not any(tone_present(noise, f) for f in ALL_FREQUENCIES), "expected no tone in noise"
    assert not tone_present(sine(550.0, 0.01), 550.0), "expected -40 dB to be below threshold"


def test_level_dbfs() -> None:
    assert level_dbfs(np.zeros(960, dtype=np.int16)) == SILENCE_DBFS
    assert level_dbfs(np.zeros(0)) == SILENCE_DBFS
    assert level_dbfs(sine(440.0)) == pytest.approx(-3.01, abs=0.05), "expected -3 for full sine"
    half = np.round(sine(440.0, 0.5) * 32767).astype(np.int16)
    assert level_dbfs(half) == pytest.approx(-9.03, abs=0.05)


def test_to_mono_packed_stereo_s16_and_planar_float() -> None:
    left, right = sine(450.0, 0.4), sine(1200.0, 0.2)
    interleaved = np.round(np.stack([left, right], axis=1).reshape(1, -1) * 32767).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout="stereo")
    mono = to_mono(frame)
    assert mono.shape == (FRAME_SAMPLES,) and mono.dtype == np.float32
    assert np.allclose(mono, (left + right) / 2, atol=1e-3), "expected the mean of L and R"

    planar = np.stack([left, right]).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout="stereo")
    assert np.allclose(to_mono(frame), (left + right) / 2, atol=1e-6)


def test_opus_roundtrip_keeps_the_tone() -> None:
    """aiortc's own Opus path (mono s16 in, packed stereo s16 out) keeps tones separable."""
    encoder, decoder = OpusEncoder(), OpusDecoder()
    source = ToneSource(booth_frequency(1), 0.3)
    heard = []
    for n in range(15):
        frame = make_audio_frame(
            source.samples(n * FRAME_SAMPLES, FRAME_SAMPLES), n * FRAME_SAMPLES
        )
        payloads, timestamp = encoder.encode(frame)
        for payload in payloads:
            for out in decoder.decode(JitterFrame(payload, timestamp)):
                assert out.format.name == "s16" and len(out.layout.channels) == 2
                heard.append(to_mono(out))
    assert len(heard) >= 10, f"expected decoded frames, got {len(heard)}"
    tail = np.concatenate(heard[-5:])  # skip the codec's start-up
    assert tone_present(tail, booth_frequency(1)), "expected booth 1's tone after Opus"
    assert not tone_present(tail, booth_frequency(2)), "expected booth 2's tone absent after Opus"


# --- sources ----------------------------------------------------------------------------------


def test_sources_are_stateless_and_continuous() -> None:
    for source in (ToneSource(450.0), ToneBurstSource(450.0), SilenceSource()):
        whole = source.samples(48_000 * 3600, 2 * FRAME_SAMPLES)
        parts = np.concatenate(
            [
                source.samples(48_000 * 3600, FRAME_SAMPLES),
                source.samples(48_000 * 3600 + FRAME_SAMPLES, FRAME_SAMPLES),
            ]
        )
        assert whole.dtype == np.int16 and whole.shape == (2 * FRAME_SAMPLES,)
        assert np.array_equal(whole, parts), f"expected {source!r} to be continuous"
    tone = ToneSource(450.0, 0.5).samples(0, SAMPLE_RATE)
    assert abs(int(tone.max()) - 16384) < 10, "expected amplitude 0.5 of full scale"


def test_burst_source_has_tone_and_silence_within_a_second() -> None:
    source = ToneBurstSource(booth_frequency(0), on_ms=300, off_ms=200)
    frames = [source.samples(n * FRAME_SAMPLES, FRAME_SAMPLES) for n in range(50)]
    with_tone = sum(tone_present(f, booth_frequency(0)) for f in frames)
    silent = sum(level_dbfs(f) == SILENCE_DBFS for f in frames)
    assert with_tone >= 20, f"expected ~30 of 50 frames with the tone, got {with_tone}"
    assert silent >= 10, f"expected ~20 of 50 silent frames, got {silent}"
    edge = source.samples(0, 96)
    assert abs(int(edge[0])) < 200, "expected a fade-in, not a step, at a burst's start"


# --- tracks -----------------------------------------------------------------------------------


async def test_source_track_frames() -> None:
    track = SourceAudioTrack(ToneSource(booth_frequency(3)))
    try:
        async with asyncio.timeout(5):
            frames = [await track.recv() for _ in range(4)]
    finally:
        track.stop()
    assert track.kind == "audio"
    for frame in frames:
        assert frame.format.name == "s16" and frame.layout.name == "mono"
        assert frame.samples == FRAME_SAMPLES and frame.sample_rate == SAMPLE_RATE
        assert frame.time_base == fractions.Fraction(1, SAMPLE_RATE)
        assert tone_present(to_mono(frame), booth_frequency(3))
    assert [f.pts for f in frames] == [0, 960, 1920, 2880], "expected pts += 960 per frame"
    with pytest.raises(MediaStreamError):
        await track.recv()


class FakeClock:
    """A monotonic clock the test moves; sleeping moves it by the delay."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay


def paced_gate(freq: float, clock: FakeClock, open: bool = False) -> GatedAudioTrack:
    pacer = FramePacer(
        FRAME_SECONDS, RESYNC_AFTER_SECONDS, clock=clock.monotonic, sleep=clock.sleep
    )
    return GatedAudioTrack(ToneSource(freq), open=open, pacer=pacer)


async def test_gated_track_tone_when_open_silent_tail_then_quiet_until_reopened() -> None:
    clock = FakeClock()
    track = paced_gate(OFFICER_FREQUENCY, clock)
    assert track.open is False, "expected a gate to start closed"
    try:
        async with asyncio.timeout(5):
            start = [await track.recv() for _ in range(CLOSE_TAIL_FRAMES)]
            first = asyncio.ensure_future(track.recv())
            await wait_for(lambda: track.paused == 1, "a gate that starts closed waits")
            assert not first.done(), "a closed gate sends only its tail before it opens"
            clock.now += 0.3
            track.open = True
            frames = [await first] + [await track.recv() for _ in range(2)]
            track.open = False
            tail = [await track.recv() for _ in range(CLOSE_TAIL_FRAMES)]
            quiet = asyncio.ensure_future(track.recv())
            await wait_for(lambda: track.paused == 2, "the gate goes quiet after its tail")
            assert not quiet.done(), "expected nothing after the silent tail"
            clock.now += 1.0  # a second off air
            track.open = True
            resumed = await quiet
            after = await track.recv()
    finally:
        track.stop()
    assert [f.pts for f in start] == [n * FRAME_SAMPLES for n in range(CLOSE_TAIL_FRAMES)]
    for frame in start + tail:
        assert not frame.to_ndarray().any(), "expected digital silence in the tail"
    assert [f.pts for f in frames + tail] == [n * FRAME_SAMPLES for n in range(19, 27)], (
        "expected the present's pts on opening (0.38 s: frame 19), then continuous pts while "
        "open and through the tail"
    )
    for frame in frames:
        assert tone_present(to_mono(frame), OFFICER_FREQUENCY), "expected the tone when open"
    assert resumed.pts == round(1.52 / FRAME_SECONDS) * FRAME_SAMPLES, (
        f"expected the pts of the present (frame 76) after the pause, got {resumed.pts}"
    )
    assert after.pts == resumed.pts + FRAME_SAMPLES, "then continuous again"
    assert tone_present(to_mono(resumed), OFFICER_FREQUENCY), "the tone at once on reopening"


async def test_a_quiet_gate_ends_when_its_track_stops() -> None:
    track = paced_gate(OFFICER_FREQUENCY, FakeClock())
    async with asyncio.timeout(5):
        for _ in range(CLOSE_TAIL_FRAMES):
            await track.recv()
        waiting = asyncio.ensure_future(track.recv())
        await wait_for(lambda: track.paused == 1, "the closed gate waits")
        track.stop()
        with pytest.raises(MediaStreamError):
            await waiting
    assert track.open is False, "a stopped track is never open"


async def test_audio_probe_hears_tone_then_stops_with_track() -> None:
    freq = booth_frequency(5)
    track = GatedAudioTrack(ToneSource(freq), open=True)
    seen: list[int] = []
    probe = AudioProbe([freq, OFFICER_FREQUENCY], on_frame=lambda p, mono: seen.append(mono.size))
    task = asyncio.ensure_future(probe.run(track))
    try:
        async with asyncio.timeout(5):
            await probe.wait_until(lambda p: p.frames >= 3)
        assert probe.detected[freq] and probe.heard_within(freq, 5.0)
        assert not probe.detected[OFFICER_FREQUENCY] and probe.last_heard[OFFICER_FREQUENCY] is None
        assert -10.0 < probe.level_dbfs < -5.0, f"expected ~-9 dBFS, got {probe.level_dbfs}"
        assert seen and seen[0] == FRAME_SAMPLES, "expected the callback once per frame"

        track.open = False
        async with asyncio.timeout(5):
            await probe.wait_until(lambda p: not p.detected[freq])
        assert probe.level_dbfs == SILENCE_DBFS
    finally:
        track.stop()
    async with asyncio.timeout(5):
        await task  # run() returns once the track ends
    assert task.exception() is None


async def test_audio_probe_is_cancellable_and_survives_callback_errors() -> None:
    def broken(probe: AudioProbe, mono: np.ndarray) -> None:
        raise RuntimeError("callback bug")

    track = SourceAudioTrack(SilenceSource())
    probe = AudioProbe(on_frame=broken)
    task = asyncio.ensure_future(probe.run(track))
    try:
        async with asyncio.timeout(5):
            await probe.wait_until(lambda p: p.frames >= 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        track.stop()
    assert math.isfinite(probe.level_dbfs)


def stereo_frame(mono: np.ndarray, pts: int) -> av.AudioFrame:
    """A packed stereo s16 frame, as aiortc's Opus decoder yields them."""
    pcm = np.round(np.repeat(mono, 2) * 32767).astype(np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    return frame


async def test_a_probe_without_tones_reports_the_last_frames_level_when_read() -> None:
    probe = AudioProbe()  # the officer's links: level and liveness only
    assert probe.level_dbfs == SILENCE_DBFS and probe.frames == 0
    loud, quiet = sine(500.0, 0.5), np.zeros(FRAME_SAMPLES)
    woken = asyncio.ensure_future(probe.wait_until(lambda p: p.frames >= 2))
    await asyncio.sleep(0)  # let the waiter register before the frames come
    probe.feed(stereo_frame(loud, 0))
    probe.feed(stereo_frame(quiet, FRAME_SAMPLES))
    async with asyncio.timeout(5):
        await woken
    assert probe.frames == 2 and probe.last_frame_at is not None
    assert probe.level_dbfs == SILENCE_DBFS, "expected the last frame's level (silence)"
    probe.feed(stereo_frame(loud, 2 * FRAME_SAMPLES))
    assert probe.level_dbfs == pytest.approx(-9.03, abs=0.1), "expected the last frame's level"
    probe.feed_mono(quiet.astype(np.float32))
    assert probe.level_dbfs == SILENCE_DBFS, "feed_mono's frame is the last one too"
    probe.feed(stereo_frame(sine(500.0, 0.25), 3 * FRAME_SAMPLES))
    assert probe.level_dbfs == pytest.approx(-15.05, abs=0.1)
    assert probe.level_dbfs == pytest.approx(-15.05, abs=0.1), "reading twice gives the same"
