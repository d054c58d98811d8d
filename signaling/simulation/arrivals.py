"""Who comes to the branch, when, and what their visit will hold.

Arrivals are a Poisson process whose rate is constant within each opening hour (the profile).
Every claimant's durations and outcomes are drawn up front from a generator seeded by
(seed, day, number, attempt), so the same day run at another capacity meets exactly the same
people with exactly the same documents: the comparison with one-to-one service is paired.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from lapak.signaling.simulation.params import Params

MAX_ATTEMPTS = 3  # a step that failed this often is given up: the visit ends rejected
DAY_S = 86_400.0


@dataclass(frozen=True)
class Attempt:
    """One try at a step: readying (off air), looking together (on air), checking (off
    air), then the officer's decision: ``approve``, ``retry`` (redone in this visit) or
    ``fail`` (the visit ends rejected)."""

    prep: float
    talk: float
    review: float
    result: str


@dataclass(frozen=True)
class Claimant:
    key: str  # "day-number", the same person on every attempt
    attempt: int  # 0 first visit, 1 the first come-back, ...
    arrival: float
    claim_type: str
    patience: float  # how long they wait for the officer's first word before leaving
    no_show: bool  # not at the booth when first called
    no_show_wait: float
    greet: float  # on-air seconds added to the first conversation
    escalate: bool  # the decision goes to a supervisor
    steps: tuple[tuple[Attempt, ...], ...]
    come_back_at: float | None  # when they come again if the visit is rejected


def day_arrivals(params: Params, seed: int, day: int) -> list[Claimant]:
    """The claimants arriving on ``day`` (0-based), in arrival order."""
    rng = random.Random(f"{seed}:arrivals:{day}")
    opening = params.start_day + day * DAY_S + params.open_s
    closing = params.start_day + day * DAY_S + params.close_s
    out: list[Claimant] = []
    for hour, rate in enumerate(params.profile):
        if rate <= 0:
            continue
        start = opening + hour * 3600.0
        end = min(start + 3600.0, closing)
        t = start + rng.expovariate(rate / 3600.0)
        while t < end:
            out.append(claimant(params, seed, f"{day}-{len(out)}", 0, t))
            t += rng.expovariate(rate / 3600.0)
    return out


def claimant(params: Params, seed: int, key: str, attempt: int, arrival: float) -> Claimant:
    """Draw everything about one visit of one person."""
    rng = random.Random(f"{seed}:{key}:{attempt}")
    names = [name for name, _ in params.claim_types]
    weights = [w for _, w in params.claim_types]
    claim_type = rng.choices(names, weights)[0]
    steps = tuple(_attempts(params, rng, name) for name in params.workflows[claim_type])
    first, last = params.come_back_days
    come_back_at = None
    if rng.random() < params.come_back_p:
        day_start = arrival - (arrival - params.start_day) % DAY_S
        come_back_at = (
            day_start
            + rng.randint(first, last) * DAY_S
            + rng.uniform(params.open_s, params.close_s)
        )
    return Claimant(
        key=key,
        attempt=attempt,
        arrival=arrival,
        claim_type=claim_type,
        patience=params.patience.sample(rng),
        no_show=rng.random() < params.no_show_p,
        no_show_wait=params.no_show_wait.sample(rng),
        greet=params.greet.sample(rng),
        escalate=rng.random() < params.escalate_p,
        steps=steps,
        come_back_at=come_back_at,
    )


def _attempts(params: Params, rng: random.Random, step_name: str) -> tuple[Attempt, ...]:
    step = params.step(step_name)
    out: list[Attempt] = []
    while True:
        u = rng.random()
        if u < step.fail_p:
            result = "fail"
        elif u < step.fail_p + step.retry_p:
            result = "retry" if len(out) + 1 < MAX_ATTEMPTS else "fail"
        else:
            result = "approve"
        out.append(
            Attempt(step.prep.sample(rng), step.talk.sample(rng), step.review.sample(rng), result)
        )
        if result != "retry":
            return tuple(out)
