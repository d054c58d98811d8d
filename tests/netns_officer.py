"""The officer's side of the constrained-link test, run inside its own network namespace.

Starts a signalling server on ``--host``:``--port`` (or joins the one at ``--server-url``)
and the officer media engine for desk d1, then prints one JSON line every half second about
the (single) booth link: video frames, audio frames, frames carrying the booth's tone,
received bytes, link state, its peer connection's state and the candidate types of the ICE
pair in use (``"relay"`` when it goes through TURN). The officer zooms the booth, so it sends
full video. The test reads these lines through the
pipe (pipes cross namespaces; sockets here only reach the veth).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from aiortc import RTCPeerConnection

from lapak.media.audio_tracks import AudioProbe
from lapak.media.headless import HeadlessDesk
from lapak.media.officer import OfficerMediaOptions
from lapak.media.tones import booth_frequency
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing


def ice_pair(pc: RTCPeerConnection) -> list[str] | None:
    """``[local type, remote type]`` of the nominated ICE pair (aiortc's stats do not say;
    its ICE connection does), or None before one is chosen."""
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport._connection
        pair = connection._nominated.get(1)
        if pair is not None:
            return [pair.local_candidate.type, pair.remote_candidate.type]
    return None


async def main(args: argparse.Namespace) -> None:
    keys = KeyRing.from_file(Path(args.secret))
    server: SignalServer | None = None
    url = args.server_url
    if url is None:
        server = SignalServer(Path(args.data), keys, host=args.host, port=args.port)
        await server.start()
        url = server.url
    desk = HeadlessDesk(
        url,
        keys.issue("officer", "ana", "main", desk="d1"),
        OfficerMediaOptions(audio_in="tone", send_video=False),
    )
    tone = booth_frequency(0)
    counts: dict[str, Any] = {"tone": 0}

    def on_frame(probe: AudioProbe, _mono: Any) -> None:
        counts["tone"] += probe.detected.get(tone, False)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await desk.start()
    print(json.dumps({"ready": True, "url": desk.client.url}), flush=True)
    try:
        while not stop.is_set():
            for link in desk.engine.links.values():
                if link.audio.on_frame is None:
                    link.audio.watch(tone)
                    link.audio.on_frame = on_frame
                    # The officer looks closely at the one booth: it sends full video (an
                    # off-air booth sends a 5 fps thumbnail), which is what the link must carry.
                    await desk.session.zoom(link.visit)
                report = await link.pc.getStats() if link.state == "connected" else {}
                rx_bytes = sum(
                    int(getattr(s, "bytesReceived", 0) or 0)
                    for s in report.values()
                    if getattr(s, "type", "") == "transport"
                )
                line = {
                    "t": time.monotonic(),
                    "state": link.state,
                    "frames": link.frames,
                    "audio_frames": link.audio.frames,
                    "tone_frames": counts["tone"],
                    "rx_bytes": rx_bytes,
                    "rebuilds": link.rebuilds,
                    "pc_state": link.pc.connectionState,
                    "pair": ice_pair(link.pc),
                }
                print(json.dumps(line), flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        await desk.close()
        if server is not None:
            await server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--data")
    parser.add_argument("--server-url", help="join this server instead of starting one")
    asyncio.run(main(parser.parse_args()))
