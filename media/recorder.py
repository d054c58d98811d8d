"""``lapak recorder``: records every visit of one office, server-side, as a receive-only peer.

It says hello with a ``recorder`` token and watches every desk of its office. A visit seated at
a desk (routed) gets a file (``media.recorder_file``) and a peer connection offered to its
booth with four ``recvonly`` transceivers: the booth's microphone and camera, then the
officer's voice and picture as the booth played them (relayed by the booth while on air; see
docs/protocol.md, Recording). The file stays open across link drops (a gap is written) and is
closed when the visit ends or the recorder stops; then ``recording_closed`` puts its SHA-256,
duration, size and gaps into the visit's audit trail.

Before a visit's file is made the recorder asks the server for the visit's recording key
(``get_recording_key``); the file is written encrypted with it (media/recorder_crypt.py) and
the key is kept in memory only. A visit whose key is refused is not recorded (logged).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from lapak.media.booth_link import new_offer_id
from lapak.media.peer import cancel_tasks, close_peers
from lapak.media.recorder_file import (
    STREAMS,
    RecordingFile,
    RecordingInfo,
    free_path,
)
from lapak.media.recorder_relay import new_recording_peer
from lapak.media.track_frames import track_frames
from lapak.signaling.client import SignalClient
from lapak.signaling.messages import Delta, SdpRelay, ServerMessage, Snapshot, VisitView, Welcome
from lapak.signaling.protocol import GetRecordingKey, RecordingClosed, Sdp, Watch

log = logging.getLogger("lapak.recorder")

ANSWER_TIMEOUT_S = 8.0  # an offer not answered by then is made again
RELINK_S = 3.0  # a link with no booth media this long (or failed) is offered again
CHECK_S = 0.5

TRANSCEIVERS: tuple[tuple[str, str], ...] = (
    ("audio", "booth_audio"),
    ("video", "booth_video"),
    ("audio", "officer_audio"),
    ("video", "officer_video"),
)
"""The offer's transceivers in order, and the stream each one feeds."""


@dataclass
class VisitRecording:
    """One visit being recorded: its file and its current peer connection."""

    visit: str
    booth: str
    file: RecordingFile
    pc: RTCPeerConnection | None = None
    offer_id: str | None = None
    offered_at: float = 0.0
    answered: bool = False
    links: int = 0
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


class Recorder:
    """The recorder process's state: a signalling session and the open recordings."""

    def __init__(
        self,
        url: str,
        token: str,
        directory: Path,
        *,
        booth_size: tuple[int, int] = (640, 480),
        clock: Callable[[], float] = time.time,
        entries: Sequence[str] = (),
    ) -> None:
        """``entries``: a cluster's other nodes, tried when the one in use is down."""
        self.directory = directory
        self.booth_size = booth_size
        self.clock = clock
        self.client = SignalClient(
            url, token, self._on_message, on_reconnect=self._on_reconnect, entries=entries
        )
        self.recordings: dict[str, VisitRecording] = {}
        self.closed: list[RecordingInfo] = []
        self.desks: dict[str, str] = {}  # desk -> office, from the welcome
        self._watcher: asyncio.Task[None] | None = None
        self._starting: set[str] = set()  # visits whose key is being fetched
        self._ended: set[str] = set()  # visits seen ending while their key was fetched
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, *, retry: bool = False) -> Welcome:
        self.directory.mkdir(parents=True, exist_ok=True)
        welcome = await self.client.connect(retry=retry)
        await self._watch_all(welcome)
        self._watcher = asyncio.create_task(self._watch_links(), name="recorder-links")
        return welcome

    async def close(self) -> None:
        """Close every open file (each reported with ``recording_closed``), then leave."""
        if self._watcher is not None:
            await cancel_tasks([self._watcher])
        for visit in list(self.recordings):
            await self._finish(visit, reason="recorder_stopped")
        await cancel_tasks(self._tasks)
        await self.client.close()

    async def _watch_all(self, welcome: Welcome) -> None:
        for desk in welcome.desks:
            self.desks[desk] = welcome.office
            await self.client.request(Watch(desk=desk))  # the snapshot comes to _on_message

    async def _on_reconnect(self, welcome: Welcome) -> None:
        await self._watch_all(welcome)

    def _spawn(self, coro: Any, name: str, into: set[asyncio.Task[Any]] | None = None) -> None:
        tasks = self._tasks if into is None else into
        task = asyncio.create_task(coro, name=name)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    # -- what the server says ------------------------------------------------------------

    async def _on_message(self, message: ServerMessage) -> None:
        if isinstance(message, Snapshot):  # also a desk created after the hello (re null)
            self.desks[message.desk] = message.state.office
            for view in message.state.visits:
                self._consider(view, message.state.office)
        elif isinstance(message, Delta):
            office = self.client.welcome.office if self.client.welcome else ""
            for view in message.visits:
                self._consider(view, office)
        elif isinstance(message, SdpRelay) and message.sdp_type == "answer":
            await self._on_answer(message)

    def _consider(self, view: VisitView, office: str) -> None:
        rec = self.recordings.get(view.visit)
        if view.state == "ended":
            if rec is not None:
                self._spawn(self._finish(view.visit, reason="visit_ended"), f"fin-{view.visit}")
            elif view.visit in self._starting:
                self._ended.add(view.visit)
            return
        if view.state == "active" and rec is None and view.visit not in self._starting:
            self._starting.add(view.visit)
            self._spawn(self._begin(view, office), f"begin-{view.visit}")

    async def _key(self, visit: str) -> bytes | None:
        """The visit's recording key from the server, or None (refused: not recorded)."""
        try:
            answer = await self.client.request(GetRecordingKey(visit=visit))
            key = base64.b64decode(answer.key, validate=True)
        except (binascii.Error, AttributeError) as exc:
            log.warning("event=recording_key_bad visit=%s reason=%r", visit, str(exc))
            return None
        except Exception as exc:  # refused, or the link went: a later delta tries again
            log.warning("event=recording_key_refused visit=%s reason=%r", visit, str(exc))
            return None
        return key if len(key) == 32 else None

    async def _begin(self, view: VisitView, office: str) -> None:
        try:
            key = await self._key(view.visit)
            if key is None or view.visit in self._ended or view.visit in self.recordings:
                return
            self._create(view, office, key)
        finally:
            self._starting.discard(view.visit)
            self._ended.discard(view.visit)

    def _create(self, view: VisitView, office: str, key: bytes) -> None:
        path = free_path(self.directory, view.visit)
        start = self.clock()
        info = RecordingInfo(
            visit=view.visit,
            file=path.name,
            office=office,
            desk=view.desk,
            booth=view.booth,
            start=start,
            start_utc=datetime.fromtimestamp(start, UTC).isoformat(timespec="microseconds"),
            routed_at=view.routed_at,
        )
        rec = VisitRecording(
            view.visit, view.booth, RecordingFile(path, info, key, booth_size=self.booth_size)
        )
        self.recordings[view.visit] = rec
        log.info("event=recording_started visit=%s file=%s", view.visit, path.name)
        self._spawn(self._offer(rec), f"offer-{view.visit}")

    # -- media links ---------------------------------------------------------------------

    async def _offer(self, rec: VisitRecording) -> None:
        """A fresh receive-only peer connection offered to the visit's booth."""
        old, rec.pc = rec.pc, None
        await cancel_tasks(rec.tasks)
        if old is not None:
            await close_peers([old])
        pc = new_recording_peer(self.client.welcome.ice_servers if self.client.welcome else [])
        rec.pc, rec.answered, rec.links = pc, False, rec.links + 1
        receivers = []
        for kind, key in TRANSCEIVERS:
            receivers.append((pc.addTransceiver(kind, direction="recvonly").receiver, key))

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            key = next((k for r, k in receivers if r.track is track), None)
            if key is not None:
                self._spawn(self._drain(rec, track, key), f"rec-{rec.visit}-{key}", rec.tasks)

        await pc.setLocalDescription(await pc.createOffer())
        offer_id = new_offer_id()
        rec.offer_id, rec.offered_at = offer_id, time.monotonic()
        try:
            sdp = pc.localDescription.sdp
            await self.client.request(
                Sdp(visit=rec.visit, sdp_type="offer", sdp=sdp, offer_id=offer_id)
            )
            log.info("event=recorder_offered visit=%s offer_id=%s", rec.visit, offer_id)
        except Exception as exc:  # booth not connected, visit gone: the watcher tries again
            log.info("event=recorder_offer_failed visit=%s reason=%r", rec.visit, str(exc))

    async def _on_answer(self, message: SdpRelay) -> None:
        rec = self.recordings.get(message.visit)
        if rec is None or rec.pc is None or message.offer_id != rec.offer_id or rec.answered:
            return
        rec.answered = True
        try:
            await rec.pc.setRemoteDescription(RTCSessionDescription(message.sdp, "answer"))
        except Exception as exc:
            log.warning("event=recorder_answer_failed visit=%s reason=%r", rec.visit, str(exc))

    async def _drain(self, rec: VisitRecording, track: MediaStreamTrack, key: str) -> None:
        frames = (
            track_frames(track, av.AudioFrame)
            if key.endswith("audio")
            else track_frames(track, av.VideoFrame)
        )
        async for frame in frames:
            rec.file.put(key, frame)

    async def _watch_links(self) -> None:
        """Gaps are opened by silence; a link that failed, went unanswered or carries no
        booth media is offered again (the booth may have come back)."""
        while True:
            await asyncio.sleep(CHECK_S)
            now = time.monotonic()
            for rec in list(self.recordings.values()):
                silent = rec.file.check_gap()
                pc = rec.pc
                failed = pc is None or pc.connectionState in ("failed", "closed")
                unanswered = not rec.answered and now - rec.offered_at > ANSWER_TIMEOUT_S
                stalled = (
                    rec.answered
                    and silent
                    and now - rec.offered_at > RELINK_S
                    and self.clock() - (rec.file.last_booth_media or 0.0) > RELINK_S
                )
                if failed or unanswered or stalled:
                    why = "failed" if failed else "unanswered" if unanswered else "stalled"
                    log.info("event=recorder_relink visit=%s why=%s", rec.visit, why)
                    rec.offered_at = now  # one attempt at a time
                    self._spawn(self._offer(rec), f"offer-{rec.visit}")

    async def _finish(self, visit: str, *, reason: str) -> None:
        rec = self.recordings.pop(visit, None)
        if rec is None:
            return
        await cancel_tasks(rec.tasks)
        if rec.pc is not None:
            await close_peers([rec.pc])
        info = await asyncio.to_thread(rec.file.close)
        self.closed.append(info)
        log.info(
            "event=recording_closed visit=%s file=%s reason=%s duration_s=%s bytes=%s gaps=%d",
            visit, info.file, reason, info.duration_s, info.bytes, len(info.gaps),
        )  # fmt: skip
        assert info.sha256 is not None and info.bytes is not None
        message = RecordingClosed(
            visit=visit,
            file=info.file,
            sha256=info.sha256,
            duration_s=info.duration_s or 0.0,
            bytes=info.bytes,
            gaps=[(a, b) for a, b in info.gaps],
        )
        try:
            await self.client.request(message)
        except Exception as exc:  # the sidecar holds the facts; `recordings verify` says so
            log.warning("event=recording_report_failed visit=%s reason=%r", visit, str(exc))


__all__ = ["STREAMS", "Recorder", "VisitRecording"]
