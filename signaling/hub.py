"""The server's sans-I/O core: frames in, events and outbound messages out.

Modelled on python-websockets' ``Protocol``: the asyncio server feeds each frame to
``Hub.receive`` and gets back a ``Result`` (events to make durable, messages to deliver,
maybe a close). The shell must deliver the outputs only after the events are durable; it
never decides anything itself. Because the core is pure, it is tested without sockets.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from signaling import protocol as p
from signaling.domain import Domain, DomainError, State, desk_view, queue_position, visit_view
from signaling.events import (
    Event,
    FocusChanged,
    StepDecided,
    VisitEnded,
    VisitQueued,
    VisitRouted,
    VisitStarted,
)
from signaling.protocol import CloseCode, ErrorCode, ProtocolError
from signaling.tokens import Claims, KeyRing, TokenError

MUTATING = {"start_visit", "focus", "decide", "end_visit"}


@dataclass
class Conn:
    id: int
    claims: Claims | None = None
    watching: set[str] = field(default_factory=set)


@dataclass
class Result:
    events: list[Event] = field(default_factory=list)
    outputs: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    close: tuple[int, str] | None = None
    message_type: str | None = None
    error_code: str | None = None


class Hub:
    def __init__(self, keys: KeyRing, state: State | None = None) -> None:
        self.keys = keys
        self.domain = Domain(state)
        self.conns: dict[int, Conn] = {}
        self._ids = itertools.count(1)
        self._desk_watchers: dict[str, set[int]] = {}
        self._booth_conns: dict[str, set[int]] = {}
        self._desk_seq: Counter[str] = Counter()

    @property
    def state(self) -> State:
        return self.domain.state

    # -- connection lifecycle ----------------------------------------------------------

    def connect(self) -> int:
        conn = Conn(next(self._ids))
        self.conns[conn.id] = conn
        return conn.id

    def disconnect(self, conn_id: int) -> Result:
        conn = self.conns.pop(conn_id, None)
        if conn is not None:
            for desk in conn.watching:
                self._desk_watchers.get(desk, set()).discard(conn_id)
            if conn.claims and conn.claims.booth:
                self._booth_conns.get(conn.claims.booth, set()).discard(conn_id)
        return Result()

    def role_counts(self) -> Counter[str]:
        return Counter(c.claims.role if c.claims else "anonymous" for c in self.conns.values())

    def visit_counts(self) -> Counter[str]:
        return Counter(v.state for v in self.state.visits.values())

    # -- frames ------------------------------------------------------------------------

    def receive(self, conn_id: int, frame: str | bytes, now: float) -> Result:
        conn = self.conns[conn_id]
        result = Result()
        try:
            msg = p.decode_client(frame)
        except ProtocolError as exc:
            return self._fail(conn, result, exc.code, exc.message, exc.re)
        result.message_type = type(msg).__struct_config__.tag  # type: ignore[assignment]
        try:
            if isinstance(msg, p.Hello):
                self._hello(conn, msg, now, result)
            elif conn.claims is None:
                raise ProtocolError(ErrorCode.HELLO_REQUIRED, "send hello with a token first")
            else:
                self._dispatch(conn, msg, now, result)
        except (ProtocolError, DomainError) as exc:
            result.events.clear()
            return self._fail(conn, result, exc.code, exc.message, msg.id)
        except TokenError as exc:
            self._fail(conn, result, exc.code, exc.message, msg.id)
            result.close = (CloseCode.AUTH_FAILED, exc.code)
            return result
        self._fan_out(result)
        return result

    def _fail(
        self, conn: Conn, result: Result, code: ErrorCode, message: str, re: int | None
    ) -> Result:
        result.error_code = str(code)
        result.outputs.append((conn.id, p.error(code, message, re)))
        return result

    def _hello(self, conn: Conn, msg: p.Hello, now: float, result: Result) -> None:
        if conn.claims is not None:
            raise ProtocolError(ErrorCode.ALREADY_HELLO, "hello was already accepted")
        claims = self.keys.verify(msg.token, now=now)
        conn.claims = claims
        welcome: dict[str, Any] = {
            "type": "welcome",
            "re": msg.id,
            "role": claims.role,
            "sub": claims.sub,
            "office": claims.office,
            "desk": claims.desk,
            "booth": claims.booth,
            "desks": sorted(d.id for d in self.state.desks.values() if d.office == claims.office),
        }
        result.outputs.append((conn.id, welcome))
        if claims.role == "officer":
            assert claims.desk is not None
            result.events += self.domain.open_desk(claims.desk, claims.office, claims.sub, now)
            self._watch(conn, claims.desk, result)
        elif claims.role == "booth":
            assert claims.booth is not None
            self._booth_conns.setdefault(claims.booth, set()).add(conn.id)
            visit_id = self.state.open_by_booth.get(claims.booth)
            if visit_id is not None:
                result.outputs.append((conn.id, self._booth_state(visit_id)))

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
            "state": desk_view(self.state, desk),
        }
        result.outputs.append((conn.id, snapshot))

    def _dispatch(self, conn: Conn, msg: p.ClientMessage, now: float, result: Result) -> None:
        claims = conn.claims
        assert claims is not None
        kind = result.message_type
        if kind in MUTATING and claims.role == "supervisor":
            raise ProtocolError(ErrorCode.READ_ONLY, "a supervisor can only watch")
        match msg:
            case p.StartVisit():
                self._require(claims, "booth")
                assert claims.booth is not None
                visit_id, events = self.domain.start_visit(
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
                result.events += self.domain.set_focus(desk, msg.visit, claims.sub, now)
                result.outputs.append((conn.id, p.ack(msg.id, on_air=msg.visit)))
            case p.Decide():
                desk = self._officer_desk(claims)
                result.events += self.domain.decide(
                    desk, msg.visit, msg.step, msg.decision, msg.reason, claims.sub,
                    claims.role, now,
                )  # fmt: skip
                result.outputs.append((conn.id, p.ack(msg.id, visit=msg.visit, step=msg.step)))
            case p.EndVisit():
                desk = self._officer_desk(claims)
                visit = self.state.visits.get(msg.visit)
                if visit is None or visit.desk != desk:
                    raise DomainError(ErrorCode.VISIT_NOT_ACTIVE, f"visit {msg.visit} not here")
                result.events += self.domain.end_visit(
                    msg.visit, msg.outcome, msg.note, claims.sub, now
                )
                result.outputs.append((conn.id, p.ack(msg.id, visit=msg.visit)))
            case p.Watch():
                self._authorize_watch(claims, msg.desk)
                self._watch(conn, msg.desk, result, msg.id)
            case p.Sdp():
                self._relay_sdp(conn, claims, msg, result)
            case _:  # pragma: no cover - decode_client admits only the types above
                raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unhandled {kind}")

    @staticmethod
    def _require(claims: Claims, role: str) -> None:
        if claims.role != role:
            raise ProtocolError(ErrorCode.FORBIDDEN, f"only a {role} may do this")

    def _officer_desk(self, claims: Claims) -> str:
        self._require(claims, "officer")
        assert claims.desk is not None
        return claims.desk

    def _authorize_watch(self, claims: Claims, desk_id: str) -> None:
        desk = self.state.desks.get(desk_id)
        if desk is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"no desk {desk_id}")
        if claims.role == "officer" and claims.desk == desk_id:
            return
        if claims.role == "supervisor" and claims.office in (desk.office, "*"):
            return
        if claims.role == "admin":
            return
        raise ProtocolError(ErrorCode.FORBIDDEN, f"may not watch desk {desk_id}")

    def _relay_sdp(self, conn: Conn, claims: Claims, msg: p.Sdp, result: Result) -> None:
        """Relay SDP between the peers of a visit, and nobody else.

        Officer <-> booth for the visit's desk; a supervisor watching the desk may offer a
        receive-only connection to the booth, whose answer goes back to that supervisor only.
        """
        visit = self.state.visits.get(msg.visit)
        if visit is None or visit.state != "active":
            raise DomainError(ErrorCode.VISIT_NOT_ACTIVE, f"visit {msg.visit} is not active")
        peer: str | None = None
        if claims.role == "officer" and claims.desk == visit.desk:
            targets = self._booth_conns.get(visit.booth, set())
            sender = "officer"
        elif claims.role in ("supervisor", "admin") and visit.desk in conn.watching:
            if msg.sdp_type != "offer":
                raise ProtocolError(ErrorCode.FORBIDDEN, "a supervisor only offers")
            targets = self._booth_conns.get(visit.booth, set())
            sender, peer = "supervisor", str(conn.id)
        elif claims.role == "booth" and claims.booth == visit.booth:
            sender = "booth"
            if msg.peer is not None:
                watcher = self.conns.get(int(msg.peer)) if msg.peer.isdigit() else None
                if (
                    watcher is None
                    or watcher.claims is None
                    or watcher.claims.role not in ("supervisor", "admin")
                    or visit.desk not in watcher.watching
                ):
                    raise DomainError(ErrorCode.NOT_CONNECTED, "that watcher is not connected")
                targets, peer = {watcher.id}, msg.peer
            else:
                targets = {
                    cid
                    for cid in self._desk_watchers.get(visit.desk or "", set())
                    if (c := self.conns[cid].claims) and c.role == "officer"
                }
        else:
            raise ProtocolError(ErrorCode.FORBIDDEN, "not a peer of this visit")
        if not targets:
            raise DomainError(ErrorCode.NOT_CONNECTED, "the other peer is not connected")
        relayed: dict[str, Any] = {
            "type": "sdp",
            "visit": msg.visit,
            "sdp_type": msg.sdp_type,
            "sdp": msg.sdp,
            "from": sender,
        }
        if peer is not None:
            relayed["peer"] = peer
        result.outputs += [(t, relayed) for t in sorted(targets)]
        result.outputs.append((conn.id, p.ack(msg.id)))

    # -- fan-out of accepted events ---------------------------------------------------

    def _booth_state(self, visit_id: str) -> dict[str, Any]:
        visit = self.state.visits[visit_id]
        desk = self.state.desks.get(visit.desk) if visit.desk else None
        return {
            "type": "booth_state",
            **visit_view(visit),
            "on_air": bool(desk and desk.on_air == visit.id),
            "position": queue_position(self.state, visit),
            "queue": len(self.state.queues.get(visit.office, [])),
        }

    def _fan_out(self, result: Result) -> None:
        """Turn accepted events into desk deltas and booth notifications."""
        desks: dict[str, set[str]] = {}
        visits: set[str] = set()
        offices: set[str] = set()
        for event in result.events:
            match event:
                case VisitRouted():
                    desks.setdefault(event.desk, set()).add(event.visit)
                    visits.add(event.visit)
                    offices.add(self.state.visits[event.visit].office)
                case VisitQueued() | VisitStarted():
                    visits.add(event.visit)
                case FocusChanged():
                    desks.setdefault(event.desk, set())
                    visits.update(self.state.desks[event.desk].slots.values())
                case StepDecided() | VisitEnded():
                    visit = self.state.visits[event.visit]
                    if visit.desk:
                        desks.setdefault(visit.desk, set()).add(visit.id)
                    visits.add(visit.id)
                    offices.add(visit.office)
        for office in offices:  # queue positions moved for everyone still waiting
            visits.update(self.state.queues.get(office, []))
        for desk_id, changed in desks.items():
            self._desk_seq[desk_id] += 1
            delta = {
                "type": "delta",
                "desk": desk_id,
                "seq": self._desk_seq[desk_id],
                "on_air": self.state.desks[desk_id].on_air,
                "queue": len(self.state.queues.get(self.state.desks[desk_id].office, [])),
                "visits": [visit_view(self.state.visits[v]) for v in sorted(changed)],
            }
            result.outputs += [(c, delta) for c in sorted(self._desk_watchers.get(desk_id, ()))]
        for visit_id in sorted(visits):
            booth = self.state.visits[visit_id].booth
            message = self._booth_state(visit_id)
            result.outputs += [(c, message) for c in sorted(self._booth_conns.get(booth, ()))]
