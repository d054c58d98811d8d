"""The officer's media engine (and the supervisor's receive-only one): what each sends.

``OfficerMedia`` carries the officer's voice and picture to every booth through gates open
only for the on-air booth (``set_on_air``, from the server's ``on_air``), so focus moves
without renegotiating; ``m`` mutes the voice for everyone. ``SupervisorMedia`` offers
receive-only links, and speaks when the server lets it coach or barge
(``media.supervisor_voice``): to the officer over its own peer, and while barging also on its
link to the on-air booth; the officer mixes supervisors' voices into its output only. The
links themselves, their recovery and the offer rules live in
``media.link_engine`` and ``media.booth_link``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import av
from aiortc import MediaStreamTrack

from lapak.media.audio_tracks import AudioProbe, GatedAudioTrack
from lapak.media.booth_link import ANSWER_TIMEOUT_S, STALL_S, BoothLink
from lapak.media.link_engine import WATCH_PERIOD_S, MediaEngine, SendSdp
from lapak.media.peer import cancel_tasks
from lapak.media.supervisor_voice import (
    SPEAKING_MODES,
    CoachLink,
    SendVoiceSdp,
    SharedVoice,
    SupervisorVoices,
    voice_source,
)
from lapak.media.tones import (
    OFFICER_FREQUENCY,
    SAMPLE_RATE,
    AudioSource,
    SilenceSource,
    ToneSource,
    to_mono,
)
from lapak.media.track_frames import track_frames
from lapak.media.video_tracks import Fanout, GatedVideoTrack, OfficerCardTrack
from lapak.signaling.protocol import SupervisionMode

log = logging.getLogger("lapak.officer_media")


@dataclass
class OfficerMediaOptions:
    """What the officer sends and hears.

    ``audio_in``: ``none`` (silence), ``tone`` (the 1200 Hz test tone), or a recording's path
    (played in a loop as the officer's microphone). ``voice`` overrides it with any
    ``AudioSource``. ``camera``: a capture device (see ``media.devices``) or None for a card with
    ``officer_name`` and ``desk``; ``send_video=False`` sends no picture at all. ``audio_out``:
    ``none``, ``device``/a device name, or a ``.wav`` path. ``monitor_level`` is the gain (0..1)
    for booths that are not on air; 0 mutes them.
    """

    audio_in: str = "none"
    voice: AudioSource | None = None
    camera: str | None = None
    send_video: bool = True
    officer_name: str = "Officer"
    desk: str = ""
    audio_out: str = "none"
    monitor_level: float = 0.0
    stall_s: float = STALL_S


@dataclass
class OfficerMedia(MediaEngine):
    """The officer's engine: sends voice and picture to the on-air booth only."""

    role = "officer"

    def __init__(
        self,
        send_sdp: SendSdp | None = None,
        options: OfficerMediaOptions | None = None,
        *,
        voice: AudioSource | None = None,
    ) -> None:
        """``send_sdp``: None until a desk session attaches its own; ``voice`` overrides
        ``options.voice``."""
        self.options = options or OfficerMediaOptions()
        if voice is not None:
            self.options.voice = voice
        super().__init__(send_sdp, self.options.stall_s)
        self.voice_source: AudioSource = self._voice_source()
        self.on_air: str | None = None
        self._muted = False
        self._video: Fanout | None = None
        self._open_output(self.options.audio_out)
        self.supervisors = SupervisorVoices(lambda: self.mixer, lambda: self.ice_servers)
        """Supervisors coaching or barging: heard in the officer's output, never sent on."""

    def _voice_source(self) -> AudioSource:
        opts = self.options
        if opts.voice is not None:
            return opts.voice
        if opts.audio_in == "tone":
            return ToneSource(OFFICER_FREQUENCY)
        if opts.audio_in not in ("none", ""):
            from lapak.media.live_audio import LiveAudioSource

            live = LiveAudioSource.from_file(opts.audio_in)
            if live is not None:
                return live
        return SilenceSource()

    @property
    def muted(self) -> bool:
        return self._muted

    def set_muted(self, muted: bool) -> None:
        """``m``: the officer's microphone goes silent for everyone (the picture stays)."""
        self._muted = bool(muted)
        log.info("event=officer_muted muted=%s", self._muted)
        self._apply_gates()

    def set_on_air(self, visit: str | None) -> None:
        """Open the officer's voice and picture to the on-air booth only (the focus event)."""
        if visit != self.on_air:
            log.info("event=on_air visit=%s", visit)
        self.on_air = visit
        self._apply_gates()

    def _apply_gates(self) -> None:
        for link in self.links.values():
            on = link.visit == self.on_air
            if link.voice is not None:
                link.voice.open = on and not self._muted
            if link.video_out is not None:
                link.video_out.open = on
            if self.mixer is not None:
                self.mixer.set_gain(link.visit, self._gain(link.visit))

    def set_monitor_level(self, level: float) -> None:
        """Gain (0..1) for the booths that are not on air; 0 mutes them."""
        self.options.monitor_level = max(0.0, min(1.0, float(level)))
        self._apply_gates()

    def _gain(self, visit: str) -> float:
        return 1.0 if visit == self.on_air else self.options.monitor_level

    def _video_fanout(self) -> Fanout | None:
        if not self.options.send_video:
            return None
        if self._video is None:
            source: MediaStreamTrack | None = None
            if self.options.camera:
                from lapak.media.devices import open_camera

                capture = open_camera(self.options.camera, 640, 480, 15)
                source = capture.track if capture is not None else None
            if source is None:
                source = OfficerCardTrack(self.options.officer_name, self.options.desk)
            self._video = Fanout(source, depth=1)
            self._video.start()
        return self._video

    def _add_transceivers(self, link: BoothLink) -> None:
        on = link.visit == self.on_air
        link.voice = GatedAudioTrack(self.voice_source, open=on and not self._muted)
        link.pc.addTransceiver(link.voice, direction="sendrecv")
        fanout = self._video_fanout()
        if fanout is None:
            link.video_out = None
            link.pc.addTransceiver("video", direction="recvonly")
        else:
            link.video_out = GatedVideoTrack(fanout, open=on)
            link.pc.addTransceiver(link.video_out, direction="sendrecv")

    async def _close_sources(self) -> None:
        await self.supervisors.close()
        if self._video is not None:
            await self._video.close()
            self._video = None
        closer = getattr(self.voice_source, "close", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()


OFFICER_SOURCE = "officer"
"""The officer's voice in a supervisor's mixer (relayed by the on-air booth)."""


class SupervisorMedia(MediaEngine):
    """A supervisor's view of a desk's booths: the same ``links`` interface, receive-only
    while monitoring.

    Its offers carry only ``recvonly`` transceivers; the server relays them to booths of a desk
    the supervisor watches, and the booth answers sending its camera and microphone. In coach
    or barge (``set_mode``, after the server's ack) the supervisor's voice goes to the desk's
    officer over a ``CoachLink``; in barge the link to the on-air booth is renegotiated to
    carry the voice too (``sendrecv`` audio), and back to receive-only when barge ends or the
    air moves to another booth.
    """

    role = "supervisor"

    def __init__(
        self,
        send_sdp: SendSdp | None = None,
        audio_out: str = "none",
        stall_s: float = STALL_S,
        *,
        audio_in: str = "none",
        voice: AudioSource | None = None,
    ) -> None:
        """``audio_in``: the supervisor's microphone (``none``, ``tone``, a recording's path);
        ``voice`` overrides it with any ``AudioSource``."""
        super().__init__(send_sdp, stall_s)
        self._open_output(audio_out)
        self.voice = SharedVoice(voice if voice is not None else voice_source(audio_in))
        self.mode: SupervisionMode = "monitor"
        self.on_air: str | None = None
        self.coach = CoachLink(self.voice.reader)
        self.officer_heard = AudioProbe([OFFICER_FREQUENCY])
        """The officer's voice as the on-air booth played it, relayed to this supervisor."""
        self.send_voice_sdp: SendVoiceSdp | None = None
        self._coach_task: asyncio.Task[None] | None = None
        self.resolving: set[str] = set()
        """Escalated visits this supervisor took (``resolve``): linked straight to their
        booth, which hears the supervisor's voice; kept apart from the watched desk's."""

    async def resolve(self, visit: str) -> None:
        """Link to a taken escalation's booth (the server relays the offer to it, and the
        booth plays the voice of the visit's resolver): voice out, the claimant in."""
        self.resolving.add(visit)
        log.info("event=resolver_link visit=%s", visit)
        await self.ensure(visit)

    def resolver_booth_present(self, visit: str, present: bool) -> None:
        """The server's presence of a taken escalation's booth (``office_stats``'s
        ``EscalationEntry.booth_present``; no desk session reports it, the visit has left its
        desk): a booth that is back is offered again at once, one that is away is left alone
        until then (``set_booth_present``). Visits this supervisor does not resolve are not
        touched: their presence comes from the watched desk."""
        if visit in self.resolving:
            self.set_booth_present(visit, present)

    async def unresolve(self, visit: str) -> None:
        """The taken visit ended (or is no longer this supervisor's): its link closes."""
        if visit in self.resolving:
            self.resolving.discard(visit)
            log.info("event=resolver_link_closed visit=%s", visit)
            await self.drop(visit)

    def attach_voice(self, send: SendVoiceSdp) -> None:
        """Send the voice's offers to the officer through this (the desk session's)."""
        self.send_voice_sdp = send

    @property
    def barged(self) -> str | None:
        """The visit whose booth hears the supervisor now (barge, on air), else None."""
        return self.on_air if self.mode == "barge" else None

    async def set_mode(self, mode: SupervisionMode) -> None:
        """The server accepted ``supervise``: speak to the officer (coach, barge) or not
        (monitor), and move the barge voice to or off the on-air booth's link."""
        before = self.barged
        self.mode = mode
        log.info("event=supervisor_mode mode=%s on_air=%s", mode, self.on_air)
        if mode in SPEAKING_MODES:
            if self._coach_task is None or self._coach_task.done():
                self._coach_task = asyncio.create_task(self._keep_coach(), name="coach-link")
                self._tasks.add(self._coach_task)
                self._coach_task.add_done_callback(self._tasks.discard)
        else:
            await cancel_tasks([self._coach_task] if self._coach_task is not None else [])
            self._coach_task = None
            await self.coach.stop()
        await self._move_barge(before)

    def set_on_air(self, visit: str | None) -> None:
        """The desk's on-air booth (from the desk model): a barge follows it."""
        before = self.barged
        self.on_air = visit
        if self.barged != before:
            self._spawn(self._move_barge(before), "supervisor-barge-move")

    async def _move_barge(self, before: str | None) -> None:
        now = self.barged
        if now == before:
            return
        for visit in [v for v in (before, now) if v is not None]:
            link = self.links.get(visit)
            if link is None:
                continue
            if link.voice is not None:
                link.voice.open = False  # silent at once; the renegotiation removes it
            await self.renegotiate(visit, "barge" if visit == now else "barge_end")

    def _add_transceivers(self, link: BoothLink) -> None:
        if link.visit in self.resolving:  # no officer to relay: voice and the booth only
            link.voice = GatedAudioTrack(self.voice.reader(), open=True)
            link.pc.addTransceiver(link.voice, direction="sendrecv")
            link.pc.addTransceiver("video", direction="recvonly")
            return
        if link.visit != self.barged:
            link.voice = None
            super()._add_transceivers(link)
        else:
            link.voice = GatedAudioTrack(self.voice.reader(), open=True)
            link.pc.addTransceiver(link.voice, direction="sendrecv")
            link.pc.addTransceiver("video", direction="recvonly")
        # third: the officer's voice as this booth played it (relayed by the booth on air)
        link.pc.addTransceiver("audio", direction="recvonly")

    def _other_track(self, link: BoothLink, track: MediaStreamTrack) -> Any | None:
        """The third transceiver's track is the officer's voice, relayed by the booth while
        it is on air: mixed into the supervisor's output as ``officer``."""
        transceivers = link.pc.getTransceivers()
        if len(transceivers) < 3 or transceivers[2].receiver.track is not track:
            return None
        return self._hear_officer(track)

    async def _hear_officer(self, track: MediaStreamTrack) -> None:
        mixer = self.mixer
        if mixer is not None:
            mixer.set_gain(OFFICER_SOURCE, 1.0)
        async for frame in track_frames(track, av.AudioFrame):
            mono = to_mono(frame)
            self.officer_heard.feed_mono(mono, frame.sample_rate or SAMPLE_RATE)
            if mixer is not None:
                mixer.push(OFFICER_SOURCE, mono)

    async def _keep_coach(self) -> None:
        """Keep the voice's peer to the officer up while coaching or barging: offered at
        once, offered again when it fails or goes unanswered."""
        loop = asyncio.get_running_loop()
        while self.mode in SPEAKING_MODES:
            state = self.coach.state
            stale = (
                state in ("new", "connecting")
                and self.coach.pc is not None
                and loop.time() - self.coach.offered_at > ANSWER_TIMEOUT_S
            )
            if state in ("closed", "failed") or stale:
                send = self.send_voice_sdp
                self.coach.ice_servers = list(self.ice_servers)
                try:
                    if send is None:
                        raise ConnectionError("no signalling connection attached")
                    await self.coach.offer(send)
                except Exception as exc:  # refused or not sent: tried again
                    log.warning("event=coach_offer_failed reason=%r", str(exc))
                    await self.coach.stop()
            await asyncio.sleep(WATCH_PERIOD_S)

    async def _close_sources(self) -> None:
        self.mode = "monitor"
        self.resolving.clear()
        await self.coach.stop()
        with contextlib.suppress(Exception):
            await self.voice.close()
