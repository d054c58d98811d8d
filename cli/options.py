"""Argument types and the options several subcommands share (argparse only, imports nothing
heavy, so building the parser stays cheap)."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import NoReturn

from lapak.cli.exit_codes import EXIT_USAGE
from lapak.signaling.logs import LOG_FORMATS

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
ENV_LOG_LEVEL = "LAPAK_LOG_LEVEL"
ENV_LOG_FORMAT = "LAPAK_LOG_FORMAT"


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (the full usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def log_level(text: str) -> str:
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LOG_LEVELS)}, not {text!r}")
    return level


def log_format(text: str) -> str:
    fmt = text.lower()
    if fmt not in LOG_FORMATS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LOG_FORMATS)}, not {text!r}")
    return fmt


def on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"must be on or off, not {text!r}")
    return text == "on"


def day(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None


def size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("size must look like 640x480") from None
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError("size must be even and at least 16x16")
    return w, h


def add_logging(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--log-level`` and ``--log-format``: before the subcommand (``top``) with no default,
    after it without overwriting what came before (``lapak booth --log-level DEBUG``)."""
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--log-level",
        type=log_level,
        default=default,
        help=f"DEBUG, INFO, WARNING or ERROR (default ${ENV_LOG_LEVEL}, else INFO)",
    )
    parser.add_argument(
        "--log-format",
        type=log_format,
        default=default,
        help=f"text (key=value) or json, one line per event (default ${ENV_LOG_FORMAT}, else text)",
    )


def add_logging_everywhere(parser: argparse.ArgumentParser) -> None:
    """The logging options on every subcommand and sub-subcommand too."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in action.choices.values():
            if not any("--log-level" in a.option_strings for a in child._actions):
                add_logging(child)
            add_logging_everywhere(child)


def add_ca_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ca-file",
        type=Path,
        help="PEM certificate(s) to trust for wss:// (a server with a self-signed certificate)",
    )


def add_ui_options(p: argparse.ArgumentParser) -> None:
    """Language and settings file of the console screens."""
    p.add_argument("--lang", choices=("en", "id"), help="en or id (default: config, then locale)")
    p.add_argument(
        "--config",
        type=Path,
        help="console settings (TOML); default $LAPAK_CONFIG or ~/.config/lapak/console.toml",
    )


def add_server_option(p: argparse.ArgumentParser, token_help: str) -> None:
    """``--server`` and ``--token`` of the client subcommands."""
    p.add_argument(
        "--server", required=True,
        help="ws://host:port of the signalling server (a cluster: its nodes, comma-separated)",
    )  # fmt: skip
    auth = p.add_mutually_exclusive_group(required=True)
    auth.add_argument("--token", help=token_help)
    auth.add_argument(
        "--token-file", type=Path, help="the token in a file, re-read to refresh it when it is due"
    )
