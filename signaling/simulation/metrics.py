"""From a run's tally to the numbers a manager reads: throughput per officer-hour, waits,
utilisation, attention debt, and the same day served one-to-one for the ratio."""

from __future__ import annotations

import math
from typing import Any

from lapak.signaling.simulation.runs import Result

# (key, label, unit) in the order the text table shows them
ROWS: tuple[tuple[str, str, str], ...] = (
    ("visits_per_officer_hour", "visits per officer-hour", "n"),
    ("wait_p50_s", "wait for the officer p50", "s"),
    ("wait_p95_s", "wait for the officer p95", "s"),
    ("time_in_visit_p50_s", "time in visit p50", "s"),
    ("time_in_visit_p95_s", "time in visit p95", "s"),
    ("officer_utilisation", "officer utilisation (on air)", "%"),
    ("booth_utilisation", "booth utilisation", "%"),
    ("attention_debt_p95_s", "attention debt p95", "s"),
    ("abandon_rate", "abandoned (gave up waiting)", "%"),
    ("no_show_rate", "not at the booth when called", "%"),
    ("sent_home_rate", "sent home at closing", "%"),
    ("arrivals", "arrivals", "n"),
    ("served", "served (completed+rejected+escalated)", "n"),
    ("completed", "completed", "n"),
    ("rejected", "rejected", "n"),
    ("escalated", "escalated", "n"),
    ("officer_hours", "officer-hours staffed", "n"),
)


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks; None when there is nothing to rank."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def summarise(result: Result) -> dict[str, Any]:
    """One run's numbers (seconds, rates as fractions 0..1)."""
    t, p = result.tally, result.params
    officer_hours = t.staffed_s / 3600
    return {
        "officers": p.officers,
        "capacity": p.capacity,
        "booths": p.booth_count,
        "days": p.days,
        "seed": result.seed,
        "visits_per_officer_hour": _ratio(t.served, officer_hours),
        "completed_per_officer_hour": _ratio(t.labels["completed"], officer_hours),
        "wait_p50_s": percentile(t.waits, 0.50),
        "wait_p95_s": percentile(t.waits, 0.95),
        "time_in_visit_p50_s": percentile(t.in_visit, 0.50),
        "time_in_visit_p95_s": percentile(t.in_visit, 0.95),
        "officer_utilisation": _ratio(t.on_air_s, t.staffed_s),
        "booth_utilisation": _ratio(t.booth_busy_s, t.booth_open_s),
        "attention_debt_p95_s": percentile(t.debts, 0.95),
        "abandon_rate": _ratio(t.labels["abandoned"], t.arrivals),
        "no_show_rate": _ratio(t.labels["no_show"], t.arrivals),
        "sent_home_rate": _ratio(t.labels["sent_home"], t.arrivals),
        "arrivals": t.arrivals,
        "served": t.served,
        **{label: count for label, count in t.labels.items()},
        "in_progress": t.in_progress,
        "officer_hours": officer_hours,
        "events": t.events,
    }


def report(main: Result, one_to_one: Result) -> dict[str, Any]:
    """The run, the same day served one-to-one, and the ratio between them."""
    out = summarise(main)
    base = summarise(one_to_one)
    out["one_to_one_visits_per_officer_hour"] = base["visits_per_officer_hour"]
    out["ratio_vs_one_to_one"] = _ratio(
        out["visits_per_officer_hour"], base["visits_per_officer_hour"]
    )
    out["one_to_one"] = base
    return out


def fmt(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "%":
        return f"{value * 100:.1f}%"
    if unit == "s":
        return f"{value / 60:.1f} min" if value >= 120 else f"{value:.0f} s"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def render_text(rep: dict[str, Any]) -> str:
    """A readable table: this configuration beside one-to-one service of the same day."""
    base = rep["one_to_one"]
    head = (
        f"{rep['officers']} officer(s), capacity {rep['capacity']}, {rep['booths']} booths, "
        f"{rep['days']} day(s), seed {rep['seed']}"
    )
    left = f"capacity {rep['capacity']}"
    right = f"one-to-one ({base['booths']} booths)"
    lines = [head, "", f"{'':40} {left:>14} {right:>22}"]
    for key, label, unit in ROWS:
        lines.append(f"{label:40} {fmt(rep[key], unit):>14} {fmt(base[key], unit):>22}")
    lines.append("")
    lines.append(f"ratio vs one-to-one: {rep['ratio_vs_one_to_one']:.2f}x visits per officer-hour")
    return "\n".join(lines) + "\n"
