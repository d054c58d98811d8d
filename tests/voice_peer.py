"""A supervisor's voice offered straight to one booth over the real protocol and aiortc, as a
resolver's (or a hand-crafted, monitor-only supervisor's) client would: one ``sendrecv``
audio m-line carrying a tone and a ``recvonly`` video m-line."""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCSessionDescription

from lapak.media.audio_tracks import GatedAudioTrack
from lapak.media.booth_link import new_offer_id
from lapak.media.peer import close_peers, new_peer_connection
from lapak.media.tones import ToneSource
from lapak.signaling.client import SignalClient
from lapak.signaling.messages import SdpRelay, ServerMessage
from lapak.signaling.protocol import Sdp, Watch


class VoicePeer:
    def __init__(self, url: str, token: str, frequency: float) -> None:
        self.frequency = frequency
        self.client = SignalClient(url, token, self._on_message, reconnect=False)
        self.pc: RTCPeerConnection | None = None
        self.offer_id: str | None = None
        self.answered = False

    async def start(self, watch: str | None = None) -> None:
        await self.client.connect()
        if watch is not None:
            await self.client.request(Watch(desk=watch))

    async def offer(self, visit: str) -> None:
        """A fresh peer with the tone offered to ``visit``'s booth (raises if refused)."""
        if self.pc is not None:
            await close_peers([self.pc])
        pc = self.pc = new_peer_connection([])
        pc.addTransceiver(GatedAudioTrack(ToneSource(self.frequency), open=True), "sendrecv")
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        self.offer_id, self.answered = new_offer_id(), False
        sdp = pc.localDescription.sdp
        await self.client.request(
            Sdp(visit=visit, sdp_type="offer", sdp=sdp, offer_id=self.offer_id)
        )

    async def _on_message(self, message: ServerMessage) -> None:
        if not isinstance(message, SdpRelay) or message.sdp_type != "answer":
            return
        if self.pc is None or message.offer_id != self.offer_id or self.answered:
            return
        self.answered = True
        await self.pc.setRemoteDescription(RTCSessionDescription(message.sdp, "answer"))

    @property
    def connected(self) -> bool:
        return self.pc is not None and self.pc.connectionState == "connected"

    async def close(self) -> None:
        if self.pc is not None:
            await close_peers([self.pc])
            self.pc = None
        await self.client.close()
