"""The discrete-event loop: simulated claimants and officers driving the real domain core.

Routing, the office queue, desk slots, focus and step decisions are not modelled here: every
change goes through ``signaling.domain.Domain`` commands with the simulated clock as ``now``,
and the events they return are the same events the server would log. What this module adds is
only what the server cannot know: when people arrive, how long each thing takes, and what the
officer does next (the claimant silent longest among those ready, as the console's ``space``).

Pure: no I/O, no wall clock; the randomness comes from the seed.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from lapak.signaling.domain import Domain, Rules
from lapak.signaling.events import Event, FocusChanged, VisitRouted
from lapak.signaling.permissions import SYSTEM, Actor
from lapak.signaling.simulation.arrivals import DAY_S, Claimant, claimant, day_arrivals
from lapak.signaling.simulation.params import Params
from lapak.signaling.simulation.runs import SERVED, DeskRun, Result, Run, Tally


class Engine:
    """One simulated run of ``params.days`` days at one branch."""

    def __init__(
        self, params: Params, seed: int, keep_events: bool = False, trace: bool = False
    ) -> None:
        self.p = params
        self.seed = seed
        self.rng = random.Random(f"{seed}:officers")
        self.domain = Domain(rules=Rules(workflows=params.workflows, reasons=params.reasons))
        self.keep_events = keep_events
        self.trace = trace
        self.events: list[Event] = []
        self.tally = Tally()
        self._heap: list[tuple[float, int, Callable[..., None], Any]] = []
        self._seq = itertools.count()
        self.now = params.start_day
        self.desks = {
            f"desk-{i + 1}": DeskRun(f"desk-{i + 1}", f"officer-{i + 1}")
            for i in range(params.officers)
        }
        self.free_booths = [f"booth-{i + 1:02d}" for i in range(params.booth_count)]
        heapq.heapify(self.free_booths)
        self.lobby: deque[Run] = deque()  # may hold some who left: skipped when popped
        self.lobby_waiting = 0  # those in the lobby who have not left
        self.by_visit: dict[str, Run] = {}
        self.open_runs: set[Run] = set()
        self.day = -1
        self.day_open = False
        self.opened_at = 0.0
        self.horizon = params.start_day + params.days * DAY_S

    # -- the loop ----------------------------------------------------------------------

    def at(self, t: float, fn: Callable[..., None], arg: Any = None) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), fn, arg))

    def run(self) -> Result:
        for day in range(self.p.days):
            midnight = self.p.start_day + day * DAY_S
            self.at(midnight + self.p.open_s, self._open_day, day)
        while self._heap:
            t, _, fn, arg = heapq.heappop(self._heap)
            self.now = t
            fn(arg)
        return Result(self.p, self.seed, self.tally, self.domain.state, self.events)

    def _emit(self, events: list[Event]) -> None:
        """Count (and keep) the domain's events; seat the visits it routed."""
        self.tally.events += len(events)
        if self.keep_events:
            self.events.extend(events)
        for event in events:
            if isinstance(event, VisitRouted):
                self._seated(self.by_visit[event.visit], event.desk)
            elif isinstance(event, FocusChanged) and event.visit is not None:
                self.tally.debts.append(self.domain.state.focus_history[-1].waited_s)

    # -- the day -----------------------------------------------------------------------

    def _open_day(self, day: int) -> None:
        if self.day_open:  # a 24-hour office: yesterday ends as today begins
            self._force_close(self.day)
        self.day, self.day_open, self.opened_at = day, True, self.now
        for desk in self.desks.values():
            self._emit(self.domain.open_desk(self._officer(desk), self.now, self.p.capacity))
        for person in day_arrivals(self.p, self.seed, day):
            self.at(person.arrival, self._arrive, person)
        midnight = self.p.start_day + day * DAY_S
        self.at(midnight + self.p.close_s, self._maybe_close, day)
        self.at(midnight + self.p.close_s + self.p.overtime_max_s, self._force_close, day)

    def _maybe_close(self, day: int) -> None:
        """After closing time, officers leave once every claimant inside is done."""
        closing = self.p.start_day + day * DAY_S + self.p.close_s
        if self.day != day or not self.day_open or self.now < closing:
            return
        if self.open_runs or self.lobby_waiting:
            return
        self._close_day()

    def _force_close(self, day: int) -> None:
        """Overtime is over: whoever is still inside is sent home (their visit abandoned)."""
        if self.day != day or not self.day_open:
            return
        while self.lobby:
            run = self.lobby.popleft()
            if not run.left and run.label is None:
                self._label(run, "sent_home")
        self.lobby_waiting = 0
        for run in sorted(self.open_runs, key=lambda r: r.visit or ""):
            if run.label is None:
                run.left = True  # every pending callback of theirs is void now
                self._end(run, "abandoned", "office closed", "sent_home", by="server")
        for desk in self.desks.values():
            desk.talking, desk.ready, desk.reviews = None, [], 0
            desk.review_wait.clear()
        if self.day_open:  # ending the last visit may have closed it already
            self._close_day()

    def _close_day(self) -> None:
        self.day_open = False
        staffed = self.now - self.opened_at
        self.tally.staffed_s += staffed * len(self.desks)
        self.tally.booth_open_s += staffed * self.p.booth_count
        for desk in self.desks.values():
            self._emit(self.domain.close_desk(self._officer(desk), desk.id, self.now))

    # -- claimants ---------------------------------------------------------------------

    def _arrive(self, person: Claimant) -> None:
        run = Run(person)
        self.tally.arrivals += 1
        self.at(self.now + person.patience, self._give_up, run)
        if self.free_booths:  # then nobody waits in the lobby (only those who left)
            self._start_at_booth(run, heapq.heappop(self.free_booths))
        else:
            self.lobby.append(run)
            self.lobby_waiting += 1

    def _start_at_booth(self, run: Run, booth: str) -> None:
        person = run.claimant
        run.booth, run.started_at = booth, self.now
        visit_id, events = self.domain.start_visit(
            Actor("booth", booth, self.p.office, booth=booth),
            f"Claimant {person.key}",
            f"SIM{person.key.replace('-', '')}{person.attempt}",
            person.claim_type,
            self.now,
        )
        run.visit = visit_id
        self.by_visit[visit_id] = run
        self.open_runs.add(run)
        if self.trace:
            self.tally.arrivals_at[visit_id] = person.arrival
        self._emit(events)

    def _next_from_lobby(self, booth: str) -> None:
        while self.lobby:
            run = self.lobby.popleft()
            if not run.left:
                self.lobby_waiting -= 1
                self._start_at_booth(run, booth)
                return
        heapq.heappush(self.free_booths, booth)

    def _give_up(self, run: Run) -> None:
        """Patience ran out before the officer's first word: the claimant leaves."""
        if run.first_talk_at is not None or run.label is not None or run.left:
            return
        run.left = True
        if run.visit is None:
            self._label(run, "abandoned")  # still in the lobby
            self.lobby_waiting -= 1
            self._maybe_close(self.day)
            return
        if run.desk is not None:
            desk = self.desks[run.desk]
            if run in desk.ready:
                desk.ready.remove(run)
        self.at(self.now + self.p.grace_s, self._booth_gone, run)

    def _booth_gone(self, run: Run) -> None:
        """The server ends a visit whose booth stayed away past the grace period."""
        if run.label is None:
            self._end(run, "abandoned", "booth gone past the grace period", "abandoned", "server")

    # -- the visit's steps -------------------------------------------------------------

    def _seated(self, run: Run, desk: str) -> None:
        run.desk = desk
        if not run.left:
            self._prep(run)

    def _prep(self, run: Run) -> None:
        self.at(self.now + run.current.prep, self._ready, run)

    def _ready(self, run: Run) -> None:
        if run.left or run.label is not None:
            return
        assert run.desk is not None and run.visit is not None
        desk = self.desks[run.desk]
        if run.attempt > 0 and not run.closing:  # the new document: reopen the step
            self._decide(desk, run, "reopen", None)
        desk.ready.append(run)
        self._dispatch(desk)

    def _dispatch(self, desk: DeskRun) -> None:
        """The officer is free: put on air whoever is ready and silent longest."""
        if desk.talking is not None or not desk.ready:
            return
        visits = self.domain.state.visits
        on_air = self.domain.state.desks[desk.id].on_air

        def silent_since(r: Run) -> tuple[float, int]:
            visit = visits[r.visit or ""]
            since = self.now if r.visit == on_air else visit.waiting_since()
            return since, visit.slot or 0

        run = min(desk.ready, key=silent_since)
        desk.ready.remove(run)
        talk = 0.0
        if desk.last_visit != run.visit:  # turning to another booth takes a moment
            talk += self.p.switch.sample(self.rng)
            desk.last_visit = run.visit
        if on_air != run.visit:
            self._emit(self.domain.set_focus(self._officer(desk), run.visit, self.now))
        if run.first_talk_at is None:
            run.first_talk_at = self.now
            self.tally.waits.append(self.now - run.claimant.arrival)
            if self.trace:
                self.tally.first_talk[run.visit or ""] = self.now
            talk += run.claimant.no_show_wait if run.claimant.no_show else run.claimant.greet
        if run.closing:
            talk += run.claimant.steps[-1][0].talk  # telling them the claim is refused
        elif not run.claimant.no_show:
            talk += run.current.talk
        desk.talking, desk.talk_started = run, self.now
        self.at(self.now + talk, self._talk_done, run)

    def _talk_done(self, run: Run) -> None:
        if run.desk is None or self.desks[run.desk].talking is not run:
            return  # the day was closed under them
        desk = self.desks[run.desk]
        desk.talking = None
        self.tally.on_air_s += self.now - desk.talk_started
        if self.trace:
            self.tally.on_air_intervals.setdefault(desk.id, []).append(
                (desk.talk_started, self.now)
            )
        if run.claimant.no_show:
            self._end(run, "abandoned", "not at the booth when called", "no_show", desk.officer)
        elif run.closing:
            self._end(run, "rejected", None, "rejected", desk.officer)
        else:
            self._review(desk, run)
        if desk.ready:
            self._dispatch(desk)
        elif desk.talking is None:
            self._emit(self.domain.set_focus(self._officer(desk), None, self.now))

    def _review(self, desk: DeskRun, run: Run) -> None:
        if run.current.review <= 0:
            self._reviewed(run, counted=False)
        elif desk.reviews < self.p.off_air_parallel:
            desk.reviews += 1
            self.at(self.now + run.current.review, self._review_done, run)
        else:
            desk.review_wait.append(run)

    def _review_done(self, run: Run) -> None:
        if run.label is not None or run.desk is None:
            return
        desk = self.desks[run.desk]
        desk.reviews -= 1
        if desk.review_wait:
            waiting = desk.review_wait.popleft()
            desk.reviews += 1
            self.at(self.now + waiting.current.review, self._review_done, waiting)
        self._reviewed(run, counted=True)

    def _reviewed(self, run: Run, counted: bool) -> None:
        """The check is done: the officer records the decision the attempt carries."""
        assert run.desk is not None
        desk = self.desks[run.desk]
        attempt = run.current
        last = run.step == len(run.claimant.steps) - 1
        if attempt.result == "approve" and last and run.claimant.escalate:
            self._end(run, "escalated", "decision needs a supervisor", "escalated", desk.officer)
            return
        if attempt.result == "approve":
            self._decide(desk, run, "approve", None)
            if last:
                self._end(run, "completed", None, "completed", desk.officer)
                return
            run.step, run.attempt = run.step + 1, 0
            self._prep(run)
        elif attempt.result == "retry":
            self._decide(desk, run, "reject", self.p.retry_reason)
            run.attempt += 1
            self._prep(run)
        else:
            self._decide(desk, run, "reject", self.p.fail_reason)
            run.closing = True
            desk.ready.append(run)
            self._dispatch(desk)

    def _officer(self, desk: DeskRun) -> Actor:
        return Actor("officer", desk.officer, self.p.office, desk=desk.id)

    def _decide(self, desk: DeskRun, run: Run, decision: str, reason: str | None) -> None:
        assert run.visit is not None
        self._emit(
            self.domain.decide(self._officer(desk), run.visit, run.step, decision, reason, self.now)
        )

    # -- the end -----------------------------------------------------------------------

    def _end(self, run: Run, outcome: str, note: str | None, label: str, by: str) -> None:
        assert run.visit is not None and run.booth is not None and run.started_at is not None
        at = self.domain.state.visits[run.visit].desk
        actor = SYSTEM if by == "server" else Actor("officer", by, self.p.office, desk=at)
        self._label(run, label)
        self.open_runs.discard(run)
        self.tally.booth_busy_s += self.now - run.started_at
        if label in SERVED:
            self.tally.in_visit.append(self.now - run.started_at)
        self._emit(self.domain.end_visit(actor, run.visit, outcome, note, self.now))
        if outcome == "escalated":
            self._resolve_at_once(run.visit)
        del self.by_visit[run.visit]
        if label == "rejected":
            self._maybe_come_back(run.claimant)
        self._next_from_lobby(run.booth)
        self._maybe_close(self.day)

    def _resolve_at_once(self, visit_id: str) -> None:
        """An escalation is a hand-off (the desk's slot is free at once). Supervisors are not
        simulated: one takes it and finishes it at once, so the booth frees as before."""
        resolver = Actor("supervisor", "sim-supervisor", self.p.office, grants=("resolve",))
        self._emit(self.domain.take_escalation(resolver, visit_id, self.now))
        visit = self.domain.state.visits[visit_id]
        for step, state in enumerate(visit.steps):
            if state.status == "pending":
                self._emit(self.domain.decide(resolver, visit_id, step, "approve", None, self.now))
        steps = [s.status for s in visit.steps]
        outcome = "rejected" if "rejected" in steps else "completed"
        self._emit(self.domain.end_visit(resolver, visit_id, outcome, None, self.now))

    def _label(self, run: Run, label: str) -> None:
        run.label = label
        self.tally.labels[label] += 1

    def _maybe_come_back(self, person: Claimant) -> None:
        """A refused claimant may come again another day with what was missing."""
        when = person.come_back_at
        if when is None or when >= self.horizon:
            return
        self.at(
            when, self._arrive, claimant(self.p, self.seed, person.key, person.attempt + 1, when)
        )


def simulate(params: Params, seed: int, keep_events: bool = False, trace: bool = False) -> Result:
    """Run the days of ``params``; the result holds the tally, the final state and (when
    ``keep_events``) every domain event in order."""
    return Engine(params, seed, keep_events=keep_events, trace=trace).run()
