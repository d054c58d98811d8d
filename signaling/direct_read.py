"""Text frames handled in the loop pass that reads them.

websockets hands every message to the connection handler through a queue: the frame is
parsed in one pass of the loop, the handler's task wakes in the next, and each wake-up is a
future, a task step and a pass of waiting (issue 17: at 2,000 clients a request waited one
loop pass more than it needed, on a core the server keeps 70 % busy). ``on_text`` takes a
complete, unfragmented text frame straight from ``process_event`` instead.

Everything else keeps websockets' own path, unchanged: the handshake, control frames, and
any data frame that is binary, fragmented or not valid UTF-8 (websockets refuses those
with the close code it documents). Once one data frame of a connection took that path,
all its later ones do too, so messages are never handled out of order. Frames that came
before the handler set ``on_text`` are in websockets' queue, and the handler reads them
(without waiting) before the loop can read anything newer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from websockets.frames import DATA_OPCODES, Frame, Opcode
from websockets.protocol import Event

from lapak.signaling.keepalive import SpreadServerConnection
from lapak.signaling.protocol import CloseCode

__all__ = ["DirectTextServerConnection"]

log = logging.getLogger("lapak.signal")


class DirectTextServerConnection(SpreadServerConnection):
    """The server's connection; ``on_text`` (set by the handler) gets whole text frames."""

    on_text: Callable[[str], None] | None = None
    queued_data = False  # a data frame went to websockets' queue: all later ones follow it
    closer: asyncio.Task[None] | None = None  # closing after ``on_text`` raised

    def process_event(self, event: Event) -> None:
        on_text = self.on_text
        if on_text is not None and isinstance(event, Frame) and event.opcode in DATA_OPCODES:
            text = None if self.queued_data else _whole_text(event)
            if text is not None:
                self._handle_text(on_text, text)
                return
            self.queued_data = True
        super().process_event(event)

    def _handle_text(self, on_text: Callable[[str], None], text: str) -> None:
        """As websockets treats a handler that raised: logged, then closed with 1011."""
        try:
            on_text(text)
        except Exception:
            log.exception("event=handler_failed remote=%s", self.remote_address)
            self.on_text = None
            if self.closer is None:
                self.closer = self.loop.create_task(self.close(CloseCode.INTERNAL))


def _whole_text(frame: Frame) -> str | None:
    """The text of a whole text frame; None for any other data frame, or text that is not
    UTF-8 (websockets then closes with 1007)."""
    if frame.opcode is not Opcode.TEXT or not frame.fin:
        return None
    try:
        return bytes(frame.data).decode()
    except UnicodeDecodeError:
        return None
