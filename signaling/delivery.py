"""Writing committed outputs to the sockets: in commit order, at once, never waiting.

The server calls ``deliver`` when a batch's events are durable; every message goes out
(each encoded once, however many watchers get it), then the closes the hub asked for.
A client that leaves more than ``SEND_BUFFER_LIMIT`` bytes unread is closed as a slow
consumer instead of growing the server's memory.

With ``batching`` on (the SQLite log calls ``flush_writes`` after each commit's deliveries)
the frames of one commit are collected per connection and written with one
``transport.write`` each, as websocket frames built here once per message: one ``send()``
per connection per commit instead of one per message, and none of websockets' per-message
Python (issue 17: delivery was a quarter of the loop's time in the visit waves).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from lapak.signaling.hub import Result
from lapak.signaling.metrics import ServerMetrics
from lapak.signaling.protocol import CloseCode

log = logging.getLogger("lapak.signal")

SEND_BUFFER_LIMIT = 1024 * 1024  # unread bytes before a client counts as a slow consumer
_json = msgspec.json.Encoder()  # the same bytes as messages.encode, without the str round trip


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented websocket text frame (RFC 6455 5.2), as a server sends it
    with no extension negotiated (``lapak signal`` serves with ``compression=None``)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


@dataclass
class Peer:
    ws: ServerConnection
    dropping: bool = False  # being closed: send nothing more, read nothing more
    stop_reading: bool = False  # refused: read nothing more until it is closed
    hello_timer: asyncio.TimerHandle | None = None


class Outbox:
    def __init__(self, metrics: ServerMetrics, on_log_failed: Callable[[BaseException], None]):
        self.metrics = metrics
        self.on_log_failed = on_log_failed
        self.peers: dict[int, Peer] = {}
        self.closers: set[asyncio.Task[None]] = set()
        self.batching = False  # True only if someone calls flush_writes after each commit
        self._out: dict[int, list[bytes]] = {}  # conn id -> frames of this commit, in order

    def deliver(
        self, fut: asyncio.Future[None], result: Result, conn_id: int, received: float | None
    ) -> None:
        """``fut`` is the commit of ``result``'s events; ``received`` when a frame was read."""
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            self.on_log_failed(exc)
            return
        encoded: dict[int, bytes] = {}  # a delta goes to every watcher: encode it once
        answered = relayed = False
        for target, message in result.outputs:
            frame = encoded.get(id(message))
            if frame is None:
                frame = encoded[id(message)] = text_frame(_json.encode(message))
            self.send(target, frame)
            answered = answered or target == conn_id
            relayed = relayed or target != conn_id
        if received is not None:
            elapsed = time.perf_counter() - received
            if answered:
                self.metrics.ack_latency.observe(elapsed)
            if relayed and result.message_type == "sdp":
                self.metrics.relay_latency.observe(elapsed)
        for target, code, reason in result.closes:
            peer = self.peers.get(target)
            if peer is not None and not peer.dropping:
                peer.dropping = True
                self.close_later(peer.ws, code, reason)

    def send(self, conn_id: int, frame: bytes) -> None:
        """Write now (or at this commit's ``flush_writes``), in commit order, without
        waiting."""
        peer = self.peers.get(conn_id)
        if peer is None or peer.dropping:
            return
        transport = peer.ws.transport
        if transport is not None and transport.get_write_buffer_size() > SEND_BUFFER_LIMIT:
            peer.dropping = True
            log.warning("event=slow_consumer conn=%d", conn_id)
            self.metrics.errors.labels("slow_consumer").inc()
            self.close_later(peer.ws, CloseCode.SLOW_CONSUMER, "slow consumer")
            return
        if not self.batching:
            _write(peer.ws, frame)
            return
        if not self._out:  # whoever forgets flush_writes still gets its frames out
            asyncio.get_running_loop().call_soon(self.flush_writes)
        queued = self._out.get(conn_id)
        if queued is None:
            self._out[conn_id] = [frame]
        else:
            queued.append(frame)

    def flush_writes(self) -> None:
        """One write per connection for everything this commit sent it (frames queued
        before a close was decided still go: they were due before it)."""
        out, self._out = self._out, {}
        for conn_id, frames in out.items():
            peer = self.peers.get(conn_id)
            if peer is not None:
                _write(peer.ws, frames[0] if len(frames) == 1 else b"".join(frames))

    def close_later(self, ws: ServerConnection, code: int, reason: str) -> None:
        task = asyncio.get_running_loop().create_task(ws.close(code, reason))
        self.closers.add(task)
        task.add_done_callback(self.closers.discard)

    async def cancel_closers(self) -> None:
        for task in list(self.closers):
            task.cancel()
        await asyncio.gather(*self.closers, return_exceptions=True)


def _write(ws: ServerConnection, data: bytes) -> None:
    """Whole frames straight to the transport, skipping connections not open (what
    websockets' ``broadcast`` does, minus building each frame once per connection)."""
    transport = ws.transport
    if ws.protocol.state is not State.OPEN or transport is None or transport.is_closing():
        return
    if ws.protocol.extensions:  # never with compression=None; a frame here would be wrong
        raise RuntimeError("delivery writes raw frames: no websocket extension may be on")
    transport.write(data)
