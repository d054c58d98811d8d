"""The server's sans-I/O core: frames in, events and outbound messages out.

Modelled on python-websockets' ``Protocol``: the asyncio server feeds each frame to
``Hub.receive`` (and the passing of time to ``Hub.tick``) and gets back a ``Result``: events
to make durable, messages to deliver, maybe a close. The shell must deliver the outputs
only after the events are durable; it never decides anything itself. Because the core is
pure, it is tested without sockets.
"""

from __future__ import annotations

import itertools
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lapak.signaling import protocol as p
from lapak.signaling.config import ServerConfig
from lapak.signaling.domain import (
    Desk,
    Domain,
    DomainError,
    Rules,
    State,
    Visit,
    desk_view,
    open_visit,
    queue_position,
    visit_view,
)
from lapak.signaling.events import (
    DeskClosed,
    DeskConfigured,
    DeskOpened,
    DeskVacated,
    Event,
    FocusChanged,
    SnapshotTaken,
    StepDecided,
    VisitEnded,
    VisitQueued,
    VisitRouted,
    VisitStarted,
)
from lapak.signaling.protocol import CloseCode, ErrorCode, ProtocolError
from lapak.signaling.tokens import Claims, KeyRing, TokenError

FLOOD_CLOSE_AFTER = 200  # refused frames in a row before the connection is closed

# Which role may send what. "own" checks (own desk, own booth, office) happen in handlers.
# A role not listed gets `forbidden`, a supervisor asking for a change gets `read_only`.
PERMISSIONS: dict[str, frozenset[str]] = {
    "hello": frozenset({"officer", "booth", "supervisor", "admin"}),
    "start_visit": frozenset({"booth"}),
    "focus": frozenset({"officer"}),
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
}
MUTATING = frozenset(
    {
        "start_visit",
        "focus",
        "decide",
        "end_visit",
        "snapshot_taken",
        "configure_desk",
        "close_desk",
        "set_workflow",
    }
)


# A place a connection holds: (kind, office, id) with kind "booth" or "desk". Booth ids
# are only unique within an office, so every key carries the office.
Place = tuple[str, str, str]


@dataclass
class Conn:
    id: int
    claims: Claims | None = None
    watching: set[str] = field(default_factory=set)
    session: str | None = None
    tokens: float = 0.0
    refill_at: float = 0.0  # monotonic
    refused_in_row: int = 0
    gone: bool = False  # replaced or expired: its frames are ignored until the shell closes it


@dataclass(frozen=True)
class Away:
    """Since when a place has had no connection: wall clock for clients, monotonic for the
    grace period (a clock step must not abandon anybody)."""

    wall: float
    mono: float


@dataclass
class Result:
    events: list[Event] = field(default_factory=list)
    outputs: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    close: tuple[int, str] | None = None  # close the connection that sent the frame
    closes: list[tuple[int, int, str]] = field(default_factory=list)  # (conn, code, reason)
    message_type: str | None = None
    error_code: str | None = None
    touched: set[str] = field(default_factory=set)  # visits whose view changed without events


def _identity(claims: Claims) -> Place | None:
    """Whose place a connection holds: a booth, or an officer's desk, in its office."""
    if claims.role == "booth" and claims.booth:
        return ("booth", claims.office, claims.booth)
    if claims.role == "officer" and claims.desk:
        return ("desk", claims.office, claims.desk)
    return None


def _new_session() -> str:
    return secrets.token_urlsafe(12)


class Hub:
    def __init__(
        self,
        keys: KeyRing,
        state: State | None = None,
        config: ServerConfig | None = None,
        now: float | None = None,
        mono: float | None = None,
        new_session: Callable[[], str] = _new_session,
    ) -> None:
        self.keys = keys
        self.config = config or ServerConfig()
        self._new_session = new_session
        rules = Rules(
            workflows=dict(self.config.workflows),
            reasons=tuple(self.config.reasons),
            pins=dict(self.config.pins),
            default_visit_s=self.config.default_visit_minutes * 60,
            strict_outcomes=self.config.strict_outcomes,
        )
        self.domain = Domain(state, rules)
        self.conns: dict[int, Conn] = {}
        self._ids = itertools.count(1)
        self._desk_watchers: dict[str, set[int]] = {}
        # Who holds each place (a booth, an officer's desk): connection ids, kept as they come
        # and go so that presence and booth fan-out never scan every connection.
        self._holders: dict[Place, set[int]] = {}
        self._desk_seq: Counter[str] = Counter()
        self._desk_queue: dict[str, int] = {}  # the office queue length each desk was last told
        self._sessions: dict[Place, str] = {}
        # The latest offer relayed to each booth, per offerer ("officer" or a supervisor's
        # peer id): (visit, offer_id). An answer is relayed only if it names that offer.
        self._offers: dict[Place, dict[str, tuple[str, str]]] = {}
        # Places whose holder is away. After a restart everyone is away until they say
        # hello again, so the grace period starts at startup.
        self.away: dict[Place, Away] = {}
        started = time.time() if now is None else now
        since = Away(started, started if mono is None else mono)
        for office, booths in self.state.open_by_booth.items():
            for booth in booths:
                self.away[("booth", office, booth)] = since
        for desk in self.state.desks.values():
            if desk.slots:
                self.away[("desk", desk.office, desk.id)] = since

    @property
    def state(self) -> State:
        return self.domain.state

    def bootstrap(self, now: float) -> list[Event]:
        """Events that create the configured desks not yet in the log."""
        events: list[Event] = []
        for spec in self.config.desks:
            if spec.id not in self.state.desks:
                events += self.domain.configure_desk(
                    spec.id, spec.office, spec.capacity, "config", now
                )
        return events

    # -- connection lifecycle ----------------------------------------------------------

    def connect(self) -> int:
        conn = Conn(next(self._ids), tokens=float(self.config.rate_burst))
        self.conns[conn.id] = conn
        return conn.id

    def disconnect(self, conn_id: int, now: float, mono: float | None = None) -> Result:
        """Forget a connection; its place (booth, desk) waits for the grace period."""
        conn = self.conns.pop(conn_id, None)
        if conn is None:
            return Result()
        result = Result()
        self._unwatch(conn)
        if conn.claims is not None and conn.claims.role in ("supervisor", "admin"):
            # Booths may hold a receive-only peer for this watcher: tell them to drop it.
            peer = str(conn_id)
            for desk_id in sorted(conn.watching):
                desk = self.state.desks.get(desk_id)
                for visit_id in sorted(desk.slots.values()) if desk else ():
                    visit = self.state.visits[visit_id]
                    self._offers.get(_booth_place(visit), {}).pop(peer, None)
                    left = {"type": "peer_left", "visit": visit_id, "peer": peer}
                    result.outputs += [(c, left) for c in self._booth_holders(visit)]
        place = _identity(conn.claims) if conn.claims is not None else None
        if place is not None:
            holders = self._holders.get(place, set())
            holders.discard(conn_id)
            if not holders and place in self._holders:
                del self._holders[place]
                self.away[place] = Away(now, now if mono is None else mono)
                if place[0] == "booth":  # consoles see the booth leave, not a bad link
                    visit_id = open_visit(self.state, place[1], place[2])
                    if visit_id is not None:
                        result.touched.add(visit_id)
        self._fan_out(result)
        return result

    def _unwatch(self, conn: Conn) -> None:
        for desk in conn.watching:
            self._desk_watchers.get(desk, set()).discard(conn.id)

    def _booth_holders(self, visit: Visit) -> list[int]:
        return self.booth_connections(visit.office, visit.booth)

    def booth_connections(self, office: str, booth: str) -> list[int]:
        """The connections holding ``booth`` of ``office`` (for the shell and tests)."""
        return sorted(self._holders.get(("booth", office, booth), ()))

    def _presence(self, visit: Visit) -> tuple[bool, float | None]:
        """Is the visit's booth connected, and if not, since when (wall clock) is it away."""
        place = _booth_place(visit)
        if self._holders.get(place):
            return True, None
        away = self.away.get(place)
        return False, away.wall if away is not None else None

    def tick(self, now: float, mono: float | None = None) -> Result:
        """Let time pass: expired tokens close their connection (4001) and places away
        longer than the grace period (by the monotonic clock) are given up."""
        mono = now if mono is None else mono
        result = Result()
        for conn in self.conns.values():
            if conn.claims is not None and not conn.gone and conn.claims.exp <= now:
                self._expire(conn, result)
        for place, since in list(self.away.items()):
            if mono - since.mono < self.config.grace_s:
                continue
            del self.away[place]
            self._sessions.pop(place, None)
            kind, office, ident = place
            if kind == "booth":
                self._offers.pop(place, None)
                visit_id = open_visit(self.state, office, ident)
                if visit_id is not None:
                    result.events += self.domain.end_visit(
                        visit_id, "abandoned", "booth gone past the grace period", "server",
                        now, role="system",
                    )  # fmt: skip
            else:
                result.events += self.domain.vacate_desk(ident, now)
        self._fan_out(result)
        return result

    def role_counts(self) -> Counter[str]:
        return Counter(c.claims.role if c.claims else "anonymous" for c in self.conns.values())

    def visit_counts(self) -> Counter[str]:
        return Counter(v.state for v in self.state.visits.values())

    # -- frames ------------------------------------------------------------------------

    def _expire(self, conn: Conn, result: Result, re: int | None = None) -> None:
        """The token ran out without a refresh: say so, stop listening, close with 4001."""
        conn.gone = True
        result.outputs.append((conn.id, p.error(ErrorCode.TOKEN_EXPIRED, "token expired", re)))
        result.closes.append((conn.id, CloseCode.AUTH_FAILED, str(ErrorCode.TOKEN_EXPIRED)))

    def receive(
        self, conn_id: int, frame: str | bytes, now: float, mono: float | None = None
    ) -> Result:
        """One inbound frame. ``now`` is the wall clock (event times, token expiry);
        ``mono`` the monotonic clock for durations (defaults to ``now``)."""
        conn = self.conns[conn_id]
        result = Result()
        if conn.gone:  # replaced or expired, about to be closed: hear nothing more
            return result
        if not self._take_token(conn, now if mono is None else mono):
            conn.refused_in_row += 1
            self._fail(conn, result, ErrorCode.RATE_LIMITED, "slow down", p.peek_id(frame))
            if conn.refused_in_row >= FLOOD_CLOSE_AFTER:
                result.close = (CloseCode.FLOOD, "flood")
            return result
        try:
            msg = p.decode_client(frame, self.config.max_frame_bytes)
        except ProtocolError as exc:
            return self._fail(conn, result, exc.code, exc.message, exc.re)
        result.message_type = type(msg).__struct_config__.tag  # type: ignore[assignment]
        try:
            if isinstance(msg, p.Hello):
                self._hello(conn, msg, now, result)
            elif conn.claims is None:
                raise ProtocolError(ErrorCode.HELLO_REQUIRED, "send hello with a token first")
            elif conn.claims.exp <= now:
                self._expire(conn, result, msg.id)
                return result
            else:
                self._authorize(conn.claims, result.message_type or "")
                self._dispatch(conn, msg, now, result)
        except (ProtocolError, DomainError) as exc:
            # Commands emit nothing before their last check, so no event is half-made.
            assert not result.events, "a refused command must not have produced events"
            return self._fail(conn, result, exc.code, exc.message, msg.id)
        except TokenError as exc:
            self._fail(conn, result, exc.code, exc.message, msg.id)
            result.close = (CloseCode.AUTH_FAILED, exc.code)
            return result
        conn.refused_in_row = 0
        self._fan_out(result)
        return result

    def _take_token(self, conn: Conn, mono: float) -> bool:
        """Token bucket: ``rate_per_s`` sustained, ``rate_burst`` at once."""
        elapsed = max(0.0, mono - conn.refill_at)
        conn.refill_at = mono
        conn.tokens = min(
            float(self.config.rate_burst), conn.tokens + elapsed * self.config.rate_per_s
        )
        if conn.tokens < 1.0:
            return False
        conn.tokens -= 1.0
        return True

    def _fail(
        self, conn: Conn, result: Result, code: ErrorCode, message: str, re: int | None
    ) -> Result:
        result.error_code = str(code)
        result.outputs.append((conn.id, p.error(code, message, re)))
        return result

    @staticmethod
    def _authorize(claims: Claims, kind: str) -> None:
        if claims.role in PERMISSIONS.get(kind, frozenset()):
            return
        if claims.role == "supervisor" and kind in MUTATING:
            raise ProtocolError(ErrorCode.READ_ONLY, "a supervisor can only watch")
        raise ProtocolError(ErrorCode.FORBIDDEN, f"a {claims.role} may not send {kind}")

    def _hello(self, conn: Conn, msg: p.Hello, now: float, result: Result) -> None:
        if conn.claims is not None:
            raise ProtocolError(ErrorCode.ALREADY_HELLO, "hello was already accepted")
        claims = self.keys.verify(msg.token, now=now)
        offices = self.config.offices
        if offices and claims.office not in offices and claims.office != "*":
            raise TokenError(ErrorCode.WRONG_OFFICE, f"this server does not serve {claims.office}")
        if claims.office == "*" and claims.role not in ("supervisor", "admin"):
            raise TokenError(ErrorCode.BAD_TOKEN, "only supervisors and admins span offices")
        if claims.role == "officer":
            assert claims.desk is not None
            existing = self.state.desks.get(claims.desk)
            if existing is not None and existing.office != claims.office:
                raise TokenError(ErrorCode.WRONG_OFFICE, f"desk {claims.desk} is elsewhere")
        place = _identity(claims)
        resumed = False
        session = None
        was_away = False
        if place is not None:
            known = self._sessions.get(place)
            resumed = msg.session is not None and msg.session == known
            session = known if resumed else self._new_session()
            self._sessions[place] = session
            was_away = self.away.pop(place, None) is not None
            if place[0] == "desk":
                self._take_over(place, result)
            self._holders.setdefault(place, set()).add(conn.id)
        conn.claims = claims
        conn.session = session
        welcome: dict[str, Any] = {
            "type": "welcome",
            "re": msg.id,
            "role": claims.role,
            "sub": claims.sub,
            "office": claims.office,
            "desk": claims.desk,
            "booth": claims.booth,
            "session": session,
            "resumed": resumed,
            "desks": sorted(
                d.id for d in self.state.desks.values() if claims.office in (d.office, "*")
            ),
            "claim_types": self.domain.claim_types(claims.office),
            "reasons": list(self.domain.rules.reasons),
            "grace_s": self.config.grace_s,
        }
        result.outputs.append((conn.id, welcome))
        if claims.role == "officer":
            assert claims.desk is not None
            result.events += self.domain.open_desk(claims.desk, claims.office, claims.sub, now)
            self._watch(conn, claims.desk, result)
        elif claims.role == "booth":
            # A booth with no open visit gets nothing more: it sends start_visit when ready.
            assert claims.booth is not None
            visit_id = open_visit(self.state, claims.office, claims.booth)
            if visit_id is not None and was_away:
                result.touched.add(visit_id)  # its desk sees it back; fan-out tells the booth
            elif visit_id is not None:
                result.outputs.append((conn.id, self._booth_state(visit_id)))

    def _take_over(self, place: Place, result: Result) -> None:
        """A newer connection for an officer's desk replaces the older ones (4002)."""
        for old_id in sorted(self._holders.pop(place, ())):
            old = self.conns.get(old_id)
            if old is None:
                continue
            old.gone = True
            self._unwatch(old)
            old.watching.clear()
            message = "another connection took over this desk"
            result.outputs.append((old_id, p.error(ErrorCode.REPLACED, message)))
            result.closes.append((old_id, CloseCode.REPLACED, str(ErrorCode.REPLACED)))

    def _refresh(self, conn: Conn, claims: Claims, msg: p.Refresh, now: float) -> Claims:
        """Swap in a fresh token for the same identity, so the connection outlives the old."""
        try:
            fresh = self.keys.verify(msg.token, now=now)
        except TokenError as exc:  # a bad refresh is refused; the old token still holds
            raise ProtocolError(exc.code, exc.message) from None
        same = (fresh.role, fresh.sub, fresh.office, fresh.desk, fresh.booth)
        if same != (claims.role, claims.sub, claims.office, claims.desk, claims.booth):
            raise ProtocolError(
                ErrorCode.BAD_TOKEN, "a refresh token must name the same role, sub, office, "
                "desk and booth",
            )  # fmt: skip
        conn.claims = fresh
        return fresh

    def _watch(self, conn: Conn, desk: str, result: Result, re: int | None = None) -> None:
        if desk not in self.state.desks:
            raise DomainError(ErrorCode.NOT_FOUND, f"no desk {desk}")
        conn.watching.add(desk)
        self._desk_watchers.setdefault(desk, set()).add(conn.id)
        snapshot = {
            "type": "snapshot",
            "re": re,
            "desk": desk,
            "seq": self._desk_seq[desk],
            "state": desk_view(self.state, desk, self._presence),
        }
        result.outputs.append((conn.id, snapshot))

    def _dispatch(self, conn: Conn, msg: p.ClientMessage, now: float, result: Result) -> None:
        claims = conn.claims
        assert claims is not None
        d = self.domain
        match msg:
            case p.StartVisit():
                assert claims.booth is not None
                visit_id, events = d.start_visit(
                    claims.booth,
                    claims.office,
                    msg.claimant.name,
                    msg.claimant.membership_no,
                    msg.claimant.claim_type,
                    now,
                )
                result.events += events
                result.outputs.append((conn.id, p.ack(msg.id, visit=visit_id)))
                if not events:  # resumed: tell this connection where the visit stands
                    result.outputs.append((conn.id, self._booth_state(visit_id)))
            case p.Focus():
                desk = self._officer_desk(claims)
                result.events += d.set_focus(desk, msg.visit, claims.sub, now)
                result.outputs.append((conn.id, p.ack(msg.id, on_air=msg.visit)))
            case p.Decide():
                desk = self._officer_desk(claims)
                result.events += d.decide(
                    desk, msg.visit, msg.step, msg.decision, msg.reason, claims.sub,
                    claims.role, now,
                )  # fmt: skip
                result.outputs.append((conn.id, p.ack(msg.id, visit=msg.visit, step=msg.step)))
            case p.SnapshotTaken():
                desk = self._officer_desk(claims)
                result.events += d.record_snapshot(
                    desk, msg.visit, msg.sha256, msg.step, claims.sub, now
                )
                result.outputs.append((conn.id, p.ack(msg.id, visit=msg.visit)))
            case p.EndVisit():
                visit = self.state.visits.get(msg.visit)
                if claims.role == "booth":
                    if visit is None or _booth_place(visit) != _identity(claims):
                        raise ProtocolError(ErrorCode.FORBIDDEN, "not this booth's visit")
                    if msg.outcome != "abandoned":
                        raise ProtocolError(ErrorCode.FORBIDDEN, "a booth can only leave")
                else:
                    desk = self._officer_desk(claims)
                    if visit is None or visit.desk != desk:
                        raise DomainError(ErrorCode.VISIT_NOT_ACTIVE, f"visit {msg.visit} not here")
                result.events += d.end_visit(
                    msg.visit, msg.outcome, msg.note, claims.sub, now, role=claims.role
                )
                result.outputs.append((conn.id, p.ack(msg.id, visit=msg.visit)))
            case p.Watch():
                self._authorize_watch(claims, msg.desk)
                self._watch(conn, msg.desk, result, msg.id)
            case p.OfficeStats():
                office = msg.office or claims.office
                if claims.office not in (office, "*"):
                    raise ProtocolError(ErrorCode.FORBIDDEN, f"not your office: {office}")
                result.outputs.append((conn.id, p.ack(msg.id, **self.office_stats(office, now))))
            case p.Sdp():
                self._relay_sdp(conn, claims, msg, result)
            case p.ConfigureDesk():
                office = msg.office or claims.office
                if office == "*":
                    raise ProtocolError(ErrorCode.INVALID_MESSAGE, "a desk belongs to one office")
                self._admin_office(claims, office)
                existing = self.state.desks.get(msg.desk)
                if existing is not None:
                    self._admin_office(claims, existing.office)
                    held = self._holders.get(("desk", existing.office, existing.id))
                    if existing.office != office and held:
                        raise DomainError(ErrorCode.CONFLICT, f"desk {msg.desk} is in use")
                result.events += d.configure_desk(msg.desk, office, msg.capacity, claims.sub, now)
                result.outputs.append((conn.id, p.ack(msg.id, desk=msg.desk)))
            case p.CloseDesk():
                existing = self.state.desks.get(msg.desk)
                if existing is None:
                    raise DomainError(ErrorCode.NOT_FOUND, f"no desk {msg.desk}")
                self._admin_office(claims, existing.office)
                result.events += d.close_desk(msg.desk, claims.sub, now)
                result.outputs.append((conn.id, p.ack(msg.id, desk=msg.desk)))
            case p.SetWorkflow():
                office = msg.office or claims.office
                self._admin_office(claims, office)
                result.events += d.set_workflow(msg.claim_type, msg.steps, claims.sub, now, office)
                ack = p.ack(msg.id, claim_type=msg.claim_type, office=office)
                result.outputs.append((conn.id, ack))
            case p.Refresh():
                fresh = self._refresh(conn, claims, msg, now)
                result.outputs.append((conn.id, p.ack(msg.id, exp=fresh.exp)))
            case _:  # pragma: no cover - decode_client admits only the types above
                raise ProtocolError(ErrorCode.UNKNOWN_TYPE, "unhandled message")

    @staticmethod
    def _admin_office(claims: Claims, office: str) -> None:
        if claims.office not in (office, "*"):
            raise ProtocolError(ErrorCode.FORBIDDEN, f"not an admin of office {office}")

    @staticmethod
    def _officer_desk(claims: Claims) -> str:
        if claims.role != "officer" or claims.desk is None:
            raise ProtocolError(ErrorCode.FORBIDDEN, "only an officer may do this")
        return claims.desk

    def _authorize_watch(self, claims: Claims, desk_id: str) -> None:
        desk = self.state.desks.get(desk_id)
        if desk is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"no desk {desk_id}")
        if claims.role == "officer" and claims.desk == desk_id:
            return
        if claims.role in ("supervisor", "admin") and claims.office in (desk.office, "*"):
            return
        raise ProtocolError(ErrorCode.FORBIDDEN, f"may not watch desk {desk_id}")

    def _relay_sdp(self, conn: Conn, claims: Claims, msg: p.Sdp, result: Result) -> None:
        """Relay SDP between the peers of a visit, and nobody else (contract in protocol.md).

        The officer of the visit's desk offers to the booth; a supervisor watching the desk
        may offer a receive-only connection. The booth only answers, and an answer is relayed
        only if it names the latest offer relayed to that booth by that offerer.
        """
        visit = self.state.visits.get(msg.visit)
        if visit is None or visit.state != "active":
            raise DomainError(ErrorCode.VISIT_NOT_ACTIVE, f"visit {msg.visit} is not active")
        if msg.offer_id is None:  # an answer names its offer, so every offer needs a name
            raise ProtocolError(ErrorCode.INVALID_MESSAGE, "sdp: offer_id is required")
        booth_place = _booth_place(visit)
        peer: str | None = None
        if claims.role == "officer" and claims.desk == visit.desk:
            if msg.sdp_type != "offer":
                raise ProtocolError(ErrorCode.FORBIDDEN, "the officer only offers")
            targets = self._booth_holders(visit)
            sender, offerer = "officer", "officer"
        elif claims.role in ("supervisor", "admin") and visit.desk in conn.watching:
            if msg.sdp_type != "offer":
                raise ProtocolError(ErrorCode.FORBIDDEN, "a supervisor only offers")
            targets = self._booth_holders(visit)
            sender, peer = "supervisor", str(conn.id)
            offerer = peer
        elif claims.role == "booth" and _identity(claims) == booth_place:
            if msg.sdp_type != "answer":
                raise ProtocolError(ErrorCode.FORBIDDEN, "a booth only answers")
            sender, offerer = "booth", msg.peer or "officer"
            if self._offers.get(booth_place, {}).get(offerer) != (visit.id, msg.offer_id):
                raise DomainError(
                    ErrorCode.STALE_ANSWER, "that is not the latest offer relayed to this booth"
                )
            targets = self._answer_targets(visit, msg.peer)
            peer = msg.peer
        else:
            raise ProtocolError(ErrorCode.FORBIDDEN, "not a peer of this visit")
        if not targets:
            raise DomainError(ErrorCode.NOT_CONNECTED, "the other peer is not connected")
        if msg.sdp_type == "offer":
            self._offers.setdefault(booth_place, {})[offerer] = (visit.id, msg.offer_id)
        relayed: dict[str, Any] = {
            "type": "sdp",
            "visit": msg.visit,
            "sdp_type": msg.sdp_type,
            "sdp": msg.sdp,
            "from": sender,
            "offer_id": msg.offer_id,
        }
        if peer is not None:
            relayed["peer"] = peer
        result.outputs += [(t, relayed) for t in targets]
        result.outputs.append((conn.id, p.ack(msg.id)))

    def _answer_targets(self, visit: Visit, peer: str | None) -> list[int]:
        """Who gets a booth's answer: the supervisor connection named by ``peer``, if it
        still watches the visit's desk, else the officer of the desk."""
        if peer is None:
            desk = self.state.desks.get(visit.desk or "")
            return sorted(self._holders.get(("desk", desk.office, desk.id), ())) if desk else []
        watcher = self.conns.get(int(peer)) if peer.isdigit() else None
        if (
            watcher is None
            or watcher.claims is None
            or watcher.claims.role not in ("supervisor", "admin")
            or visit.desk not in watcher.watching
        ):
            return []
        return [watcher.id]

    # -- office overview ---------------------------------------------------------------

    def office_stats(self, office: str, now: float) -> dict[str, Any]:
        """Desks, queue and today's figures for a supervisor's overview."""
        s = self.state
        day_start = _local_midnight(now)
        desks = [
            {
                "desk": d.id,
                "officer": d.officer,
                "capacity": d.capacity,
                "load": len(d.slots),
                "on_air": d.on_air,
                "on_air_booth": s.visits[d.on_air].booth if d.on_air in s.visits else None,
                "closed": d.closed,
                "vacant": d.vacant,
                "present": bool(self._holders.get(("desk", d.office, d.id))),
            }
            for d in sorted(s.desks.values(), key=lambda d: d.id)
            if office in (d.office, "*")
        ]
        queue = []
        offices = sorted(s.queues) if office == "*" else [office]
        for visit_id in (vid for o in offices for vid in s.queues.get(o, [])):
            v = s.visits[visit_id]
            queue.append(
                {
                    "visit": v.id,
                    "booth": v.booth,
                    "position": queue_position(s, v),
                    "waiting_s": now - v.started_at,
                    "estimated_wait_s": self.domain.estimated_wait_s(v),
                }
            )
        today = [
            v for v in s.visits.values() if office in (v.office, "*") and v.started_at >= day_start
        ]
        waits = [v.routed_at - v.started_at for v in today if v.routed_at is not None]
        ended = [v for v in today if v.ended_at is not None]
        hours = max((now - min((v.started_at for v in today), default=now)) / 3600, 1 / 60)
        return {
            "office": office,
            "desks": desks,
            "queue": queue,
            "median_wait_s": statistics.median(waits) if waits else None,
            "visits_today": len(today),
            "visits_per_hour": len(ended) / hours if ended else 0.0,
            "outcomes": dict(Counter(v.outcome for v in ended)),
        }

    # -- fan-out of accepted events ---------------------------------------------------

    def _booth_state(self, visit_id: str, view: dict[str, Any] | None = None) -> dict[str, Any]:
        visit = self.state.visits[visit_id]
        desk = self.state.desks.get(visit.desk) if visit.desk else None
        return {
            "type": "booth_state",
            **(view or visit_view(visit, self._presence)),
            "on_air": bool(desk and desk.on_air == visit.id),
            "position": queue_position(self.state, visit),
            "estimated_wait_s": self.domain.estimated_wait_s(visit),
            "queue": len(self.state.queues.get(visit.office, [])),
        }

    def _fan_out(self, result: Result) -> None:
        """Turn accepted events into desk deltas and booth notifications."""
        desks: dict[str, set[str]] = {}
        visits: set[str] = set()
        offices: set[str] = set()
        by_office: dict[str, list[Desk]] = {}

        def desks_of(office: str) -> list[Desk]:
            """The office's desks, listed once per fan-out however many events need them."""
            if office not in by_office:
                by_office[office] = [d for d in self.state.desks.values() if d.office == office]
            return by_office[office]

        for event in result.events:
            match event:
                case VisitRouted():
                    desks.setdefault(event.desk, set()).add(event.visit)
                    visits.add(event.visit)
                    offices.add(self.state.visits[event.visit].office)
                case VisitQueued():
                    visits.add(event.visit)
                    offices.add(self.state.visits[event.visit].office)
                    # its officer's offer is void: the next desk's officer offers afresh
                    self._offers.get(_booth_place(self.state.visits[event.visit]), {}).pop(
                        "officer", None
                    )
                    # it may have left a desk: every desk of the office re-reads its seats
                    for desk in desks_of(self.state.visits[event.visit].office):
                        desks.setdefault(desk.id, set()).add(event.visit)
                case VisitStarted():
                    visits.add(event.visit)
                case FocusChanged():
                    # on_air_since / last_on_air_at moved for who left the air and who came on
                    seated = self.state.desks[event.desk].slots.values()
                    desks.setdefault(event.desk, set()).update(seated)
                    visits.update(seated)
                case StepDecided() | SnapshotTaken():
                    visit = self.state.visits[event.visit]
                    if visit.desk:
                        desks.setdefault(visit.desk, set()).add(visit.id)
                    visits.add(visit.id)
                case VisitEnded():
                    visit = self.state.visits[event.visit]
                    self._offers.pop(_booth_place(visit), None)
                    for desk in desks_of(visit.office):
                        desks.setdefault(desk.id, set()).add(visit.id)
                    visits.add(visit.id)
                    offices.add(visit.office)
                case DeskOpened() | DeskConfigured() | DeskClosed() | DeskVacated():
                    desks.setdefault(event.desk, set())
                    offices.add(self.state.desks[event.desk].office)
        for office in offices:  # queue positions moved for everyone still waiting
            visits.update(self.state.queues.get(office, []))
            waiting = len(self.state.queues.get(office, []))
            for desk in desks_of(office):  # and desks show the queue's length
                if self._desk_queue.get(desk.id) != waiting:
                    desks.setdefault(desk.id, set())
        for visit_id in result.touched:  # presence changed: no event, but the view did
            visits.add(visit_id)
            desk_id = self.state.visits[visit_id].desk
            if desk_id is not None:
                desks.setdefault(desk_id, set()).add(visit_id)
        views: dict[str, dict[str, Any]] = {}

        def view(visit_id: str) -> dict[str, Any]:
            found = views.get(visit_id)
            if found is None:
                found = views[visit_id] = visit_view(self.state.visits[visit_id], self._presence)
            return found

        for desk_id, changed in desks.items():
            watchers = self._desk_watchers.get(desk_id)
            self._desk_seq[desk_id] += 1
            self._desk_queue[desk_id] = len(
                self.state.queues.get(self.state.desks[desk_id].office, [])
            )
            if not watchers:
                continue
            desk = self.state.desks[desk_id]
            delta = {
                "type": "delta",
                "desk": desk_id,
                "seq": self._desk_seq[desk_id],
                "officer": desk.officer,
                "on_air": desk.on_air,
                "closed": desk.closed,
                "vacant": desk.vacant,
                "capacity": desk.capacity,
                "queue": len(self.state.queues.get(desk.office, [])),
                "visits": [view(v) for v in sorted(changed)],
            }
            result.outputs += [(c, delta) for c in sorted(watchers)]
        for visit_id in sorted(visits):
            conns = self._booth_holders(self.state.visits[visit_id])
            if conns:
                message = self._booth_state(visit_id, view(visit_id))
                result.outputs += [(c, message) for c in sorted(conns)]


def _booth_place(visit: Visit) -> Place:
    return ("booth", visit.office, visit.booth)


def _local_midnight(now: float) -> float:
    t = time.localtime(now)
    return now - (t.tm_hour * 3600 + t.tm_min * 60 + t.tm_sec)
