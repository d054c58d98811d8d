"""Accepted events and presence changes → what each watcher and booth is told: per-desk
``delta``s (numbered by ``seq``, listing every visit whose view changed), ``snapshot``s and
``booth_state``s (messages.py structs)."""

from __future__ import annotations

from collections import Counter

from lapak.signaling import events as ev
from lapak.signaling.events import Event
from lapak.signaling.messages import BoothState, Delta, ServerMessage, Snapshot, VisitView
from lapak.signaling.permissions import WATCHERS
from lapak.signaling.sessions import Sessions
from lapak.signaling.state import Desk, State, queue_position
from lapak.signaling.supervision import Supervisions
from lapak.signaling.views import desk_view, estimated_wait_s, visit_view

Output = tuple[int, ServerMessage]


class Projection:
    def __init__(
        self,
        state: State,
        sessions: Sessions,
        default_visit_s: float,
        video_tiers: bool = True,
        supervisions: Supervisions | None = None,
    ) -> None:
        self.state = state
        self.supervisions = supervisions or Supervisions()
        self.video_tiers = video_tiers  # False: every booth sends full video
        self.recording = False  # the server records visits: booth_state.recorded from routing
        self.sessions = sessions
        self.default_visit_s = default_visit_s
        self._desk_seq: Counter[str] = Counter()
        self._desk_queue: dict[str, int] = {}  # the office queue length each desk was last told
        self.zoomed: dict[str, str] = {}  # desk -> the visit its officer zoomed (not logged)

    def snapshot(self, desk: str, re: int | None) -> Snapshot:
        state = desk_view(self.state, desk, self.sessions.presence)
        return Snapshot(re=re, desk=desk, seq=self._desk_seq[desk], state=state)

    def booth_state(self, visit_id: str, view: VisitView | None = None) -> BoothState:
        visit = self.state.visits[visit_id]
        desk = self.state.desks.get(visit.desk) if visit.desk else None
        on_air = bool(desk and desk.on_air == visit.id)
        # a supervisor resolving an escalation looks closely, like a zoom
        zoomed = bool(desk and self.zoomed.get(desk.id) == visit.id) or visit.taken_by is not None
        return BoothState.of(
            view or visit_view(visit, self.sessions.presence),
            on_air=on_air,
            video="full" if on_air or zoomed or not self.video_tiers else "thumbnail",
            position=queue_position(self.state, visit),
            estimated_wait_s=estimated_wait_s(self.state, visit, self.default_visit_s),
            queue=len(self.state.queues.get(visit.office, [])),
            supervisor_present=self.supervisor_present(visit_id),
            recorded=self.recording and visit.routed_at is not None,
            barge_peer=self.barge_peer(visit_id),
        )

    def supervisor_present(self, visit_id: str) -> bool:
        """A supervisor speaks to this booth: it is on air at a desk being barged, or its
        escalation was taken by a supervisor."""
        visit = self.state.visits[visit_id]
        if visit.state == "escalated":
            return visit.taken_by is not None
        desk = self.state.desks.get(visit.desk) if visit.desk else None
        return bool(desk and desk.on_air == visit.id and self.supervisions.barged(desk.id))

    def barge_peer(self, visit_id: str) -> str | None:
        """The ``peer`` whose voice the booth plays: the supervisor barging its on-air desk,
        or the newest connection of the supervisor resolving its escalation (None while
        that supervisor is not connected)."""
        visit = self.state.visits[visit_id]
        if visit.state == "escalated":
            if visit.taken_by is None:
                return None
            conns = [
                c.id
                for c in self.sessions.conns.values()
                if c.actor is not None
                and not c.gone
                and c.actor.role in WATCHERS
                and c.actor.sub == visit.taken_by
                and c.actor.office in (visit.office, "*")
            ]
            return str(max(conns)) if conns else None
        desk = self.state.desks.get(visit.desk) if visit.desk else None
        if desk is None or desk.on_air != visit.id:
            return None
        found = self.supervisions.of_desk(desk.id)
        return found.peer if found is not None and found.mode == "barge" else None

    def zoom(self, desk: str, visit: str | None) -> list[Output]:
        """The desk's zoomed visit moved: the booths that left and entered the zoom are told
        their new ``video`` (the caller checked that ``visit`` sits at ``desk``)."""
        before = self.zoomed.pop(desk, None)
        if visit is not None:
            self.zoomed[desk] = visit
        outputs: list[Output] = []
        changed = [] if before == visit else [v for v in (before, visit) if v is not None]
        for visit_id in changed:
            message = self.booth_state(visit_id)
            holders = self.sessions.booth_holders(self.state.visits[visit_id])
            outputs += [(c, message) for c in holders]
        return outputs

    def project(self, events: list[Event], touched: set[str]) -> list[Output]:
        """The deltas and booth states that ``events`` and the presence changes of the
        ``touched`` visits call for."""
        s = self.state
        desks: dict[str, set[str]] = {}
        visits: set[str] = set()
        offices: set[str] = set()
        by_office: dict[str, list[Desk]] = {}

        def desks_of(office: str) -> list[Desk]:
            """The office's desks, listed once per fan-out however many events need them."""
            if office not in by_office:
                by_office[office] = [d for d in s.desks.values() if d.office == office]
            return by_office[office]

        for event in events:
            match event:
                case ev.VisitRouted():
                    desks.setdefault(event.desk, set()).add(event.visit)
                    visits.add(event.visit)
                    offices.add(s.visits[event.visit].office)
                case ev.VisitQueued() | ev.VisitEnded() | ev.VisitEscalated():
                    # it may have left a desk: every desk of the office re-reads its seats
                    visit = s.visits[event.visit]
                    for zoom_desk, zoomed in list(self.zoomed.items()):
                        if zoomed == visit.id:  # a zoom never outlives the seat
                            del self.zoomed[zoom_desk]
                    for desk in desks_of(visit.office):
                        desks.setdefault(desk.id, set()).add(visit.id)
                    visits.add(visit.id)
                    offices.add(visit.office)
                case ev.VisitStarted():
                    visits.add(event.visit)
                case ev.FocusChanged():
                    # on_air_since / last_on_air_at moved for who left the air and who came on
                    seated = s.desks[event.desk].slots.values()
                    desks.setdefault(event.desk, set()).update(seated)
                    visits.update(seated)
                case ev.StepDecided() | ev.SnapshotTaken() | ev.EscalationTaken():
                    visit = s.visits[event.visit]
                    if visit.desk:
                        desks.setdefault(visit.desk, set()).add(visit.id)
                    visits.add(visit.id)
                case ev.DeskOpened() | ev.DeskConfigured() | ev.DeskClosed() | ev.DeskVacated():
                    desks.setdefault(event.desk, set())
                    offices.add(s.desks[event.desk].office)
        for office in offices:  # queue positions moved for everyone still waiting
            visits.update(s.queues.get(office, []))
            waiting = len(s.queues.get(office, []))
            for desk in desks_of(office):  # and desks show the queue's length
                if self._desk_queue.get(desk.id) != waiting:
                    desks.setdefault(desk.id, set())
        for visit_id in touched:  # presence changed: no event, but the view did
            visits.add(visit_id)
            desk_id = s.visits[visit_id].desk
            if desk_id is not None:
                desks.setdefault(desk_id, set()).add(visit_id)
        views: dict[str, VisitView] = {}

        def view(visit_id: str) -> VisitView:
            found = views.get(visit_id)
            if found is None:
                found = views[visit_id] = visit_view(s.visits[visit_id], self.sessions.presence)
            return found

        outputs: list[Output] = []
        for desk_id, changed in desks.items():
            desk = s.desks[desk_id]
            queue = len(s.queues.get(desk.office, []))
            self._desk_seq[desk_id] += 1
            self._desk_queue[desk_id] = queue
            watchers = self.sessions.watchers(desk_id)
            if not watchers:
                continue
            delta = Delta(
                desk=desk_id,
                seq=self._desk_seq[desk_id],
                officer=desk.officer,
                on_air=desk.on_air,
                closed=desk.closed,
                vacant=desk.vacant,
                capacity=desk.capacity,
                queue=queue,
                visits=[view(v) for v in sorted(changed)],
            )
            outputs += [(c, delta) for c in watchers]
        for visit_id in sorted(visits):
            conns = self.sessions.booth_holders(s.visits[visit_id])
            if conns:
                message = self.booth_state(visit_id, view(visit_id))
                outputs += [(c, message) for c in conns]
        return outputs
