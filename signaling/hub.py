"""The server's sans-I/O core: frames in, events and outbound messages out.

Modelled on python-websockets' ``Protocol``: the asyncio server feeds each frame to
``Hub.receive`` (and the passing of time to ``Hub.tick``) and gets back a ``Result``: events
to make durable, messages to deliver, connections to close. The shell must deliver the
outputs only after the events are durable; it never decides anything itself. The hub is a
thin coordinator: ``sessions`` (connections, places, presence), ``permissions`` (who may do
what), ``domain`` (commands), ``relay`` (SDP), ``projection`` (deltas, booth states) and
``office_stats``. Clock, session ids and time zone are injected, so it is tested without
sockets, sleeps or the host's zone.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo

from lapak.signaling import permissions as perm
from lapak.signaling import protocol as p
from lapak.signaling.alerts import AlertRules, LinkGrades, OfficeGauges, office_gauges
from lapak.signaling.config import ServerConfig
from lapak.signaling.domain import Domain, Rules
from lapak.signaling.errors import AccessDenied, DomainError, LapakError
from lapak.signaling.events import DeskConfigured, DeskOpened, Event
from lapak.signaling.ice import IcePolicy
from lapak.signaling.messages import (
    Ack,
    Error,
    Moved,
    OfficeFigures,
    RecordingKey,
    Supervision,
    Welcome,
    tag,
)
from lapak.signaling.office_stats import office_stats
from lapak.signaling.overview import OfficeDigest, RemoteOffices, merge, office_digest
from lapak.signaling.permissions import SYSTEM, Actor, Place
from lapak.signaling.personal_data import RandomBytes, Sealer
from lapak.signaling.projection import Output, Projection
from lapak.signaling.protocol import CloseCode, ErrorCode
from lapak.signaling.relay import Relay
from lapak.signaling.sessions import Away, Conn, Sessions
from lapak.signaling.state import Desk, State, open_visit
from lapak.signaling.supervision import Supervising, Supervisions
from lapak.signaling.tokens import Claims, KeyRing, TokenError, check_lifetime

__all__ = ["Clock", "Hub", "Result"]


@dataclass(frozen=True)
class Clock:
    """The two clocks the core reads, injected by the shell (or a test)."""

    wall: Callable[[], float]  # Unix time: event times, token expiry, clients' "since"
    mono: Callable[[], float]  # monotonic: grace periods and rate limits (immune to steps)


@dataclass
class Result:
    events: list[Event] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    closes: list[tuple[int, int, str]] = field(default_factory=list)  # (conn, code, reason)
    message_type: str | None = None
    error_code: str | None = None
    touched: set[str] = field(default_factory=set)  # visits whose view changed without events
    keys: dict[str, bytes] = field(default_factory=dict)  # new visits' keys, kept with events


def rules_of(config: ServerConfig) -> Rules:
    return Rules(
        workflows=dict(config.workflows),
        reasons=tuple(config.reasons),
        pins=dict(config.pins),
        default_visit_s=config.default_visit_minutes * 60,
        strict_outcomes=config.strict_outcomes,
        retention_days=config.retention.days,
        retention_offices=dict(config.retention.offices),
        visit_ids_per_office=config.launch.node_url is not None,  # a cluster node
    )


class Hub:
    def __init__(
        self,
        keys: KeyRing,
        state: State | None = None,
        config: ServerConfig | None = None,
        *,
        clock: Clock,
        new_session_id: Callable[[], str],
        tz: tzinfo,
        random_bytes: RandomBytes,
        ice: IcePolicy | None = None,
    ) -> None:
        self.keys = keys
        self.ice = ice or IcePolicy()  # the shell reads the TURN secret (ice.load_ice)
        self.config = config or ServerConfig()
        self.clock = clock
        self.tz = tz  # the office's: "today" of the overview starts at its midnight
        self.domain = Domain(state, rules_of(self.config), Sealer(random_bytes))
        self.sessions = Sessions(
            self.domain.state,
            rate_per_s=self.config.rate_per_s,
            rate_burst=self.config.rate_burst,
            grace_s=self.config.grace_s,
            new_session_id=new_session_id,
            since=Away(clock.wall(), clock.mono()),
            keys=lambda: self.keys.keys,  # sealed session ids (signaling/resume.py)
        )
        self.supervisions = Supervisions()
        self.relay = Relay(self.domain.state, self.sessions, self.supervisions)
        self.projection = Projection(
            self.domain.state,
            self.sessions,
            self.domain.rules.default_visit_s,
            video_tiers=self.config.video_tiers,
            supervisions=self.supervisions,
        )
        self.projection.recording = self.config.recording  # booths say "recorded" from routing
        self.revoked: frozenset[str] = frozenset()  # token ids refused (the shell reads the list)
        self.remote = RemoteOffices()  # a cluster's other offices (signaling/overview.py)
        self.alert_rules = AlertRules(
            queue_wait_s=self.config.alert_queue_wait_s,
            not_spoken_s=self.config.alert_not_spoken_s,
            abandoned_window_s=self.config.alert_abandoned_window_s,
            poor_link_s=self.config.alert_poor_link_s,
        )
        self.links = LinkGrades()  # officers' latest link grades (link_quality; not logged)

    @property
    def state(self) -> State:
        return self.domain.state

    @property
    def conns(self) -> dict[int, Conn]:
        return self.sessions.conns

    @property
    def away(self) -> dict[Place, Away]:
        return self.sessions.away

    def bootstrap(self) -> list[Event]:
        """Events that create the configured desks not yet in the log."""
        events: list[Event] = []
        now = self.clock.wall()
        for spec in self.config.desks:
            if spec.id not in self.state.desks:
                config = Actor("admin", "config", spec.office)
                events += self.domain.configure_desk(
                    config, spec.id, spec.office, spec.capacity, now
                )
        return events

    def adopted(self, office: str) -> None:
        """This node took ``office`` over from another (its stream is applied to the state):
        its booths and desks count as away from now, and the sessions the other node issued
        resume within the grace period (signaling/resume.py)."""
        self.sessions.take_over(office, Away(self.clock.wall(), self.clock.mono()))

    def booth_connections(self, office: str, booth: str) -> list[int]:
        """The connections holding ``booth`` of ``office`` (for the shell and tests)."""
        return self.sessions.holders(("booth", office, booth))

    def role_counts(self) -> Counter[str]:
        return self.sessions.role_counts()

    def visit_counts(self) -> Counter[str]:
        return Counter(v.state for v in self.state.visits.values())

    def office_gauges(self) -> dict[str, OfficeGauges]:
        """Each office's alert figures now (Prometheus; the shell renders them)."""
        return office_gauges(
            self.state, self.clock.wall(), self.alert_rules, self.sessions.presence, self.links
        )

    # -- connection lifecycle and time -------------------------------------------------

    def connect(self) -> int:
        return self.sessions.connect()

    def disconnect(self, conn_id: int) -> Result:
        """Forget a connection; its place (booth, desk) waits for the grace period."""
        result = Result()
        conn = self.sessions.conns.get(conn_id)
        if conn is None:
            return result
        result.outputs += self.relay.watcher_left(conn)
        supervising = self.supervisions.of_conn(conn_id)
        if supervising is not None and conn.actor is not None:  # leaving ends coach/barge
            self._end_supervision(conn.actor, supervising, self.clock.wall(), result)
        _, place = self.sessions.leave(conn_id, self.clock.wall(), self.clock.mono())
        result.touched.update(self._taken_by(conn.actor))  # its booths' barge_peer moves
        if place is not None and place[0] == "booth":  # consoles see the booth leave
            visit_id = open_visit(self.state, place[1], place[2])
            if visit_id is not None:
                result.touched.add(visit_id)
        self._fan_out(result)
        return result

    def tick(self) -> Result:
        """Let time pass: expired tokens close their connection (4001) and places away
        longer than the grace period (by the monotonic clock) are given up."""
        now = self.clock.wall()
        result = Result()
        for conn in self.sessions.expired(now):
            self._expire(conn, result)
        for kind, office, ident in self.sessions.overdue(self.clock.mono()):
            if kind == "desk":
                result.events += self.domain.vacate_desk(ident, now)
                continue
            visit_id = open_visit(self.state, office, ident)
            if visit_id is not None:
                result.events += self.domain.end_visit(
                    SYSTEM, visit_id, "abandoned", "booth gone past the grace period", now
                )
        result.events += self.domain.purge_expired(now)  # the offices' retention
        self._fan_out(result)
        self.links.prune(self.state)  # grades of visits that left their desk
        return result

    def revoke(self, revoked: frozenset[str]) -> Result:
        """The revocation list changed: later hellos and refreshes with these token ids are
        refused, and connections holding one are told and closed with 4001."""
        self.revoked = revoked
        result = Result()
        for conn in self.sessions.holding(revoked):
            conn.gone = True
            message = "token revoked"
            result.outputs.append(
                (conn.id, Error(re=None, code=ErrorCode.BAD_TOKEN, message=message))
            )
            result.closes.append((conn.id, CloseCode.AUTH_FAILED, str(ErrorCode.BAD_TOKEN)))
        return result

    def _admit_token(self, token: str, now: float) -> Claims:
        """Verified, within its role's lifetime cap and not revoked (hello and refresh)."""
        claims = self.keys.verify(token, now=now)
        check_lifetime(claims, self.config.ttl_max(claims.role))
        if claims.jti is not None and claims.jti in self.revoked:
            raise TokenError(ErrorCode.BAD_TOKEN, "token revoked")
        return claims

    def _expire(self, conn: Conn, result: Result, re: int | None = None) -> None:
        """The token ran out without a refresh: say so, stop listening, close with 4001."""
        conn.gone = True
        expired = Error(re=re, code=ErrorCode.TOKEN_EXPIRED, message="token expired")
        result.outputs.append((conn.id, expired))
        result.closes.append((conn.id, CloseCode.AUTH_FAILED, str(ErrorCode.TOKEN_EXPIRED)))

    # -- frames ------------------------------------------------------------------------

    def receive(self, conn_id: int, frame: str | bytes) -> Result:
        """One inbound frame from a connection."""
        conn = self.sessions.conns[conn_id]
        result = Result()
        if conn.gone:  # replaced or expired, about to be closed: hear nothing more
            return result
        if not self.sessions.take_token(conn, self.clock.mono()):
            self._fail(result, conn.id, ErrorCode.RATE_LIMITED, "slow down", p.peek_id(frame))
            if self.sessions.flooding(conn):
                result.closes.append((conn.id, CloseCode.FLOOD, "flood"))
            return result
        try:
            msg = p.decode_client(frame, self.config.max_frame_bytes)
        except p.ProtocolError as exc:
            return self._fail(result, conn.id, exc.code, exc.message, exc.re)
        result.message_type = tag(type(msg))
        now = self.clock.wall()
        try:
            if isinstance(msg, p.Hello):
                self._hello(conn, msg, now, result)
            elif conn.claims is None or conn.actor is None:
                raise p.ProtocolError(ErrorCode.HELLO_REQUIRED, "send hello with a token first")
            elif conn.claims.exp <= now:
                self._expire(conn, result, msg.id)
                return result
            else:
                perm.authorize(conn.actor, result.message_type)
                self._dispatch(conn, conn.actor, msg, now, result)
        except LapakError as exc:
            # Commands emit nothing before their last check, so no event is half-made.
            assert not result.events, "a refused command must not have produced events"
            self._fail(result, conn.id, exc.code, exc.message, msg.id)
            if isinstance(msg, p.Hello) and conn.claims is None:  # a refused hello
                result.closes.append((conn.id, CloseCode.AUTH_FAILED, str(exc.code)))
            return result
        conn.refused_in_row = 0
        self._fan_out(result)
        return result

    def _fail(
        self, result: Result, conn_id: int, code: ErrorCode, message: str, re: int | None
    ) -> Result:
        result.error_code = str(code)
        result.outputs.append((conn_id, Error(re=re, code=code, message=message)))
        return result

    def _fan_out(self, result: Result) -> None:
        """Accepted events and presence changes become deltas and booth states."""
        self.relay.on_events(result.events)
        result.outputs += self.projection.project(result.events, result.touched)
        result.outputs += self._recorders_follow(result.events)

    def _recorders_follow(self, events: list[Event]) -> list[Output]:
        """A recorder watches every desk of its office, including desks that appear after
        its ``hello``: a desk opened or configured into its office is watched for it at once,
        and it gets that desk's ``snapshot`` (``re`` null), then its deltas."""
        outputs: list[Output] = []
        for event in events:
            if not isinstance(event, DeskOpened | DeskConfigured):
                continue
            desk = self.state.desks.get(event.desk)
            if desk is None:
                continue
            for conn in list(self.sessions.conns.values()):
                actor = conn.actor
                if conn.gone or actor is None or actor.role not in perm.RECORDERS:
                    continue
                if actor.office != desk.office or desk.id in conn.watching:
                    continue
                self.sessions.watch(conn, desk.id)
                outputs.append((conn.id, self.projection.snapshot(desk.id, None)))
        return outputs

    def _hello(self, conn: Conn, msg: p.Hello, now: float, result: Result) -> None:
        if conn.claims is not None:
            raise p.ProtocolError(ErrorCode.ALREADY_HELLO, "hello was already accepted")
        claims = self._admit_token(msg.token, now)
        actor = Actor.of(claims)
        perm.admit(actor, self.config.offices)
        desks = sorted(d.id for d in self.state.desks.values() if actor.office in (d.office, "*"))
        if actor.office == "*" and self.remote.active:  # and those of the other nodes' offices
            desks = sorted({*desks, *self.remote.desks()})
        if actor.role == "officer":  # checks the desk's office before anything is held
            result.events += self.domain.open_desk(actor, now)
        joined = self.sessions.join(conn, claims, msg.session, self.clock.mono())
        for old in joined.replaced:
            message = "another connection took over this desk"
            result.outputs.append((old, Error(re=None, code=ErrorCode.REPLACED, message=message)))
            result.closes.append((old, CloseCode.REPLACED, str(ErrorCode.REPLACED)))
        welcome = Welcome(
            re=msg.id,
            role=claims.role,
            sub=claims.sub,
            office=claims.office,
            desk=claims.desk,
            booth=claims.booth,
            session=joined.session,
            resumed=joined.resumed,
            desks=desks,
            claim_types=self.domain.claim_types(claims.office),
            reasons=list(self.domain.rules.reasons),
            grace_s=self.config.grace_s,
            ice_servers=self.ice.for_client(claims.sub, now),
        )
        result.outputs.append((conn.id, welcome))
        result.touched.update(self._taken_by(actor))  # a resolver back: its booths hear it
        if actor.role == "officer" and actor.desk is not None:
            if not joined.resumed:  # a new console has zoomed nothing yet
                result.outputs += self.projection.zoom(actor.desk, None)
            self._watch(conn, actor.desk, None, result)
            supervising = self.supervisions.of_desk(actor.desk)
            if supervising is not None:  # a reconnecting officer learns who coaches them
                result.outputs.append((conn.id, _supervision(supervising, supervising.mode)))
        elif actor.role == "booth" and actor.booth is not None:
            # A booth with no open visit gets nothing more: it sends start_visit when ready.
            visit_id = open_visit(self.state, actor.office, actor.booth)
            if visit_id is not None and joined.was_away:
                result.touched.add(visit_id)  # its desk sees it back; fan-out tells the booth
            elif visit_id is not None:
                result.outputs.append((conn.id, self.projection.booth_state(visit_id)))

    def _taken_by(self, actor: Actor | None) -> list[str]:
        """The escalated visits this supervisor resolves: their booths' ``barge_peer`` (its
        newest connection) changes when one of its connections comes or goes."""
        if actor is None or actor.role not in perm.WATCHERS:
            return []
        open_ids = [v for booths in self.state.open_by_booth.values() for v in booths.values()]
        visits = [self.state.visits[v] for v in open_ids]
        return [
            v.id
            for v in visits
            if v.state == "escalated"
            and v.taken_by == actor.sub
            and actor.office in (v.office, "*")
        ]

    # -- a cluster's other offices (signaling/overview.py) -------------------------------

    def office_digests(self, offices: list[str]) -> list[OfficeDigest]:
        """This node's offices' overviews as of now, for the store (the shell publishes)."""
        now = self.clock.wall()
        return [self._digest(office, now) for office in offices]

    def _digest(self, office: str, now: float) -> OfficeDigest:
        return office_digest(
            self.state, office, now, self.tz, self._officer_present,
            self.domain.rules.default_visit_s, self.sessions.presence, self.alert_rules,
            self.links,
        )  # fmt: skip

    def _office_figures(self, office: str, now: float) -> OfficeFigures:
        """``office_stats``: on a cluster node, ``*`` merges this node's offices (now) with
        the digests the other nodes published; another node's office is its digest."""
        remote = self.remote
        if remote.active and office == "*":
            ours = [self._digest(o, now) for o in sorted(remote.local) if o != "*"]
            theirs = [g for o, g in remote.digests.items() if o not in remote.local]
            return merge([*ours, *theirs], now)
        if remote.active and office not in remote.local and office in remote.digests:
            return remote.digests[office].figures
        return office_stats(
            self.state, office, now, self.tz, self._officer_present,
            self.domain.rules.default_visit_s, self.sessions.presence, self.alert_rules,
            self.links,
        )  # fmt: skip

    def _watch_elsewhere(self, actor: Actor, msg: p.Watch) -> Moved | None:
        """``moved`` for a desk of an office another live node owns: watch it there."""
        if not self.remote.active:
            return None
        office = self.remote.office_of_desk(msg.desk)
        if office is None or office in self.remote.local:
            return None
        url = self.remote.owners.get(office)
        if url is None:  # between owners: the stale copy here, if any, is not shown
            raise DomainError(ErrorCode.NOT_FOUND, f"desk {msg.desk}: its office has no node now")
        perm.check_office(actor, office)
        if actor.role not in perm.WATCHERS:
            raise AccessDenied(ErrorCode.FORBIDDEN, f"may not watch desk {msg.desk}")
        return Moved(re=msg.id, office=office, url=url)

    def _elsewhere(self, actor: Actor, msg: p.ClientMessage) -> Moved | None:
        """``moved`` for a ``*`` watcher's command about an office another live node owns
        (a cluster): the command is not applied here; the client sends it again at
        ``url`` (the owner holds that office's state and log). ``None``: handle it here."""
        remote = self.remote
        if not remote.active or actor.office != "*" or actor.role not in perm.WATCHERS:
            return None
        office = self._office_named(msg)
        if office is None or office in remote.local or office == "*":
            return None
        url = remote.owners.get(office)
        if url is None:
            if office not in remote.digests:
                return None  # an office no node has published: handled here as before
            raise DomainError(ErrorCode.NOT_FOUND, f"office {office} has no node now")
        return Moved(re=msg.id, office=office, url=url)

    def _office_named(self, msg: p.ClientMessage) -> str | None:
        """The other node's office a command is about, when this node does not hold what
        it names (its visit or desk); ``None`` when it is ours or unknown everywhere."""
        remote = self.remote
        match msg:
            case p.TakeEscalation() | p.Decide() | p.EndVisit() | p.PurgeVisit():
                return None if msg.visit in self.state.visits else remote.office_of_visit(msg.visit)
            case p.Sdp() if msg.desk is not None:
                return None if msg.desk in self.state.desks else remote.office_of_desk(msg.desk)
            case p.Sdp():
                return None if msg.visit in self.state.visits else remote.office_of_visit(msg.visit)
            case p.Supervise() | p.CloseDesk():
                return None if msg.desk in self.state.desks else remote.office_of_desk(msg.desk)
            case p.ConfigureDesk():
                if msg.desk in self.state.desks:
                    return None
                return msg.office or remote.office_of_desk(msg.desk)
            case p.SetWorkflow():
                return msg.office
        return None

    def _watch(self, conn: Conn, desk: str, re: int | None, result: Result) -> None:
        self.sessions.watch(conn, desk)
        result.outputs.append((conn.id, self.projection.snapshot(desk, re)))

    def _dispatch(
        self, conn: Conn, actor: Actor, msg: p.ClientMessage, now: float, result: Result
    ) -> None:
        d, out, me = self.domain, result.outputs, conn.id
        routed = self._elsewhere(actor, msg)
        if routed is not None:  # another node's office: its owner applies it
            out.append((me, routed))
            return
        match msg:
            case p.StartVisit(claimant=c):
                visit_id, events = d.start_visit(actor, c.name, c.membership_no, c.claim_type, now)
                result.events += events
                result.keys.update(d.take_keys())
                out.append((me, Ack(re=msg.id, visit=visit_id)))
                if not events:  # resumed: tell this connection where the visit stands
                    out.append((me, self.projection.booth_state(visit_id)))
            case p.Focus():
                result.events += d.set_focus(actor, msg.visit, now)
                out.append((me, Ack(re=msg.id, on_air=msg.visit)))
            case p.Zoom():
                desk = perm.officer_desk(actor)
                if msg.visit is not None:
                    perm.seated_here(self.state, actor, msg.visit)
                out.append((me, Ack(re=msg.id)))
                out += self.projection.zoom(desk, msg.visit)
            case p.Decide():
                result.events += d.decide(actor, msg.visit, msg.step, msg.decision, msg.reason, now)
                out.append((me, Ack(re=msg.id, visit=msg.visit, step=msg.step)))
            case p.SnapshotTaken():
                result.events += d.record_snapshot(actor, msg.visit, msg.sha256, msg.step, now)
                out.append((me, Ack(re=msg.id, visit=msg.visit)))
            case p.EndVisit():
                result.events += d.end_visit(actor, msg.visit, msg.outcome, msg.note, now)
                out.append((me, Ack(re=msg.id, visit=msg.visit)))
            case p.Watch():
                moved = self._watch_elsewhere(actor, msg)
                if moved is not None:  # a desk of an office another node owns
                    out.append((me, moved))
                else:
                    perm.may_watch(self.state, actor, msg.desk)
                    self._watch(conn, msg.desk, msg.id, result)
            case p.OfficeStats():
                office = msg.office or actor.office
                perm.check_office(actor, office)
                out.append((me, Ack.of_figures(msg.id, self._office_figures(office, now))))
            case p.Sdp():
                out += self.relay.relay(conn, msg)
                out.append((me, Ack(re=msg.id)))
            case p.ConfigureDesk():
                existing = self.state.desks.get(msg.desk)
                held = existing is not None and self._officer_present(existing)
                office = msg.office or actor.office
                result.events += d.configure_desk(
                    actor, msg.desk, office, msg.capacity, now, officer_present=held
                )
                out.append((me, Ack(re=msg.id, desk=msg.desk)))
            case p.CloseDesk():
                result.events += d.close_desk(actor, msg.desk, now)
                out.append((me, Ack(re=msg.id, desk=msg.desk)))
            case p.SetWorkflow():
                office = msg.office or actor.office
                result.events += d.set_workflow(actor, msg.claim_type, msg.steps, office, now)
                out.append((me, Ack(re=msg.id, claim_type=msg.claim_type, office=office)))
            case p.Supervise():
                supervised = perm.may_supervise(self.state, actor, msg.desk, msg.mode)
                self._supervise(conn, actor, supervised, msg.mode, now, result)
                out.append((me, Ack(re=msg.id, desk=msg.desk)))
            case p.TakeEscalation():
                result.events += d.take_escalation(actor, msg.visit, now)
                out.append((me, Ack(re=msg.id, visit=msg.visit)))
            case p.Refresh():
                fresh = self._admit_token(msg.token, now)  # refused: the old one holds
                if Actor.of(fresh) != actor:
                    raise p.ProtocolError(
                        ErrorCode.BAD_TOKEN, "a refresh token must name the same role, sub, "
                        "office, desk, booth and grants",
                    )  # fmt: skip
                conn.claims = fresh
                out.append((me, Ack(re=msg.id, exp=fresh.exp)))
            case p.RecordingClosed():
                result.events += d.recording_closed(actor, msg, now)
                out.append((me, Ack(re=msg.id, visit=msg.visit)))
            case p.RecordingNoticeShown():
                result.events += d.recording_notice_shown(actor, msg.visit, now)
                out.append((me, Ack(re=msg.id, visit=msg.visit)))
            case p.PurgeVisit():
                result.events += d.purge_visit(actor, msg.visit, msg.reason, now)
                out.append((me, Ack(re=msg.id, visit=msg.visit)))
            case p.GetRecordingKey():
                key = base64.b64encode(d.recording_key_of(actor, msg.visit)).decode("ascii")
                out.append((me, RecordingKey(re=msg.id, visit=msg.visit, key=key)))
            case p.LinkQuality():  # telemetry: in memory for poor_link, never logged
                visit = perm.seated_here(self.state, actor, msg.visit)
                self.links.report(visit.id, perm.officer_desk(actor), msg.grade, now)
                out.append((me, Ack(re=msg.id, visit=msg.visit)))
            case _:  # pragma: no cover - decode_client admits only the types above
                raise p.ProtocolError(ErrorCode.UNKNOWN_TYPE, "unhandled message")

    # -- supervision: coach and barge ---------------------------------------------------

    def _supervise(
        self,
        conn: Conn,
        actor: Actor,
        desk: Desk,
        mode: p.SupervisionMode,
        now: float,
        result: Result,
    ) -> None:
        """Start, switch or end (``monitor``) this connection's coach/barge of ``desk``."""
        current = self.supervisions.of_desk(desk.id)
        if mode == "monitor":
            if current is not None and current.conn == conn.id:
                self._end_supervision(actor, current, now, result)
            return
        if current is not None and current.conn != conn.id:
            raise DomainError(
                ErrorCode.CONFLICT, f"desk {desk.id} is already {current.mode}ed by {current.sub}"
            )
        if current is not None and current.mode == mode:
            return  # already so: nothing to log
        elsewhere = self.supervisions.of_conn(conn.id)
        if elsewhere is not None and elsewhere.desk != desk.id:  # one desk at a time
            self._end_supervision(actor, elsewhere, now, result)
        was_barged = self.supervisions.barged(desk.id)
        started = Supervising(desk.id, conn.id, actor.sub, actor.role, mode)
        self.supervisions.start(started)
        result.events += self.domain.log_supervision(actor, desk.id, mode, started.peer, now)
        self._tell_desk(started, mode, was_barged, result)

    def _end_supervision(
        self, actor: Actor, supervising: Supervising, now: float, result: Result
    ) -> None:
        was_barged = supervising.mode == "barge"
        self.supervisions.end(supervising.desk)
        self.relay.supervision_ended(supervising.desk, supervising.peer)
        result.events += self.domain.log_supervision(
            actor, supervising.desk, "monitor", supervising.peer, now
        )
        self._tell_desk(supervising, "monitor", was_barged, result)

    def _tell_desk(
        self,
        supervising: Supervising,
        mode: p.SupervisionMode,
        was_barged: bool,
        result: Result,
    ) -> None:
        """The desk's officer learns the supervisor's part; the on-air booth whether a
        barging supervisor is in its conversation (when that changed)."""
        desk = self.state.desks[supervising.desk]
        message = _supervision(supervising, mode)
        officers = self.sessions.holders(("desk", desk.office, desk.id))
        result.outputs += [(c, message) for c in officers]
        if was_barged != (mode == "barge") and desk.on_air is not None:
            booth_state = self.projection.booth_state(desk.on_air)
            holders = self.sessions.booth_holders(self.state.visits[desk.on_air])
            result.outputs += [(c, booth_state) for c in holders]

    def _officer_present(self, desk: Desk) -> bool:
        return bool(self.sessions.holders(("desk", desk.office, desk.id)))


def _supervision(supervising: Supervising, mode: p.SupervisionMode) -> Supervision:
    return Supervision(
        desk=supervising.desk,
        supervisor=supervising.peer,
        sub=supervising.sub,
        mode=mode,
    )
