"""One visit's recording: a WebM (VP8 + Opus through PyAV), encrypted as it is written
(media/recorder_crypt.py: AES-256-GCM chunks under the visit's recording key), by its own thread.

Four streams, in this order: the booth's camera, the booth's microphone, the officer's picture
and the officer's voice as the booth received them (relayed only while on air). Timestamps are
wall-clock: the file's metadata holds the start (``LAPAK_START``, Unix seconds, and
``creation_time``), and every frame's pts is its arrival time since then, so a stretch with no
media (a dropped link, the officer off air) is a stretch with no frames, not compressed time.

Kill-safety: the muxer starts a cluster at least every second and hands each one, finished,
to the sealed writer, which appends it as one chunk; a recorder killed by SIGKILL leaves a
file that decrypts and decodes up to its last complete chunk. The clear WebM never touches
the disk. A
sidecar ``<file>.json`` (replaced atomically) says what the file is, its gaps and, once closed,
its SHA-256, duration and size; an unclosed sidecar marks a file cut short.
"""

from __future__ import annotations

import fractions
import hashlib
import json
import logging
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av

from lapak.media.recorder_crypt import SealedWriter

log = logging.getLogger("lapak.recorder")

STREAMS = ("booth_video", "booth_audio", "officer_video", "officer_audio")
"""Stream keys in file order (stream index = position)."""
TITLES = {
    "booth_video": "booth camera",
    "booth_audio": "booth microphone",
    "officer_video": "officer picture (as the claimant saw it)",
    "officer_audio": "officer voice (as the claimant heard it)",
}
GAP_S = 1.0
"""No media from the booth for longer than this is a gap in the recording."""
AUDIO_RATE = 48000
OPUS_FRAME = 960  # 20 ms
MS = fractions.Fraction(1, 1000)
FILLER_S = 0.5
"""The officer's picture stream gets a dark frame when it has had none for this long (off air:
the claimant sees no officer). FFmpeg's interleaver holds every packet back while a VP8 stream
has none queued, so without these a killed recorder would lose everything since the officer
last went off air."""
VP8_OPTIONS = {"deadline": "realtime", "cpu-used": "16", "lag-in-frames": "0", "threads": "1"}
"""libvpx's fastest real-time mode on one thread: ~2.5 ms a 640x480 frame here, against 170 ms
with FFmpeg's defaults (good quality, a thread per core fighting over two cores)."""
SUFFIX = ".rec"
"""An encrypted recording's file name ends so; the export writes ``V….webm``."""
ENCRYPTION = "lapak-rec/1 AES-256-GCM chunks"
IO_BUFFER = 1 << 20
"""The muxer's write buffer: a cluster (~1 s, ~100 KB) is one write, so one chunk."""
QUEUE_DEPTH = 400  # ~2 s of all four streams; beyond that frames are dropped (counted)


@dataclass
class RecordingInfo:
    """The sidecar's contents."""

    visit: str
    file: str
    office: str
    desk: str | None
    booth: str
    start: float  # Unix seconds: pts 0
    start_utc: str
    routed_at: float | None = None
    streams: list[str] = field(default_factory=lambda: list(STREAMS))
    gaps: list[list[float]] = field(default_factory=list)
    closed: bool = False
    end: float | None = None
    duration_s: float | None = None
    bytes: int | None = None
    sha256: str | None = None
    dropped_frames: int = 0
    encryption: str = ENCRYPTION  # the key: the visit's recording key (docs/recording.md)
    chunks: int | None = None  # sealed chunks written, once closed


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def write_sidecar(path: Path, info: RecordingInfo) -> None:
    """Replace the sidecar atomically (a crash leaves the old or the new one)."""
    target = sidecar_path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(asdict(info), indent=1) + "\n")
    os.replace(tmp, target)


def read_sidecar(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def free_path(directory: Path, visit: str) -> Path:
    """``V.rec``, or ``V-2.rec``… when a restarted recorder records the same visit again."""
    path = directory / f"{visit}{SUFFIX}"
    n = 1
    while path.exists() or sidecar_path(path).exists():
        n += 1
        path = directory / f"{visit}-{n}{SUFFIX}"
    return path


class _Video:
    def __init__(self, stream: Any, width: int, height: int) -> None:
        self.stream = stream
        self.width, self.height = width, height
        self.last_pts = -1
        self.last_t = -1.0

    def frames(self, frame: av.VideoFrame, t: float) -> list[av.VideoFrame]:
        out = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        out.pts = max(round(t * 1000), self.last_pts + 1)
        out.time_base = MS
        self.last_pts = out.pts
        self.last_t = t
        return [out]

    def filler(self, t: float) -> list[av.VideoFrame]:
        """A dark frame at ``t`` when the stream has been idle for ``FILLER_S``."""
        if t - self.last_t < FILLER_S:
            return []
        if self._dark is None:
            self._dark = av.VideoFrame(self.width, self.height, "yuv420p")
            for plane, value in zip(self._dark.planes, (16, 128, 128), strict=True):
                plane.update(bytes([value]) * plane.buffer_size)
        return self.frames(self._dark, t)

    _dark: av.VideoFrame | None = None


class _Audio:
    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE)
        self.fifo = av.AudioFifo()
        self.next_pts: int | None = None

    def frames(self, frame: av.AudioFrame, t: float) -> list[av.AudioFrame]:
        arrival = round(t * AUDIO_RATE) - frame.samples  # when this frame's first sample was
        if self.next_pts is None:
            self.next_pts = max(0, arrival)
        elif arrival > self.next_pts + self.fifo.samples + round(GAP_S / 4 * AUDIO_RATE):
            self.next_pts = arrival - self.fifo.samples  # silence on the wire: jump, not squeeze
        frame.pts = None
        for chunk in self.resampler.resample(frame):
            chunk.pts = None
            self.fifo.write(chunk)
        out = []
        while self.fifo.samples >= OPUS_FRAME:
            piece = self.fifo.read(OPUS_FRAME)
            assert piece is not None
            piece.pts = self.next_pts
            piece.time_base = fractions.Fraction(1, AUDIO_RATE)
            self.next_pts += OPUS_FRAME
            out.append(piece)
        return out


class RecordingFile:
    """An encrypted WebM file fed from the event loop (``put``) and written by a thread.

    ``key`` is the visit's recording key (from the server's ``recording_key``); it is held by
    the sealed writer, in memory only.

    ``booth_media`` (wall time of the booth's last frame) and ``gaps`` are kept here, so the
    file's facts come from what reached it.
    """

    def __init__(
        self,
        path: Path,
        info: RecordingInfo,
        key: bytes,
        *,
        booth_size: tuple[int, int] = (640, 480),
        officer_size: tuple[int, int] = (320, 240),
        clock: Any = time.time,
    ) -> None:
        self.path = path
        self.info = info
        self.clock = clock
        self.booth_size = booth_size
        self.officer_size = officer_size
        self.frames: dict[str, int] = dict.fromkeys(STREAMS, 0)
        self.last_booth_media: float | None = None
        self.last_media: float | None = None
        self._gap_from: float | None = None
        self._queue: queue.Queue[tuple[str, av.frame.Frame, float] | None] = queue.Queue(
            QUEUE_DEPTH
        )
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"rec-{info.visit}", daemon=True)
        write_sidecar(path, info)
        self._writer = SealedWriter(path, info.visit, key)
        try:
            self._container = self._open()
        except BaseException:
            self._writer.abandon()
            raise
        self._thread.start()

    # -- the event loop's side ---------------------------------------------------------

    def put(self, key: str, frame: av.frame.Frame) -> None:
        """A frame that arrived now on stream ``key``."""
        now = self.clock()
        if key.startswith("booth"):
            if self._gap_from is not None:
                self.info.gaps.append([self._gap_from, now])
                log.info(
                    "event=recording_gap visit=%s from=%.3f to=%.3f",
                    self.info.visit, self._gap_from, now,
                )  # fmt: skip
                self._gap_from = None
                write_sidecar(self.path, self.info)
            self.last_booth_media = now
        self.last_media = now
        self.frames[key] += 1
        try:
            self._queue.put_nowait((key, frame, now - self.info.start))
        except queue.Full:
            self.info.dropped_frames += 1

    def check_gap(self) -> bool:
        """Called about twice a second: a booth silent for over ``GAP_S`` opens a gap (from
        its last frame). True while a gap is open."""
        last = self.last_booth_media
        if self._gap_from is None and last is not None and self.clock() - last > GAP_S:
            self._gap_from = last
            log.info("event=recording_gap_open visit=%s", self.info.visit)
        return self._gap_from is not None

    def close(self) -> RecordingInfo:
        """Finish the file (blocking: run it in a thread), then hash it and say so."""
        end = self.last_media if self.last_media is not None else self.info.start
        if self._gap_from is not None or (
            self.last_booth_media is not None and self.clock() - self.last_booth_media > GAP_S
        ):
            start = self._gap_from if self._gap_from is not None else self.last_booth_media
            assert start is not None
            self.info.gaps.append([start, self.clock()])
            self._gap_from = None
        self._queue.put(None)
        self._thread.join()
        self.info.closed = True
        self.info.chunks = self._writer.index
        self.info.end = end
        self.info.duration_s = round(max(0.0, end - self.info.start), 3)
        self.info.bytes = self.path.stat().st_size
        self.info.sha256 = sha256_of(self.path)
        write_sidecar(self.path, self.info)
        if self._error is not None:
            log.warning("event=recording_error visit=%s error=%r", self.info.visit, self._error)
        return self.info

    # -- the writer thread ---------------------------------------------------------------

    def _open(self) -> Any:
        container = av.open(
            self._writer,  # not seekable: written front to back, each cluster sealed once
            mode="w",
            format="webm",
            options={
                "flush_packets": "1",  # every finished cluster reaches the writer at once
                "max_interleave_delta": "500000",  # µs: never hold packets for a silent stream
                "cluster_time_limit": "1000",  # ms
            },
            buffer_size=IO_BUFFER,
        )
        container.metadata["title"] = f"Lapak visit {self.info.visit}"
        container.metadata["creation_time"] = self.info.start_utc
        container.metadata["LAPAK_START"] = f"{self.info.start:.6f}"
        container.metadata["LAPAK_VISIT"] = self.info.visit
        self._coders: dict[str, _Video | _Audio] = {}
        for key in STREAMS:
            if key.endswith("video"):
                width, height = self.booth_size if key == "booth_video" else self.officer_size
                stream: Any = container.add_stream("libvpx", rate=15)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.codec_context.time_base = MS
                stream.bit_rate = 600_000 if key == "booth_video" else 250_000
                stream.codec_context.options = VP8_OPTIONS
                self._coders[key] = _Video(stream, width, height)
            else:
                audio = container.add_stream("libopus", rate=AUDIO_RATE, layout="stereo")
                audio.bit_rate = 32_000
                self._coders[key] = _Audio(audio)
            self._coders[key].stream.metadata["title"] = TITLES[key]
        return container

    def _run(self) -> None:
        container = self._container
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    break
                key, frame, t = item
                try:
                    self._encode(key, frame, t)
                except (av.error.FFmpegError, ValueError) as exc:  # one bad frame, not the file
                    self.info.dropped_frames += 1
                    log.debug("event=frame_dropped visit=%s error=%r", self.info.visit, exc)
            for coder in self._coders.values():
                for packet in coder.stream.encode(None):
                    container.mux(packet)
        except BaseException as exc:  # the file is cut short; close() reports it
            self._error = exc
        finally:
            try:
                container.close()
                self._writer.finish()  # the final chunk: closed, not cut short
            except BaseException as exc:
                self._error = self._error or exc
                self._writer.abandon()

    def _encode(self, key: str, frame: av.frame.Frame, t: float) -> None:
        officer = self._coders["officer_video"]
        if key != "officer_video" and isinstance(officer, _Video):
            for filler in officer.filler(t):
                for packet in officer.stream.encode(filler):
                    self._container.mux(packet)
        coder = self._coders[key]
        if isinstance(coder, _Video):
            assert isinstance(frame, av.VideoFrame)
            frames: list[Any] = coder.frames(frame, t)
        else:
            assert isinstance(frame, av.AudioFrame)
            frames = coder.frames(frame, t)
        for out in frames:
            for packet in coder.stream.encode(out):
                self._container.mux(packet)


def remux(source: Path, target: Path) -> None:
    """Copy a decrypted (front-to-back, index-less) WebM into ``target`` with cues and
    durations, packets untouched (same pts), so players can seek: what export hands over."""
    with av.open(str(source)) as src, av.open(str(target), "w", format="webm") as out:
        out.metadata.update(src.metadata)
        streams = {}
        for stream in src.streams:
            copy = out.add_stream_from_template(stream)
            copy.metadata.update(stream.metadata)
            streams[stream.index] = copy
        for packet in src.demux():
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
