"""A supervisor's voice: coach (the officer hears it, the booth never does) and barge (the on-air
booth hears it too).

Three parties, three pieces:

- **Supervisor** (``CoachLink``): a send-only audio peer to the desk's officer, offered while
  the mode is coach or barge; for barge the supervisor's engine (``media.officer``) also puts
  the voice on its link to the on-air booth (renegotiated: that link is receive-only
  otherwise). One microphone feeds both through ``SharedVoice``.
- **Officer** (``SupervisorVoices``): answers a supervisor's offer receive-only and mixes what
  arrives into the officer's own output at full level. The officer's outgoing voice to booths
  is a separate track reading only the officer's microphone, so nothing a supervisor says can
  leave the officer's console towards a booth: coach never reaches the booth by construction.
- **Booth** (``BargeAudio``): plays a supervisor's audio only while its ``booth_state`` names
  that supervisor (``barge_peer``: the one barging its on-air desk, or resolving its
  escalation), mixed into what the speaker already plays (the officer, while on air), or
  alone when no officer is on air (an escalated visit). What it plays is relayed to
  recorders (``media.recorder_relay``).

Test tones: the supervisor speaks at ``SUPERVISOR_FREQUENCY`` (1600 Hz), apart from the booths
(350..850 Hz) and the officer (1200 Hz).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from lapak.media.audio_out import MAX_BUFFER_SAMPLES, AudioMixer
from lapak.media.audio_tracks import AudioProbe, GatedAudioTrack
from lapak.media.booth_link import new_offer_id
from lapak.media.peer import cancel_tasks, close_peers, new_peer_connection
from lapak.media.tones import SAMPLE_RATE, AudioSource, SilenceSource, ToneSource, to_mono
from lapak.media.track_frames import track_frames
from lapak.signaling.messages import BoothState, IceServer
from lapak.signaling.protocol import SdpType, SupervisionMode

log = logging.getLogger("lapak.supervisor_voice")

SUPERVISOR_FREQUENCY = 1600.0
"""The supervisor's test tone: a multiple of 50 Hz (one bin of a 20 ms frame), 400 Hz above
the officer's and far from every booth's."""

MODES: tuple[SupervisionMode, ...] = ("monitor", "coach", "barge")
SPEAKING_MODES = frozenset({"coach", "barge"})
"""Modes in which the officer hears the supervisor."""

SendVoiceSdp = Callable[[SdpType, str, str], Awaitable[None]]
"""``send(sdp_type, sdp, offer_id)``: the supervisor's offer to the desk's officer; raises
(``RequestError`` with the server's code, ``ConnectionError``) when it cannot go."""

RING_SAMPLES = SAMPLE_RATE  # 1 s shared between readers
MAX_LAG = SAMPLE_RATE // 5  # a reader 200 ms behind the newest sample skips ahead ...
RESUME_LAG = SAMPLE_RATE // 25  # ... to 40 ms behind it


def voice_source(spec: str | None) -> AudioSource:
    """``none``/None → silence, ``tone`` → ``SUPERVISOR_FREQUENCY``, else a recording's path
    played in a loop as the supervisor's microphone (silence, logged, if it cannot open)."""
    if spec in (None, "", "none"):
        return SilenceSource()
    if spec == "tone":
        return ToneSource(SUPERVISOR_FREQUENCY)
    from lapak.media.live_audio import LiveAudioSource

    live = LiveAudioSource.from_file(spec)
    if live is None:
        log.warning("event=supervisor_voice_fallback source=%s using=silence", spec)
        return SilenceSource()
    return live


class SharedVoice:
    """One microphone read by several tracks (to the officer, to the barged booth).

    A live source hands out "the next n samples" to whoever asks, so two tracks reading it
    directly would each get every other frame. Here the source is read once, into a ring,
    and every ``reader()`` has its own cursor: the reader that is ahead pulls, the others
    copy. A reader that falls 200 ms behind (its gate was closed) skips to 40 ms behind.
    """

    def __init__(self, source: AudioSource) -> None:
        self.source = source
        self._ring = np.zeros(RING_SAMPLES, dtype=np.int16)
        self._written = 0

    def reader(self) -> AudioSource:
        return _VoiceReader(self)

    def _pull(self, upto: int) -> None:
        n = upto - self._written
        while n > 0:
            k = min(n, RING_SAMPLES)
            chunk = np.asarray(self.source.samples(self._written, k), dtype=np.int16)
            idx = np.arange(self._written, self._written + k) % RING_SAMPLES
            self._ring[idx] = chunk
            self._written += k
            n -= k

    def _read(self, cursor: int, n: int) -> np.ndarray:
        self._pull(cursor + n)
        return self._ring[np.arange(cursor, cursor + n) % RING_SAMPLES].copy()

    async def close(self) -> None:
        closer = getattr(self.source, "close", None)
        if closer is not None:
            await closer()


class _VoiceReader:
    def __init__(self, shared: SharedVoice) -> None:
        self._shared = shared
        self._cursor = shared._written

    def samples(self, start: int, n: int) -> np.ndarray:
        """The next ``n`` samples of the shared voice for this reader (``start`` is the
        track's own clock; the cursor is what counts)."""
        newest = self._shared._written
        if newest - self._cursor > MAX_LAG:
            self._cursor = newest - RESUME_LAG
        out = self._shared._read(self._cursor, n)
        self._cursor += n
        return out


class CoachLink:
    """The supervisor's side: a send-only audio peer carrying the voice to the desk's officer.

    Offered with a fresh ``offer_id`` each time; only the answer echoing the latest is applied.
    ``stop`` closes it (mode back to monitor, desk left, console closing).
    """

    def __init__(self, voice: Callable[[], AudioSource]) -> None:
        self.voice = voice
        """A fresh reader of the supervisor's microphone for each new track."""
        self.ice_servers: list[IceServer] = []
        self.pc: RTCPeerConnection | None = None
        self.track: GatedAudioTrack | None = None
        self.offer_id: str | None = None
        self.offered_at = 0.0
        self.offers = 0

    @property
    def state(self) -> str:
        """``closed`` (no peer), else the peer connection's state."""
        return "closed" if self.pc is None else self.pc.connectionState

    async def offer(self, send: SendVoiceSdp) -> None:
        """A fresh peer and offer (an older peer is closed first)."""
        await self.stop()
        pc = new_peer_connection(self.ice_servers)
        self.pc = pc
        self.track = GatedAudioTrack(self.voice(), open=True)
        pc.addTransceiver(self.track, direction="sendonly")

        @pc.on("connectionstatechange")
        def on_state() -> None:
            log.info("event=coach_link_state state=%s", pc.connectionState)

        offer_id = self.offer_id = new_offer_id()
        self.offered_at = asyncio.get_running_loop().time()
        await pc.setLocalDescription(await pc.createOffer())
        if self.pc is not pc:
            return  # stopped or re-offered while gathering
        self.offers += 1
        await send("offer", pc.localDescription.sdp, offer_id)
        log.info("event=coach_offered offer_id=%s", offer_id)

    async def on_answer(self, sdp: str, offer_id: str | None) -> bool:
        """Apply the officer's answer to the latest offer; any other is dropped (False)."""
        pc = self.pc
        if pc is None or offer_id != self.offer_id or pc.signalingState != "have-local-offer":
            log.info("event=coach_stale_answer offer_id=%s latest=%s", offer_id, self.offer_id)
            return False
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        return True

    async def stop(self) -> None:
        pc, track = self.pc, self.track
        self.pc = self.track = None
        if track is not None:
            track.open = False
            track.stop()
        if pc is not None:
            await close_peers([pc])


class SupervisorVoices:
    """The officer's side: supervisors' voices, answered receive-only and mixed into the
    officer's output (gain 1), never into anything the officer sends.

    A peer is answered only while the server has said that supervisor coaches or barges this
    desk (``set_mode``); ``monitor`` closes it. ``heard`` listens to every supervisor's audio
    as it arrives (tests and the console read it).
    """

    def __init__(
        self,
        mixer: Callable[[], AudioMixer | None],
        ice_servers: Callable[[], list[IceServer]] = list,
    ) -> None:
        self._mixer = mixer
        self._ice_servers = ice_servers
        self.modes: dict[str, SupervisionMode] = {}
        self.peers: dict[str, RTCPeerConnection] = {}
        self.heard = AudioProbe([SUPERVISOR_FREQUENCY])
        self.refused = 0
        self._latest: dict[str, str] = {}
        self._tasks: dict[str, set[asyncio.Task[Any]]] = {}
        self._lock = asyncio.Lock()

    @staticmethod
    def source_name(peer: str) -> str:
        """The supervisor's name in the officer's mixer."""
        return f"supervisor:{peer}"

    def speaking(self) -> dict[str, SupervisionMode]:
        """Supervisors the officer hears now, by peer: coach or barge."""
        return {p: m for p, m in self.modes.items() if m in SPEAKING_MODES}

    async def set_mode(self, peer: str, mode: SupervisionMode) -> None:
        """The server's word on a supervisor of this desk; monitor ends its voice."""
        log.info("event=supervision peer=%s mode=%s", peer, mode)
        if mode in SPEAKING_MODES:
            self.modes[peer] = mode
            return
        self.modes.pop(peer, None)
        await self._drop(peer)

    async def answer(self, peer: str, sdp: str, offer_id: str) -> str | None:
        """The answer SDP to a supervisor's offer, or None (not coaching or barging, a newer
        offer came in, or a bad offer: logged)."""
        self._latest[peer] = offer_id
        async with self._lock:
            if self.modes.get(peer) not in SPEAKING_MODES:
                self.refused += 1
                log.warning("event=supervisor_offer_refused peer=%s reason=not_speaking", peer)
                return None
            if self._latest.get(peer) != offer_id:
                return None
            await self._drop(peer)
            pc = new_peer_connection(self._ice_servers())
            self.peers[peer] = pc
            tasks = self._tasks.setdefault(peer, set())
            mixer = self._mixer()
            name = self.source_name(peer)
            if mixer is not None:
                mixer.set_gain(name, 1.0)

            @pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                task = asyncio.create_task(self._hear(track, name), name=f"hear-{name}")
                tasks.add(task)
                task.add_done_callback(tasks.discard)

            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                for transceiver in pc.getTransceivers():
                    audio = transceiver.kind == "audio"
                    transceiver.direction = "recvonly" if audio else "inactive"
                await pc.setLocalDescription(await pc.createAnswer())
            except Exception as exc:  # a malformed offer: refuse it, never crash the console
                log.warning("event=supervisor_offer_bad peer=%s reason=%r", peer, str(exc))
                await self._drop(peer)
                return None
            if self._latest.get(peer) != offer_id or self.peers.get(peer) is not pc:
                return None
            log.info("event=supervisor_answered peer=%s offer_id=%s", peer, offer_id)
            return str(pc.localDescription.sdp)

    async def _hear(self, track: MediaStreamTrack, name: str) -> None:
        async for frame in track_frames(track, av.AudioFrame):
            mono = to_mono(frame)
            self.heard.feed_mono(mono, frame.sample_rate or SAMPLE_RATE)
            mixer = self._mixer()
            if mixer is not None:
                mixer.push(name, mono)

    async def _drop(self, peer: str) -> None:
        await cancel_tasks(self._tasks.pop(peer, set()))
        mixer = self._mixer()
        if mixer is not None:
            mixer.remove(self.source_name(peer))
        pc = self.peers.pop(peer, None)
        if pc is not None:
            await close_peers([pc])

    async def close(self) -> None:
        self.modes.clear()
        for peer in list(self.peers):
            await self._drop(peer)


class BargeAudio:
    """The booth's side: a barging supervisor's voice, played only while ``allowed()`` (the
    booth's ``booth_state`` says this supervisor barges in) and mixed into the speaker.

    Frames are read always (a remote track must be drained) and dropped while not allowed.
    ``heard`` listens to what is played; ``mix_into`` adds the buffered voice to a frame on
    its way to the speaker (capped at 200 ms: old audio is dropped, never played late).
    """

    def __init__(
        self,
        allowed: Callable[[str], bool],
        alone: Callable[[], bool] = lambda: False,
        play_alone: Callable[[np.ndarray, int], None] | None = None,
    ) -> None:
        """``alone()``: nothing else drives the speaker (an escalated visit: no officer on
        air), so an allowed voice is handed to ``play_alone(mono, rate)`` as it arrives
        instead of waiting to be mixed into the officer's frames."""
        self.allowed = allowed
        self.alone = alone
        self.play_alone = play_alone
        self._alone_at = -1e9  # monotonic time a voice was last played alone
        self.heard = AudioProbe([SUPERVISOR_FREQUENCY])
        self.received = AudioProbe([SUPERVISOR_FREQUENCY])
        """Everything supervisors' tracks deliver, played or not."""
        self._buffer: deque[np.ndarray] = deque()
        self._pending = 0

    async def run(self, peer: str, track: MediaStreamTrack) -> None:
        """Drain a supervisor's audio track until it ends."""
        async for frame in track_frames(track, av.AudioFrame):
            mono = to_mono(frame)
            rate = frame.sample_rate or SAMPLE_RATE
            self.received.feed_mono(mono, rate)
            if not self.allowed(peer):
                self._buffer.clear()
                self._pending = 0
                continue
            self.heard.feed_mono(mono, rate)
            if self.play_alone is not None and self.alone():
                self._buffer.clear()
                self._pending = 0
                self._alone_at = time.monotonic()
                self.play_alone(mono, rate)
                continue
            self._buffer.append(mono)
            self._pending += mono.size
            while self._pending > MAX_BUFFER_SAMPLES and self._buffer:
                self._pending -= self._buffer.popleft().size

    def speaking(self, within: float = 0.2) -> bool:
        """Whether a voice was played alone in the last ``within`` seconds (then it, not
        an off-air officer track's silence, feeds the speaker)."""
        return time.monotonic() - self._alone_at < within

    def mix_into(self, mono: np.ndarray) -> np.ndarray:
        """``mono`` plus as much buffered supervisor voice as fits (clipped to [-1, 1])."""
        if not self._buffer:
            return mono
        out = np.array(mono, dtype=np.float32, copy=True)
        filled = 0
        while self._buffer and filled < out.size:
            head = self._buffer[0]
            k = min(out.size - filled, head.size)
            out[filled : filled + k] += head[:k]
            filled += k
            if k == head.size:
                self._buffer.popleft()
            else:
                self._buffer[0] = head[k:]
        self._pending = max(0, self._pending - filled)
        np.clip(out, -1.0, 1.0, out=out)
        return out


def supervisor_barging(state: BoothState, peer: str) -> bool:
    """Whether ``booth_state`` says this supervisor (its ``sdp`` ``peer``) speaks to the booth:
    the one barging its on-air desk or resolving its escalation (``barge_peer``). Any other
    supervisor's audio (a monitor-only one hand-crafting an audio offer) is not played."""
    return state.supervisor_present and state.barge_peer is not None and state.barge_peer == peer
