"""What a supervisor should look at, computed from the state (pure: the clock, presence and
thresholds are inputs): escalations waiting, long queue waits, claimants not spoken to,
booths whose connection dropped, visits abandoned lately. Each alert says where it is (desk
and slot, the queue, or the escalation list) so a console can jump there.

The server cannot grade a media link (media flows peer to peer, officer to booth): the
officer's console grades it and reports each seated visit's grade when it changes
(``link_quality``); ``LinkGrades`` keeps the latest in memory (telemetry, not logged), and
``poor_link`` is a grade poor for longer than ``AlertRules.poor_link_s``. ``booth_away``
(the booth's signalling connection dropped, within its grace period) is the other half.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lapak.signaling.messages import Alert
from lapak.signaling.state import State, Visit
from lapak.signaling.views import Presence

ORDER = (
    "escalation_waiting",
    "booth_away",
    "poor_link",
    "not_spoken_to",
    "queue_wait",
    "abandoned",
)


@dataclass(frozen=True)
class AlertRules:
    """Thresholds, in seconds (``[server]`` keys ``alert_*``, configuration.md)."""

    queue_wait_s: float = 300.0  # a queued claimant waiting longer
    not_spoken_s: float = 300.0  # a seated claimant off air longer (the console's red)
    abandoned_window_s: float = 900.0  # abandoned visits this recent are listed
    poor_link_s: float = 5.0  # a seated visit's link graded poor longer


@dataclass(frozen=True)
class LinkGrade:
    """A visit's link as its officer's console last graded it, at which desk, and since when
    (Unix seconds) it has been poor (None while it is not)."""

    desk: str
    grade: str
    poor_since: float | None


@dataclass
class LinkGrades:
    """The latest grade per seated visit (in memory only: telemetry, not an event)."""

    by_visit: dict[str, LinkGrade] = field(default_factory=dict)

    def report(self, visit: str, desk: str, grade: str, now: float) -> None:
        """A new grade from the officer of ``desk``; a poor one keeps its first ``since``."""
        old = self.by_visit.get(visit)
        since = None
        if grade == "poor":
            kept = old is not None and old.desk == desk and old.poor_since is not None
            since = old.poor_since if kept and old is not None else now
        self.by_visit[visit] = LinkGrade(desk, grade, since)

    def poor_for(self, visit: Visit, now: float) -> float | None:
        """How long a seated visit's link has been poor at its present desk, else None."""
        link = self.by_visit.get(visit.id)
        if link is None or link.poor_since is None or visit.state != "active":
            return None
        if link.desk != visit.desk:  # graded at a desk it has left
            return None
        return now - link.poor_since

    def prune(self, state: State) -> None:
        """Forget visits no longer seated where they were graded (left, ended, requeued)."""
        for visit_id, link in list(self.by_visit.items()):
            visit = state.visits.get(visit_id)
            if visit is None or visit.state != "active" or visit.desk != link.desk:
                del self.by_visit[visit_id]


def _in(office: str, visit: Visit) -> bool:
    return office in (visit.office, "*")


def office_alerts(
    state: State,
    office: str,
    now: float,
    rules: AlertRules,
    presence: Presence,
    links: LinkGrades | None = None,
) -> list[Alert]:
    """The alerts of ``office`` (``*``: every office), most pressing kind first, then the
    longest first. ``presence`` says whether a visit's booth is connected, else since when
    it is away; ``links`` the officers' latest link grades."""
    found: list[Alert] = []

    def add(kind: str, visit: Visit, seconds: float, desk: str | None = None) -> None:
        found.append(
            Alert(
                kind=kind,  # type: ignore[arg-type]  # one of AlertKind, from ORDER
                office=visit.office,
                desk=desk if desk is not None else visit.desk,
                slot=visit.slot,
                visit=visit.id,
                booth=visit.booth,
                seconds=max(0.0, seconds),
            )
        )

    for visit in state.visits.values():
        if not _in(office, visit):
            continue
        if visit.state == "escalated" and visit.taken_by is None:
            add("escalation_waiting", visit, now - (visit.escalated_at or now),
                visit.escalated_from)  # fmt: skip
        if visit.state in ("active", "escalated"):
            present, away_since = presence(visit)
            if not present:
                away = now - away_since if away_since is not None else 0.0
                add("booth_away", visit, away, visit.desk or visit.escalated_from)
        poor = links.poor_for(visit, now) if links is not None else None
        if poor is not None and poor >= rules.poor_link_s:
            add("poor_link", visit, poor)
        if visit.state == "active" and visit.on_air_since is None:
            silent = now - visit.waiting_since()
            if silent >= rules.not_spoken_s:
                add("not_spoken_to", visit, silent)
        if visit.state == "queued" and now - visit.started_at >= rules.queue_wait_s:
            add("queue_wait", visit, now - visit.started_at)
        if (
            visit.state == "ended"
            and visit.outcome == "abandoned"
            and visit.ended_at is not None
            and now - visit.ended_at <= rules.abandoned_window_s
        ):
            add("abandoned", visit, now - visit.ended_at)
    found.sort(key=lambda a: (ORDER.index(a.kind), -a.seconds, a.visit or ""))
    return found


@dataclass(frozen=True)
class OfficeGauges:
    """An office's alert figures for Prometheus (``/metrics``)."""

    escalations_waiting: int
    queue_wait_max_s: float
    alerts: dict[str, int]


def office_gauges(
    state: State,
    now: float,
    rules: AlertRules,
    presence: Presence,
    links: LinkGrades | None = None,
) -> dict[str, OfficeGauges]:
    """Per office with desks, a queue or escalations: what ``office_alerts`` counts."""
    offices = {d.office for d in state.desks.values()} | set(state.queues)
    offices |= set(state.escalations)
    gauges: dict[str, OfficeGauges] = {}
    for office in sorted(offices):
        queued = [state.visits[v] for v in state.queues.get(office, []) if v in state.visits]
        counts = dict.fromkeys(ORDER, 0)
        for alert in office_alerts(state, office, now, rules, presence, links):
            counts[alert.kind] += 1
        gauges[office] = OfficeGauges(
            escalations_waiting=counts["escalation_waiting"],
            queue_wait_max_s=max((now - v.started_at for v in queued), default=0.0),
            alerts=counts,
        )
    return gauges
