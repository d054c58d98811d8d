"""aiortc audio tracks fed from stateless sources, and a probe that listens to received audio.

Sending: ``SourceAudioTrack`` paces 20 ms mono s16 frames at 48 kHz in real time, as aiortc's
own ``AudioStreamTrack`` does (aiortc's Opus encoder resamples to stereo itself).
``GatedAudioTrack`` adds an ``open`` switch, so the officer's voice can be routed to the on-air
booth alone without renegotiating (see STACK-NOTES, "Audio focus without renegotiation"): once
closed it sends a short tail of silence and then nothing at all, as Opus DTX does, and resumes
with its pts at the present. Encoding and sending silence to five off-air booths was a large
share of the officer's CPU (BENCHMARKS.md, issue 17).

Receiving: ``AudioProbe`` drains a remote track (unread remote tracks buffer without bound) and
keeps the level and which watched tones were heard when.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Callable, Iterable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from lapak.media.pacing import FramePacer
from lapak.media.tones import (
    DEFAULT_MIN_SHARE,
    DEFAULT_TONE_THRESHOLD,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    SILENCE_DBFS,
    AudioSource,
    SilenceSource,
    level_dbfs,
    to_mono,
    tone_present,
)
from lapak.media.track_frames import track_frames

logger = logging.getLogger(__name__)

AUDIO_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
RESYNC_AFTER_SECONDS = 1.0
"""If the loop stalls longer than this, skip ahead instead of bursting out the backlog."""
OPEN_FADE_SAMPLES = 96
"""2 ms fade-in when a gate opens, so the step into a running sine does not click."""
CLOSE_TAIL_FRAMES = 5
"""Frames of silence (100 ms) a gate sends after it closes before it goes quiet: the receiver's
decoder ends on silence rather than concealing a cut-off word, and its last frame says so."""


def make_audio_frame(samples: np.ndarray, pts: int) -> av.AudioFrame:
    """Wrap int16 mono samples as an s16 mono 48 kHz frame with the given pts."""
    data = np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.time_base = AUDIO_TIME_BASE
    frame.pts = pts
    return frame


class SourceAudioTrack(MediaStreamTrack):
    """Real-time paced audio track reading an ``AudioSource`` by sample index.

    pts advances by ``FRAME_SAMPLES`` per frame; the source is asked for exactly those sample
    indices, so a stateless source yields a continuous waveform. Pacing uses the monotonic
    clock. After a stall longer than ``RESYNC_AFTER_SECONDS`` pts jumps forward to the present
    (the receiver treats that as a gap) rather than flooding the encoder with old audio.
    """

    kind = "audio"

    def __init__(self, source: AudioSource, *, pacer: FramePacer | None = None) -> None:
        """``pacer``: the real-time one by default (tests pass one on a clock they move)."""
        super().__init__()
        self.source = source
        self.frames_sent = 0
        self._pacer = pacer or FramePacer(FRAME_SECONDS, RESYNC_AFTER_SECONDS)

    async def _next_pts(self) -> int:
        """Wait until the next frame is due and return its pts (sample index)."""
        return await self._pacer.next(lambda: self.readyState == "live") * FRAME_SAMPLES

    def _render(self, pts: int) -> np.ndarray:
        """Samples for the frame starting at ``pts``; subclasses choose what to send."""
        return self.source.samples(pts, FRAME_SAMPLES)

    async def recv(self) -> av.AudioFrame:
        """Next 20 ms frame, paced in real time."""
        pts = await self._next_pts()
        frame = make_audio_frame(self._render(pts), pts)
        self.frames_sent += 1
        return frame


class GatedAudioTrack(SourceAudioTrack):
    """An audio track with a gate: the source while open; silence, then nothing, while closed.

    The gate is read once per frame, so a change takes effect on the very next frame. Opening
    fades in over 2 ms to avoid a click. Closing sends ``CLOSE_TAIL_FRAMES`` of silence, then
    ``recv`` waits until the gate opens again (aiortc's sender then encodes and sends nothing);
    on reopening, the pacer skips to the present, so the first frame goes out at once and the
    receiver sees a gap in timestamps, never a burst of stale frames. A gate that starts closed
    sends the silent tail first: a receiver reports on a stream (RTCP receiver reports, which
    give the officer's link its round-trip time) only once it has had a packet of it.
    """

    def __init__(
        self, source: AudioSource, open: bool = False, *, pacer: FramePacer | None = None
    ) -> None:
        super().__init__(source, pacer=pacer)
        self._opened = asyncio.Event()
        self._tail = CLOSE_TAIL_FRAMES
        """Silent frames still to send after the gate closed (or at the start)."""
        self._was_open = False
        self._silence = SilenceSource()
        self.paused = 0
        """How many times the track went quiet (a closed gate with its tail sent)."""
        if open:
            self._opened.set()

    @property
    def open(self) -> bool:
        """Whether the source is passed through (True) or not (False: silence, then nothing)."""
        return self._opened.is_set() and self.readyState == "live"

    @open.setter
    def open(self, value: bool) -> None:
        if bool(value) == self._opened.is_set():
            return
        if value:
            self._opened.set()
        else:
            self._opened.clear()
            self._tail = CLOSE_TAIL_FRAMES

    async def recv(self) -> av.AudioFrame:
        """The next frame; while the gate is closed and its tail sent, wait for it to open."""
        if not self._opened.is_set() and self._tail <= 0:
            self.paused += 1
            while not self._opened.is_set():
                if self.readyState != "live":
                    raise MediaStreamError
                await self._opened.wait()
            self._pacer.skip_to_now()
        return await super().recv()

    def stop(self) -> None:
        super().stop()
        self._opened.set()  # wake a paused recv, which then ends the track

    def _render(self, pts: int) -> np.ndarray:
        if not self._opened.is_set():
            self._was_open = False
            self._tail -= 1
            return self._silence.samples(pts, FRAME_SAMPLES)
        samples = self.source.samples(pts, FRAME_SAMPLES)
        if not self._was_open:
            ramp = np.linspace(0.0, 1.0, OPEN_FADE_SAMPLES, endpoint=False)
            head = samples[:OPEN_FADE_SAMPLES].astype(np.float64) * ramp
            samples = samples.copy()
            samples[:OPEN_FADE_SAMPLES] = np.round(head).astype(np.int16)
        self._was_open = True
        return samples


FrameCallback = Callable[["AudioProbe", np.ndarray], None]


class AudioProbe:
    """Consumes a received audio track and remembers what it heard.

    Every frame is taken as it arrives, so the remote track's queue never grows; it is analysed
    only as far as someone asks. State is plain attributes read by whoever owns the probe:
    ``level_dbfs`` of the last frame (computed when read: a console tile reads it a few times a
    second, while six booths deliver 300 frames a second), ``detected[freq]`` for the last
    frame and ``last_heard[freq]`` (``time.monotonic()`` of the last frame with that tone, or
    None) for the watched tones, ``frames`` received and ``last_frame_at``. ``on_frame(probe,
    mono)`` is called after each frame; its exceptions are logged, never allowed to stop the
    drain. A frame is mixed down to mono only for watched tones or ``on_frame``. ``wait_until``
    waits for a condition frame by frame.
    """

    def __init__(
        self,
        frequencies: Iterable[float] = (),
        *,
        threshold: float = DEFAULT_TONE_THRESHOLD,
        min_share: float = DEFAULT_MIN_SHARE,
        on_frame: FrameCallback | None = None,
    ) -> None:
        self.threshold = threshold
        self.min_share = min_share
        self.on_frame = on_frame
        self.frames = 0
        self.last_frame_at: float | None = None
        self.detected: dict[float, bool] = {}
        self.last_heard: dict[float, float | None] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._frame: av.AudioFrame | None = None
        self._mono: np.ndarray | None = None
        self._level: float | None = SILENCE_DBFS
        for freq in frequencies:
            self.watch(freq)

    @property
    def level_dbfs(self) -> float:
        """RMS level of the last frame in dBFS (``SILENCE_DBFS`` before any)."""
        if self._level is None:
            if self._mono is None and self._frame is not None:
                self._mono = to_mono(self._frame)
            self._level = SILENCE_DBFS if self._mono is None else level_dbfs(self._mono)
        return self._level

    def watch(self, freq: float) -> None:
        """Start watching for a tone at ``freq`` (Hz)."""
        freq = float(freq)
        self.detected.setdefault(freq, False)
        self.last_heard.setdefault(freq, None)

    def heard_within(self, freq: float, seconds: float, now: float | None = None) -> bool:
        """Whether the tone at ``freq`` was heard in the last ``seconds`` (monotonic clock)."""
        last = self.last_heard.get(float(freq))
        if last is None:
            return False
        now = time.monotonic() if now is None else now
        return now - last <= seconds

    def feed(self, frame: av.AudioFrame) -> None:
        """Take one decoded frame (public so callers with their own reader can reuse it)."""
        if self.detected or self.on_frame is not None:
            self.feed_mono(to_mono(frame), frame.sample_rate or SAMPLE_RATE)
            return
        self._frame, self._mono, self._level = frame, None, None
        self._took_frame()
        self._wake()

    def feed_mono(self, mono: np.ndarray, rate: int = SAMPLE_RATE) -> None:
        """Analyse one frame of mono float samples (what a mixer or speaker produced)."""
        self._frame, self._mono, self._level = None, mono, None
        now = self._took_frame()
        for freq in self.detected:
            present = tone_present(mono, freq, self.threshold, rate, self.min_share)
            self.detected[freq] = present
            if present:
                self.last_heard[freq] = now
        if self.on_frame is not None:
            try:
                self.on_frame(self, mono)
            except Exception:
                logger.exception("AudioProbe frame callback failed")
        self._wake()

    def _took_frame(self) -> float:
        now = time.monotonic()
        self.frames += 1
        self.last_frame_at = now
        return now

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_until(self, predicate: Callable[[AudioProbe], bool]) -> None:
        """Return once ``predicate(probe)`` holds, re-checked after every frame.

        Frame-driven instead of polling; it never times out by itself, so bound it with
        ``asyncio.timeout``.
        """
        loop = asyncio.get_running_loop()
        while not predicate(self):
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            await waiter

    async def run(self, track: MediaStreamTrack) -> None:
        """Read ``track`` until it ends; cancel the task to stop earlier."""
        async for frame in track_frames(track, av.AudioFrame):
            self.feed(frame)
