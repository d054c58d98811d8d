"""Every office's overview, whichever node a ``*`` supervisor or admin reached (a cluster).

Each node owns some offices and holds only their state. Each tick it publishes an
``OfficeDigest`` per owned office into the store (signaling/pgoverview.py) and reads the
others' back; a ``*`` ``office_stats`` merges its own offices, computed now, with the digests
of the offices other nodes own. Why the store and not a fan-out to the other nodes: the
answer costs no round trip and never waits on a slow or dead node; a node's answer for
another's office is at most one tick (plus a store round trip) old, which an overview
refreshed by a person tolerates; and the nodes need no way to call each other (no extra
port, no node-to-node authentication). A digest carries what an exact merge needs beyond
the figures: today's waits (the median is of them all) and the ended count and first start
(visits per hour). Pure: no I/O, no clock.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import tzinfo

import msgspec

from lapak.signaling.alerts import ORDER, AlertRules, LinkGrades
from lapak.signaling.messages import OfficeFigures
from lapak.signaling.office_stats import day_start, office_stats
from lapak.signaling.state import Desk, State
from lapak.signaling.views import Presence


class OfficeDigest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One office's overview as its owner computed it at ``at`` (wall clock)."""

    office: str
    at: float
    figures: OfficeFigures
    waits: list[float]  # today's routed visits' waits, for an exact median
    ended: int  # today's ended visits
    first_start: float | None  # today's first visit start, for visits per hour


def office_digest(
    state: State,
    office: str,
    now: float,
    tz: tzinfo,
    present: Callable[[Desk], bool],
    default_visit_s: float,
    presence: Presence,
    rules: AlertRules,
    links: LinkGrades | None = None,
) -> OfficeDigest:
    """``office``'s figures (as ``office_stats`` gives them) and what merging them needs."""
    figures = office_stats(state, office, now, tz, present, default_visit_s, presence, rules, links)
    start = day_start(now, tz)
    today = [v for v in state.visits.values() if v.office == office and v.started_at >= start]
    return OfficeDigest(
        office=office,
        at=now,
        figures=figures,
        waits=[v.routed_at - v.started_at for v in today if v.routed_at is not None],
        ended=sum(1 for v in today if v.ended_at is not None),
        first_start=min((v.started_at for v in today), default=None),
    )


def merge(digests: Iterable[OfficeDigest], now: float) -> OfficeFigures:
    """The ``*`` overview of these offices, ordered as ``office_stats(state, "*")`` orders
    one node's: desks by id, the queue office by office, escalations waiting first then
    oldest, alerts most pressing kind first then longest."""
    parts = sorted(digests, key=lambda d: d.office)
    figures = [d.figures for d in parts]
    waits = [w for d in parts for w in d.waits]
    ended = sum(d.ended for d in parts)
    first = min((d.first_start for d in parts if d.first_start is not None), default=now)
    hours = max((now - first) / 3600, 1 / 60)
    outcomes: Counter[str] = Counter()
    for f in figures:
        outcomes.update(f.outcomes)
    escalations = [e for f in figures for e in f.escalations]
    escalations.sort(key=lambda e: (e.taken_by is not None, e.escalated_at, e.visit))
    alerts = [a for f in figures for a in f.alerts]
    alerts.sort(key=lambda a: (ORDER.index(a.kind), -a.seconds, a.visit or ""))
    return OfficeFigures(
        office="*",
        desks=sorted((d for f in figures for d in f.desks), key=lambda d: d.desk),
        queue=[q for f in figures for q in f.queue],
        median_wait_s=statistics.median(waits) if waits else None,
        visits_today=sum(f.visits_today for f in figures),
        visits_per_hour=ended / hours if ended else 0.0,
        outcomes=dict(outcomes),
        escalations=escalations,
        alerts=alerts,
    )


@dataclass
class RemoteOffices:
    """What this node knows of the offices other nodes own (the shell refreshes it each
    tick; empty on a single node, where ``*`` means this node's state as before)."""

    local: set[str] = field(default_factory=set)  # the offices this node owns
    digests: dict[str, OfficeDigest] = field(default_factory=dict)  # of the others' offices
    owners: dict[str, str] = field(default_factory=dict)  # office -> its owner's URL

    @property
    def active(self) -> bool:
        return bool(self.digests)

    def office_of_desk(self, desk: str) -> str | None:
        """The office of a desk another node owns, from its digest."""
        for office, digest in self.digests.items():
            if any(d.desk == desk for d in digest.figures.desks):
                return office
        return None

    def desks(self) -> list[str]:
        return sorted(d.desk for g in self.digests.values() for d in g.figures.desks)

    def office_of_visit(self, visit: str) -> str | None:
        """The office of an open visit another node owns, from its digest: waiting in the
        queue, escalated (waiting or taken), on air, or named by an alert. An ended visit
        is in no digest (``None``)."""
        for office, digest in self.digests.items():
            f = digest.figures
            if (
                any(q.visit == visit for q in f.queue)
                or any(e.visit == visit for e in f.escalations)
                or any(d.on_air == visit for d in f.desks)
                or any(a.visit == visit for a in f.alerts)
            ):
                return office
        return None
