"""How a booth answers offers: the officer's, and watching supervisors' receive-only ones.

The officer's offer gets a fresh peer connection carrying the booth's camera and microphone
(an older one, a rebuilt link, is closed first). A supervisor's offer is answered only when the
server relayed it as such (``from: "supervisor"`` with a ``peer``), send-only: the booth takes
nothing from a supervisor, and keeps at most ``MAX_SUPERVISOR_PEERS``. The one exception is a
barging supervisor's voice: an offer that sends audio is answered ``sendrecv`` and the track
handed to the booth (``on_supervisor_audio``), which plays it only while its ``booth_state``
says that supervisor barges in (``media.supervisor_voice.BargeAudio``). Any other offer is
refused (counted, logged).

A supervisor's offer may have a second audio transceiver (``recvonly``): the booth sends
on it the officer's voice as it received it, only while on air (``media.recorder_relay``), so
the supervisor hears the officer as the claimant did (docs/architecture.md says why).

A recorder's offer (``from: "recorder"`` with a ``peer``) is answered like a supervisor's, plus
the officer's audio and picture as the booth received them, relayed only while on air
(``media.recorder_relay``; the transceiver order is in docs/protocol.md, Recording).

Every answer echoes the ``offer_id`` of the offer it answers. Offers from one peer (the officer,
or one supervisor) are answered in order, and an offer that a newer one from the same peer has
replaced is dropped, its peer connection closed: only the latest offer gets an answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole

from lapak.media.peer import cancel_tasks, close_peers, new_peer_connection
from lapak.media.recorder_relay import OfficerRelay, new_recording_peer, stop_relays
from lapak.signaling.messages import IceServer, PeerLeft, SdpRelay
from lapak.signaling.protocol import ClientMessage, Sdp

log = logging.getLogger("lapak.booth")

MAX_SUPERVISOR_PEERS = 4
MAX_RECORDER_PEERS = 2


class OfferAnswerer:
    """The booth's peer connections: one to the officer, one per watching supervisor."""

    def __init__(
        self,
        name: str,
        send: Callable[[ClientMessage], Awaitable[None]],
        camera: Callable[[], MediaStreamTrack],
        mic: Callable[[], MediaStreamTrack | None],
        on_officer_track: Callable[[MediaStreamTrack], None],
        on_officer_state: Callable[[], None],
        ice_servers: Callable[[], list[IceServer]] = list,
        on_supervisor_audio: Callable[[str, MediaStreamTrack], None] | None = None,
        on_air: Callable[[], bool] | None = None,
    ) -> None:
        """``on_supervisor_audio(peer, track)``: a barging supervisor's voice (its offer sends
        audio); without it, as before, anything a supervisor sends is drained unheard."""
        self.name = name
        self._on_supervisor_audio = on_supervisor_audio
        self._ice_servers = ice_servers  # the latest welcome's, read for each new peer
        self._send = send
        self._camera = camera
        self._mic = mic
        self._on_officer_track = on_officer_track
        self._on_officer_state = on_officer_state
        self.officer_pc: RTCPeerConnection | None = None
        self.supervisor_peers: dict[str, RTCPeerConnection] = {}
        self.recorder_peers: dict[str, RTCPeerConnection] = {}
        self.relay = OfficerRelay(on_air) if on_air is not None else None
        """The officer's media relayed to recorders while on air (None: this booth cannot)."""
        self.offers_answered = 0
        self.offers_refused = 0
        self.offers_superseded = 0
        self._answering = asyncio.Lock()  # offers are answered one at a time, in order
        self._latest_offer: dict[str, str] = {}
        """The latest offer's ``offer_id`` per peer ("" for the officer, else the supervisor's
        peer): an offer that is not the latest when its turn comes is dropped."""
        self._sinks: list[MediaBlackhole] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def media_connected(self) -> bool:
        return self.officer_pc is not None and self.officer_pc.connectionState == "connected"

    def on_offer(self, message: SdpRelay) -> None:
        """An offer relayed by the server: answer it in turn, or refuse it."""
        peer = message.peer if isinstance(message.peer, str) else None
        if message.from_ == "officer" and not peer:
            self._latest_offer[""] = message.offer_id
            self._spawn(self._answer_officer(message), f"answer-{self.name}")
        elif message.from_ == "supervisor" and peer:
            self._latest_offer[peer] = message.offer_id
            self._spawn(self._answer_supervisor(message, peer), f"sup-{self.name}-{peer}")
        elif message.from_ == "recorder" and peer:
            self._latest_offer[peer] = message.offer_id
            self._spawn(self._answer_recorder(message, peer), f"rec-{self.name}-{peer}")
        else:
            self.offers_refused += 1
            log.warning(
                "event=offer_refused booth=%s from=%s peer=%s", self.name, message.from_, peer
            )

    def on_peer_left(self, message: PeerLeft) -> None:
        """A supervisor has gone: close its peer connection."""
        self._latest_offer.pop(message.peer, None)
        pc = self.supervisor_peers.pop(message.peer, None) or self.recorder_peers.pop(
            message.peer, None
        )
        if pc is not None:
            stop_relays(pc)
            log.info("event=supervisor_left booth=%s peer=%s", self.name, message.peer)
            self._spawn(close_peers([pc]), f"sup-close-{self.name}")

    async def close(self) -> None:
        await cancel_tasks(self._tasks)
        peers = [*self.supervisor_peers.values(), *self.recorder_peers.values()]
        self.supervisor_peers.clear()
        self.recorder_peers.clear()
        if self.officer_pc is not None:
            peers.append(self.officer_pc)
            self.officer_pc = None
        await close_peers(peers)
        for sink in self._sinks:
            await sink.stop()
        self._sinks.clear()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _superseded(self, message: SdpRelay, peer: str | None) -> bool:
        """Whether a newer offer from the same peer has arrived since ``message``."""
        latest = self._latest_offer.get(peer or "")
        if latest == message.offer_id:
            return False
        self.offers_superseded += 1
        log.info(
            "event=offer_superseded booth=%s peer=%s offer_id=%s latest=%s",
            self.name, peer, message.offer_id, latest,
        )  # fmt: skip
        return True

    async def _send_answer(
        self, pc: RTCPeerConnection, message: SdpRelay, peer: str | None
    ) -> bool:
        """Answer ``message`` on ``pc``, echoing its ``offer_id``; False (nothing sent) when a
        newer offer from the same peer came in while the answer was being gathered."""
        await pc.setLocalDescription(await pc.createAnswer())
        if self._superseded(message, peer):
            return False
        local = pc.localDescription
        await self._send(
            Sdp(
                visit=message.visit,
                sdp_type="answer",
                sdp=local.sdp,
                offer_id=message.offer_id,
                peer=peer,
            )
        )
        return True

    async def _answer_officer(self, message: SdpRelay) -> None:
        """Answer with a fresh peer; an old one (a rebuilt link) is closed first."""
        async with self._answering:
            try:
                await self._answer_officer_now(message)
            except Exception as exc:  # a bad offer or a peer closed under us: wait for the next
                log.warning("event=answer_failed booth=%s reason=%r", self.name, str(exc))

    async def _answer_officer_now(self, message: SdpRelay) -> None:
        if self.officer_pc is not None:
            old, self.officer_pc = self.officer_pc, None
            await close_peers([old])
        if self._superseded(message, None):
            return
        pc = new_peer_connection(self._ice_servers())
        self.officer_pc = pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._on_officer_track(track if self.relay is None else self.relay.tee(track))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            log.info("event=media_state booth=%s state=%s", self.name, pc.connectionState)
            self._on_officer_state()

        await pc.setRemoteDescription(RTCSessionDescription(sdp=message.sdp, type="offer"))
        pc.addTrack(self._camera())
        mic = self._mic()
        if mic is not None:
            pc.addTrack(mic)
        if not await self._send_answer(pc, message, None):
            if self.officer_pc is pc:
                self.officer_pc = None
            await close_peers([pc])
            return
        self.offers_answered += 1
        log.info("event=answered booth=%s visit=%s", self.name, message.visit)

    async def _answer_supervisor(self, message: SdpRelay, peer: str) -> None:
        """A watching supervisor: send camera and microphone, take nothing, keep it bounded."""
        async with self._answering:
            try:
                await self._answer_supervisor_now(message, peer)
            except Exception as exc:
                log.warning(
                    "event=answer_failed booth=%s peer=%s reason=%r", self.name, peer, str(exc)
                )

    async def _answer_recorder(self, message: SdpRelay, peer: str) -> None:
        """A recorder: camera and microphone, then the officer's audio and picture (relayed
        while on air); takes nothing."""
        async with self._answering:
            try:
                await self._answer_supervisor_now(message, peer, recorder=True)
            except Exception as exc:
                log.warning(
                    "event=answer_failed booth=%s peer=%s reason=%r", self.name, peer, str(exc)
                )

    async def _answer_supervisor_now(
        self, message: SdpRelay, peer: str, *, recorder: bool = False
    ) -> None:
        peers = self.recorder_peers if recorder else self.supervisor_peers
        old = peers.pop(peer, None)
        if old is not None:
            stop_relays(old)
            await close_peers([old])
        if self._superseded(message, peer):
            return
        if len(peers) >= (MAX_RECORDER_PEERS if recorder else MAX_SUPERVISOR_PEERS):
            log.warning(
                "event=receiver_refused booth=%s peer=%s recorder=%s reason=too_many",
                self.name, peer, recorder,
            )  # fmt: skip
            self.offers_refused += 1
            return
        pc = (new_recording_peer if recorder else new_peer_connection)(self._ice_servers())
        peers[peer] = pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if not recorder and track.kind == "audio" and self._on_supervisor_audio is not None:
                self._on_supervisor_audio(peer, track)  # barge: played only while announced
                return
            sink = MediaBlackhole()  # a supervisor sends nothing; drain anything that comes
            sink.addTrack(track)
            self._sinks.append(sink)
            self._spawn(sink.start(), f"sup-drain-{self.name}")

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed") and peers.get(peer) is pc:
                del peers[peer]
                stop_relays(pc)
                await close_peers([pc])

        await pc.setRemoteDescription(RTCSessionDescription(sdp=message.sdp, type="offer"))
        # Per kind, in transceiver order: own camera/mic, then (a recorder) the officer's.
        tracks: dict[str, list[MediaStreamTrack | None]] = {
            "video": [self._camera()],
            "audio": [self._mic()],
        }
        if recorder and self.relay is not None:
            officer_audio, officer_video = self.relay.tracks()
            tracks["audio"].append(officer_audio)
            tracks["video"].append(officer_video)
        elif self.relay is not None:  # a supervisor hears the officer as played here, on air
            tracks["audio"].append(self.relay.officer_track())
        for transceiver in pc.getTransceivers():
            queue = tracks.get(transceiver.kind, [])
            track = queue.pop(0) if queue else None
            if track is not None:
                transceiver.sender.replaceTrack(track)
            hears = (  # a barging supervisor's offer sends its voice (a recorder's never)
                not recorder
                and transceiver.kind == "audio"
                and self._on_supervisor_audio is not None
                and transceiver.receiver.track is not None
            )
            sends = track is not None
            transceiver.direction = (
                ("sendrecv" if sends else "recvonly")
                if hears
                else ("sendonly" if sends else "inactive")
            )
        if not await self._send_answer(pc, message, peer):
            if peers.get(peer) is pc:
                del peers[peer]
            await close_peers([pc])
            return
        kind = "recorder" if recorder else "supervisor"
        log.info("event=answered_%s booth=%s peer=%s", kind, self.name, peer)
