"""The frames the outbox builds itself are the frames websockets would have sent."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from lapak.signaling.delivery import text_frame


def _parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False, max_size=None)
    try:
        next(parser)
    except StopIteration as done:
        frame = done.value
        assert isinstance(frame, Frame)
        return frame
    raise AssertionError("the frame was not complete")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_text_frame_parses_back_to_its_payload_at_every_length_encoding(size: int) -> None:
    payload = ("é" * size).encode()[:size]  # multi-byte text, cut at the exact size
    payload = payload.decode(errors="ignore").encode()
    frame = _parse(text_frame(payload))
    assert frame.opcode is Opcode.TEXT and frame.fin
    assert frame.data == payload
    same = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert text_frame(payload) == same, "byte for byte what websockets would write"
