"""Client → server messages of the signalling protocol, error codes and close codes
(docs/protocol.md; what the server sends is in ``messages.py``).

Every frame is one JSON object with a ``type``. Inbound frames are decoded into typed
``msgspec`` structs in one place, so handlers never poke at raw dicts. msgspec was chosen
over pydantic because it validates and decodes in a single C pass (signalling is the
server's hot path) and its tagged unions map one-to-one onto our ``type`` field.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

import msgspec

from lapak.signaling.errors import LapakError
from lapak.signaling.limits import (  # recordings
    MAX_FILE_NAME,
    MAX_FRAME_BYTES,
    MAX_GAPS,
    MAX_ID,
    MAX_NAME,
    MAX_NOTE,
    MAX_REASON,
    MAX_TOKEN,
)

MAX_MEMBERSHIP_NO = MAX_ID
MAX_CLAIM_TYPE = MAX_ID


class ErrorCode(StrEnum):
    """Stable machine codes carried by ``error`` messages."""

    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_MESSAGE = "invalid_message"
    HELLO_REQUIRED = "hello_required"
    ALREADY_HELLO = "already_hello"
    BAD_TOKEN = "bad_token"
    BAD_SIGNATURE = "bad_signature"
    TOKEN_EXPIRED = "token_expired"
    FORBIDDEN = "forbidden"
    READ_ONLY = "read_only"
    NOT_FOUND = "not_found"
    STEP_NOT_PENDING = "step_not_pending"
    STEP_NOT_DECIDED = "step_not_decided"
    BAD_REASON = "bad_reason"
    CONFLICT = "conflict"
    WRONG_OFFICE = "wrong_office"
    RATE_LIMITED = "rate_limited"
    VISIT_NOT_ACTIVE = "visit_not_active"
    NOT_CONNECTED = "not_connected"
    TOO_BIG = "too_big"
    STALE_ANSWER = "stale_answer"
    REPLACED = "replaced"
    OUTCOME_MISMATCH = "outcome_mismatch"
    NOT_ESCALATED = "not_escalated"


class CloseCode:
    """Websocket close codes the server uses."""

    NORMAL = 1000
    GOING_AWAY = 1001
    INVALID_DATA = 1007  # a text frame that is not UTF-8 (websockets closes it)
    POLICY = 1008
    TOO_BIG = 1009
    INTERNAL = 1011
    AUTH_FAILED = 4001
    REPLACED = 4002
    SLOW_CONSUMER = 4008
    FLOOD = 4029
    MOVED = 4012  # a cluster: the office is on another node (after moved, or a lost lease)


Role = Literal["officer", "booth", "supervisor", "admin", "recorder"]
Decision = Literal["approve", "reject", "reopen"]
Outcome = Literal["completed", "rejected", "escalated", "abandoned"]
SdpType = Literal["offer", "answer"]


class Claimant(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME)]
    membership_no: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_MEMBERSHIP_NO)]
    claim_type: Annotated[str, msgspec.Meta(max_length=MAX_CLAIM_TYPE)] = "JHT"


# --- client to server -----------------------------------------------------------------


class Hello(msgspec.Struct, tag="hello", tag_field="type", forbid_unknown_fields=True):
    """First frame. ``session`` (from an earlier ``welcome``) resumes within the grace period."""

    token: Annotated[str, msgspec.Meta(max_length=MAX_TOKEN)]
    session: Annotated[str, msgspec.Meta(max_length=MAX_ID)] | None = None
    id: int | None = None


class StartVisit(msgspec.Struct, tag="start_visit", tag_field="type", forbid_unknown_fields=True):
    claimant: Claimant
    id: int | None = None


class Focus(msgspec.Struct, tag="focus", tag_field="type", forbid_unknown_fields=True):
    """Put a visit on air at the sender's desk; ``visit: null`` takes everyone off air."""

    visit: str | None
    id: int | None = None


class Zoom(msgspec.Struct, tag="zoom", tag_field="type", forbid_unknown_fields=True):
    """The visit the officer looks at closely (its booth sends full video); ``visit: null``: none.
    Not an event: the log keeps decisions, not where the officer looked."""

    visit: str | None
    id: int | None = None


class Decide(msgspec.Struct, tag="decide", tag_field="type", forbid_unknown_fields=True):
    """approve or reject (with a configured reason) a pending step, or reopen a decided one."""

    visit: str
    step: int
    decision: Decision
    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON)] | None = None
    id: int | None = None


class EndVisit(msgspec.Struct, tag="end_visit", tag_field="type", forbid_unknown_fields=True):
    visit: str
    outcome: Outcome
    note: Annotated[str, msgspec.Meta(max_length=MAX_NOTE)] | None = None
    id: int | None = None


class Watch(msgspec.Struct, tag="watch", tag_field="type", forbid_unknown_fields=True):
    desk: str
    id: int | None = None


class Sdp(msgspec.Struct, tag="sdp", tag_field="type", forbid_unknown_fields=True, kw_only=True):
    """An SDP offer or answer relayed between the two peers of a visit.

    ``peer`` names a supervisor's connection: set by the server on a supervisor's offer
    relayed to a booth, and echoed by the booth on its answer so it reaches only them.
    ``offer_id`` names an offer (chosen by the offerer); an answer echoes the one it answers.
    ``desk`` instead of ``visit``: between a coaching or barging supervisor and the desk's
    officer (no visit involved).
    """

    visit: str = ""
    sdp_type: SdpType
    sdp: str
    peer: str | None = None
    offer_id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID)] | None = None
    id: int | None = None
    desk: str | None = None


class SnapshotTaken(
    msgspec.Struct, tag="snapshot_taken", tag_field="type", forbid_unknown_fields=True
):
    """The officer saved a frame of a visit as PNG; its SHA-256 joins the audit trail."""

    visit: str
    sha256: str
    step: int | None = None
    id: int | None = None


class OfficeStats(msgspec.Struct, tag="office_stats", tag_field="type", forbid_unknown_fields=True):
    """Ask for an office overview (desks, queue, waits, throughput, outcomes today)."""

    office: str | None = None
    id: int | None = None


class ConfigureDesk(
    msgspec.Struct, tag="configure_desk", tag_field="type", forbid_unknown_fields=True
):
    desk: str
    capacity: int
    office: str | None = None
    id: int | None = None


class CloseDesk(msgspec.Struct, tag="close_desk", tag_field="type", forbid_unknown_fields=True):
    desk: str
    id: int | None = None


class SetWorkflow(msgspec.Struct, tag="set_workflow", tag_field="type", forbid_unknown_fields=True):
    """``office`` defaults to the admin's; ``*`` (office ``*`` admins only) is every office."""

    claim_type: str
    steps: list[str]
    office: str | None = None
    id: int | None = None


class Refresh(msgspec.Struct, tag="refresh", tag_field="type", forbid_unknown_fields=True):
    """Replace the connection's token before it expires (same role, sub, office, desk/booth)."""

    token: Annotated[str, msgspec.Meta(max_length=MAX_TOKEN)]
    id: int | None = None


SupervisionMode = Literal["monitor", "coach", "barge"]


class Supervise(msgspec.Struct, tag="supervise", tag_field="type", forbid_unknown_fields=True):
    """A supervisor's part in a desk's conversation: ``coach`` (the officer hears them),
    ``barge`` (the on-air booth too) or ``monitor`` (back to watching: ends coach/barge)."""

    desk: str
    mode: SupervisionMode
    id: int | None = None


class TakeEscalation(
    msgspec.Struct, tag="take_escalation", tag_field="type", forbid_unknown_fields=True
):
    """A supervisor with grant ``resolve`` takes an escalated visit waiting in their office's
    escalation queue: from then on they decide its steps and end it."""

    visit: str
    id: int | None = None


class RecordingClosed(
    msgspec.Struct, tag="recording_closed", tag_field="type", forbid_unknown_fields=True
):
    """A recorder closed a visit's file: its name, SHA-256, length, size and the gaps in it
    (wall-clock ``[from, to]`` pairs), for the visit's audit trail (``lapak recordings verify``)."""

    visit: str
    file: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_FILE_NAME)]
    sha256: str
    duration_s: Annotated[float, msgspec.Meta(ge=0)]
    bytes: Annotated[int, msgspec.Meta(ge=0)]
    gaps: Annotated[list[tuple[float, float]], msgspec.Meta(max_length=MAX_GAPS)] = []
    id: int | None = None


class RecordingNoticeShown(
    msgspec.Struct, tag="recording_notice_shown", tag_field="type", forbid_unknown_fields=True
):
    """The booth showed the claimant "this visit is recorded" (their consent, logged)."""

    visit: str
    id: int | None = None


class GetRecordingKey(
    msgspec.Struct, tag="get_recording_key", tag_field="type", forbid_unknown_fields=True
):
    """A recorder asks for the key to encrypt an open visit's recording with (answered by
    ``recording_key``, to this connection only; docs/recording.md)."""

    visit: str
    id: int | None = None


# -- personal data (issue 15) --------------------------------------------------------------


class PurgeVisit(msgspec.Struct, tag="purge_visit", tag_field="type", forbid_unknown_fields=True):
    """Destroy an ended visit's sealed personal data (a claimant's request): an admin of
    the visit's office. Logged as ``visit_purged`` with ``reason``."""

    visit: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID)]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REASON)] = "claimant request"
    id: int | None = None


# -- link grades (issue 15: the poor_link alert) -------------------------------------------

LinkGradeValue = Literal["good", "fair", "poor"]


class LinkQuality(msgspec.Struct, tag="link_quality", tag_field="type", forbid_unknown_fields=True):
    """The officer's console graded a seated visit's media link anew (sent on change only).
    Telemetry, not an event: the server keeps the latest grade in memory for ``poor_link``."""

    visit: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID)]
    grade: LinkGradeValue
    id: int | None = None


ClientMessage = (
    Hello
    | StartVisit
    | Focus
    | Zoom
    | Decide
    | EndVisit
    | Watch
    | Sdp
    | SnapshotTaken
    | OfficeStats
    | ConfigureDesk
    | CloseDesk
    | SetWorkflow
    | Refresh
    | Supervise
    | TakeEscalation
    | RecordingClosed
    | RecordingNoticeShown
    | PurgeVisit
    | GetRecordingKey
    | LinkQuality
)

CLIENT_TYPES: tuple[str, ...] = tuple(
    str(kind.__struct_config__.tag) for kind in get_args(ClientMessage)
)
"""The ``type`` of every client message, in the order of ``ClientMessage``."""

_client_decoder = msgspec.json.Decoder(ClientMessage)


class ProtocolError(LapakError):
    """A frame that cannot be accepted; carries the code sent back to the client."""

    def __init__(self, code: ErrorCode, message: str, re: int | None = None) -> None:
        super().__init__(code, message)
        self.re = re


def over_limit(frame: str | bytes, limit: int) -> bool:
    """Is the frame over ``limit`` UTF-8 bytes? Encodes only when its length cannot tell
    (a character takes 1 to 4 bytes)."""
    if isinstance(frame, bytes):
        return len(frame) > limit
    if len(frame) > limit:
        return True
    if len(frame) * 4 <= limit:
        return False
    return len(frame.encode("utf-8", "surrogatepass")) > limit


class _IdOnly(msgspec.Struct):
    id: int | None = None


_id_decoder = msgspec.json.Decoder(_IdOnly)


def peek_id(frame: str | bytes) -> int | None:
    """The request ``id`` of a frame refused before decoding (too big, rate limited), so the
    error can carry ``re``; None when the frame has none or is not a JSON object."""
    try:
        return _id_decoder.decode(frame).id
    except (msgspec.DecodeError, RecursionError):
        return None


def decode_client(frame: str | bytes, max_bytes: int = MAX_FRAME_BYTES) -> ClientMessage:
    """Decode one inbound frame, raising ProtocolError with the precise code."""
    if over_limit(frame, max_bytes):
        raise ProtocolError(
            ErrorCode.TOO_BIG, f"frame exceeds {max_bytes} bytes (UTF-8)", peek_id(frame)
        )
    try:
        return _client_decoder.decode(frame)
    except RecursionError:
        raise ProtocolError(ErrorCode.BAD_JSON, "JSON nested too deeply") from None
    except msgspec.ValidationError as exc:
        raw = _loose(frame)
        if raw is None:  # a typed decode fails early; the whole frame may still be broken
            raise ProtocolError(ErrorCode.BAD_JSON, "malformed or too deeply nested JSON") from None
        re = raw.get("id") if isinstance(raw.get("id"), int) else None
        kind = raw.get("type")
        if kind not in CLIENT_TYPES:
            raise ProtocolError(
                ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind!r}", re
            ) from None
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, f"{kind}: {exc}", re) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"malformed JSON: {exc}") from None


def _loose(frame: str | bytes) -> dict[str, Any] | None:
    """The frame as plain JSON; None when it is not JSON (or nested past the stack)."""
    try:
        raw = msgspec.json.decode(frame)
    except (msgspec.DecodeError, RecursionError):
        return None
    return raw if isinstance(raw, dict) else {}
