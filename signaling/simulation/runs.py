"""What a simulated run keeps: each claimant's visit and each desk as the simulator sees
them, the raw tally the report is made from, and the result of a run. Plain records: the
engine (engine.py) changes them, metrics.py reads them."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from lapak.signaling.domain import State
from lapak.signaling.events import Event
from lapak.signaling.simulation.arrivals import Attempt, Claimant
from lapak.signaling.simulation.params import Params

SERVED = ("completed", "rejected", "escalated")
LABELS = (*SERVED, "abandoned", "no_show", "sent_home")


@dataclass(eq=False)
class Run:
    """One claimant's visit as the simulator sees it (the domain's ``Visit`` is the truth
    about routing and decisions; this holds what only the simulation knows)."""

    claimant: Claimant
    booth: str | None = None
    visit: str | None = None
    desk: str | None = None
    started_at: float | None = None  # at a booth, visit started
    first_talk_at: float | None = None
    step: int = 0
    attempt: int = 0
    closing: bool = False  # a step failed: one last talk to tell them, then rejected
    left: bool = False  # gave up waiting for the officer's first word
    label: str | None = None  # how it ended (one of LABELS)

    @property
    def current(self) -> Attempt:
        return self.claimant.steps[self.step][self.attempt]


@dataclass(eq=False)
class DeskRun:
    id: str
    officer: str
    talking: Run | None = None
    ready: list[Run] = field(default_factory=list)
    reviews: int = 0
    review_wait: deque[Run] = field(default_factory=deque)
    talk_started: float = 0.0
    last_visit: str | None = None  # whom the officer spoke to last (no switch to go back)


@dataclass
class Tally:
    """Raw counts and samples; ``metrics`` turns them into the report."""

    arrivals: int = 0
    labels: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LABELS, 0))
    waits: list[float] = field(default_factory=list)  # arrival -> officer's first word
    in_visit: list[float] = field(default_factory=list)  # booth start -> end, served visits
    debts: list[float] = field(default_factory=list)  # silent time when put on air (domain)
    on_air_s: float = 0.0
    staffed_s: float = 0.0  # officer-seconds at an open desk
    booth_busy_s: float = 0.0
    booth_open_s: float = 0.0  # booth-seconds while the office was staffed
    events: int = 0
    on_air_intervals: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    arrivals_at: dict[str, float] = field(default_factory=dict)  # visit -> arrival (trace)
    first_talk: dict[str, float] = field(default_factory=dict)  # visit -> first word (trace)

    @property
    def served(self) -> int:
        return sum(self.labels[k] for k in SERVED)

    @property
    def in_progress(self) -> int:
        return self.arrivals - sum(self.labels.values())


@dataclass
class Result:
    params: Params
    seed: int
    tally: Tally
    state: State
    events: list[Event]
