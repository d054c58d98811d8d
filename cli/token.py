"""``lapak token``: print a signed access token (``--ttl`` a duration, capped per role by the
server's ``[token_ttl_max_s]``); ``lapak token revoke --jti J``: add a token id to the
server's revocation list (``revoked.json`` in its data directory)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from lapak.cli.errors import CliError
from lapak.cli.exit_codes import EXIT_OK, EXIT_USAGE


def duration(text: str) -> float:
    """argparse type: ``90s``, ``15m``, ``8h``, ``2d`` or seconds."""
    from lapak.signaling.tokens import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "token", help="print a signed access token, or revoke one (lapak token revoke --jti J)"
    )
    p.add_argument("action", nargs="?", choices=("issue", "revoke"), default="issue")
    p.add_argument(
        "--secret-file", type=Path, help="token keys (default: secret_file in --config's [server])"
    )
    p.add_argument("--role", choices=("officer", "booth", "supervisor", "admin", "recorder"))
    p.add_argument("--sub", help="who the token is for (user or booth id)")
    p.add_argument("--office")
    p.add_argument("--desk", help="the officer's desk")
    p.add_argument("--booth", help="the booth id (role booth)")
    p.add_argument(
        "--grant",
        action="append",
        choices=("monitor", "coach", "barge", "resolve"),
        help="a supervisor's grant beyond watching (repeat: --grant coach --grant resolve); "
        "monitor is always held, an admin holds every grant",
    )
    p.add_argument(
        "--ttl",
        type=duration,
        help="lifetime: 90s, 15m, 8h, 2d or seconds (default 12 h or the role's cap if shorter)",
    )
    p.add_argument(
        "--config", type=Path, help="server TOML: [token_ttl_max_s] caps --ttl; its data_dir"
    )
    p.add_argument("--jti", help="revoke: the token id to refuse from now on")
    p.add_argument("--data-dir", type=Path, help="revoke: the server's data directory")
    p.add_argument("--revocations", type=Path, help="revoke: the list file itself")


def load_config(path: Path | None) -> Any:
    from lapak.signaling.config import ServerConfig

    try:
        return ServerConfig.load(path)
    except ValueError as exc:  # ConfigError
        raise CliError(str(exc), EXIT_USAGE) from None


def run(args: argparse.Namespace) -> int:
    if args.action == "revoke":
        return run_revoke(args)
    from lapak.cli.keys import read_keys
    from lapak.signaling.tokens import default_ttl

    missing = [f"--{n}" for n in ("role", "sub", "office") if getattr(args, n) is None]
    if missing:
        raise CliError(f"lapak token needs {', '.join(missing)}")
    config = load_config(args.config)
    secret_file = args.secret_file or config.launch.secret_file
    if secret_file is None:
        raise CliError("no secret file: pass --secret-file, or --config with secret_file")
    keys = read_keys(secret_file)
    try:
        cap = config.ttl_max(args.role)
        ttl = min(default_ttl(args.role), cap) if args.ttl is None else args.ttl
        if not 0 < ttl <= cap:
            raise ValueError(
                f"--ttl must be in (0, {cap:g}] s for role {args.role} (token_ttl_max_s)"
            )
        token = keys.issue(
            args.role,
            args.sub,
            args.office,
            desk=args.desk,
            booth=args.booth,
            ttl=ttl,
            grants=args.grant,
        )
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    claims = keys.verify(token)
    # stdout is the token alone (scripts capture it); its id goes to stderr, for revoking it later.
    held = f" grants={','.join(claims.grants)}" if claims.grants else ""
    sys.stderr.write(
        f"lapak token: jti={claims.jti} role={claims.role} exp={int(claims.exp)}{held}\n"
    )
    sys.stdout.write(token + "\n")
    return EXIT_OK


def list_path(args: argparse.Namespace, name: str, flag: str) -> Path:
    """A file in the server's data directory: ``flag`` itself, else ``--data-dir``, else
    the ``data_dir`` of ``--config``."""
    explicit: Path | None = getattr(args, flag.removeprefix("--").replace("-", "_"))
    if explicit is not None:
        return explicit
    if args.data_dir is None and args.config is None:
        raise CliError(f"where is the server? pass --data-dir, --config or {flag}")
    data_dir: Path = args.data_dir or load_config(args.config).launch.data_dir
    if not data_dir.is_dir():
        raise CliError(f"no data directory {data_dir}")
    return data_dir / name


def run_revoke(args: argparse.Namespace) -> int:
    from lapak.signaling.revocation import REVOKED_FILE, RevocationError, revoke

    if not args.jti:
        raise CliError("lapak token revoke needs --jti (the token's id)")
    path = list_path(args, REVOKED_FILE, "--revocations")
    try:
        added = revoke(path, args.jti, time.time())
    except (RevocationError, OSError) as exc:
        raise CliError(str(exc)) from None
    state = "revoked" if added else "already revoked"
    sys.stdout.write(f"{state}: {args.jti} (in {path}; the server applies it within a second)\n")
    return EXIT_OK
