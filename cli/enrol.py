"""``lapak enrol``: make a one-time enrolment code for one booth (on the server host: it
writes to the server's data directory), shown as text and as a terminal QR code that opens
the kiosk page with the code. The booth trades it once for a token (``POST /enrol``)."""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import Any

from lapak.cli.errors import CliError
from lapak.cli.exit_codes import EXIT_OK
from lapak.cli.token import duration, list_path, load_config

DEFAULT_TTL_S = 15 * 60.0


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "enrol", help="make a one-time code a booth trades for its token"
    )
    p.add_argument("--booth", required=True, help="the booth the code enrols")
    p.add_argument("--office", required=True, help="the booth's office")
    p.add_argument("--ttl", type=duration, default=DEFAULT_TTL_S, help="code valid for (15m)")
    p.add_argument("--config", type=Path, help="server TOML (its data_dir and public_url)")
    p.add_argument("--data-dir", type=Path, help="the server's data directory")
    p.add_argument("--enrolments", type=Path, help="the code list file itself")
    p.add_argument("--server", help="https://host:port the kiosk opens (default: public_url)")
    p.add_argument("--no-qr", action="store_true", help="print the code only")


def http_base(server: str) -> str:
    """``https://host:port`` of a server named like ``--server`` (ws://, wss://, http(s)://,
    host:port; a path of /ws or /booth dropped)."""
    base = server.rstrip("/") if "://" in server else f"http://{server.rstrip('/')}"
    for old, new in (("wss://", "https://"), ("ws://", "http://")):
        if base.startswith(old):
            base = new + base[len(old) :]
    return base.removesuffix("/ws").removesuffix("/booth")


def kiosk_link(server: str, code: str) -> str:
    """The kiosk page of ``server`` with the code to exchange."""
    return f"{http_base(server)}/booth?enrol={code}"


def qr_text(data: str) -> str:
    """``data`` as a QR code in unicode half blocks (two modules per character row)."""
    import segno

    out = io.StringIO()
    segno.make(data, error="m").terminal(out=out, compact=True)
    return out.getvalue()


def run(args: argparse.Namespace) -> int:
    from lapak.signaling.enrolment import ENROLMENTS_FILE, EnrolmentError, create
    from lapak.signaling.limits import MAX_ID

    for flag, value in (("--booth", args.booth), ("--office", args.office)):
        if not 0 < len(value) <= MAX_ID:
            raise CliError(f"{flag} must be 1 to {MAX_ID} characters")
    config = load_config(args.config) if args.config is not None else None
    path = list_path(args, ENROLMENTS_FILE, "--enrolments")
    if config is not None and args.ttl > config.ttl_max("booth"):
        raise CliError("--ttl of a code cannot exceed the booth token's cap (token_ttl_max_s)")
    try:
        code = create(path, args.office, args.booth, args.ttl, time.time())
    except (EnrolmentError, OSError) as exc:
        raise CliError(str(exc)) from None
    server = args.server or (config.public_url if config is not None else None)
    minutes = args.ttl / 60
    lines = [
        f"enrolment code for booth {args.booth} of office {args.office}: {code}",
        f"valid {minutes:g} min, once. On the booth: lapak booth --enrol {code} --server URL"
        " --token-file F",
    ]
    if server:
        link = kiosk_link(server, code)
        lines.append(f"kiosk page: {link}")
    sys.stdout.write("\n".join(lines) + "\n")
    if not args.no_qr:
        sys.stdout.write(qr_text(kiosk_link(server, code) if server else code))
    return EXIT_OK


def exchange(server: str, code: str, ca_file: Path | None = None, timeout: float = 15) -> str:
    """Trade an enrolment code for a booth token; CliError with the server's reason."""
    import json
    import ssl
    import urllib.error
    import urllib.request

    from lapak.cli.exit_codes import EXIT_TOKEN, EXIT_UNREACHABLE

    url = f"{http_base(server)}/enrol"
    request = urllib.request.Request(
        url, data=b"", method="POST", headers={"Authorization": f"Enrol {code}"}
    )
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            body = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("message", exc.reason)
        except ValueError:
            reason = exc.reason
        raise CliError(f"enrolment refused by {url}: {reason}", EXIT_TOKEN) from None
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(f"cannot reach {url}: {exc}", EXIT_UNREACHABLE) from None
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str):
        raise CliError(f"{url} answered without a token", EXIT_TOKEN)
    return token


def token_from_file(args: argparse.Namespace) -> str:
    """``--token-file F`` (after ``--enrol CODE`` has filled it, 0600): the token in F."""
    from lapak.cli.clients import read_token_file
    from lapak.signaling.revocation import write_private

    path: Path | None = args.token_file
    if path is None:
        raise CliError("--enrol needs --token-file (where the booth keeps its token)")
    if args.enrol is not None:
        token = exchange(args.server, args.enrol, args.ca_file)
        write_private(path, token + "\n")
        return token
    return read_token_file(path)
