"""``lapak simulate``: the thin shell (arguments, files, printing) around the pure engine.

``add_parser`` only touches argparse, so ``cli/main.py`` can register the subcommand
without loading the simulator; ``run`` imports the rest when the command is used.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``simulate`` on the ``lapak`` subparsers."""
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate",
        help="simulate a branch's days on the real domain core (capacity planning)",
        description=(
            "Discrete-event simulation of a branch office: Poisson arrivals, per-step times, "
            "the officer's attention as the scarce resource; the same days served "
            "one-to-one for comparison. Parameters: --config FILE (merged over the shipped "
            "signaling/simulation/office.toml)."
        ),
    )
    p.add_argument("--config", type=Path, help="office TOML (default: the shipped office.toml)")
    p.add_argument("--officers", type=int, help="officers, one desk each")
    p.add_argument("--capacity", type=int, help="booth slots per officer, 1..6")
    p.add_argument("--booths", type=int, help="booths in the branch (default officers x capacity)")
    p.add_argument(
        "--arrivals",
        help="claimants per hour: one rate for every opening hour, or one per hour (20,40,...)",
    )
    p.add_argument("--days", type=int, help="working days to simulate")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument(
        "--sweep",
        nargs="+",
        metavar="KEY=VALUES",
        help="a grid: capacity=1..6 officers=1..4 booths=... arrivals=30,40 (table and plot)",
    )
    p.add_argument("--png", type=Path, help="with --sweep: write the plot here (matplotlib)")
    p.add_argument(
        "--log-dir",
        type=Path,
        help="write the simulated days' event log here (replayable, auditable)",
    )
    return p


@contextlib.contextmanager
def fewer_gc_passes() -> Iterator[None]:
    """A run allocates millions of short-lived objects and keeps few: collecting the young
    generation less often saves about a quarter of the time (restored afterwards)."""
    before = gc.get_threshold()
    gc.set_threshold(200_000, before[1], before[2])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the command; one line on stderr and exit 2 for anything the user can fix."""
    from lapak.signaling.config import ConfigError
    from lapak.signaling.simulation.logdir import LogDirError

    out = out or sys.stdout
    try:
        return _run(args, out)
    except (ConfigError, LogDirError) as exc:
        sys.stderr.write(f"lapak simulate: {exc}\n")
        return 2


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from lapak.signaling.config import ConfigError
    from lapak.signaling.simulation.params import load_params

    params = load_params(args.config).with_options(
        officers=args.officers,
        capacity=args.capacity,
        booths=args.booths,
        arrivals=args.arrivals,
        days=args.days,
    )
    if args.sweep:
        if args.log_dir:
            raise ConfigError("--log-dir writes one run's log: drop --sweep")
        return _sweep(args, params, out)
    if args.png:
        raise ConfigError("--png draws a sweep: add --sweep")
    return _single(args, params, out)


def _single(args: argparse.Namespace, params: Any, out: TextIO) -> int:
    from lapak.signaling.simulation.engine import simulate
    from lapak.signaling.simulation.logdir import write_log
    from lapak.signaling.simulation.metrics import render_text, report

    with fewer_gc_passes():
        main = simulate(params, args.seed, keep_events=args.log_dir is not None)
        one = params.with_options(capacity=1)
        base = main if params.capacity == 1 else simulate(one, args.seed)
    rep = report(main, base)
    if args.log_dir is not None:
        path = write_log(args.log_dir, main.events)
        rep["log"] = str(path)
    if args.format == "json":
        out.write(json.dumps(rep, sort_keys=True) + "\n")
        return 0
    out.write(render_text(rep))
    if args.log_dir is not None:
        out.write(
            f"event log: {rep['log']} ({len(main.events)} events); check it with "
            f"`lapak audit verify --data-dir {args.log_dir}`\n"
        )
    return 0


def _sweep(args: argparse.Namespace, params: Any, out: TextIO) -> int:
    from lapak.signaling.config import ConfigError
    from lapak.signaling.simulation.sweep import (
        PLOT_HINT,
        parse_sweep,
        png_plot,
        render_table,
        run_sweep,
        terminal_plot,
    )

    axes = parse_sweep(args.sweep)
    if args.png is not None and importlib.util.find_spec("matplotlib") is None:
        raise ConfigError(f"--png needs matplotlib: {PLOT_HINT}")

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\rsimulating {done}/{total}")
            sys.stderr.write("\n" if done == total else "")
            sys.stderr.flush()

    with fewer_gc_passes():
        rows = run_sweep(params, axes, args.seed, progress)
    if args.format == "json":
        out.write(json.dumps({"sweep": rows}, sort_keys=True) + "\n")
    else:
        out.write(render_table(rows))
        plot = terminal_plot(rows, axes, color=out.isatty())
        out.write(f"\n{plot}\n" if plot else f"\n(for a plot here: {PLOT_HINT})\n")
    if args.png is not None:
        png_plot(rows, axes, args.png)
        if args.format == "text":
            out.write(f"plot written to {args.png}\n")
    return 0
