"""``lapak audit``: verify the hash chain and signatures of a data directory, print the
public half of a signing key, or export who decided what."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lapak.cli.errors import CliError
from lapak.cli.exit_codes import EXIT_FAILED, EXIT_NO_FILE, EXIT_OK, EXIT_USAGE
from lapak.cli.options import day

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from lapak.signaling.logverify import Verification


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "audit", help="verify or export the audit trail of a data directory or a store"
    )
    audit = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    a = audit.add_parser(
        "verify", help="check the hash chain and checkpoints: exit 1 if anything was altered"
    )
    _source(a)
    a.add_argument(
        "--public-key",
        type=Path,
        help="the server's public key (from `lapak audit public-key`): also check signatures",
    )
    a = audit.add_parser("public-key", help="print the public half of a signing key (PEM)")
    a.add_argument("--signing-key", type=Path, required=True)
    a = audit.add_parser("export", help="write who decided what, when, from which role")
    _source(a)
    a.add_argument("--visit", help="only this visit")
    a.add_argument("--day", type=day, help="only this day (YYYY-MM-DD, server local time)")
    a.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    a.add_argument("--output", type=Path, help="file to write (default: stdout)")


def _source(parser: argparse.ArgumentParser) -> None:
    """A data directory (SQLite) or a PostgreSQL store: exactly one."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--data-dir", type=Path, help="the SQLite log's data directory")
    where.add_argument("--store", metavar="URL", help="the PostgreSQL store (postgresql://...)")


def run(args: argparse.Namespace) -> int:
    from lapak.signaling import signing

    try:
        if args.audit_command == "public-key":
            sys.stdout.write(signing.load(args.signing_key).public_pem())
            return EXIT_OK
        public = signing.load_public(args.public_key) if getattr(args, "public_key", None) else None
    except FileNotFoundError:
        raise CliError(f"no signing key at {args.signing_key}", EXIT_NO_FILE) from None
    except signing.SigningKeyError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if getattr(args, "store", None):
        return _on_store(args, public)
    log_file = args.data_dir / "events.sqlite3"
    if not log_file.exists() and not (args.data_dir / "checkpoint.json").exists():
        raise CliError(f"no event log in {args.data_dir}", EXIT_NO_FILE)
    if args.audit_command == "verify":
        return _verify(args.data_dir, public)
    if not log_file.exists():
        raise CliError(f"no event log in {args.data_dir} (run audit verify)", EXIT_NO_FILE)
    return _export(args)


def _on_store(args: argparse.Namespace, public: Ed25519PublicKey | None) -> int:
    from lapak.signaling.pglog import is_url

    if not is_url(args.store):
        raise CliError(f"--store must be a postgresql:// URL, not {args.store!r}", EXIT_USAGE)
    if args.audit_command == "verify":
        from lapak.signaling.pgaudit import verify_store

        return _report(verify_store(args.store, public))
    from lapak.signaling.eventlog import LogError
    from lapak.signaling.pgaudit import store_rows

    try:
        rows = store_rows(args.store)
    except LogError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    return _export(args, rows)


def _verify(data_dir: Path, public: Ed25519PublicKey | None) -> int:
    from lapak.signaling.audit import verify_dir

    return _report(verify_dir(data_dir, public))


def _report(report: Verification) -> int:
    for problem in report.problems:
        sys.stdout.write(f"BROKEN {problem}\n")
    for note in report.notes:
        sys.stdout.write(f"NOTE {note}\n")
    sys.stdout.write(f"{report.count} events checked, {len(report.problems)} problems\n")
    return EXIT_FAILED if report.problems else EXIT_OK


def _export(args: argparse.Namespace, rows: list[Any] | None = None) -> int:
    import sqlite3

    from lapak.signaling.audit import export

    out = args.output.open("w", newline="") if args.output else sys.stdout
    try:
        source = args.data_dir if rows is None else rows
        export(source, out, fmt=args.format, visit=args.visit, day=args.day)
    except (sqlite3.Error, ValueError) as exc:  # a damaged log: verify names the rows
        raise CliError(f"cannot export ({exc}); run `lapak audit verify`", EXIT_FAILED) from None
    finally:
        if args.output:
            out.close()
    return EXIT_OK
