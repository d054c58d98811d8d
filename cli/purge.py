"""``lapak purge``: erase a visit's personal data on a claimant's request (destroy its key;
signaling/personal_data.py). To a running server as an admin (``--server``, ``--token``),
or offline on a stopped server's data directory (``--data-dir``)."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path
from typing import Any

from lapak.cli.errors import CliError
from lapak.cli.exit_codes import EXIT_FAILED, EXIT_NO_FILE, EXIT_OK, EXIT_TOKEN, EXIT_USAGE


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "purge",
        help="erase a visit's personal data (destroy its key): to a running server, or offline",
        description="With --server and --token (an admin's): the running server purges the "
        "visit. With --data-dir: purge in the data directory of a stopped server (refused "
        "while a server holds it). Either way the visit must have ended.",
    )
    p.add_argument("--visit", required=True, help="the visit id, e.g. V000042")
    p.add_argument("--reason", default="claimant request", help="logged with the purge")
    p.add_argument("--server", help="the running server (ws://host:port)")
    p.add_argument("--token", help="an admin token of the visit's office (with --server)")
    p.add_argument("--ca-file", type=Path, help="trust this CA for wss:// (with --server)")
    p.add_argument("--data-dir", type=Path, help="a stopped server's data directory")
    p.add_argument(
        "--signing-key", type=Path, help="offline: sign the new checkpoint as the server does"
    )
    p.add_argument("--by", help="offline: who purges (default: the OS user)")


def run(args: argparse.Namespace) -> int:
    if (args.server is None) == (args.data_dir is None):
        raise CliError("give either --server and --token, or --data-dir", EXIT_USAGE)
    if args.server is not None:
        return _online(args)
    return _offline(args)


def _online(args: argparse.Namespace) -> int:
    import asyncio

    from lapak.cli.clients import server_url, token_claims, trust

    if not args.token:
        raise CliError("--server needs --token (an admin's)", EXIT_USAGE)
    claims = token_claims(args.token)
    if claims.get("role") != "admin":
        raise CliError(f"purge needs an admin token, not a {claims.get('role')} one", EXIT_TOKEN)
    trust(args.ca_file)
    asyncio.run(_send(server_url(args.server), args.token, args.visit, args.reason))
    sys.stdout.write(f"{args.visit}: purged (its key is destroyed)\n")
    return EXIT_OK


async def _send(url: str, token: str, visit: str, reason: str) -> None:
    from lapak.signaling.client import SignalClient

    client = SignalClient(url, token, reconnect=False)
    try:
        await client.connect()
        await client.request({"type": "purge_visit", "visit": visit, "reason": reason})
    finally:
        await client.close()


def _offline(args: argparse.Namespace) -> int:
    from lapak.signaling import signing
    from lapak.signaling.purge import PurgeError, purge_offline

    signer = None
    if args.signing_key is not None:
        try:
            signer = signing.load(args.signing_key)
        except FileNotFoundError:
            raise CliError(f"no signing key at {args.signing_key}", EXIT_NO_FILE) from None
        except signing.SigningKeyError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
    if not (args.data_dir / "events.sqlite3").is_file():
        raise CliError(f"no event log in {args.data_dir}", EXIT_NO_FILE)
    by = args.by or getpass.getuser()
    try:
        done = purge_offline(args.data_dir, args.visit, args.reason, by, time.time(), signer)
    except PurgeError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    sys.stdout.write(f"{done.visit}: purged (its key is destroyed; event {done.seq})\n")
    return EXIT_OK
