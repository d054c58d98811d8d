"""Capture devices through the real PyAV path, and the fallbacks when a device is missing.

There is no camera or sound card here, so FFmpeg's ``lavfi`` generators stand in for them:
they go through the same ``MediaPlayer`` code as v4l2/avfoundation/dshow.
"""

from __future__ import annotations

import asyncio
import logging

import av
import pytest
from conftest import wait_for

from lapak.media.audio_out import open_sink
from lapak.media.booth import BoothAgent, BoothMediaConfig, ClaimantInfo
from lapak.media.devices import camera_spec, open_camera
from lapak.media.headless import HeadlessDesk
from lapak.media.testcard import identify_booth
from lapak.media.tones import goertzel_power
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

CAMERA = "lavfi:testsrc=size=160x120:rate=10"
MIC = "lavfi:sine=frequency=1000:sample_rate=48000"


async def test_lavfi_camera_delivers_frames_through_the_capture_path() -> None:
    capture = open_camera(CAMERA)
    assert capture is not None, "the lavfi generator should open like a camera"
    try:
        frame = await asyncio.wait_for(capture.track.recv(), 10)
        assert isinstance(frame, av.VideoFrame) and (frame.width, frame.height) == (160, 120)
    finally:
        capture.stop()


def test_missing_camera_is_logged_and_returns_none(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lapak")
    assert open_camera("/dev/video-no-such-camera") is None
    assert any("event=device_unavailable" in r.getMessage() for r in caplog.records)


def test_platform_device_names() -> None:
    spec = camera_spec("/dev/video0", 640, 480, 15)
    assert spec.options == {"video_size": "640x480", "framerate": "15"}
    assert camera_spec(CAMERA, 640, 480, 15).format == "lavfi"


def test_unknown_speaker_falls_back_to_no_output(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lapak")
    assert open_sink("no-such-sound-card-xyz", who="test") is None
    assert any("event=audio_out_fallback" in r.getMessage() for r in caplog.records)


async def test_booth_sends_its_devices_and_falls_back_when_they_are_missing(
    server: SignalServer, keys: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lapak")

    def booth(index: int, media: BoothMediaConfig) -> BoothAgent:
        name = f"booth-d{index}"
        token = keys.issue("booth", sub=name, office="main", booth=name)
        return BoothAgent(server.url, token, name, index, ClaimantInfo("Siti", "1"), media)

    real = booth(0, BoothMediaConfig(width=160, height=120, fps=10, camera=CAMERA, mic=MIC))
    broken = booth(1, BoothMediaConfig(width=160, height=120, fps=10, camera="/dev/video-gone"))
    desk = HeadlessDesk(server.url, keys.issue("officer", "ana", "main", desk="d1"))
    heard_1k: list[float] = []
    try:
        await desk.start()
        await real.start()
        await broken.start()
        links = desk.engine.links
        await wait_for(
            lambda: (
                real.visit in links
                and broken.visit in links
                and all(link.frames > 3 for link in links.values())
            ),
            "video from both booths",
            timeout=30,
        )
        real_link, broken_link = links[real.visit], links[broken.visit]
        real_link.audio.on_frame = lambda _p, mono: heard_1k.append(goertzel_power(mono, 1000))
        await wait_for(lambda: len(heard_1k) > 20, "audio from the booth's microphone")
        # lavfi's sine is at 1/8 of full scale: power ~0.0078 after Opus
        assert min(heard_1k[-10:]) > 0.003, "the officer hears the microphone's 1 kHz"
        await wait_for(lambda: real_link.latest is not None, "a fresh frame")
        rgb = real_link.latest.to_ndarray(format="rgb24")  # type: ignore[union-attr]
        assert rgb.shape == (120, 160, 3) and identify_booth(rgb) is None, (
            "the booth with a camera sends the camera's picture, not its test card"
        )
        await wait_for(lambda: broken_link.latest is not None, "a fresh frame")
        rgb = broken_link.latest.to_ndarray(format="rgb24")  # type: ignore[union-attr]
        assert identify_booth(rgb) == 1, "a missing camera falls back to the booth's test card"
        assert any(
            "event=fallback" in r.getMessage() and "test_card" in r.getMessage()
            for r in caplog.records
        ), "the fallback is logged"
    finally:
        await desk.close()
        await asyncio.gather(real.close(), broken.close())
