"""Known audio signals for simulated booths and the officer, and cheap detectors for them.

Every simulated party sends a tone at its own frequency, so a test (or the console's self-check)
can tell who is heard where without speech recognition: booth ``i`` hums at
``booth_frequency(i)``, the officer at ``OFFICER_FREQUENCY``. All booth and officer frequencies
are multiples of 50 Hz, the bin spacing of a 20 ms frame at 48 kHz, so with the Hann window
used here a neighbour 100 Hz away falls exactly on a spectral null.

Sample scale: int16 input is read as ``x / 32768``; float input is taken as already in
[-1, 1]. Only numpy (and PyAV for ``to_mono``) is needed.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    import av

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz, the Opus frame aiortc sends
OFFICER_FREQUENCY = 1200.0
BOOTH_BASE_FREQUENCY = 350.0
BOOTH_FREQUENCY_STEP = 100.0
SILENCE_DBFS = -100.0
"""Floor returned by ``level_dbfs`` for digital silence (keeps comparisons and display finite)."""
DEFAULT_TONE_THRESHOLD = 1e-3
"""Normalised tone power (amplitude squared) above which a tone counts: amplitude ~0.03, -30 dB."""
DEFAULT_MIN_SHARE = 0.25
"""Share of the frame's power the tone must hold, so loud broadband noise is not a 'tone'."""

_INT16_SCALE = 32768.0


def booth_frequency(index: int) -> float:
    """Tone of booth ``index`` (0..5 → 350..850 Hz), 100 Hz apart so each is resolvable in 20 ms."""
    if index < 0:
        raise ValueError(f"booth index must be >= 0, got {index}")
    return BOOTH_BASE_FREQUENCY + BOOTH_FREQUENCY_STEP * index


def as_float(samples: np.ndarray) -> np.ndarray:
    """Mono samples as float64 in [-1, 1]: int16 scaled by 1/32768, floats passed through."""
    arr = np.asarray(samples)
    if arr.dtype == np.int16:
        return arr.astype(np.float64) / _INT16_SCALE
    if arr.dtype == np.int32:
        return arr.astype(np.float64) / 2147483648.0
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float64, copy=False)
    raise TypeError(f"expected int16, int32 or float samples, got {arr.dtype}")


def to_mono(frame: av.AudioFrame) -> np.ndarray:
    """Mix a decoded frame down to mono float32 in [-1, 1].

    aiortc's Opus decoder yields packed (interleaved) stereo s16, which ``to_ndarray`` returns as
    shape (1, samples * channels); planar formats come as (channels, samples). Both are handled.
    """
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    planes = data.reshape(channels, -1) if frame.format.is_planar else data.reshape(-1, channels).T
    if planes.dtype == np.int16:
        mono = planes.astype(np.float32).mean(axis=0) / np.float32(_INT16_SCALE)
    elif planes.dtype == np.int32:
        mono = planes.astype(np.float64).mean(axis=0) / 2147483648.0
    else:
        mono = planes.astype(np.float32).mean(axis=0)
    return np.asarray(mono, dtype=np.float32)


@lru_cache(maxsize=64)
def _probe_vector(freq: float, n: int, rate: int) -> np.ndarray:
    """Hann-windowed complex exponential for one DFT bin, scaled so a full-scale sine gives 1."""
    window = np.hanning(n + 2)[1:-1] if n > 2 else np.ones(n)
    phase = np.exp(-2j * np.pi * freq * np.arange(n) / rate)
    vector = window * phase * (2.0 / window.sum())
    vector.setflags(write=False)
    return np.asarray(vector)


def goertzel_power(samples: np.ndarray, freq: float, rate: int = SAMPLE_RATE) -> float:
    """Power of ``samples`` at ``freq``, normalised to the squared amplitude of a sine there.

    A full-scale sine at ``freq`` gives ~1.0, amplitude 0.5 gives ~0.25. Computed as the single
    Hann-windowed DFT bin that the Goertzel recurrence would give, but vectorised (one dot
    product per call) because a Python-level recurrence costs ~100x more per 20 ms frame.
    """
    x = as_float(samples)
    if x.ndim != 1:
        raise ValueError(f"expected mono 1-D samples, got shape {x.shape}")
    if x.size == 0:
        return 0.0
    value = complex(np.dot(x, _probe_vector(float(freq), x.size, int(rate))))
    return value.real * value.real + value.imag * value.imag


def mean_square(samples: np.ndarray) -> float:
    """Mean of the squared samples (float scale); a full-scale sine gives 0.5."""
    x = as_float(samples)
    if x.size == 0:
        return 0.0
    return float(np.dot(x, x) / x.size)


def tone_present(
    samples: np.ndarray,
    freq: float,
    threshold: float = DEFAULT_TONE_THRESHOLD,
    rate: int = SAMPLE_RATE,
    min_share: float = DEFAULT_MIN_SHARE,
) -> bool:
    """Whether a tone at ``freq`` is present: power above ``threshold`` and dominant enough.

    ``threshold`` is in ``goertzel_power`` units (amplitude squared). ``min_share`` is the
    fraction of the frame's total power the tone must hold (a pure sine holds ~1.0, two equal
    tones ~0.5 each), which rejects noise and clipping without a separate noise estimate.
    """
    power = goertzel_power(samples, freq, rate)
    if power < threshold:
        return False
    total = 2.0 * mean_square(samples)
    return total > 0.0 and power >= min_share * total


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale (a full-scale square is 0, a sine -3.01).

    Silence returns ``SILENCE_DBFS`` (-100) rather than -inf so levels stay comparable.
    """
    ms = mean_square(samples)
    if ms <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 10.0 * float(np.log10(ms)))


class AudioSource(Protocol):
    """Anything that can give int16 mono samples by absolute sample index (stateless)."""

    def samples(self, start: int, n: int) -> np.ndarray: ...


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def _check_amplitude(amplitude: float) -> float:
    if not 0.0 <= amplitude <= 1.0:
        raise ValueError(f"amplitude must be within [0, 1] of full scale, got {amplitude}")
    return float(amplitude)


class ToneSource:
    """A continuous sine; sample-indexed so any track can read any stretch without state."""

    def __init__(self, freq: float, amplitude: float = 0.5, rate: int = SAMPLE_RATE) -> None:
        self.freq = float(freq)
        self.amplitude = _check_amplitude(amplitude)
        self.rate = int(rate)

    def _sine(self, start: int, n: int) -> np.ndarray:
        # freq * index stays an exact float64 integer for days of audio, so reduce it modulo the
        # rate before scaling: the phase is then accurate and continuous across calls.
        idx = np.arange(start, start + n, dtype=np.float64)
        cycles = np.mod(self.freq * idx, self.rate) / self.rate
        return np.sin(2.0 * np.pi * cycles)

    def samples(self, start: int, n: int) -> np.ndarray:
        """int16 samples ``start .. start + n - 1`` of the tone."""
        return _to_int16(self.amplitude * self._sine(start, n))

    def __repr__(self) -> str:
        return f"ToneSource({self.freq:g} Hz, amplitude={self.amplitude:g})"


class ToneBurstSource(ToneSource):
    """Bursts of a tone separated by silence: a crude stand-in for speech with pauses.

    Each burst fades in and out over ``fade_ms`` (raised cosine) so the edges do not click and
    the codec sees something closer to voice onsets than to a square gate.
    """

    def __init__(
        self,
        freq: float,
        on_ms: float = 300.0,
        off_ms: float = 200.0,
        amplitude: float = 0.5,
        fade_ms: float = 5.0,
        rate: int = SAMPLE_RATE,
    ) -> None:
        super().__init__(freq, amplitude, rate)
        if on_ms <= 0 or off_ms < 0:
            raise ValueError(f"need on_ms > 0 and off_ms >= 0, got {on_ms}, {off_ms}")
        self.on_ms = float(on_ms)
        self.off_ms = float(off_ms)
        self.fade_ms = float(fade_ms)
        self._on = max(1, round(on_ms * rate / 1000))
        self._period = self._on + round(off_ms * rate / 1000)
        self._fade = min(self._on // 2, max(0, round(fade_ms * rate / 1000)))

    def envelope(self, start: int, n: int) -> np.ndarray:
        """Gain 0..1 for samples ``start .. start + n - 1`` (1 inside a burst, 0 between)."""
        pos = np.arange(start, start + n, dtype=np.int64) % self._period
        env = (pos < self._on).astype(np.float64)
        if self._fade:
            ramp_in = pos < self._fade
            ramp_out = (pos >= self._on - self._fade) & (pos < self._on)
            env[ramp_in] = 0.5 - 0.5 * np.cos(np.pi * (pos[ramp_in] + 0.5) / self._fade)
            left = self._on - pos[ramp_out] - 0.5
            env[ramp_out] = 0.5 - 0.5 * np.cos(np.pi * left / self._fade)
        return env

    def samples(self, start: int, n: int) -> np.ndarray:
        """int16 samples of the burst pattern, continuous across calls."""
        return _to_int16(self.amplitude * self.envelope(start, n) * self._sine(start, n))

    def __repr__(self) -> str:
        return (
            f"ToneBurstSource({self.freq:g} Hz, on={self.on_ms:g} ms, off={self.off_ms:g} ms, "
            f"amplitude={self.amplitude:g})"
        )


class SilenceSource:
    """Digital silence, for a closed gate or a muted booth."""

    def samples(self, start: int, n: int) -> np.ndarray:
        """``n`` zero samples (``start`` is ignored; silence has no phase)."""
        return np.zeros(n, dtype=np.int16)

    def __repr__(self) -> str:
        return "SilenceSource()"
