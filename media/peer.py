"""Peer-connection set-up shared by booths, consoles and supervisors.

aiortc gathers all candidates before ``setLocalDescription`` returns (no trickle), so the
SDP we relay is always complete. No STUN or TURN unless the server's ``welcome`` lists ICE
servers (``[ice]`` in its config): branch traffic stays on the LAN, a booth across sites goes
through the TURN relay with the short-lived credentials the welcome carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable

import aioice.ice
import aiortc.codecs.vpx
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.codecs import get_encoder as _aiortc_get_encoder
from aiortc.codecs.base import Encoder
from aiortc.codecs.opus import OpusEncoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from lapak.media.frame_jitter import MarkerJitterBuffer
from lapak.media.video_tier import SizedVp8Encoder
from lapak.signaling.messages import IceServer

log = logging.getLogger("lapak.media")

_original_host_addresses = aioice.ice.get_host_addresses


def _host_addresses_with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """aioice skips 127.0.0.1; on a host with only loopback, offer it rather than nothing."""
    addresses = _original_host_addresses(use_ipv4, use_ipv6)
    if not addresses and use_ipv4:
        return ["127.0.0.1"]
    return addresses


aioice.ice.get_host_addresses = _host_addresses_with_loopback

VIDEO_MIN_BITRATE = 100_000
"""aiortc's VP8 encoder never goes below 250 kbps, whatever the receiver's estimate says: on a
thin link the picture then crowds out the voice. Let it yield down to 100 kbps (a softer
picture, fewer frames) so audio keeps its share; measured in tests/test_media_netns.py."""
aiortc.codecs.vpx.MIN_BITRATE = VIDEO_MIN_BITRATE

AUDIO_PREFETCH = int(os.environ.get("LAPAK_AUDIO_PREFETCH", "1"))
"""aiortc holds each received audio packet until ``prefetch`` later ones have arrived (4 by
default: 80 ms) before decoding it. That is a fixed delay, not a playout schedule (arrival
jitter passes straight through either way, and our mixer and speaker buffers absorb it), and
it is most of the focus switch time measured by bench/focus.py. One packet (20 ms) is enough
on a branch LAN; ``LAPAK_AUDIO_PREFETCH=4`` restores aiortc's default."""


def _jitter_buffer(capacity: int, prefetch: int = 0, is_video: bool = False) -> JitterBuffer:
    if is_video:  # a frame is decoded at its last packet, not one frame later
        return MarkerJitterBuffer(capacity=capacity, prefetch=prefetch, is_video=True)
    prefetch = min(prefetch, AUDIO_PREFETCH)
    return JitterBuffer(capacity=capacity, prefetch=prefetch, is_video=is_video)


aiortc.rtcrtpreceiver.JitterBuffer = _jitter_buffer  # type: ignore[attr-defined,assignment]  # no aiortc setting: swap its class


VOICE_BITRATE = 32_000
"""aiortc's Opus encoder runs at a fixed 96 kbps: six booths' voices were ~660 of the officer's
~1,150 inbound kbps with thumbnails (BENCHMARKS.md). 32 kbps is Opus's own recommendation for
fullband speech; voices and the test tones pass intact (the tone tests hold it to that)."""


def _get_encoder(codec: RTCRtpCodecParameters) -> Encoder:
    """VP8 with its bit rate capped by the frame's size (``video_tier.SizedVp8Encoder``);
    Opus at ``VOICE_BITRATE``."""
    if codec.mimeType.lower() == "video/vp8":
        return SizedVp8Encoder()
    encoder = _aiortc_get_encoder(codec)
    if codec.mimeType.lower() == "audio/opus" and isinstance(encoder, OpusEncoder):
        encoder.codec.bit_rate = VOICE_BITRATE  # opened at the first frame: takes effect
    return encoder


aiortc.rtcrtpsender.get_encoder = _get_encoder  # type: ignore[attr-defined]  # no aiortc setting: swap its factory


def rtc_ice_servers(ice_servers: Iterable[IceServer]) -> list[RTCIceServer]:
    """The welcome's ``ice_servers`` as aiortc takes them (STUN, and TURN over UDP or TCP)."""
    return [
        RTCIceServer(
            urls=list(server.urls),
            username=server.username if isinstance(server.username, str) else None,
            credential=server.credential if isinstance(server.credential, str) else None,
        )
        for server in ice_servers
    ]


def new_peer_connection(ice_servers: Iterable[IceServer] = ()) -> RTCPeerConnection:
    """A peer connection using ``ice_servers`` (none: host candidates only, as on a LAN)."""
    return RTCPeerConnection(RTCConfiguration(iceServers=rtc_ice_servers(ice_servers)))


async def close_peers(peers: Iterable[RTCPeerConnection], timeout: float = 5.0) -> None:
    """Close peers together, bounded: aiortc's close() can hang in corner cases."""
    peers = list(peers)
    if not peers:
        return
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(pc.close() for pc in peers), return_exceptions=True)
    except TimeoutError:
        log.warning("event=peer_close_timeout peers=%d", len(peers))


async def cancel_tasks(tasks: Iterable[asyncio.Task[object]]) -> None:
    tasks = [t for t in tasks if not t.done()]
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
