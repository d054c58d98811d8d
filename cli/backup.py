"""``lapak backup``: a consistent online copy of a live event log (signaling/backup.py), safe
while the server runs; one summary line on stdout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lapak.cli.errors import CliError
from lapak.cli.exit_codes import EXIT_FAILED, EXIT_NO_FILE, EXIT_OK


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "backup",
        help="copy the live event log consistently (SQLite's backup API), server running or not",
        description="Writes OUTPUT (the log) and OUTPUT.checkpoint.json beside it; restore "
        "them into a new data directory as events.sqlite3 and checkpoint.json "
        "(docs/deploy.md).",
    )
    p.add_argument("--data-dir", type=Path, required=True, help="the server's data directory")
    p.add_argument("--output", type=Path, required=True, help="new file to write (never replaced)")


def run(args: argparse.Namespace) -> int:
    from lapak.signaling.backup import BackupError, backup_log
    from lapak.signaling.datadir import LOG_NAME

    if not (args.data_dir / LOG_NAME).is_file():
        raise CliError(f"no event log in {args.data_dir}", EXIT_NO_FILE)
    try:
        info = backup_log(args.data_dir, args.output)
    except BackupError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    sys.stdout.write(
        f"{info.output}: {info.events} events, checkpoint at {info.checkpoint_seq} "
        f"({info.checkpoint}), {info.bytes} bytes in {info.seconds:.2f} s\n"
    )
    return EXIT_OK
