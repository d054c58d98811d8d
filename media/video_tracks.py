"""The officer's picture: one source fanned out to gated per-booth tracks, and a name card.

The officer's camera (or, without one, a card with the officer's name and desk) is read once;
each booth link gets a ``GatedVideoTrack`` that passes the newest frame only while its gate is
open (the on-air booth). A closed gate sends nothing at all: off-air booths receive no officer
video and no encoder runs for them. Focus moves by flipping gates, never by renegotiating.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from PIL import Image, ImageDraw, ImageFont

from lapak.media.peer import cancel_tasks

log = logging.getLogger("lapak.officer_video")

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
CARD_BACKGROUND = (24, 40, 72)


class OfficerCardTrack(MediaStreamTrack):
    """A paced card showing the officer's name and desk, with a sweeping bar (it is live).

    The bar takes ``2 * fps`` positions, so the card has that many distinct pictures: each is
    drawn and converted to yuv420p once, the first time it is shown (converting every frame
    with a fresh swscale context was ~5 % of the officer's CPU, BENCHMARKS.md issue 17).
    """

    kind = "video"

    def __init__(self, name: str, desk: str, width: int = 320, height: int = 240, fps: int = 10):
        super().__init__()
        self.fps = fps
        img = Image.new("RGB", (width, height), CARD_BACKGROUND)
        draw = ImageDraw.Draw(img)
        font = ImageFont.load_default(size=max(10, height // 8))
        small = ImageFont.load_default(size=max(8, height // 12))
        draw.text((width / 2, height * 0.38), name, font=font, anchor="mm", fill=(255, 255, 255))
        draw.text((width / 2, height * 0.58), desk, font=small, anchor="mm", fill=(200, 210, 230))
        self._static = np.array(img, dtype=np.uint8)
        self._bar_y = int(height * 0.8)
        self._bar_h = max(2, height // 30)
        self._t0: float | None = None
        self._n = 0
        self._pictures: dict[int, np.ndarray] = {}  # bar position -> yuv420p planes

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        else:
            self._n += 1
            delay = self._t0 + self._n / self.fps - now
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                self._n = int((now - self._t0) * self.fps)
        frame = av.VideoFrame.from_ndarray(self._picture(self._n % (2 * self.fps)), "yuv420p")
        frame.pts = round(self._n * 90000 / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        return frame

    def _picture(self, step: int) -> np.ndarray:
        """The card with the bar at ``step`` of ``2 * fps``, as yuv420p planes (drawn once)."""
        planes = self._pictures.get(step)
        if planes is None:
            rgb = self._static.copy()
            w = rgb.shape[1]
            x = int(step / (2 * self.fps) * (w - w // 5))
            rgb[self._bar_y : self._bar_y + self._bar_h, x : x + w // 5] = 255
            yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            planes = self._pictures[step] = yuv.to_ndarray()
        return planes


class Fanout:
    """Reads one track continuously and hands every frame to each active subscriber.

    Capture devices must always be drained (aiortc's ``MediaPlayer`` queues without bound), so
    the reader runs from ``start()`` to ``close()`` whether or not anyone listens. Each
    subscriber has a small queue; when it is full the oldest frame is dropped (live media:
    late is worse than missing).
    """

    def __init__(self, source: MediaStreamTrack, depth: int = 4) -> None:
        self.source = source
        self.kind = source.kind
        self.depth = depth
        self.frames = 0
        self._subscribers: set[asyncio.Queue[av.frame.Frame | None]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._read(), name=f"fanout-{self.kind}")

    def subscribe(self) -> asyncio.Queue[av.frame.Frame | None]:
        q: asyncio.Queue[av.frame.Frame | None] = asyncio.Queue(self.depth)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[av.frame.Frame | None]) -> None:
        self._subscribers.discard(q)

    async def _read(self) -> None:
        while True:
            try:
                frame = await self.source.recv()
            except MediaStreamError:
                log.info("event=source_ended kind=%s", self.kind)
                frame = None
            if isinstance(frame, av.Packet):
                continue  # a track yields frames; the type says it may yield packets
            self.frames += 1
            for q in list(self._subscribers):
                if q.full():
                    q.get_nowait()
                q.put_nowait(frame)
            if frame is None:
                return

    async def close(self) -> None:
        if self._task is not None:
            await cancel_tasks([self._task])
            self._task = None
        self.source.stop()


class FanoutTrack(MediaStreamTrack):
    """One peer connection's view of a shared source (a booth's camera or microphone)."""

    def __init__(self, fanout: Fanout) -> None:
        super().__init__()
        self.kind = fanout.kind
        self.fanout = fanout
        self._queue = fanout.subscribe()

    async def recv(self) -> av.frame.Frame:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        self.fanout.unsubscribe(self._queue)
        super().stop()


class GatedVideoTrack(MediaStreamTrack):
    """Passes the fan-out's newest frames while open; while closed, ``recv`` simply waits.

    pts is rewritten on a continuous 90 kHz clock from the wall time, so the receiver's timing
    survives the gaps between on-air periods. The source frame is copied: several gates may
    hold the same frame and the encoder must never see another link's pts.
    """

    kind = "video"

    def __init__(self, fanout: Fanout, open: bool = False) -> None:
        super().__init__()
        self.fanout = fanout
        self._queue: asyncio.Queue[av.frame.Frame | None] | None = None
        self._opened = asyncio.Event()
        self._t0 = time.monotonic()
        self.frames_sent = 0
        self.open = open

    @property
    def open(self) -> bool:
        return self._opened.is_set()

    @open.setter
    def open(self, value: bool) -> None:
        if value and self._queue is None:
            self._queue = self.fanout.subscribe()
            self._opened.set()
        elif not value and self._queue is not None:
            self.fanout.unsubscribe(self._queue)
            self._queue = None
            self._opened.clear()

    async def recv(self) -> av.VideoFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            await self._opened.wait()
            q = self._queue
            if q is None:
                continue
            frame = await q.get()
            if frame is None:
                raise MediaStreamError
            if self._queue is q:
                break
        assert isinstance(frame, av.VideoFrame)
        out = av.VideoFrame.from_ndarray(frame.to_ndarray(format="yuv420p"), format="yuv420p")
        out.pts = round((time.monotonic() - self._t0) * 90000)
        out.time_base = VIDEO_TIME_BASE
        self.frames_sent += 1
        return out

    def stop(self) -> None:
        self.open = False
        super().stop()
