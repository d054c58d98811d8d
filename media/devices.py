"""Real capture devices (camera, microphone) and recordings, through PyAV/FFmpeg.

Camera and microphone both go through aiortc's ``MediaPlayer`` (PyAV in its own thread): v4l2
and ALSA/Pulse on Linux, avfoundation on macOS, dshow on Windows. One code path for both kinds,
for files (``--source file.mp4`` plays a recording as a camera would, looped) and for FFmpeg's
``lavfi`` generators, which is how the tests drive this path without hardware:
``--camera lavfi:testsrc=size=320x240:rate=15``. Speaker output is in ``audio_out`` (PortAudio).

Every opener returns ``None`` on failure after logging why, so the booth falls back, clearly
logged, to its synthetic test card and tone.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import av
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamTrack

log = logging.getLogger("lapak.devices")


def _platform_format(kind: str) -> str:
    if sys.platform.startswith("linux"):
        if kind == "video":
            return "v4l2"
        return "pulse" if "pulse" in av.formats_available else "alsa"
    if sys.platform == "darwin":
        return "avfoundation"
    if sys.platform.startswith("win"):
        return "dshow"
    raise RuntimeError(f"no capture format known for {sys.platform}")


@dataclass(frozen=True)
class CaptureSpec:
    """What FFmpeg should open: ``file`` with ``format`` and ``options``."""

    file: str
    format: str | None
    options: dict[str, str]


def camera_spec(device: str, width: int, height: int, fps: int) -> CaptureSpec:
    """``/dev/video0``, ``0`` (macOS index), ``Integrated Camera`` (Windows), ``lavfi:…``."""
    options = {"video_size": f"{width}x{height}", "framerate": str(fps)}
    if device.startswith("lavfi:"):
        return CaptureSpec(device.removeprefix("lavfi:"), "lavfi", {})
    fmt = _platform_format("video")
    if fmt == "dshow" and not device.startswith("video="):
        device = f"video={device}"
    if fmt == "avfoundation" and ":" not in device:
        device = f"{device}:none"
    return CaptureSpec(device, fmt, options)


def microphone_spec(device: str) -> CaptureSpec:
    """``default`` / ``hw:1`` (Linux: Pulse, or ALSA with ``alsa:hw:1``), ``:0`` (macOS)…"""
    if device.startswith("lavfi:"):
        return CaptureSpec(device.removeprefix("lavfi:"), "lavfi", {})
    if device.startswith("alsa:"):
        return CaptureSpec(device.removeprefix("alsa:"), "alsa", {})
    fmt = _platform_format("audio")
    if fmt == "dshow" and not device.startswith("audio="):
        device = f"audio={device}"
    if fmt == "avfoundation" and not device.startswith(":"):
        device = f":{device}"
    return CaptureSpec(device, fmt, {"sample_rate": "48000", "channels": "1"} if fmt else {})


class Capture:
    """An open capture: the player and its track; ``stop()`` ends both."""

    def __init__(self, player: MediaPlayer, track: MediaStreamTrack, what: str) -> None:
        self.player = player
        self.track = track
        self.what = what

    def stop(self) -> None:
        self.track.stop()


def _open(spec: CaptureSpec, kind: str, what: str, loop: bool = False) -> Capture | None:
    try:
        player = MediaPlayer(spec.file, format=spec.format, options=spec.options, loop=loop)
    except Exception as exc:  # av.error.* for a missing device, a busy one, a bad file
        log.warning(
            "event=device_unavailable kind=%s device=%s format=%s reason=%r",
            kind,
            spec.file,
            spec.format,
            str(exc),
        )
        return None
    track = player.video if kind == "video" else player.audio
    if track is None:
        log.warning("event=device_unavailable kind=%s device=%s reason=no_%s", kind, what, kind)
        return None
    log.info("event=device_opened kind=%s device=%s format=%s", kind, spec.file, spec.format)
    return Capture(player, track, what)


def open_camera(device: str, width: int = 640, height: int = 480, fps: int = 15) -> Capture | None:
    return _open(camera_spec(device, width, height, fps), "video", device)


def open_microphone(device: str) -> Capture | None:
    return _open(microphone_spec(device), "audio", device)


def open_recording(path: str | Path, kind: str) -> Capture | None:
    """A file played in real time, looped, as a camera (``video``) or microphone (``audio``)."""
    spec = CaptureSpec(str(path), None, {})
    return _open(spec, kind, str(path), loop=True)
