"""Simulation parameters: one TOML file, every distribution and number in it.

The shipped ``office.toml`` (next to this module) is the documented default; a user's file is
merged over it table by table, so it only needs the keys it changes. Anything wrong (unknown
key, negative time, probability outside 0..1, a profile that does not fit the opening hours)
raises ``ConfigError`` with one line that names the key.
"""

from __future__ import annotations

import math
import random
import tomllib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from lapak.signaling.config import ConfigError, read_toml
from lapak.signaling.domain import MAX_CAPACITY
from lapak.signaling.workflows import default_reasons, default_workflows

DISTRIBUTIONS = ("fixed", "exponential", "lognormal", "uniform")


@dataclass(frozen=True)
class Dist:
    """A non-negative duration in seconds: ``fixed`` (value), ``exponential`` (mean),
    ``lognormal`` (mean, cv) or ``uniform`` (low, high)."""

    kind: str
    a: float
    b: float = 0.0
    _mu: float = field(default=0.0, init=False, repr=False, compare=False)
    _sigma: float = field(default=0.0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind == "lognormal" and self.a > 0:  # the normal's parameters, once
            sigma2 = math.log1p(self.b * self.b)
            object.__setattr__(self, "_mu", math.log(self.a) - sigma2 / 2)
            object.__setattr__(self, "_sigma", math.sqrt(sigma2))

    @property
    def mean(self) -> float:
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        return self.a

    def sample(self, rng: random.Random) -> float:
        kind = self.kind
        if kind == "lognormal":
            return rng.lognormvariate(self._mu, self._sigma) if self.a > 0 else 0.0
        if kind == "exponential":
            return rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0
        if kind == "uniform":
            return rng.uniform(self.a, self.b)
        return self.a


@dataclass(frozen=True)
class StepParams:
    """One verification step: the claimant readies the document (``prep``, off air), the
    officer looks at it with them (``talk``, on air), then it is checked (``review``, off
    air, limited per desk). ``retry_p``: the step fails and is redone within the visit;
    ``fail_p``: it fails for good and the visit ends rejected."""

    prep: Dist
    talk: Dist
    review: Dist
    retry_p: float
    fail_p: float


@dataclass(frozen=True)
class Params:
    office: str
    officers: int
    capacity: int
    booths: int  # 0: one booth per desk slot
    open_s: float  # opening time, seconds after midnight (UTC of the simulated calendar)
    close_s: float
    overtime_max_s: float
    start_day: float  # Unix seconds of the first simulated day's midnight
    days: int
    profile: tuple[float, ...]  # claimants per hour, one entry per opening hour
    claim_types: tuple[tuple[str, float], ...]  # (claim type, weight)
    patience: Dist
    grace_s: float
    no_show_p: float
    no_show_wait: Dist
    come_back_p: float
    come_back_days: tuple[int, int]
    greet: Dist
    switch: Dist
    off_air_parallel: int
    escalate_p: float
    retry_reason: str
    fail_reason: str
    reasons: tuple[str, ...]
    workflows: dict[str, list[str]]
    steps: dict[str, StepParams]  # by step name; "default" for steps not named

    @property
    def booth_count(self) -> int:
        return self.booths or self.officers * self.capacity

    def step(self, name: str) -> StepParams:
        return self.steps.get(name) or self.steps["default"]

    def with_options(
        self,
        officers: int | None = None,
        capacity: int | None = None,
        booths: int | None = None,
        arrivals: str | None = None,
        days: int | None = None,
    ) -> Params:
        """The command line's overrides, checked like the file's values."""
        changes: dict[str, Any] = {}
        if officers is not None:
            changes["officers"] = officers
        if capacity is not None:
            changes["capacity"] = capacity
        if booths is not None:
            changes["booths"] = booths
        if days is not None:
            changes["days"] = days
        if arrivals is not None:
            changes["profile"] = parse_arrivals(arrivals, self.open_hours)
        params = replace(self, **changes)
        params.check()
        return params

    @property
    def open_hours(self) -> int:
        return math.ceil((self.close_s - self.open_s) / 3600)

    def check(self) -> None:
        if self.officers < 1:
            raise ConfigError("officers must be at least 1")
        if not 1 <= self.capacity <= MAX_CAPACITY:
            raise ConfigError(f"capacity must be 1..{MAX_CAPACITY}")
        if self.booths < 0:
            raise ConfigError("booths must be 0 (one per slot) or more")
        if self.days < 1:
            raise ConfigError("days must be at least 1")
        if len(self.profile) != self.open_hours:
            raise ConfigError(
                f"arrivals profile has {len(self.profile)} hours, the office is open "
                f"{self.open_hours}"
            )


def parse_arrivals(text: str, hours: int) -> tuple[float, ...]:
    """``40`` (every opening hour) or ``20,40,50,...`` (one rate per opening hour)."""
    try:
        rates = [float(x) for x in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"--arrivals {text!r}: give claimants per hour, or one per hour"
        ) from None
    if any(r < 0 or not math.isfinite(r) for r in rates):
        raise ConfigError("--arrivals: rates must be finite and not negative")
    if len(rates) == 1:
        rates = rates * hours
    if len(rates) != hours:
        raise ConfigError(f"--arrivals: {len(rates)} rates for {hours} opening hours")
    return tuple(rates)


# -- loading ---------------------------------------------------------------------------

_TABLES: dict[str, set[str]] = {
    "office": {"name", "officers", "capacity", "booths", "open", "close", "overtime_max_s",
               "start_date", "days"},
    "arrivals": {"profile", "claim_types"},
    "claimant": {"patience", "grace_s", "no_show_p", "no_show_wait", "come_back_p",
                 "come_back_days"},
    "officer": {"greet", "switch", "off_air_parallel", "escalate_p"},
    "reasons": {"retry", "fail"},
    "steps": set(),
    "workflows": set(),
}  # fmt: skip
_STEP_KEYS = {"prep", "talk", "review", "retry_p", "fail_p"}


def shipped_text() -> str:
    return resources.files("lapak.signaling.simulation").joinpath("office.toml").read_text()


def load_params(path: str | Path | None = None) -> Params:
    """The shipped defaults, with ``path`` (if any) merged over them."""
    raw = tomllib.loads(shipped_text())
    if path is not None:
        raw = _merge(raw, read_toml(path))
    return from_dict(raw)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; a distribution or the claim-type mix is replaced whole."""
    out = dict(base)
    for key, value in over.items():
        leaf = "dist" in value or key == "claim_types" if isinstance(value, dict) else True
        if not leaf and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def from_dict(raw: dict[str, Any]) -> Params:
    unknown = set(raw) - set(_TABLES)
    if unknown:
        raise ConfigError(f"unknown tables: {sorted(unknown)}")
    for table, keys in _TABLES.items():
        if keys and set(raw.get(table, {})) - keys:
            raise ConfigError(f"unknown [{table}] keys: {sorted(set(raw[table]) - keys)}")
    office, arrivals = raw.get("office", {}), raw.get("arrivals", {})
    claimant, officer = raw.get("claimant", {}), raw.get("officer", {})
    workflows = default_workflows()
    for name, table in raw.get("workflows", {}).items():
        steps = table.get("steps") if isinstance(table, dict) else None
        if not isinstance(steps, list) or not steps or len(set(steps)) != len(steps):
            raise ConfigError(
                f"[workflows.{name}] steps must be a non-empty list of distinct names"
            )
        workflows[name] = [str(s) for s in steps]
    steps = {name: _step(name, table) for name, table in raw.get("steps", {}).items()}
    if "default" not in steps:
        raise ConfigError("[steps.default] is required")
    known = {step for names in workflows.values() for step in names}
    strays = sorted(set(steps) - known - {"default"})
    if strays:
        raise ConfigError(f"[steps.{strays[0]}] is not a step of any workflow (a typo?)")
    claim_types = _claim_types(arrivals.get("claim_types", {"JHT": 1.0}), workflows)
    reasons = tuple(default_reasons())
    retry_reason = str(raw.get("reasons", {}).get("retry", reasons[0]))
    fail_reason = str(raw.get("reasons", {}).get("fail", reasons[1]))
    for key, reason in (("retry", retry_reason), ("fail", fail_reason)):
        if reason not in reasons:
            raise ConfigError(f"[reasons] {key} = {reason!r} is not a rejection reason {reasons}")
    params = Params(
        office=str(office.get("name", "main")),
        officers=_int(office, "office", "officers", 1),
        capacity=_int(office, "office", "capacity", 6),
        booths=_int(office, "office", "booths", 0),
        open_s=_clock(office, "open", "08:00"),
        close_s=_clock(office, "close", "16:00"),
        overtime_max_s=_num(office, "office", "overtime_max_s", 3600),
        start_day=_date(office.get("start_date", "2026-01-05")),
        days=_int(office, "office", "days", 1),
        profile=tuple(_num({"profile": p}, "arrivals", "profile", 0) for p in _list(arrivals)),
        claim_types=claim_types,
        patience=dist(claimant.get("patience", 2700), "claimant.patience"),
        grace_s=_num(claimant, "claimant", "grace_s", 30),
        no_show_p=_prob(claimant, "claimant", "no_show_p"),
        no_show_wait=dist(claimant.get("no_show_wait", 60), "claimant.no_show_wait"),
        come_back_p=_prob(claimant, "claimant", "come_back_p"),
        come_back_days=_day_range(claimant.get("come_back_days", [1, 3])),
        greet=dist(officer.get("greet", 0), "officer.greet"),
        switch=dist(officer.get("switch", 0), "officer.switch"),
        off_air_parallel=_int(officer, "officer", "off_air_parallel", 6),
        escalate_p=_prob(officer, "officer", "escalate_p"),
        retry_reason=retry_reason,
        fail_reason=fail_reason,
        reasons=reasons,
        workflows=workflows,
        steps=steps,
    )
    if params.close_s <= params.open_s:
        raise ConfigError("[office] close must be after open")
    if params.off_air_parallel < 1:
        raise ConfigError("[officer] off_air_parallel must be at least 1")
    params.check()
    return params


def dist(value: Any, where: str) -> Dist:
    """A number (fixed seconds) or a table ``{dist = "...", ...}``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0 or not math.isfinite(value):
            raise ConfigError(f"{where}: must be a finite number of seconds >= 0")
        return Dist("fixed", float(value))
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: give seconds or {{dist = ..., ...}}")
    kind = value.get("dist")
    need = {
        "fixed": ("value",),
        "exponential": ("mean",),
        "lognormal": ("mean", "cv"),
        "uniform": ("low", "high"),
    }.get(str(kind))
    if need is None:
        raise ConfigError(f"{where}: dist must be one of {DISTRIBUTIONS}")
    extra = set(value) - {"dist", *need}
    if extra or any(k not in value for k in need):
        raise ConfigError(f"{where}: dist {kind} takes exactly {', '.join(need)}")
    nums = [value[k] for k in need]
    if any(isinstance(n, bool) or not isinstance(n, int | float) for n in nums):
        raise ConfigError(f"{where}: {', '.join(need)} must be numbers")
    if any(n < 0 or not math.isfinite(n) for n in nums):
        raise ConfigError(f"{where}: {', '.join(need)} must be finite and >= 0")
    if kind == "lognormal" and nums[1] <= 0:
        raise ConfigError(f"{where}: cv must be > 0")
    if kind == "uniform" and nums[1] < nums[0]:
        raise ConfigError(f"{where}: high must be >= low")
    return Dist(str(kind), float(nums[0]), float(nums[1]) if len(nums) > 1 else 0.0)


def _step(name: str, table: Any) -> StepParams:
    if not isinstance(table, dict):
        raise ConfigError(f"[steps.{name}] must be a table")
    extra = set(table) - _STEP_KEYS
    if extra:
        raise ConfigError(f"unknown [steps.{name}] keys: {sorted(extra)}")
    where = f"steps.{name}"
    step = StepParams(
        prep=dist(table.get("prep", 0), f"{where}.prep"),
        talk=dist(table.get("talk", 0), f"{where}.talk"),
        review=dist(table.get("review", 0), f"{where}.review"),
        retry_p=_prob(table, where, "retry_p"),
        fail_p=_prob(table, where, "fail_p"),
    )
    if step.retry_p + step.fail_p > 1:
        raise ConfigError(f"[{where}] retry_p + fail_p must be <= 1")
    return step


def _claim_types(table: Any, workflows: dict[str, list[str]]) -> tuple[tuple[str, float], ...]:
    if not isinstance(table, dict) or not table:
        raise ConfigError("[arrivals] claim_types must be a table of claim type = weight")
    out = []
    for name, weight in table.items():
        if name not in workflows:
            raise ConfigError(f"[arrivals] claim type {name!r} has no workflow")
        out.append((name, _num({name: weight}, "arrivals.claim_types", name, 0)))
    if sum(w for _, w in out) <= 0:
        raise ConfigError("[arrivals] claim_types weights must add up to more than 0")
    return tuple(out)


def _list(arrivals: dict[str, Any]) -> list[Any]:
    profile = arrivals.get("profile", [])
    if not isinstance(profile, list):
        raise ConfigError("[arrivals] profile must be a list of claimants per hour")
    return profile


def _num(table: dict[str, Any], where: str, key: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"[{where}] {key} must be a number")
    if value < 0 or not math.isfinite(value):
        raise ConfigError(f"[{where}] {key} must be finite and >= 0")
    return float(value)


def _int(table: dict[str, Any], where: str, key: str, default: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"[{where}] {key} must be a whole number")
    return value


def _prob(table: dict[str, Any], where: str, key: str) -> float:
    value = _num(table, where, key, 0.0)
    if value > 1:
        raise ConfigError(f"[{where}] {key} is a probability: 0..1")
    return value


def _clock(table: dict[str, Any], key: str, default: str) -> float:
    text = str(table.get(key, default))
    try:
        hours, minutes = (int(x) for x in text.split(":"))
    except ValueError:
        raise ConfigError(f"[office] {key} must look like 08:00") from None
    if not (0 <= hours <= 24 and 0 <= minutes < 60):
        raise ConfigError(f"[office] {key} must look like 08:00")
    return hours * 3600.0 + minutes * 60.0


def _date(text: Any) -> float:
    try:
        day = datetime.strptime(str(text), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError("[office] start_date must look like 2026-01-05") from None
    return day.timestamp()


def _day_range(value: Any) -> tuple[int, int]:
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 1 <= value[0] <= value[1]
    )
    if not ok:
        raise ConfigError(
            "[claimant] come_back_days must be [first, last] days, 1 <= first <= last"
        )
    return value[0], value[1]
