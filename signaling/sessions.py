"""Connections and the places they hold: sessions and resume, presence and grace periods,
desk watchers, token expiry and per-connection rate limits. Sans-I/O bookkeeping: the hub
asks and turns the answers into messages and events."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lapak.signaling.permissions import Actor, Place, booth_place
from lapak.signaling.resume import SessionSeal
from lapak.signaling.state import State, Visit, open_visit
from lapak.signaling.tokens import Claims

FLOOD_CLOSE_AFTER = 200  # refused frames in a row before the connection is closed


@dataclass
class Conn:
    id: int
    claims: Claims | None = None  # set by hello; a refresh swaps in a fresh token
    actor: Actor | None = None  # who the claims name (a refresh keeps the identity)
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


@dataclass(frozen=True)
class Joined:
    """What a hello changed: the session to announce, and whom it displaced."""

    session: str | None
    resumed: bool
    was_away: bool
    replaced: list[int]  # older connections of the same officer's desk (closed 4002)


class Sessions:
    def __init__(
        self,
        state: State,
        *,
        rate_per_s: float,
        rate_burst: int,
        grace_s: float,
        new_session_id: Callable[[], str],
        since: Away,
        keys: Callable[[], Sequence[bytes]] = lambda: (),
    ) -> None:
        self.rate_per_s = rate_per_s
        self.rate_burst = rate_burst
        self.grace_s = grace_s
        self.state = state
        # Session ids carry a MAC of their place (signaling/resume.py) when there are keys,
        # so that a node taking an office over resumes the sessions another node issued.
        self.seal = SessionSeal(keys, new_session_id)
        self._sealed = bool(keys())
        self._new_session_id = new_session_id
        self.conns: dict[int, Conn] = {}
        self._ids = itertools.count(1)
        self._desk_watchers: dict[str, set[int]] = {}
        # Who holds each place (a booth, an officer's desk): connection ids, kept as they come
        # and go so that presence and booth fan-out never scan every connection.
        self._holders: dict[Place, set[int]] = {}
        self._sessions: dict[Place, str] = {}
        # Places whose holder is away. After a restart everyone is away until they say
        # hello again, so the grace period starts at startup.
        self.away: dict[Place, Away] = {}
        # When this node took each office over (None: every office, at start-up): within
        # the grace period after that, a sealed session it never issued still resumes.
        self.taken_over: dict[str | None, Away] = {None: since}
        for office, booths in state.open_by_booth.items():
            for booth in booths:
                self.away[("booth", office, booth)] = since
        for desk in state.desks.values():
            if desk.slots:
                self.away[("desk", desk.office, desk.id)] = since

    def take_over(self, office: str, since: Away) -> None:
        """This node now owns ``office`` (adopted from the store after another node had it):
        as after a restart, its booths with an open visit and its desks holding visits count
        as away since now, and their sessions may resume within the grace period."""
        self.taken_over[office] = since
        for place in [p for p in self._sessions if p[1] == office and not self._holders.get(p)]:
            del self._sessions[place]  # from an earlier time here: another node had it since
        for booth in self.state.open_by_booth.get(office, {}):
            place = ("booth", office, booth)
            if not self._holders.get(place):
                self.away.setdefault(place, since)
        for desk in self.state.desks.values():
            place = ("desk", desk.office, desk.id)
            if desk.office == office and desk.slots and not self._holders.get(place):
                self.away.setdefault(place, since)

    # -- connections -------------------------------------------------------------------

    def connect(self) -> int:
        conn = Conn(next(self._ids), tokens=float(self.rate_burst))
        self.conns[conn.id] = conn
        return conn.id

    def take_token(self, conn: Conn, mono: float) -> bool:
        """Token bucket: ``rate_per_s`` sustained, ``rate_burst`` at once."""
        elapsed = max(0.0, mono - conn.refill_at)
        conn.refill_at = mono
        conn.tokens = min(float(self.rate_burst), conn.tokens + elapsed * self.rate_per_s)
        if conn.tokens < 1.0:
            conn.refused_in_row += 1
            return False
        conn.tokens -= 1.0
        return True

    def flooding(self, conn: Conn) -> bool:
        return conn.refused_in_row >= FLOOD_CLOSE_AFTER

    def join(self, conn: Conn, claims: Claims, asked: str | None, mono: float = 0.0) -> Joined:
        """Accept a hello: the connection holds its place (resuming ``asked`` if it is the
        place's session), a newer officer connection displacing the older ones."""
        conn.claims, conn.actor = claims, Actor.of(claims)
        place = conn.actor.place
        if place is None:
            return Joined(None, False, False, [])
        known = self._sessions.get(place)
        if known is not None:
            resumed = asked == known
        else:  # issued by another node (or before a restart) for this place?
            resumed = asked is not None and self._resumable(place, asked, conn.actor.sub, mono)
        if resumed:
            assert asked is not None
            session = asked
        elif self._sealed:
            session = self.seal.issue(place)
        else:
            session = self._new_session_id()
        self._sessions[place] = session
        conn.session = session
        was_away = self.away.pop(place, None) is not None
        replaced = self._take_over(place) if place[0] == "desk" else []
        self._holders.setdefault(place, set()).add(conn.id)
        return Joined(session, resumed, was_away, replaced)

    def _resumable(self, place: Place, asked: str, sub: str, mono: float) -> bool:
        """A session this node does not know resumes when it was sealed for this place,
        the node took the place's office over less than the grace period ago (``mono`` of
        that moment is the latest of start-up and adoption), and the place still holds
        something: a booth its open visit, an officer its desk (not vacated, not closed)."""
        kind, office, ident = place
        since = self.taken_over.get(office) or self.taken_over[None]
        if mono - since.mono >= self.grace_s:
            return False
        if kind == "booth":
            holds = open_visit(self.state, office, ident) is not None
        else:
            desk = self.state.desks.get(ident)
            holds = (
                desk is not None and desk.office == office and desk.officer == sub
                and not desk.vacant and not desk.closed
            )  # fmt: skip
        return holds and self._sealed and self.seal.check(place, asked)

    def _take_over(self, place: Place) -> list[int]:
        replaced = []
        for old_id in sorted(self._holders.pop(place, ())):
            old = self.conns.get(old_id)
            if old is not None:
                old.gone = True
                self._unwatch(old)
                replaced.append(old_id)
        return replaced

    def leave(self, conn_id: int, wall: float, mono: float) -> tuple[Conn | None, Place | None]:
        """Forget a connection; returns it and the place it left empty (now away)."""
        conn = self.conns.pop(conn_id, None)
        if conn is None:
            return None, None
        self._unwatch(conn)
        actor = conn.actor
        place = actor.place if actor is not None else None
        if place is None:
            return conn, None
        holders = self._holders.get(place, set())
        holders.discard(conn_id)
        if holders or place not in self._holders:
            return conn, None
        del self._holders[place]
        self.away[place] = Away(wall, mono)
        return conn, place

    def role_counts(self) -> Counter[str]:
        return Counter(c.claims.role if c.claims else "anonymous" for c in self.conns.values())

    # -- time --------------------------------------------------------------------------

    def expired(self, now: float) -> list[Conn]:
        """Connections whose token ran out (the hub says so and closes them)."""
        return [
            c
            for c in self.conns.values()
            if c.claims is not None and not c.gone and c.claims.exp <= now
        ]

    def holding(self, jtis: frozenset[str]) -> list[Conn]:
        """Live connections whose token id is in ``jtis`` (revoked)."""
        return [
            c
            for c in self.conns.values()
            if c.claims is not None and not c.gone and c.claims.jti in jtis
        ]

    def overdue(self, mono: float) -> list[Place]:
        """Places away longer than the grace period: given up, with their sessions."""
        gone = [p for p, since in self.away.items() if mono - since.mono >= self.grace_s]
        for place in gone:
            del self.away[place]
            self._sessions.pop(place, None)
        return gone

    # -- who is where ------------------------------------------------------------------

    def holders(self, place: Place) -> list[int]:
        return sorted(self._holders.get(place, ()))

    def booth_holders(self, visit: Visit) -> list[int]:
        return self.holders(booth_place(visit))

    def presence(self, visit: Visit) -> tuple[bool, float | None]:
        """Is the visit's booth connected, and if not, since when (wall clock) is it away."""
        place = booth_place(visit)
        if self._holders.get(place):
            return True, None
        away = self.away.get(place)
        return False, away.wall if away is not None else None

    def watch(self, conn: Conn, desk: str) -> None:
        conn.watching.add(desk)
        self._desk_watchers.setdefault(desk, set()).add(conn.id)

    def watchers(self, desk: str) -> list[int]:
        return sorted(self._desk_watchers.get(desk, ()))

    def _unwatch(self, conn: Conn) -> None:
        for desk in conn.watching:
            self._desk_watchers.get(desk, set()).discard(conn.id)
        conn.watching.clear()
