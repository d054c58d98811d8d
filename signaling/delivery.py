"""Writing committed outputs to the sockets: in commit order, at once, never waiting.

The server calls ``deliver`` when a batch's events are durable; every message goes out
(each encoded once, however many watchers get it), then the closes the hub asked for.
A client that leaves more than ``SEND_BUFFER_LIMIT`` bytes unread is closed as a slow
consumer instead of growing the server's memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection, broadcast

from lapak.signaling.hub import Result
from lapak.signaling.messages import encode
from lapak.signaling.metrics import ServerMetrics
from lapak.signaling.protocol import CloseCode

log = logging.getLogger("lapak.signal")

SEND_BUFFER_LIMIT = 1024 * 1024  # unread bytes before a client counts as a slow consumer


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
        encoded: dict[int, str] = {}  # a delta goes to every watcher: encode it once
        answered = relayed = False
        for target, message in result.outputs:
            text = encoded.get(id(message))
            if text is None:
                text = encoded[id(message)] = encode(message)
            self.send(target, text)
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

    def send(self, conn_id: int, text: str) -> None:
        """Write now, in commit order, without waiting (the way websockets' broadcast does)."""
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
        broadcast([peer.ws], text)

    def close_later(self, ws: ServerConnection, code: int, reason: str) -> None:
        task = asyncio.get_running_loop().create_task(ws.close(code, reason))
        self.closers.add(task)
        task.add_done_callback(self.closers.discard)

    async def cancel_closers(self) -> None:
        for task in list(self.closers):
            task.cancel()
        await asyncio.gather(*self.closers, return_exceptions=True)
