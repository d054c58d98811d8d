"""``lapak token``: print a signed access token, its lifetime capped per role by the server's
``[token_ttl_max_s]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lapak.cli.errors import CliError
from lapak.cli.exit_codes import EXIT_OK, EXIT_USAGE

DEFAULT_TTL_S = 12 * 3600.0


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("token", help="print a signed access token")
    p.add_argument(
        "--secret-file", type=Path, help="token keys (default: secret_file in --config's [server])"
    )
    p.add_argument("--role", required=True, choices=("officer", "booth", "supervisor", "admin"))
    p.add_argument("--sub", required=True, help="who the token is for (user or booth id)")
    p.add_argument("--office", required=True)
    p.add_argument("--desk", help="the officer's desk")
    p.add_argument("--booth", help="the booth id (role booth)")
    p.add_argument(
        "--ttl", type=float, help="seconds until expiry (default 12 h, capped per role by config)"
    )
    p.add_argument("--config", type=Path, help="server TOML whose [token_ttl_max_s] caps --ttl")


def run(args: argparse.Namespace) -> int:
    from lapak.cli.keys import read_keys
    from lapak.signaling.config import ServerConfig

    try:
        config = ServerConfig.load(args.config)
    except ValueError as exc:  # ConfigError
        raise CliError(str(exc), EXIT_USAGE) from None
    secret_file = args.secret_file or config.launch.secret_file
    if secret_file is None:
        raise CliError("no secret file: pass --secret-file, or --config with secret_file")
    keys = read_keys(secret_file)
    try:
        cap = config.ttl_max(args.role)
        ttl = min(DEFAULT_TTL_S, cap) if args.ttl is None else args.ttl
        if not 0 < ttl <= cap:
            raise ValueError(
                f"--ttl must be in (0, {cap:g}] s for role {args.role} (token_ttl_max_s)"
            )
        token = keys.issue(
            args.role, args.sub, args.office, desk=args.desk, booth=args.booth, ttl=ttl
        )
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    sys.stdout.write(token + "\n")
    return EXIT_OK
