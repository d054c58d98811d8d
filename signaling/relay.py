"""SDP relay rules (contract in docs/protocol.md): who may offer or answer to whom, and the
latest offer each offerer relayed to each booth, so a stale answer is never relayed.

The officer of the visit's desk offers to the booth; a supervisor watching the desk may
offer a receive-only connection. The booth only answers, and an answer is relayed only if
it names the latest offer relayed to that booth by that offerer. Offers are forgotten in
one place, ``on_events``, when the visit leaves its desk or ends.
"""

from __future__ import annotations

from lapak.signaling import protocol as p
from lapak.signaling.errors import AccessDenied, DomainError
from lapak.signaling.events import Event, VisitEnded, VisitEscalated, VisitQueued
from lapak.signaling.messages import PeerLeft, SdpRelay, Sender
from lapak.signaling.permissions import RECORDERS, WATCHERS, Place, booth_place
from lapak.signaling.protocol import ErrorCode
from lapak.signaling.sessions import Conn, Sessions
from lapak.signaling.state import State, Visit
from lapak.signaling.supervision import Supervisions

OFFICER = "officer"  # the offerer key of a desk's officer; a supervisor's is its peer id
RECEIVERS = (*WATCHERS, *RECORDERS)  # receive-only peers, each named by its connection id


class Relay:
    def __init__(
        self, state: State, sessions: Sessions, supervisions: Supervisions | None = None
    ) -> None:
        self.state = state
        self.sessions = sessions
        self.supervisions = supervisions or Supervisions()
        # booth place -> offerer -> (visit, offer_id) of the latest offer relayed to it
        self._offers: dict[Place, dict[str, tuple[str, str]]] = {}
        # desk -> supervisor peer -> offer_id of its latest offer relayed to the officer
        self._desk_offers: dict[str, dict[str, str]] = {}

    def relay(self, conn: Conn, msg: p.Sdp) -> list[tuple[int, SdpRelay]]:
        """The relayed message for each target, or a LapakError saying why not."""
        actor = conn.actor
        assert actor is not None
        if msg.desk is not None:
            return self._relay_desk(conn, msg)
        if not msg.visit:
            raise p.ProtocolError(ErrorCode.INVALID_MESSAGE, "sdp: name a visit (or a desk)")
        visit = self.state.visits.get(msg.visit)
        if visit is None or visit.state not in ("active", "escalated"):
            raise DomainError(ErrorCode.VISIT_NOT_ACTIVE, f"visit {msg.visit} is not active")
        if msg.offer_id is None:  # an answer names its offer, so every offer needs a name
            raise p.ProtocolError(ErrorCode.INVALID_MESSAGE, "sdp: offer_id is required")
        place = booth_place(visit)
        peer: str | None = None
        sender: Sender
        if actor.role == "officer" and actor.desk == visit.desk:
            _only(msg, "offer", "the officer only offers")
            targets = self.sessions.holders(place)
            sender, offerer = "officer", OFFICER
        elif actor.role in RECEIVERS and _sees(conn, visit):
            _only(msg, "offer", f"a {actor.role} only offers")
            targets = self.sessions.holders(place)
            sender = "recorder" if actor.role in RECORDERS else "supervisor"
            peer = offerer = str(conn.id)
        elif actor.role == "booth" and actor.place == place:
            _only(msg, "answer", "a booth only answers")
            sender, offerer = "booth", msg.peer or OFFICER
            if self._offers.get(place, {}).get(offerer) != (visit.id, msg.offer_id):
                raise DomainError(
                    ErrorCode.STALE_ANSWER, "that is not the latest offer relayed to this booth"
                )
            targets = self._answer_targets(visit, msg.peer)
            peer = msg.peer
        else:
            raise AccessDenied(ErrorCode.FORBIDDEN, "not a peer of this visit")
        if not targets:
            raise DomainError(ErrorCode.NOT_CONNECTED, "the other peer is not connected")
        if msg.sdp_type == "offer":
            self._offers.setdefault(place, {})[offerer] = (visit.id, msg.offer_id)
        relayed = SdpRelay(
            visit=msg.visit,
            sdp_type=msg.sdp_type,
            sdp=msg.sdp,
            from_=sender,
            offer_id=msg.offer_id,
            **({} if peer is None else {"peer": peer}),
        )
        return [(t, relayed) for t in targets]

    def _relay_desk(self, conn: Conn, msg: p.Sdp) -> list[tuple[int, SdpRelay]]:
        """Between the supervisor coaching or barging a desk and that desk's officer: the
        supervisor offers, the officer answers naming the supervisor's ``peer``."""
        actor = conn.actor
        assert actor is not None and msg.desk is not None
        if msg.visit:
            message = "sdp: name a visit or a desk, not both"
            raise p.ProtocolError(ErrorCode.INVALID_MESSAGE, message)
        if msg.offer_id is None:
            raise p.ProtocolError(ErrorCode.INVALID_MESSAGE, "sdp: offer_id is required")
        desk = self.state.desks.get(msg.desk)
        if desk is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"no desk {msg.desk}")
        supervising = self.supervisions.of_desk(desk.id)
        offers = self._desk_offers.setdefault(desk.id, {})
        sender: Sender
        if actor.role in WATCHERS:
            _only(msg, "offer", "a supervisor only offers")
            if supervising is None or supervising.conn != conn.id:
                raise AccessDenied(
                    ErrorCode.FORBIDDEN, f"coach or barge desk {desk.id} before offering to it"
                )
            sender, peer = "supervisor", supervising.peer
            targets = self.sessions.holders(("desk", desk.office, desk.id))
        elif actor.role == "officer" and actor.desk == desk.id:
            _only(msg, "answer", "the officer only answers a supervisor")
            if msg.peer is None:
                raise p.ProtocolError(ErrorCode.INVALID_MESSAGE, "sdp: answer names its peer")
            if offers.get(msg.peer) != msg.offer_id:
                raise DomainError(
                    ErrorCode.STALE_ANSWER, "that is not the latest offer of that supervisor"
                )
            sender, peer = "officer", msg.peer
            targets = [supervising.conn] if supervising and supervising.peer == peer else []
        else:
            raise AccessDenied(ErrorCode.FORBIDDEN, "not a peer of this desk")
        if not targets:
            raise DomainError(ErrorCode.NOT_CONNECTED, "the other peer is not connected")
        if msg.sdp_type == "offer":
            offers[peer] = msg.offer_id
        relayed = SdpRelay(
            visit="",
            sdp_type=msg.sdp_type,
            sdp=msg.sdp,
            from_=sender,
            offer_id=msg.offer_id,
            peer=peer,
            desk=desk.id,
        )
        return [(t, relayed) for t in targets]

    def supervision_ended(self, desk: str, peer: str) -> None:
        """The supervisor went back to monitor or left: answers to its offers are stale."""
        self._desk_offers.get(desk, {}).pop(peer, None)

    def _answer_targets(self, visit: Visit, peer: str | None) -> list[int]:
        """Who gets a booth's answer: the supervisor connection named by ``peer``, if it
        still watches the visit's desk, else the officer of the desk."""
        if peer is None:
            desk = self.state.desks.get(visit.desk or "")
            return self.sessions.holders(("desk", desk.office, desk.id)) if desk else []
        watcher = self.sessions.conns.get(int(peer)) if peer.isdigit() else None
        if watcher is None or watcher.claims is None or watcher.claims.role not in RECEIVERS:
            return []
        return [watcher.id] if _sees(watcher, visit) else []

    def watcher_left(self, conn: Conn) -> list[tuple[int, PeerLeft]]:
        """A supervisor or admin leaves: booths of the desks it watched drop its peer."""
        if conn.claims is None or conn.claims.role not in RECEIVERS:
            return []
        peer = str(conn.id)
        outputs: list[tuple[int, PeerLeft]] = []
        for desk_id in sorted(conn.watching):
            desk = self.state.desks.get(desk_id)
            for visit_id in sorted(desk.slots.values()) if desk else ():
                visit = self.state.visits[visit_id]
                self._offers.get(booth_place(visit), {}).pop(peer, None)
                left = PeerLeft(visit=visit_id, peer=peer)
                outputs += [(c, left) for c in self.sessions.booth_holders(visit)]
        for booths in self.state.open_by_booth.values():  # escalations it resolved/recorded
            for visit_id in sorted(booths.values()):
                visit = self.state.visits[visit_id]
                offers = self._offers.get(booth_place(visit), {})
                mine = _resolver(conn, visit) or _escalation_recorder(conn, visit)
                if mine and offers.pop(peer, None) is not None:
                    left = PeerLeft(visit=visit_id, peer=peer)
                    outputs += [(c, left) for c in self.sessions.booth_holders(visit)]
        return outputs

    def on_events(self, events: list[Event]) -> None:
        """A visit that left its desk voids its officer's offer (the next desk's officer
        offers afresh); an ended visit voids every offer to its booth."""
        for event in events:
            if isinstance(event, VisitQueued | VisitEscalated):
                place = booth_place(self.state.visits[event.visit])
                self._offers.get(place, {}).pop(OFFICER, None)
            elif isinstance(event, VisitEnded):
                self._offers.pop(booth_place(self.state.visits[event.visit]), None)


def _sees(conn: Conn, visit: Visit) -> bool:
    """A supervisor connection may have media with this visit's booth: it watches the
    visit's desk, or resolves the escalated visit (or records it)."""
    return (
        _resolver(conn, visit)
        or _escalation_recorder(conn, visit)
        or (visit.desk is not None and visit.desk in conn.watching)
    )


def _escalation_recorder(conn: Conn, visit: Visit) -> bool:
    """A recorder of the visit's office keeps recording an escalated visit: it left its
    desk, but the recording runs to the visit's end, so the recorder's (re)offers and the
    booth's answers still pass."""
    actor = conn.actor
    return (
        visit.state == "escalated"
        and actor is not None
        and actor.role in RECORDERS
        and actor.office == visit.office
    )


def _resolver(conn: Conn, visit: Visit) -> bool:
    """The connection is of the supervisor resolving this escalated visit: it speaks with
    the booth (its offers and the booth's answers pass, no desk involved)."""
    actor = conn.actor
    return (
        visit.state == "escalated"
        and visit.taken_by is not None
        and actor is not None
        and actor.sub == visit.taken_by
        and actor.office in (visit.office, "*")
    )


def _only(msg: p.Sdp, sdp_type: str, message: str) -> None:
    if msg.sdp_type != sdp_type:
        raise AccessDenied(ErrorCode.FORBIDDEN, message)
