"""Where each subcommand's log goes: stderr for the headless ones, a private rotated file for
the console screens (which own the terminal). The format is signaling/logs.py's."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
from pathlib import Path
from typing import IO

from lapak.cli.errors import CliError
from lapak.cli.exit_codes import EXIT_NO_FILE
from lapak.cli.options import ENV_LOG_FORMAT, ENV_LOG_LEVEL, log_format, log_level

CONSOLE_LOG_BYTES = 5 * 1024 * 1024
CONSOLE_LOG_BACKUPS = 3


def resolve(args: argparse.Namespace, env: dict[str, str] | os._Environ[str]) -> None:
    """Fill ``args.log_level``/``args.log_format``: the flag, else ``$LAPAK_LOG_LEVEL`` /
    ``$LAPAK_LOG_FORMAT``, else INFO / text; a bad variable is a usage error naming it."""
    for attr, variable, parse, default in (
        ("log_level", ENV_LOG_LEVEL, log_level, "INFO"),
        ("log_format", ENV_LOG_FORMAT, log_format, "text"),
    ):
        if getattr(args, attr, None) is not None:
            continue
        text = env.get(variable, "").strip()
        try:
            setattr(args, attr, parse(text) if text else default)
        except argparse.ArgumentTypeError as exc:
            raise CliError(f"{variable}: {exc}") from None


def to_stream(args: argparse.Namespace, stream: IO[str] | None = None) -> None:
    """Log on ``stream`` (stderr by default) at the chosen level and format."""
    from lapak.signaling.logs import setup_logging

    setup_logging(args.log_level, stream=stream, fmt=args.log_format)


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotated log readable by its owner only: every file it opens is created 0600."""

    def _open(self) -> IO[str]:  # type: ignore[override]  # typeshed says TextIOWrapper
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)  # an older file may have been created wider
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def console_log_path(command: str) -> Path:
    """``$XDG_STATE_HOME/lapak/<command>.log``: console.log, supervise.log (personal data)."""
    from lapak.console.config import state_dir

    return state_dir() / f"{command}.log"


def to_console_file(args: argparse.Namespace) -> None:
    """The console owns the terminal: logs go to a private, rotated file, never to the screen.

    ``console.log`` or ``supervise.log`` under the state directory (0600 in a 0700 directory),
    rotated at 5 MiB, three old files kept."""
    from lapak.console.config import private_dir
    from lapak.signaling.logs import setup_logging

    command = getattr(args, "command", "console")
    path = console_log_path(command)
    try:
        private_dir(path.parent)
        handler = _PrivateRotatingFileHandler(
            path, maxBytes=CONSOLE_LOG_BYTES, backupCount=CONSOLE_LOG_BACKUPS, encoding="utf-8"
        )
    except OSError as exc:
        raise CliError(f"cannot write the log {path}: {exc.strerror}", EXIT_NO_FILE) from None
    setup_logging(
        getattr(args, "log_level", None) or "INFO",
        fmt=getattr(args, "log_format", None) or "text",
        handler=handler,
    )
