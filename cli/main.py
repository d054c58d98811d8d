"""The ``lapak`` command: the parser assembled from each subcommand's module, dispatch, and
one error path (an operator error is one line on stderr and a code from cli/exit_codes.py).

Building the parser imports only argparse code; each subcommand imports what it runs when it
runs, so ``lapak signal``, ``audit`` and ``token`` never load the console, media or Textual.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import cast

from lapak.cli import (
    audit,
    backup,
    booth,
    console,
    demo,
    enrol,
    purge,
    recorder,
    recordings,
    token,
)
from lapak.cli import signal as signal_command  # not the standard library's signal
from lapak.cli.errors import CliError, operator_error
from lapak.cli.exit_codes import EXIT_INTERRUPTED, EXIT_PIPE
from lapak.cli.options import Parser, add_logging, add_logging_everywhere

COMMANDS = {
    "signal": "lapak.cli.signal:run",
    "audit": "lapak.cli.audit:run",
    "backup": "lapak.cli.backup:run",
    "purge": "lapak.cli.purge:run",
    "token": "lapak.cli.token:run",
    "enrol": "lapak.cli.enrol:run",
    "booth": "lapak.cli.booth:run",
    "recorder": "lapak.cli.recorder:run",
    "recordings": "lapak.cli.recordings:run",
    "console": "lapak.cli.console:run_console",
    "supervise": "lapak.cli.console:run_supervise",
    "demo": "lapak.cli.demo:run",
    "simulate": "lapak.signaling.simulation.cli:run",
}
"""Each subcommand's ``module:function``, imported only when that subcommand runs."""
OWN_LOG = frozenset({"console", "supervise", "demo"})
"""Subcommands that own the terminal and send their log elsewhere."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lapak")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lapak", description="One officer, six video booths, one keyboard.")
    parser.add_argument("--version", action="version", version=f"lapak {_version()}")
    add_logging(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    signal_command.add_parser(sub)
    audit.add_parser(sub)
    backup.add_parser(sub)
    purge.add_parser(sub)
    token.add_parser(sub)
    enrol.add_parser(sub)
    booth.add_parser(sub)
    recorder.add_parser(sub)
    recordings.add_parser(sub)
    console.add_parsers(sub)
    demo.add_parser(sub)
    from lapak.signaling.simulation.cli import add_parser as add_simulate  # argparse only

    add_simulate(sub)
    add_logging_everywhere(parser)
    return parser


def handler(command: str) -> Callable[[argparse.Namespace], int]:
    module, _, name = COMMANDS[command].partition(":")
    return cast(
        "Callable[[argparse.Namespace], int]", getattr(importlib.import_module(module), name)
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; operator errors end in one line on stderr and a documented code."""
    from lapak.cli.logging_setup import resolve, to_stream

    args = build_parser().parse_args(argv)
    try:
        resolve(args, os.environ)
        if args.command not in OWN_LOG:
            to_stream(args)
        return handler(args.command)(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Python's advice: point stdout at devnull so the interpreter's final flush is quiet.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE
    except Exception as exc:
        failure = operator_error(exc, args.command)
        if failure is None:
            raise
        _say(args, failure)
        return failure.code


def _say(args: argparse.Namespace, failure: CliError) -> None:
    sub = getattr(args, "audit_command", None)
    who = f"lapak {args.command}" + (f" {sub}" if sub else "")
    for problem in failure.problems:
        sys.stderr.write(f"{who}: {problem}\n")
    sys.stderr.flush()
