"""The synthetic booth camera: stamps and booth colours must survive VP8, scaling and WebRTC."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import itertools
import time

import aioice.ice
import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, vp8_depayload
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.video.reformatter import VideoReformatter

from lapak.media.audio_tracks import AudioProbe, SourceAudioTrack
from lapak.media.testcard import (
    BOOTH_COLOURS,
    COLOUR_TOLERANCE,
    STAMP_TOP,
    VIDEO_TIME_BASE,
    TestCard,
    TestCardTrack,
    identify_booth,
    read_stamp,
    stamp_age_ms,
)
from lapak.media.tones import OFFICER_FREQUENCY, ToneBurstSource, booth_frequency

# A fixed, realistic epoch-ms value (2025-ish), whose low 32 bits are what the stamp carries.
WALL_MS = 1_760_000_000_123
SCALERS = ("AREA", "FAST_BILINEAR", "BILINEAR")


def low32(value: int) -> int:
    return value & 0xFFFFFFFF


def vp8_roundtrip(frames: list[av.VideoFrame], bitrate: int = 250_000) -> list[av.VideoFrame]:
    """Encode with aiortc's own VP8 encoder (RTP payloads), depayload, decode, frame by frame."""
    encoder, decoder = Vp8Encoder(), Vp8Decoder()
    encoder.target_bitrate = bitrate  # aiortc's floor: the worst quality a booth will send
    decoded: list[av.VideoFrame] = []
    for frame in frames:
        payloads, timestamp = encoder.encode(frame)
        data = b"".join(vp8_depayload(p) for p in payloads)
        decoded.extend(decoder.decode(JitterFrame(data, timestamp)))
    return decoded


def card_frames(index: int, count: int, fps: float = 15.0) -> tuple[list[av.VideoFrame], list[int]]:
    """``count`` consecutive yuv420p frames of booth ``index`` and the wall ms stamped on each."""
    track = TestCardTrack(f"Booth {index + 1}", index, fps=fps)
    frames, walls = [], []
    for n in range(count):
        wall = WALL_MS + index * 1_000_003 + n * round(1000 / fps)
        frame = track.render(n / fps, wall)
        frame.pts = round(n * 90000 / fps)
        frame.time_base = VIDEO_TIME_BASE
        frames.append(frame)
        walls.append(wall)
    return frames, walls


def scaled(frame: av.VideoFrame, width: int, height: int, interpolation: str) -> np.ndarray:
    return (
        VideoReformatter()
        .reformat(frame, width=width, height=height, format="rgb24", interpolation=interpolation)
        .to_ndarray()
    )


# --- clean frames -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(640, 480), (320, 240), (1280, 720), (64, 48)])
@pytest.mark.parametrize("wall", [0, 1, 0xFFFFFFFF, WALL_MS, WALL_MS + 987_654])
def test_stamp_roundtrip_clean(size: tuple[int, int], wall: int) -> None:
    card = TestCard("Booth 1", 0, *size)
    rgb = card.frame_rgb(1.5, wall)
    assert rgb.shape == (size[1], size[0], 3) and rgb.dtype == np.uint8
    assert read_stamp(rgb) == low32(wall), f"expected stamp {low32(wall)} on a clean {size} card"


def test_stamp_roundtrip_clean_downscaled_64x48() -> None:
    card = TestCard("Booth 2", 1)
    for n in range(20):
        wall = WALL_MS + n * 66_667
        frame = av.VideoFrame.from_ndarray(card.frame_rgb(n / 15, wall), format="rgb24")
        for interpolation in SCALERS:
            got = read_stamp(scaled(frame, 64, 48, interpolation))
            assert got == low32(wall), (
                f"expected {low32(wall)} after {interpolation} 64x48, got {got}"
            )


def test_read_stamp_rejects_non_stamps() -> None:
    rng = np.random.default_rng(7)
    plain = np.zeros((480, 640, 3), dtype=np.uint8)
    plain[:] = BOOTH_COLOURS[2]
    assert read_stamp(plain) is None, "expected None for a flat background"
    assert read_stamp(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)) is None, (
        "expected None for noise"
    )
    blocks = rng.integers(0, 2, (200, 12, 16), dtype=np.uint8) * 255
    false_hits = sum(
        read_stamp(np.repeat(np.repeat(b, 4, 0), 4, 1)[..., None].repeat(3, 2)) is not None
        for b in blocks
    )
    assert false_hits == 0, f"expected no stamp in random black/white blocks, read {false_hits}"

    card = TestCard("Booth 1", 0)
    rgb = card.frame_rgb(0.0, WALL_MS)
    # Invert one data cell (row 1, column 5): the CRC must catch it.
    y0 = round(480 * STAMP_TOP) + 35
    rgb[y0 : y0 + 20, 5 * 640 // 12 + 10 : 6 * 640 // 12 - 10] ^= 255
    assert read_stamp(rgb) is None, "expected None when one stamp cell is flipped"
    assert read_stamp(np.zeros((10, 10, 3), dtype=np.uint8)) is None, "expected None for 10x10"


def test_stamp_age_handles_wrap() -> None:
    assert stamp_age_ms(low32(WALL_MS), WALL_MS + 250) == 250
    assert stamp_age_ms(0xFFFFFF00, (1 << 32) + 0x10) == 0x110, "expected age across the wrap"
    assert stamp_age_ms(low32(WALL_MS + 40), WALL_MS) == -40, "expected negative age (skew)"


# --- booth colours ----------------------------------------------------------------------------


def test_palette_is_six_distinct_colours() -> None:
    assert len(BOOTH_COLOURS) == 6
    for a, b in itertools.combinations(range(6), 2):
        distance = float(np.linalg.norm(np.subtract(BOOTH_COLOURS[a], BOOTH_COLOURS[b])))
        assert distance > 2 * COLOUR_TOLERANCE, f"booths {a} and {b} too close: {distance:.0f}"


def test_identify_booth_clean_and_rejects_others() -> None:
    for index in range(6):
        rgb = TestCard(f"Booth {index + 1}", index).frame_rgb(0.0, WALL_MS)
        assert identify_booth(rgb) == index, f"expected booth {index} on a clean card"
    grey = np.full((480, 640, 3), 128, dtype=np.uint8)
    assert identify_booth(grey) is None, "expected None for a grey frame"
    mixed = TestCard("x", 0).frame_rgb(0.0, WALL_MS)
    mixed[:, 320:] = BOOTH_COLOURS[3]
    assert identify_booth(mixed) is None, "expected None when the two corners disagree"


def test_card_moves_and_clock_runs() -> None:
    card = TestCard("Booth 1", 0)
    a, b = card.frame_rgb(0.0, WALL_MS), card.frame_rgb(1.0, WALL_MS)
    box_band = slice(round(480 * 0.50), round(480 * 0.72))
    assert not np.array_equal(a[box_band], b[box_band]), "expected the box to move in 1 s"
    c = card.frame_rgb(0.0, WALL_MS + 1000)
    clock_band = slice(round(480 * 0.34), round(480 * 0.46))
    assert not np.array_equal(a[clock_band], c[clock_band]), "expected the clock to change"
    assert np.array_equal(a[:40], c[:40]), "expected the top (name, corners) to be static"
    with pytest.raises(ValueError):
        TestCard("Booth 7", 6)


# --- after VP8 --------------------------------------------------------------------------------


def test_stamp_survives_vp8_and_downscale() -> None:
    frames, walls = card_frames(0, 15)
    decoded = vp8_roundtrip(frames)
    assert len(decoded) == len(frames), f"expected {len(frames)} decoded frames"
    for frame, wall in zip(decoded, walls, strict=True):
        full = read_stamp(frame.to_ndarray(format="rgb24"))
        assert full == low32(wall), f"expected stamp {low32(wall)} after VP8, got {full}"
        for interpolation in SCALERS:
            small = read_stamp(scaled(frame, 64, 48, interpolation))
            assert small == low32(wall), (
                f"expected stamp {low32(wall)} after VP8 + {interpolation} to 64x48, got {small}"
            )


@pytest.mark.parametrize("index", range(6))
def test_identify_booth_after_vp8(index: int) -> None:
    frames, walls = card_frames(index, 4)
    decoded = vp8_roundtrip(frames)
    assert decoded, "expected decoded frames"
    for frame, wall in zip(decoded, walls, strict=True):
        rgb = frame.to_ndarray(format="rgb24")
        assert identify_booth(rgb) == index, f"expected booth {index} after VP8"
        small = scaled(frame, 64, 48, "FAST_BILINEAR")
        assert identify_booth(small) == index, f"expected booth {index} after VP8 + 64x48"
        assert read_stamp(small) == low32(wall), f"expected booth {index}'s stamp at 64x48"


# --- the aiortc track -------------------------------------------------------------------------


async def test_testcard_track_frames() -> None:
    track = TestCardTrack("Booth 3", 2, fps=15, width=320, height=240)
    try:
        frames = []
        async with asyncio.timeout(5):
            for _ in range(3):
                frames.append(await track.recv())
        for frame in frames:
            assert frame.format.name == "yuv420p", f"expected yuv420p, got {frame.format.name}"
            assert (frame.width, frame.height) == (320, 240)
            assert frame.time_base == fractions.Fraction(1, 90000)
        assert [f.pts for f in frames] == [0, 6000, 12000], "expected 90 kHz pts at 15 fps"
        rgb = frames[-1].to_ndarray(format="rgb24")
        assert identify_booth(rgb) == 2
        stamp = read_stamp(rgb)
        assert stamp is not None, "expected a readable stamp on a track frame"
        assert abs(stamp_age_ms(stamp)) < 2000, "expected the stamp to be the capture wall time"
        assert track.frames_sent == 3 and track.mean_cost_ms > 0
    finally:
        track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


# --- real WebRTC loopback ---------------------------------------------------------------------


async def test_loopback_booth_to_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """A booth peer sends the test card and a tone; the console peer identifies both."""
    if not aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False):
        # A host with only loopback gathers no candidates: let aioice use 127.0.0.1.
        monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda *a, **k: ["127.0.0.1"])

    index = 4
    freq = booth_frequency(index)
    config = RTCConfiguration(iceServers=[])
    booth, console = RTCPeerConnection(config), RTCPeerConnection(config)
    video = TestCardTrack(f"Booth {index + 1}", index)
    audio = SourceAudioTrack(ToneBurstSource(freq))
    probe = AudioProbe([freq, OFFICER_FREQUENCY])
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[tuple[int | None, int | None, int]] = loop.create_future()
    tasks: list[asyncio.Task[None]] = []

    async def watch_video(track: MediaStreamTrack) -> None:
        """Drain every frame (never leave a remote track unread); report the first good one."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if seen.done() or not isinstance(frame, av.VideoFrame):
                continue
            rgb = frame.to_ndarray(format="rgb24")
            booth_id, stamp = identify_booth(rgb), read_stamp(rgb)
            if stamp is not None:
                seen.set_result((booth_id, stamp, int(time.time() * 1000)))

    @console.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        runner = probe.run(track) if track.kind == "audio" else watch_video(track)
        tasks.append(asyncio.ensure_future(runner))

    try:
        booth.addTrack(video)
        booth.addTrack(audio)
        async with asyncio.timeout(20):
            await booth.setLocalDescription(await booth.createOffer())
            await console.setRemoteDescription(booth.localDescription)
            await console.setLocalDescription(await console.createAnswer())
            await booth.setRemoteDescription(console.localDescription)
        assert len(tasks) == 2, f"expected an audio and a video track, got {len(tasks)}"

        async with asyncio.timeout(20):
            booth_id, stamp, received_ms = await seen
        assert booth_id == index, f"expected booth {index} from the received frame's colour"
        age = stamp_age_ms(stamp, received_ms)
        assert abs(age) < 2000, f"expected a stamp within 2 s of now, got {age} ms"

        async with asyncio.timeout(20):
            await probe.wait_until(lambda p: p.heard_within(freq, 5.0))
        assert probe.frames > 0
        assert probe.last_heard[OFFICER_FREQUENCY] is None, "expected no officer tone from a booth"
    finally:
        video.stop()
        audio.stop()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await asyncio.gather(booth.close(), console.close())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
