"""The office overview a supervisor asks for: desks, queue and today's figures.

"Today" starts at midnight in the injected time zone (the office's), never the host's
clock or zone read here.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from datetime import datetime, tzinfo

from lapak.signaling.alerts import AlertRules, LinkGrades, office_alerts
from lapak.signaling.messages import EscalationEntry, OfficeDesk, OfficeFigures, QueueEntry
from lapak.signaling.state import Desk, State, Visit, queue_position
from lapak.signaling.views import Presence, estimated_wait_s, nobody, visit_view


def day_start(now: float, tz: tzinfo) -> float:
    """The Unix time of the midnight that began ``now``'s day in ``tz``."""
    local = datetime.fromtimestamp(now, tz)
    since = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    return now - since


def office_stats(
    state: State,
    office: str,
    now: float,
    tz: tzinfo,
    present: Callable[[Desk], bool],
    default_visit_s: float,
    presence: Presence = nobody,
    rules: AlertRules | None = None,
    links: LinkGrades | None = None,
) -> OfficeFigures:
    """``office`` may be ``*`` (every office); ``present`` says whether a desk's officer is
    connected, ``presence`` whether a visit's booth is (the hub knows)."""
    desks = [
        OfficeDesk(
            desk=d.id,
            officer=d.officer,
            capacity=d.capacity,
            load=len(d.slots),
            on_air=d.on_air,
            on_air_booth=state.visits[d.on_air].booth if d.on_air in state.visits else None,
            closed=d.closed,
            vacant=d.vacant,
            present=present(d),
        )
        for d in sorted(state.desks.values(), key=lambda d: d.id)
        if office in (d.office, "*")
    ]
    offices = sorted(state.queues) if office == "*" else [office]
    queue = [
        QueueEntry(
            visit=v.id,
            booth=v.booth,
            position=queue_position(state, v),
            waiting_s=now - v.started_at,
            estimated_wait_s=estimated_wait_s(state, v, default_visit_s),
        )
        for v in (state.visits[vid] for o in offices for vid in state.queues.get(o, []))
    ]
    start = day_start(now, tz)
    today = [
        v for v in state.visits.values() if office in (v.office, "*") and v.started_at >= start
    ]
    waits = [v.routed_at - v.started_at for v in today if v.routed_at is not None]
    ended = [v for v in today if v.ended_at is not None]
    hours = max((now - min((v.started_at for v in today), default=now)) / 3600, 1 / 60)
    return OfficeFigures(
        office=office,
        desks=desks,
        queue=queue,
        median_wait_s=statistics.median(waits) if waits else None,
        visits_today=len(today),
        visits_per_hour=len(ended) / hours if ended else 0.0,
        outcomes=dict(Counter(v.outcome or "" for v in ended)),
        escalations=escalations(state, office, now, presence),
        alerts=office_alerts(state, office, now, rules or AlertRules(), presence, links),
    )


def escalations(state: State, office: str, now: float, presence: Presence) -> list[EscalationEntry]:
    """The office's escalated visits: waiting ones first, oldest first, then those being
    resolved."""
    found = [
        v for v in state.visits.values() if v.state == "escalated" and office in (v.office, "*")
    ]
    found.sort(key=lambda v: (v.taken_by is not None, v.escalated_at or 0.0, v.id))
    return [_escalation(v, now, presence) for v in found]


def _escalation(visit: Visit, now: float, presence: Presence) -> EscalationEntry:
    view = visit_view(visit, presence)
    at = visit.escalated_at if visit.escalated_at is not None else now
    return EscalationEntry(
        visit=visit.id,
        booth=visit.booth,
        office=visit.office,
        desk=visit.escalated_from,
        by=visit.escalated_by or "",
        note=visit.note or "",
        escalated_at=at,
        waiting_s=max(0.0, now - at),
        taken_by=visit.taken_by,
        booth_present=view.booth_present,
        visit_view=view,
    )
