"""Domain events: the only things written to the durable log.

State is the replay of these events; a command is accepted by producing events, never by
mutating state directly. Every event names who caused it (``by``, ``role``) where a person
did, so the audit trail can say who decided what, when, from which role.
"""

from __future__ import annotations

import msgspec

from lapak.signaling.personal_data import Sealed


class DeskOpened(msgspec.Struct, tag="desk_opened", tag_field="kind"):
    desk: str
    office: str
    officer: str
    capacity: int
    at: float


class DeskConfigured(msgspec.Struct, tag="desk_configured", tag_field="kind"):
    """An admin set a desk's office and capacity (creating it if new)."""

    desk: str
    office: str
    capacity: int
    by: str
    at: float


class DeskClosed(msgspec.Struct, tag="desk_closed", tag_field="kind"):
    """The desk takes no more visits; its seated visits went back to the queue head."""

    desk: str
    by: str
    at: float


class DeskVacated(msgspec.Struct, tag="desk_vacated", tag_field="kind"):
    """The officer was gone past the grace period; the desk takes nobody until they return."""

    desk: str
    at: float


class WorkflowSet(msgspec.Struct, tag="workflow_set", tag_field="kind"):
    """An admin set a claim type's steps for one office; ``*`` (and events logged before
    workflows were scoped, which carry no office) for every office without its own."""

    claim_type: str
    steps: list[str]
    by: str
    at: float
    office: str = "*"


class VisitStarted(msgspec.Struct, tag="visit_started", tag_field="kind"):
    """Since personal data is sealed (signaling/personal_data.py), ``name`` and
    ``membership_no`` are empty and ``sealed`` holds them encrypted with the visit's key;
    events logged before carry them in clear and no ``sealed``."""

    visit: str
    office: str
    booth: str
    name: str
    membership_no: str
    claim_type: str
    steps: list[str]
    at: float
    sealed: Sealed | None = None


class VisitRouted(msgspec.Struct, tag="visit_routed", tag_field="kind"):
    visit: str
    desk: str
    slot: int
    at: float


class VisitQueued(msgspec.Struct, tag="visit_queued", tag_field="kind"):
    visit: str
    at: float
    head: bool = False  # back to the head of the queue (its desk closed or its officer left)


class FocusChanged(msgspec.Struct, tag="focus_changed", tag_field="kind"):
    desk: str
    visit: str | None
    by: str
    at: float


class StepDecided(msgspec.Struct, tag="step_decided", tag_field="kind"):
    """approve, reject (with a reason) or reopen (back to pending) one step."""

    visit: str
    step: int
    decision: str
    reason: str | None
    by: str
    role: str
    at: float


class SnapshotTaken(msgspec.Struct, tag="snapshot_taken", tag_field="kind"):
    """The officer saved a frame of the visit; its SHA-256 goes into the audit trail."""

    visit: str
    sha256: str
    step: int | None
    by: str
    at: float


class VisitEnded(msgspec.Struct, tag="visit_ended", tag_field="kind"):
    visit: str
    outcome: str
    note: str | None
    by: str
    at: float
    role: str = "officer"


class SupervisionChanged(msgspec.Struct, tag="supervision_changed", tag_field="kind"):
    """A supervisor started or stopped coaching or barging a desk (``monitor``: ended, by
    them or because they left). ``visit`` is the one on air then (a barge's audit trail);
    ``peer`` their connection. Changes no state: supervision lives with the connection."""

    desk: str
    mode: str
    by: str
    role: str
    peer: str
    visit: str | None
    at: float


class VisitEscalated(msgspec.Struct, tag="visit_escalated", tag_field="kind"):
    """The officer handed the visit to a supervisor: it left their desk (its slot is free)
    and waits, still open and connected, in the office's escalation queue with the note."""

    visit: str
    note: str
    by: str
    role: str
    at: float


class EscalationTaken(msgspec.Struct, tag="escalation_taken", tag_field="kind"):
    """A supervisor with grant ``resolve`` took an escalated visit: theirs to decide and end."""

    visit: str
    by: str
    role: str
    at: float


class RecordingClosed(msgspec.Struct, tag="recording_closed", tag_field="kind"):
    """A recorder closed the visit's file (name, SHA-256, length, size, wall-clock gaps)."""

    visit: str
    file: str
    sha256: str
    duration_s: float
    bytes: int
    gaps: list[tuple[float, float]]
    by: str
    at: float
    role: str = "recorder"


class RecordingNoticeShown(msgspec.Struct, tag="recording_notice_shown", tag_field="kind"):
    """The booth showed the claimant that the visit is recorded (consent, logged)."""

    visit: str
    by: str
    at: float
    role: str = "booth"


# -- personal data (issue 15) --------------------------------------------------------------


class VisitPurged(msgspec.Struct, tag="visit_purged", tag_field="kind"):
    """The visit's key was destroyed: its sealed personal data can no longer be read.
    ``reason``: ``retention`` (the office's retention ran out) or the admin's words.
    Carries no personal data itself."""

    visit: str
    by: str
    role: str
    reason: str
    at: float


Event = (
    DeskOpened
    | DeskConfigured
    | DeskClosed
    | DeskVacated
    | WorkflowSet
    | VisitStarted
    | VisitRouted
    | VisitQueued
    | FocusChanged
    | StepDecided
    | SnapshotTaken
    | VisitEnded
    | SupervisionChanged
    | VisitEscalated
    | EscalationTaken
    | RecordingClosed
    | RecordingNoticeShown
    | VisitPurged
)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


def event_kind(event: Event) -> str:
    kind = type(event).__struct_config__.tag
    assert isinstance(kind, str), "every event has a string tag"
    return kind


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes | str) -> Event:
    return _decoder.decode(data)
