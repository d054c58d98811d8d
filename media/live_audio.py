"""Live audio (a microphone or a looped recording) as an ``AudioSource`` for gated tracks.

The officer's voice tracks read their source only while their gate is open, and only one gate
(the on-air booth's) is open at a time, so a live source has a single reader: ``samples``
returns the next ``n`` captured samples, whatever ``start`` says. The capture is read by one
task from the first read on (aiortc's ``MediaPlayer`` starts decoding at its first ``recv``
and queues without bound unless drained), resampled to 48 kHz mono s16, and kept in a short
ring: a reader that falls behind by more than 200 ms skips to 40 ms behind the newest sample.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from lapak.media.peer import cancel_tasks
from lapak.media.tones import SAMPLE_RATE
from lapak.media.track_frames import track_frames

log = logging.getLogger("lapak.live_audio")

RING_SAMPLES = SAMPLE_RATE  # 1 s
MAX_LAG = SAMPLE_RATE // 5
RESUME_LAG = SAMPLE_RATE // 25


class LiveAudioSource:
    def __init__(self, track: MediaStreamTrack, what: str) -> None:
        self.track = track
        self.what = what
        self._ring = np.zeros(RING_SAMPLES, dtype=np.int16)
        self._written = 0  # total samples captured
        self._cursor = 0  # next sample to hand out
        self._task: asyncio.Task[None] | None = None
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)

    @classmethod
    def from_file(cls, path: str | Path) -> LiveAudioSource | None:
        from lapak.media.devices import open_recording

        capture = open_recording(path, "audio")
        return None if capture is None else cls(capture.track, str(path))

    @classmethod
    def from_microphone(cls, device: str) -> LiveAudioSource | None:
        from lapak.media.devices import open_microphone

        capture = open_microphone(device)
        return None if capture is None else cls(capture.track, device)

    def _append(self, pcm: np.ndarray) -> None:
        n = pcm.size
        if n >= RING_SAMPLES:
            pcm, n = pcm[-RING_SAMPLES:], RING_SAMPLES
        pos = self._written % RING_SAMPLES
        first = min(n, RING_SAMPLES - pos)
        self._ring[pos : pos + first] = pcm[:first]
        self._ring[: n - first] = pcm[first:]
        self._written += n

    async def _read(self) -> None:
        async for frame in track_frames(self.track, av.AudioFrame):
            for out in self._resampler.resample(frame):
                self._append(out.to_ndarray().reshape(-1))
        log.info("event=live_audio_ended source=%s", self.what)

    def samples(self, start: int, n: int) -> np.ndarray:
        """The next ``n`` live samples (silence where the capture has not caught up)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._read(), name="live-audio")
            self._cursor = 0
        if self._written - self._cursor > MAX_LAG:
            self._cursor = self._written - RESUME_LAG
        out = np.zeros(n, dtype=np.int16)
        have = max(0, min(n, self._written - self._cursor))
        if have:
            idx = (np.arange(self._cursor, self._cursor + have)) % RING_SAMPLES
            out[:have] = self._ring[idx]
            self._cursor += have
        return out

    async def close(self) -> None:
        if self._task is not None:
            await cancel_tasks([self._task])
            self._task = None
        self.track.stop()
