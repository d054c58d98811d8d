"""Server → client messages of the signalling protocol, as typed structs.

These structs are the definition of what the server sends (docs/protocol.md describes them,
tests/test_protocol_schema.py keeps the two in step). The hub builds them, the server encodes
each once with :func:`encode`, and every Python client reads frames with
:func:`decode_server`. Field names are the wire names; a field that is sometimes absent
from the wire defaults to ``UNSET`` (never encoded), one that is ``null`` stays present.
Unknown fields are refused, so a field the server sends but this module does not name
fails the tests instead of passing unseen.
"""

from __future__ import annotations

from typing import Literal, get_args

import msgspec
from msgspec import UNSET, UnsetType

from lapak.signaling.protocol import ErrorCode, Outcome, Role, SdpType, SupervisionMode

VisitState = Literal["queued", "active", "escalated", "ended"]
StepStatus = Literal["pending", "approved", "rejected"]
Sender = Literal["officer", "booth", "supervisor", "recorder"]
VideoTier = Literal["full", "thumbnail"]


class _View(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base of the nested views: immutable, so one view may sit in many messages."""


class StepView(_View, frozen=True):
    name: str
    status: StepStatus
    reason: str | None


class VisitView(_View, frozen=True):
    """What clients see of a visit. Times are Unix seconds; ``booth_away_since`` is null
    while the booth is connected."""

    visit: str
    booth: str
    name: str
    membership_no: str
    claim_type: str
    state: VisitState
    desk: str | None
    slot: int | None
    started_at: float
    routed_at: float | None
    last_on_air_at: float | None
    on_air_since: float | None
    outcome: Outcome | None
    current_step: int | None
    steps: list[StepView]
    booth_present: bool
    booth_away_since: float | None


class DeskView(_View, frozen=True):
    """A desk and its seated visits, in slot order (the ``state`` of a snapshot)."""

    desk: str
    office: str
    officer: str | None
    capacity: int
    closed: bool
    vacant: bool
    on_air: str | None
    visits: list[VisitView]
    queue: int


class OfficeDesk(_View, frozen=True):
    """One desk in an ``office_stats`` answer."""

    desk: str
    officer: str | None
    capacity: int
    load: int
    on_air: str | None
    on_air_booth: str | None
    closed: bool
    vacant: bool
    present: bool


class QueueEntry(_View, frozen=True):
    """One waiting visit in an ``office_stats`` answer."""

    visit: str
    booth: str
    position: int | None
    waiting_s: float
    estimated_wait_s: float | None


class EscalationEntry(_View, frozen=True):
    """One escalated visit in an ``office_stats`` answer: waiting (``taken_by`` null) or
    being resolved; ``visit_view`` is its full view (steps) for the resolver."""

    visit: str
    booth: str
    office: str
    desk: str | None  # the desk it was escalated from
    by: str  # the officer who escalated it
    note: str
    escalated_at: float
    waiting_s: float  # since it was escalated
    taken_by: str | None
    booth_present: bool
    visit_view: VisitView


AlertKind = Literal[
    "escalation_waiting", "queue_wait", "not_spoken_to", "booth_away", "abandoned", "poor_link"
]


class Alert(_View, frozen=True):
    """Something a supervisor should look at, and where: the desk (slot) or the queue or
    the escalation list; ``seconds`` says for how long (or how long ago, ``abandoned``)."""

    kind: AlertKind
    office: str
    desk: str | None
    slot: int | None
    visit: str | None
    booth: str | None
    seconds: float


class OfficeFigures(_View, frozen=True):
    """The result fields of the ``ack`` to ``office_stats`` (a supervisor's overview)."""

    office: str
    desks: list[OfficeDesk]
    queue: list[QueueEntry]
    median_wait_s: float | None
    visits_today: int
    visits_per_hour: float
    outcomes: dict[str, int]
    escalations: list[EscalationEntry] = []
    alerts: list[Alert] = []


class IceServer(_View, frozen=True, omit_defaults=True):
    """One STUN or TURN server of ``welcome``, as ``RTCIceServer`` takes it. A TURN server's
    ``username``/``credential`` are short-lived (signaling/ice.py); a STUN server has none."""

    urls: list[str]
    username: str | UnsetType = UNSET
    credential: str | UnsetType = UNSET


# --- messages -------------------------------------------------------------------------


class _Message(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    """Base of every server → client message: tagged by ``type``."""


class Welcome(_Message, frozen=True, tag="welcome"):
    """The answer to ``hello``."""

    re: int | None
    role: Role
    sub: str
    office: str
    desk: str | None
    booth: str | None
    session: str | None
    resumed: bool
    desks: list[str]
    claim_types: list[str]
    reasons: list[str]
    grace_s: float
    ice_servers: list[IceServer] = []


class Ack(_Message, frozen=True, tag="ack", omit_defaults=True):
    """A request was accepted (and its change is durable). Which result fields are present
    depends on the request (docs/protocol.md, column "answer"); the others are absent."""

    re: int | None
    visit: str | UnsetType = UNSET
    step: int | UnsetType = UNSET
    on_air: str | UnsetType | None = UNSET
    desk: str | UnsetType = UNSET
    claim_type: str | UnsetType = UNSET
    office: str | UnsetType = UNSET
    exp: float | UnsetType = UNSET
    # office_stats
    desks: list[OfficeDesk] | UnsetType = UNSET
    queue: list[QueueEntry] | UnsetType = UNSET
    median_wait_s: float | UnsetType | None = UNSET
    visits_today: int | UnsetType = UNSET
    visits_per_hour: float | UnsetType = UNSET
    outcomes: dict[str, int] | UnsetType = UNSET
    escalations: list[EscalationEntry] | UnsetType = UNSET
    alerts: list[Alert] | UnsetType = UNSET

    @classmethod
    def of_figures(cls, re: int | None, figures: OfficeFigures) -> Ack:
        """The answer to ``office_stats``."""
        return cls(re=re, **msgspec.structs.asdict(figures))

    def figures(self) -> OfficeFigures:
        """The office overview this ack carries; ValueError when it answers another request."""
        values = {f: getattr(self, f) for f in OfficeFigures.__struct_fields__}
        if any(v is UNSET for v in values.values()):
            raise ValueError("this ack does not answer office_stats")
        return OfficeFigures(**values)


class Error(_Message, frozen=True, tag="error"):
    """A request (``re``), or the connection (``re`` null), was refused."""

    re: int | None
    code: ErrorCode
    message: str


class Snapshot(_Message, frozen=True, tag="snapshot"):
    """A desk as of ``seq``: after an officer's ``hello`` (``re`` null: the officer did not
    ask) and as the answer to ``watch`` (``re`` = the watch's ``id``)."""

    re: int | None
    desk: str
    seq: int
    state: DeskView


class Delta(_Message, frozen=True, tag="delta"):
    """A desk changed: its fields, and the full views of the visits whose view changed."""

    desk: str
    seq: int
    officer: str | None
    on_air: str | None
    closed: bool
    vacant: bool
    capacity: int
    queue: int
    visits: list[VisitView]


class BoothState(VisitView, _Message, frozen=True, tag="booth_state"):
    """A booth's visit: its view plus where it stands (on air, or its place in the queue), and
    the video it should send: ``full`` on air, a ``thumbnail`` (a tile's worth) off air."""

    on_air: bool
    position: int | None
    estimated_wait_s: float | None
    queue: int
    video: VideoTier
    supervisor_present: bool = False  # a supervisor barges into this booth's conversation
    recorded: bool = False  # the visit is recorded: say so from routing (server key recording)
    barge_peer: str | None = None
    """The ``peer`` of the supervisor whose voice this booth plays now (on its ``sdp``
    relays): the one barging the on-air desk, or the one resolving the escalated visit;
    None when nobody barges. Any other supervisor's audio is not played."""

    @classmethod
    def of(
        cls,
        view: VisitView,
        *,
        on_air: bool,
        position: int | None,
        estimated_wait_s: float | None,
        queue: int,
        video: VideoTier,
        supervisor_present: bool = False,
        recorded: bool = False,
        barge_peer: str | None = None,
    ) -> BoothState:
        return cls(
            **msgspec.structs.asdict(view),
            on_air=on_air,
            position=position,
            estimated_wait_s=estimated_wait_s,
            queue=queue,
            video=video,
            supervisor_present=supervisor_present,
            recorded=recorded,
            barge_peer=barge_peer,
        )

    def view(self) -> VisitView:
        """The visit view alone (without the booth's queue figures)."""
        return VisitView(**{f: getattr(self, f) for f in VisitView.__struct_fields__})


class SdpRelay(_Message, frozen=True, tag="sdp"):
    """An SDP offer or answer relayed from the other peer of a visit. ``peer`` names a
    supervisor's connection and is absent when no supervisor is involved."""

    visit: str
    sdp_type: SdpType
    sdp: str
    from_: Sender = msgspec.field(name="from")
    offer_id: str
    peer: str | UnsetType = UNSET
    desk: str | UnsetType = UNSET  # between a coaching/barging supervisor and the officer


class PeerLeft(_Message, frozen=True, tag="peer_left"):
    """A supervisor that watched the visit's desk has gone: drop its receive-only peer."""

    visit: str
    peer: str


class Supervision(_Message, frozen=True, tag="supervision"):
    """A supervisor's part in the officer's desk changed: ``coach`` (expect their voice,
    for the officer only), ``barge`` (the on-air booth hears them too) or ``monitor``
    (ended: drop their peer). ``supervisor`` is their ``peer`` id in the desk's ``sdp``."""

    desk: str
    supervisor: str
    sub: str
    mode: SupervisionMode


class Moved(_Message, frozen=True, tag="moved"):
    """A request reached a node that does not own its office (a cluster on one PostgreSQL
    store): after ``hello``, say hello again with the same session at ``url``; after a
    ``watch`` or a ``*`` command about another node's office, nothing was applied here:
    send it to ``url`` (docs/protocol.md, "Clusters")."""

    re: int | None
    office: str
    url: str


class RecordingKey(_Message, frozen=True, tag="recording_key"):
    """The answer to ``get_recording_key``, to that recorder only: the key its file of
    ``visit`` is encrypted with (base64 of 32 bytes; HKDF-SHA256 of the visit's key, info
    bound to the visit id). Held in the recorder's memory only; gone with a purge."""

    re: int | None
    visit: str
    key: str
    alg: str = "A256GCM"
    kdf: str = "HKDF-SHA256"


ServerMessage = (
    Welcome
    | Ack
    | Error
    | Snapshot
    | Delta
    | BoothState
    | SdpRelay
    | PeerLeft
    | Supervision
    | Moved
    | RecordingKey
)

SERVER_MESSAGES: tuple[type[_Message], ...] = get_args(ServerMessage)
"""Every server → client message, in the order docs/protocol.md lists them."""

_decoder = msgspec.json.Decoder(ServerMessage)
_encoder = msgspec.json.Encoder()


def decode_server(frame: str | bytes) -> ServerMessage:
    """One frame from the server as its struct. Raises ``msgspec.DecodeError`` (or its
    subclass ``ValidationError``) for a frame that is not one of these messages."""
    return _decoder.decode(frame)


def encode(message: msgspec.Struct) -> str:
    """One message (either direction) as the text of a frame."""
    return _encoder.encode(message).decode()


def tag(message: type[msgspec.Struct]) -> str:
    """The ``type`` a message struct carries on the wire."""
    value = message.__struct_config__.tag
    assert isinstance(value, str), f"{message.__name__} has no string tag"
    return value
