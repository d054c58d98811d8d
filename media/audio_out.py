"""Where received audio goes: a mixer with a gain per source, and sinks (device, WAV file).

The officer hears the on-air booth at full level and the others at the monitor level; the booth
plays the officer while on air. Both feed decoded mono frames into an ``AudioMixer``, which
mixes 20 ms at a time in real time and hands the result to a sink. Sinks never block the event
loop: the WAV sink writes from its own thread, the device sink is pulled by PortAudio's thread.

Speaker output uses PortAudio through ``sounddevice``: the one library that plays to a sound
card on Linux, macOS and Windows alike (PyAV/FFmpeg can capture on all three but has no output
device on Windows). It is imported only when a device is asked for, and a missing PortAudio
falls back to no output with a clear log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
import wave
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lapak.media.tones import FRAME_SAMPLES, SAMPLE_RATE

log = logging.getLogger("lapak.audio_out")

MAX_BUFFER_SAMPLES = SAMPLE_RATE // 5
"""Per-source backlog cap (200 ms): older audio is dropped rather than played late."""


class AudioSink(Protocol):
    def write(self, mono: np.ndarray) -> None:
        """Take one frame of mono float32 samples in [-1, 1]; must not block."""

    def close(self) -> None: ...


class WavSink:
    """Writes 48 kHz mono s16 to a WAV file from a writer thread (tests listen to this)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._file = wave.open(str(self.path), "wb")  # noqa: SIM115 - closed by the thread
        self._file.setnchannels(1)
        self._file.setsampwidth(2)
        self._file.setframerate(SAMPLE_RATE)
        self._thread = threading.Thread(target=self._run, name=f"wav-{self.path.name}", daemon=True)
        self._thread.start()

    def write(self, mono: np.ndarray) -> None:
        pcm = np.clip(np.round(mono * 32767.0), -32768, 32767).astype("<i2")
        self._queue.put(pcm.tobytes())

    def _run(self) -> None:
        try:
            while (chunk := self._queue.get()) is not None:
                self._file.writeframes(chunk)
        finally:
            self._file.close()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)


class DeviceSink:
    """Plays to a sound card through PortAudio; its callback pulls from a bounded buffer."""

    def __init__(self, device: str | int | None) -> None:
        import sounddevice  # imported here: optional at runtime, needs the PortAudio library

        self._buffer: deque[float] = deque(maxlen=MAX_BUFFER_SAMPLES)
        self._lock = threading.Lock()
        self._stream = sounddevice.OutputStream(
            samplerate=SAMPLE_RATE,
            channels=1,
            dtype="float32",
            device=device,
            blocksize=FRAME_SAMPLES,
            callback=self._callback,
        )
        self._stream.start()

    def _callback(self, out: np.ndarray, frames: int, _time: Any, _status: Any) -> None:
        with self._lock:
            n = min(frames, len(self._buffer))
            data = [self._buffer.popleft() for _ in range(n)]
        out[:n, 0] = data
        out[n:, 0] = 0.0

    def write(self, mono: np.ndarray) -> None:
        with self._lock:
            self._buffer.extend(mono.tolist())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.stop()
            self._stream.close()


def open_sink(spec: str | None, *, who: str) -> AudioSink | None:
    """``none``/None → no output; ``*.wav`` → a WAV file; ``device``/``default``/a name → a card.

    A device that cannot be opened (no PortAudio, no card) falls back to no output, logged.
    """
    if spec is None or spec == "none":
        return None
    if spec.lower().endswith(".wav"):
        log.info("event=audio_out who=%s sink=wav path=%s", who, spec)
        return WavSink(spec)
    device: str | int | None = None if spec in ("device", "default") else spec
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    try:
        sink = DeviceSink(device)
    except Exception as exc:  # OSError without PortAudio, PortAudioError without a card
        log.warning(
            "event=audio_out_fallback who=%s device=%s reason=%r sink=none", who, spec, str(exc)
        )
        return None
    log.info("event=audio_out who=%s sink=device device=%s", who, spec)
    return sink


class AudioMixer:
    """Mixes named sources with per-source gains into one sink, 20 ms at a time, in real time.

    ``push(name, mono)`` appends received samples (any frame size) to that source's buffer;
    the owner's ``run()`` task emits one mixed frame every 20 ms. A source that has fallen
    behind contributes silence for the missing part; a backlog over 200 ms is trimmed.
    """

    def __init__(self, sink: AudioSink) -> None:
        self.sink = sink
        self.gains: dict[str, float] = {}
        self.frames_out = 0
        self.listeners: list[Callable[[np.ndarray], None]] = []
        """Called with each mixed frame (what the officer hears), e.g. an ``AudioProbe``."""
        self._buffers: dict[str, deque[np.ndarray]] = {}
        self._pending: dict[str, int] = {}

    def set_gain(self, name: str, gain: float) -> None:
        self.gains[name] = max(0.0, float(gain))

    def remove(self, name: str) -> None:
        self.gains.pop(name, None)
        self._buffers.pop(name, None)
        self._pending.pop(name, None)

    def push(self, name: str, mono: np.ndarray) -> None:
        if self.gains.get(name, 0.0) <= 0.0:
            return  # muted: no work, and no stale audio when the gain comes back
        buf = self._buffers.setdefault(name, deque())
        buf.append(mono)
        self._pending[name] = self._pending.get(name, 0) + mono.size
        while self._pending[name] > MAX_BUFFER_SAMPLES and buf:
            self._pending[name] -= buf.popleft().size

    def _take(self, name: str, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.float32)
        buf = self._buffers.get(name)
        filled = 0
        while buf and filled < n:
            head = buf[0]
            k = min(n - filled, head.size)
            out[filled : filled + k] = head[:k]
            filled += k
            if k == head.size:
                buf.popleft()
            else:
                buf[0] = head[k:]
        self._pending[name] = max(0, self._pending.get(name, 0) - filled)
        return out

    def mix_frame(self) -> np.ndarray:
        mixed = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        for name, gain in list(self.gains.items()):
            if gain > 0.0:
                mixed += gain * self._take(name, FRAME_SAMPLES)
            else:
                self._buffers.pop(name, None)
                self._pending.pop(name, None)
        np.clip(mixed, -1.0, 1.0, out=mixed)
        return mixed

    async def run(self) -> None:
        """Emit a mixed frame every 20 ms until cancelled (skipping ahead after a stall)."""
        period = FRAME_SAMPLES / SAMPLE_RATE
        start = time.monotonic()
        n = 0
        while True:
            n += 1
            delay = start + n * period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                n = int((time.monotonic() - start) / period)
            mixed = self.mix_frame()
            self.sink.write(mixed)
            self.frames_out += 1
            for listener in self.listeners:
                listener(mixed)
