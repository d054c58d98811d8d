"""Who may do what: the role table, and each ownership rule over the state, in one place.

The hub checks the role table (``authorize``) for every message; domain commands take an
``Actor`` and check ownership (the desk's office, the officer's own desk, the booth's own
visit) through the functions here, so no rule is written twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lapak.signaling.errors import AccessDenied, DomainError, TokenError
from lapak.signaling.protocol import ErrorCode
from lapak.signaling.state import Desk, State, Visit
from lapak.signaling.tokens import Claims

# Which role may send what; ownership (own desk, own booth, office) is checked below.
# A role not listed gets `forbidden`, a supervisor asking for a change gets `read_only`.
PERMISSIONS: dict[str, frozenset[str]] = {
    "hello": frozenset({"officer", "booth", "supervisor", "admin"}),
    "start_visit": frozenset({"booth"}),
    "focus": frozenset({"officer"}),
    "zoom": frozenset({"officer"}),
    "decide": frozenset({"officer"}),
    "end_visit": frozenset({"officer", "booth"}),
    "snapshot_taken": frozenset({"officer"}),
    "watch": frozenset({"officer", "supervisor", "admin"}),
    "office_stats": frozenset({"officer", "supervisor", "admin"}),
    "sdp": frozenset({"officer", "booth", "supervisor", "admin"}),
    "configure_desk": frozenset({"admin"}),
    "close_desk": frozenset({"admin"}),
    "set_workflow": frozenset({"admin"}),
    "refresh": frozenset({"officer", "booth", "supervisor", "admin"}),
    "supervise": frozenset({"supervisor", "admin"}),
    "take_escalation": frozenset({"supervisor", "admin"}),
    "purge_visit": frozenset({"admin"}),  # personal data (issue 15)
}
# What a supervisor (or admin) with grant ``resolve`` may also send, on a visit it took.
RESOLVING = frozenset({"decide", "end_visit"})

# Recordings (issue 15): the recorder joins its office's visits receive-only, like a
# supervisor, and reports each closed file; the booth logs that it showed the notice.
PERMISSIONS["hello"] |= {"recorder"}
PERMISSIONS["watch"] |= {"recorder"}
PERMISSIONS["sdp"] |= {"recorder"}
PERMISSIONS["refresh"] |= {"recorder"}
PERMISSIONS["recording_closed"] = frozenset({"recorder"})
PERMISSIONS["recording_notice_shown"] = frozenset({"booth"})
PERMISSIONS["get_recording_key"] = frozenset({"recorder"})  # its file's key (docs/recording.md)
PERMISSIONS["link_quality"] = frozenset({"officer"})  # its own desk's grades (poor_link)
RECORDERS = ("recorder",)  # watch every desk of their own office (never office *)
MUTATING = frozenset(
    {
        "start_visit",
        "focus",
        "zoom",
        "decide",
        "end_visit",
        "snapshot_taken",
        "configure_desk",
        "close_desk",
        "set_workflow",
        "recording_closed",
        "recording_notice_shown",
        "purge_visit",
    }
)
WATCHERS = ("supervisor", "admin")  # roles that watch desks they do not sit at

# A place a connection holds: (kind, office, id) with kind "booth" or "desk". Booth ids
# are only unique within an office, so every key carries the office.
Place = tuple[str, str, str]


@dataclass(frozen=True)
class Actor:
    """Who asks: a token's identity, or the server itself (``role == "system"``)."""

    role: str
    sub: str
    office: str  # "*": every office (supervisors and admins only)
    desk: str | None = None
    booth: str | None = None
    grants: tuple[str, ...] = ()  # a supervisor's token grants (tokens.GRANTS); admin: all

    @classmethod
    def of(cls, claims: Claims) -> Actor:
        return cls(claims.role, claims.sub, claims.office, claims.desk, claims.booth, claims.grants)

    @property
    def place(self) -> Place | None:
        """The place this actor holds: a booth, or an officer's desk, in its office."""
        if self.role == "booth" and self.booth:
            return ("booth", self.office, self.booth)
        if self.role == "officer" and self.desk:
            return ("desk", self.office, self.desk)
        return None


SYSTEM = Actor("system", "server", "*")  # the server's own decisions (grace periods)


def booth_place(visit: Visit) -> Place:
    return ("booth", visit.office, visit.booth)


def admit(actor: Actor, offices: Sequence[str]) -> None:
    """A token this server accepts at hello: an office it serves (all when ``offices`` is
    empty); office ``*`` only for supervisors and admins."""
    if offices and actor.office not in offices and actor.office != "*":
        raise AccessDenied(ErrorCode.WRONG_OFFICE, f"this server does not serve {actor.office}")
    if actor.office == "*" and actor.role not in WATCHERS:
        raise TokenError(ErrorCode.BAD_TOKEN, "only supervisors and admins span offices")


def authorize(actor: Actor, kind: str) -> None:
    """The role table: may this role send this kind of message at all?"""
    if actor.role in PERMISSIONS.get(kind, frozenset()):
        return
    if kind in RESOLVING and has_grant(actor, "resolve"):
        return  # which visit: ``resolving`` checks that it is one they took
    if actor.role == "supervisor" and kind in MUTATING:
        raise AccessDenied(ErrorCode.READ_ONLY, "a supervisor can only watch")
    raise AccessDenied(ErrorCode.FORBIDDEN, f"a {actor.role} may not send {kind}")


def check_office(actor: Actor, office: str) -> None:
    """The actor speaks for ``office`` (their own, or every office with ``*``)."""
    if actor.office not in (office, "*"):
        raise AccessDenied(ErrorCode.FORBIDDEN, f"not your office: {office}")


def desk_named(state: State, desk_id: str) -> Desk:
    """The desk called ``desk_id``, or ``not_found``."""
    desk = state.desks.get(desk_id)
    if desk is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no desk {desk_id}")
    return desk


def officer_desk(actor: Actor) -> str:
    """The desk an officer sits at (named by their token)."""
    if actor.role != "officer" or actor.desk is None:
        raise AccessDenied(ErrorCode.FORBIDDEN, "only an officer may do this")
    return actor.desk


def desk_in_office(state: State, actor: Actor) -> Desk | None:
    """An officer's desk, if it exists yet, and it must belong to their token's office."""
    desk = state.desks.get(officer_desk(actor))
    if desk is not None and desk.office != actor.office:
        raise AccessDenied(ErrorCode.WRONG_OFFICE, f"desk {desk.id} belongs to another office")
    return desk


def seated_here(state: State, actor: Actor, visit_id: str) -> Visit:
    """A visit seated at the officer's own desk."""
    desk = officer_desk(actor)
    visit = state.visits.get(visit_id)
    if visit is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no visit {visit_id}")
    if visit.state != "active" or visit.desk != desk:
        raise DomainError(ErrorCode.VISIT_NOT_ACTIVE, f"visit {visit_id} is not at desk {desk}")
    return visit


def own_booth(actor: Actor) -> Place:
    """The booth a booth's token names, in its office."""
    place = actor.place
    if place is None or place[0] != "booth":
        raise AccessDenied(ErrorCode.FORBIDDEN, "only a booth may do this")
    return place


def booth_visit(actor: Actor, visit: Visit | None) -> Visit:
    """The booth's own visit (booth ids are scoped by office): anything else is forbidden,
    so a booth cannot probe which visits exist."""
    if visit is None or booth_place(visit) != actor.place:
        raise AccessDenied(ErrorCode.FORBIDDEN, "not this booth's visit")
    return visit


def ending_visit(state: State, actor: Actor, visit_id: str, outcome: str) -> Visit:
    """Who may end a visit: the server; the booth, only leaving its own; the officer of the
    desk it sits at; the supervisor who took it from the escalation queue."""
    if actor.role == "system":
        visit = state.visits.get(visit_id)
        if visit is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"no visit {visit_id}")
        return visit
    if actor.role == "booth":
        visit = booth_visit(actor, state.visits.get(visit_id))
        if outcome != "abandoned":
            raise AccessDenied(ErrorCode.FORBIDDEN, "a booth can only leave")
        return visit
    if actor.role in WATCHERS:
        return resolving(state, actor, visit_id)
    return seated_here(state, actor, visit_id)


def deciding_visit(state: State, actor: Actor, visit_id: str) -> Visit:
    """Who decides a visit's steps: the officer of its desk, or the supervisor who took it."""
    if actor.role in WATCHERS:
        return resolving(state, actor, visit_id)
    return seated_here(state, actor, visit_id)


def recorded_visit(state: State, actor: Actor, visit_id: str) -> Visit:
    """A visit a recorder may report on: one of its own office (ended ones included: the
    file is closed after the visit ends)."""
    if actor.role not in RECORDERS:
        raise AccessDenied(ErrorCode.FORBIDDEN, "only a recorder may do this")
    visit = state.visits.get(visit_id)
    if visit is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no visit {visit_id}")
    if visit.office != actor.office:
        raise AccessDenied(ErrorCode.FORBIDDEN, f"visit {visit_id} is not of your office")
    return visit


def may_watch(state: State, actor: Actor, desk_id: str) -> Desk:
    """An officer watches their own desk; supervisors and admins the desks of their office."""
    desk = desk_named(state, desk_id)
    if actor.role == "officer" and actor.desk == desk_id:
        return desk
    if actor.role in WATCHERS and actor.office in (desk.office, "*"):
        return desk
    if actor.role in RECORDERS and actor.office == desk.office:
        return desk
    raise AccessDenied(ErrorCode.FORBIDDEN, f"may not watch desk {desk_id}")


# -- grants (a supervisor's token says how far beyond watching it may go) ----------------

MODE_GRANT = {"coach": "coach", "barge": "barge"}  # supervise mode -> the grant it needs


def has_grant(actor: Actor, grant: str) -> bool:
    """An admin holds every grant; a supervisor those its token names (monitor always)."""
    return actor.role == "admin" or (actor.role == "supervisor" and grant in actor.grants)


def need_grant(actor: Actor, grant: str) -> None:
    if not has_grant(actor, grant):
        raise AccessDenied(ErrorCode.FORBIDDEN, f"this needs grant {grant}: ask for a new token")


def may_supervise(state: State, actor: Actor, desk_id: str, mode: str) -> Desk:
    """A supervisor coaches or barges a desk of their office only with that grant; going
    back to ``monitor`` needs none."""
    desk = desk_named(state, desk_id)
    if actor.role not in WATCHERS:
        raise AccessDenied(ErrorCode.FORBIDDEN, "only a supervisor or admin supervises")
    check_office(actor, desk.office)
    grant = MODE_GRANT.get(mode)
    if grant is not None:
        need_grant(actor, grant)
    return desk


def escalated_visit(state: State, actor: Actor, visit_id: str) -> Visit:
    """An escalated visit of the actor's office, for a holder of grant ``resolve``."""
    need_grant(actor, "resolve")
    visit = state.visits.get(visit_id)
    if visit is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"no visit {visit_id}")
    check_office(actor, visit.office)
    if visit.state != "escalated":
        raise DomainError(ErrorCode.NOT_ESCALATED, f"visit {visit_id} is not escalated")
    return visit


def resolving(state: State, actor: Actor, visit_id: str) -> Visit:
    """An escalated visit this supervisor took (``take_escalation``): theirs to decide."""
    visit = escalated_visit(state, actor, visit_id)
    if visit.taken_by != actor.sub:
        held = f"taken by {visit.taken_by}" if visit.taken_by else "not taken: take it first"
        raise AccessDenied(ErrorCode.FORBIDDEN, f"visit {visit_id} is {held}")
    return visit
