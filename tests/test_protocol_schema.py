"""The typed wire contract: every frame the real hub sends decodes into its struct in
lapak.signaling.messages and encodes back to the same JSON."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from lapak.signaling import messages as m
from lapak.signaling.hub import Hub
from lapak.signaling.tokens import KeyRing

NOW = 1_800_000_000.0


def wire(message: object) -> dict[str, Any]:
    """An outbound message as the JSON object a client receives."""
    text = m.encode(message) if isinstance(message, msgspec.Struct) else json.dumps(message)
    decoded = json.loads(text)
    assert isinstance(decoded, dict), f"a frame is a JSON object: {text}"
    return decoded


class Scenario:
    """A real hub driven through a short day at one desk; records every outbound frame."""

    def __init__(self) -> None:
        self.hub = Hub(KeyRing((b"s" * 32,)), now=NOW)
        self.frames: list[dict[str, Any]] = []
        self.now = NOW
        self.next_id = 100

    def connect(self, role: str, **claims: str) -> int:
        conn = self.hub.connect()
        token = self.hub.keys.issue(role, f"{role}-1", "main", now=NOW, **claims)
        self.send(conn, {"type": "hello", "token": token})
        return conn

    def send(self, conn: int, message: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
        self.next_id += 1
        frame = json.dumps({"id": self.next_id, **message})
        result = self.hub.receive(conn, frame, self.now)
        out = [(c, wire(msg)) for c, msg in result.outputs]
        self.frames += [f for _, f in out]
        return out

    def answer(self, conn: int, message: dict[str, Any]) -> dict[str, Any]:
        """Send a request; its answer (the frame to ``conn`` carrying ``re``)."""
        out = self.send(conn, message)
        answers = [f for c, f in out if c == conn and f.get("re") == self.next_id]
        assert answers, f"{message['type']} gets an answer: {out}"
        return answers[0]

    def record(self, outputs: list[tuple[int, object]]) -> None:
        self.frames += [wire(msg) for _, msg in outputs]


def day() -> list[dict[str, Any]]:
    """Every kind of frame the hub sends, from a real scenario."""
    s = Scenario()
    officer = s.connect("officer", desk="d1")
    booth = s.connect("booth", booth="b1")
    supervisor = s.connect("supervisor")
    admin = s.connect("admin")
    s.answer(supervisor, {"type": "watch", "desk": "d1"})
    visit = s.answer(
        booth, {"type": "start_visit", "claimant": {"name": "S", "membership_no": "1"}}
    )["visit"]
    s.answer(officer, {"type": "focus", "visit": visit})
    reason = s.hub.config.reasons[0]
    s.answer(officer, {"type": "decide", "visit": visit, "step": 0, "decision": "approve"})
    s.answer(
        officer,
        {"type": "decide", "visit": visit, "step": 1, "decision": "reject", "reason": reason},
    )
    s.answer(officer, {"type": "decide", "visit": visit, "step": 1, "decision": "reopen"})
    s.answer(officer, {"type": "snapshot_taken", "visit": visit, "sha256": "a" * 64, "step": 0})
    offer = {"type": "sdp", "visit": visit, "sdp_type": "offer", "sdp": "v=0"}
    s.answer(officer, {**offer, "offer_id": "o1"})
    answer = {"type": "sdp", "visit": visit, "sdp_type": "answer", "sdp": "v=0"}
    s.answer(booth, {**answer, "offer_id": "o1"})
    relayed = s.send(supervisor, {**offer, "offer_id": "s1"})
    peer = next(f["peer"] for _, f in relayed if f["type"] == "sdp")
    s.answer(booth, {**answer, "offer_id": "s1", "peer": peer})
    s.answer(officer, {"type": "office_stats"})
    s.answer(officer, {"type": "focus", "visit": None})
    s.answer(booth, {"type": "focus", "visit": visit})  # forbidden
    s.answer(officer, {"type": "decide", "visit": "nope", "step": 0, "decision": "approve"})
    s.answer(admin, {"type": "configure_desk", "desk": "d2", "capacity": 2})
    s.answer(admin, {"type": "set_workflow", "claim_type": "JKM", "steps": ["a", "b"]})
    s.answer(
        admin, {"type": "refresh", "token": s.hub.keys.issue("admin", "admin-1", "main", now=NOW)}
    )
    s.record(s.hub.disconnect(booth, s.now).outputs)  # the desk sees the booth away
    booth = s.connect("booth", booth="b1")  # back: its booth_state on hello
    s.record(s.hub.disconnect(supervisor, s.now).outputs)
    s.answer(officer, {"type": "end_visit", "visit": visit, "outcome": "escalated", "note": "n"})
    s.answer(admin, {"type": "close_desk", "desk": "d2"})
    s.connect("officer", desk="d1")  # takes over: the first officer is replaced
    s.now = NOW + 13 * 3600
    s.record(s.hub.tick(s.now).outputs)  # tokens expired
    return s.frames


FRAMES = day()


def test_scenario_covers_every_server_message() -> None:
    seen = {f["type"] for f in FRAMES}
    assert seen == {m.tag(t) for t in m.SERVER_MESSAGES}, "the scenario sends every message type"
    acks = {k for f in FRAMES if f["type"] == "ack" for k in f}
    assert acks == set(m.Ack.__struct_encode_fields__) | {"type"}, "every ack field is sent"


@pytest.mark.parametrize("index", range(len(FRAMES)))
def test_every_frame_round_trips(index: int) -> None:
    frame = FRAMES[index]
    text = json.dumps(frame)
    decoded = m.decode_server(text)
    assert m.tag(type(decoded)) == frame["type"]
    assert json.loads(m.encode(decoded)) == frame, f"re-encoded frame differs: {text}"


def test_decode_is_strict() -> None:
    with pytest.raises(msgspec.ValidationError):
        m.decode_server('{"type": "peer_left", "visit": "V1", "peer": "3", "extra": 1}')
    with pytest.raises(msgspec.ValidationError):
        m.decode_server('{"type": "peer_left", "visit": "V1", "peer": 3}')
    with pytest.raises(msgspec.ValidationError):
        m.decode_server('{"type": "teleport"}')
