"""A grid of runs (``--sweep capacity=1..6 officers=1..4``), its table and its plot.

The plot is optional: a terminal plot when plotext is installed, a PNG when matplotlib is;
without them the table says how to get them (``pip install 'lapak[sim]'``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lapak.signaling.config import ConfigError
from lapak.signaling.simulation.engine import simulate
from lapak.signaling.simulation.metrics import fmt, report
from lapak.signaling.simulation.params import Params

KEYS = ("officers", "capacity", "booths", "arrivals")
PLOT_HINT = "pip install 'lapak[sim]' (in a checkout: .venv/bin/pip install -e '.[sim]')"
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("visits_per_officer_hour", "visits/off-h", "n"),
    ("ratio_vs_one_to_one", "x 1:1", "n"),
    ("wait_p50_s", "wait p50", "s"),
    ("wait_p95_s", "wait p95", "s"),
    ("officer_utilisation", "on air", "%"),
    ("booth_utilisation", "booths", "%"),
    ("attention_debt_p95_s", "debt p95", "s"),
    ("abandon_rate", "gave up", "%"),
)


@dataclass(frozen=True)
class Axis:
    key: str
    values: tuple[str, ...]


def parse_sweep(specs: list[str]) -> list[Axis]:
    """``capacity=1..6``, ``officers=1,2,4``, ``arrivals=30,40,50`` (flat rates)."""
    axes: list[Axis] = []
    for spec in specs:
        key, sep, text = spec.partition("=")
        if not sep or key not in KEYS:
            raise ConfigError(f"--sweep {spec!r}: use KEY=A..B or KEY=A,B,C with KEY in {KEYS}")
        if any(a.key == key for a in axes):
            raise ConfigError(f"--sweep: {key} given twice")
        axes.append(Axis(key, _values(key, text)))
    if not axes:
        raise ConfigError("--sweep needs at least one KEY=VALUES")
    return axes


def _values(key: str, text: str) -> tuple[str, ...]:
    if ".." in text:
        first, _, last = text.partition("..")
        try:
            low, high = int(first), int(last)
        except ValueError:
            raise ConfigError(f"--sweep {key}={text}: a range is two whole numbers") from None
        if low > high:
            raise ConfigError(f"--sweep {key}={text}: the range is empty")
        return tuple(str(v) for v in range(low, high + 1))
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if not values:
        raise ConfigError(f"--sweep {key}=: no values")
    for value in values:
        try:
            float(value) if key == "arrivals" else int(value)
        except ValueError:
            raise ConfigError(f"--sweep {key}={text}: {value!r} is not a number") from None
    return values


def run_sweep(
    params: Params,
    axes: list[Axis],
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """One report per grid point; the one-to-one run of each (officers, booths, arrivals)
    is done once and shared by every capacity."""
    axes = sorted(axes, key=lambda a: a.key == "capacity")  # capacity varies fastest
    combos = list(itertools.product(*(a.values for a in axes)))
    baselines: dict[tuple[Any, ...], Any] = {}
    rows: list[dict[str, Any]] = []
    for n, combo in enumerate(combos):
        options: dict[str, Any] = dict(zip((a.key for a in axes), combo, strict=True))
        point = params.with_options(
            officers=int(options["officers"]) if "officers" in options else None,
            capacity=int(options["capacity"]) if "capacity" in options else None,
            booths=int(options["booths"]) if "booths" in options else None,
            arrivals=options.get("arrivals"),
        )
        base_key = (point.officers, point.booths, point.profile)
        if base_key not in baselines:
            baselines[base_key] = simulate(point.with_options(capacity=1), seed)
        rows.append(report(simulate(point, seed), baselines[base_key]))
        rows[-1]["arrivals_per_hour"] = sum(point.profile) / len(point.profile)
        if progress is not None:
            progress(n + 1, len(combos))
    return rows


def render_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'officers':>8} {'capacity':>8} {'booths':>6} {'arr/h':>6}" + "".join(
        f" {title:>12}" for _, title, _ in COLUMNS
    )
    lines = [head]
    for row in rows:
        lines.append(
            f"{row['officers']:>8} {row['capacity']:>8} {row['booths']:>6} "
            f"{row['arrivals_per_hour']:>6.0f}"
            + "".join(f" {fmt(row[key], unit):>12}" for key, _, unit in COLUMNS)
        )
    return "\n".join(lines) + "\n"


def _series(
    rows: list[dict[str, Any]], axes: list[Axis]
) -> tuple[str, dict[str, list[tuple[float, float, float]]]]:
    """x axis: capacity when swept (else the first key); one line per other combination.
    Each point is (x, visits per officer-hour, wait p95 seconds)."""
    x_key = "capacity" if any(a.key == "capacity" for a in axes) else axes[0].key
    others = [a.key for a in axes if a.key != x_key]
    field = {"arrivals": "arrivals_per_hour"}
    series: dict[str, list[tuple[float, float, float]]] = {}
    for row in rows:
        name = ", ".join(f"{k} {row[field.get(k, k)]:g}" for k in others)
        series.setdefault(name or "visits", []).append(
            (
                float(row[field.get(x_key, x_key)]),
                float(row["visits_per_officer_hour"]),
                float(row["wait_p95_s"] or 0.0),
            )
        )
    return x_key, series


def terminal_plot(
    rows: list[dict[str, Any]], axes: list[Axis], width: int = 78, color: bool = False
) -> str | None:
    """The curve in the terminal, or None when plotext is not installed."""
    try:
        import plotext
    except ImportError:
        return None
    x_key, series = _series(rows, axes)
    fig = plotext.figure
    fig.clear()
    fig.plot_size(width, 20)
    fig.theme("default" if color else "colorless")
    for i, (name, points) in enumerate(series.items()):
        xs, ys, _ = zip(*points, strict=True)
        marker = "123456789abcdefghijklmnopqrstuvwxyz"[i % 35] if len(series) > 1 else "•"
        signal = fig.signal(list(xs), list(ys), marker=marker)
        signal.lines()
        if len(series) > 1:
            signal.label(name)
        fig.draw(signal)
    xs_all = sorted({x for points in series.values() for x, _, _ in points})
    fig.ruler("x").ticks(xs_all, [f"{x:g}" for x in xs_all])
    fig.title("visits per officer-hour")
    fig.label(x_key, "x")
    return str(fig.build().string(colorless=not color))


def png_plot(rows: list[dict[str, Any]], axes: list[Axis], path: Path) -> bool:
    """Write the curve (and the wait p95) as a PNG; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    x_key, series = _series(rows, axes)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for name, points in series.items():
        xs, ys, waits = zip(*points, strict=True)
        top.plot(xs, ys, marker="o", label=name)
        bottom.plot(xs, [w / 60 for w in waits], marker="o", label=name)
    top.set_ylabel("visits per officer-hour")
    top.grid(True, alpha=0.3)
    bottom.set_ylabel("wait p95 (minutes)")
    bottom.set_xlabel(x_key)
    bottom.set_xticks(sorted({x for points in series.values() for x, _, _ in points}))
    bottom.grid(True, alpha=0.3)
    if len(series) > 1:
        top.legend()
    fig.suptitle("lapak simulate --sweep")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
