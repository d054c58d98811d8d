"""Domain events: the only things written to the durable log.

State is the replay of these events; a command is accepted by producing events, never by
mutating state directly.
"""

from __future__ import annotations

import msgspec


class DeskOpened(msgspec.Struct, tag="desk_opened", tag_field="kind"):
    desk: str
    office: str
    officer: str
    capacity: int
    at: float


class VisitStarted(msgspec.Struct, tag="visit_started", tag_field="kind"):
    visit: str
    office: str
    booth: str
    name: str
    membership_no: str
    claim_type: str
    steps: list[str]
    at: float


class VisitRouted(msgspec.Struct, tag="visit_routed", tag_field="kind"):
    visit: str
    desk: str
    slot: int
    at: float


class VisitQueued(msgspec.Struct, tag="visit_queued", tag_field="kind"):
    visit: str
    at: float


class FocusChanged(msgspec.Struct, tag="focus_changed", tag_field="kind"):
    desk: str
    visit: str | None
    by: str
    at: float


class StepDecided(msgspec.Struct, tag="step_decided", tag_field="kind"):
    visit: str
    step: int
    decision: str
    reason: str | None
    by: str
    role: str
    at: float


class VisitEnded(msgspec.Struct, tag="visit_ended", tag_field="kind"):
    visit: str
    outcome: str
    note: str | None
    by: str
    at: float


Event = (
    DeskOpened | VisitStarted | VisitRouted | VisitQueued | FocusChanged | StepDecided | VisitEnded
)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes | str) -> Event:
    return _decoder.decode(data)
