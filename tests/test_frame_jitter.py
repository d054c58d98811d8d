"""What media/peer.py installs in aiortc: the video jitter buffer, the size-capped VP8 encoder and
Opus at the voice rate."""

from __future__ import annotations

import fractions

import av
import numpy as np
from aiortc.rtp import RtpPacket

from lapak.media.frame_jitter import MarkerJitterBuffer
from lapak.media.video_tier import SizedVp8Encoder, bitrate_cap


def packet(seq: int, timestamp: int, marker: bool, data: bytes) -> RtpPacket:
    p = RtpPacket(payload_type=96, marker=int(marker), sequence_number=seq, timestamp=timestamp)
    p._data = data  # type: ignore[attr-defined]  # what aiortc's receiver attaches
    return p


def test_a_frame_is_complete_at_its_marker_packet_not_one_frame_later() -> None:
    buffer = MarkerJitterBuffer(capacity=128, is_video=True)
    assert buffer.add(packet(1, 1000, False, b"a"))[1] is None, "half a frame waits"
    frame = buffer.add(packet(2, 1000, True, b"b"))[1]
    assert frame is not None and (frame.data, frame.timestamp) == (b"ab", 1000), (
        "the marker packet completes the frame at once"
    )
    frame = buffer.add(packet(3, 7000, True, b"c"))[1]
    assert frame is not None and (frame.data, frame.timestamp) == (b"c", 7000)


def test_a_lost_marker_completes_the_frame_at_the_next_timestamp() -> None:
    buffer = MarkerJitterBuffer(capacity=128, is_video=True)
    assert buffer.add(packet(10, 1000, False, b"x"))[1] is None
    frame = buffer.add(packet(11, 7000, False, b"y"))[1]
    assert frame is not None and (frame.data, frame.timestamp) == (b"x", 1000), (
        "without a marker the new timestamp ends the frame, as in aiortc's buffer"
    )


def test_a_gap_waits_for_the_missing_packet() -> None:
    buffer = MarkerJitterBuffer(capacity=128, is_video=True)
    assert buffer.add(packet(20, 1000, False, b"1"))[1] is None
    assert buffer.add(packet(22, 1000, True, b"3"))[1] is None, "packet 21 is missing"
    frame = buffer.add(packet(21, 1000, False, b"2"))[1]
    assert frame is not None and frame.data == b"123", "complete once the gap is filled"


def frame_of(width: int, height: int) -> av.VideoFrame:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    frame.pts, frame.time_base = 0, fractions.Fraction(1, 90000)
    return frame


def test_the_encoder_caps_a_thumbnails_bit_rate_by_its_size() -> None:
    encoder = SizedVp8Encoder()
    encoder.target_bitrate = 500_000  # the receiver's estimate
    encoder.encode(frame_of(160, 120))
    assert encoder.codec is not None
    assert encoder.codec.bit_rate == bitrate_cap(160, 120) == 57_600
    encoder.encode(frame_of(640, 480))
    assert encoder.codec.bit_rate == 500_000, "full size keeps the estimate (below its cap)"


def test_aiortc_gets_our_encoders_from_its_own_factory() -> None:
    import aiortc.rtcrtpsender
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from lapak.media.peer import VOICE_BITRATE

    opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2)
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000)
    audio = aiortc.rtcrtpsender.get_encoder(opus)  # type: ignore[attr-defined]
    assert audio.codec.bit_rate == VOICE_BITRATE == 32_000, "voice at 32 kbps, not 96"
    assert isinstance(aiortc.rtcrtpsender.get_encoder(vp8), SizedVp8Encoder)  # type: ignore[attr-defined]
