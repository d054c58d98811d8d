"""``lapak signal``: the headless signalling server, configured from flags, ``LAPAK_*``
variables and a TOML file (docs/configuration.md). Never imports the console or media."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lapak.cli.errors import CliError
from lapak.cli.exit_codes import EXIT_FAILED, EXIT_USAGE
from lapak.cli.options import on_off

if TYPE_CHECKING:
    from lapak.signaling.config import Launch, ServerConfig
    from lapak.signaling.tls import CertFiles

ENV_CONFIG = "LAPAK_SERVER_CONFIG"
"""The server's TOML file (``LAPAK_CONFIG`` is the console's settings file)."""
FLAGS = {  # flag attribute -> [server] key, and the flag's name in messages
    "host": ("host", "--host"),
    "port": ("port", "--port"),
    "data_dir": ("data_dir", "--data-dir"),
    "secret_file": ("secret_file", "--secret-file"),
    "signing_key": ("signing_key", "--signing-key"),
    "tls_cert": ("tls_cert", "--tls-cert"),
    "tls_key": ("tls_key", "--tls-key"),
    "office": ("offices", "--office"),
    "grace": ("grace_s", "--grace"),
    "video_tiers": ("video_tiers", "--video-tiers"),
    "recording": ("recording", "--recording"),
    "store": ("store", "--store"),
    "node_url": ("node_url", "--node-url"),
    "lease_s": ("lease_s", "--lease-s"),
}


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "signal",
        help="run the headless signalling server",
        description="Every option also comes from LAPAK_<KEY> or the --config file "
        "(docs/configuration.md); a flag wins over a variable, a variable over the file.",
    )
    p.add_argument(
        "--config", type=Path, help=f"server TOML, e.g. /etc/lapak/server.toml (${ENV_CONFIG})"
    )
    p.add_argument("--check-config", action="store_true", help="check everything, start nothing")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--data-dir", type=Path, help="event log directory (default ./data)")
    p.add_argument(
        "--secret-file",
        type=Path,
        help="token keys, one per line (first signs); created if missing",
    )
    p.add_argument(
        "--office",
        action="append",
        help="an office this server serves (repeatable; default: any in a valid token)",
    )
    p.add_argument("--grace", type=float, help="seconds a dropped client keeps its place")
    p.add_argument(
        "--video-tiers",
        type=on_off,
        metavar="on|off",
        help="off-air booths send thumbnails, the on-air one full video (default on)",
    )
    p.add_argument(
        "--recording",
        type=on_off,
        metavar="on|off",
        help="visits are recorded (lapak recorder): booths say so from routing (default off)",
    )
    p.add_argument(
        "--store",
        metavar="URL",
        help="the event log on PostgreSQL (postgresql://user@host/db) instead of SQLite in "
        "--data-dir (which still holds enrolments and revocations)",
    )
    p.add_argument(
        "--node-url",
        metavar="URL",
        help="with --store: this node's public ws(s):// URL; offices are leased to one node "
        "at a time and clients of another node's office are sent there",
    )
    p.add_argument(
        "--lease-s", type=float, help="with --node-url: seconds an office lease lasts (10)"
    )
    p.add_argument("--tls-cert", type=Path, help="PEM certificate: serve wss:// and https://")
    p.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert")
    p.add_argument(
        "--signing-key",
        type=Path,
        help="Ed25519 key (PEM) that signs the log's checkpoints; created (0600) when missing; "
        "must be outside --data-dir (default: SECRET-FILE.signing-key)",
    )


def settings(args: argparse.Namespace, env: os._Environ[str] | dict[str, str]) -> ServerConfig:
    """The configuration from the file, the variables and the flags; CliError naming every
    problem."""
    from lapak.signaling.config import ConfigError, ServerConfig, server_key_problems

    overrides: dict[str, object] = {}
    problems: list[str] = []
    for attr, (key, flag) in FLAGS.items():
        value = getattr(args, attr, None)
        if value is None:
            continue
        value = str(value) if isinstance(value, Path) else value
        wrong = server_key_problems(key, value, strict=True)
        problems += [p.replace(f"[server] {key}", flag, 1) for p in wrong]
        if not wrong:
            overrides[key] = value
    path = args.config or env.get(ENV_CONFIG) or None
    try:
        config = ServerConfig.load(path, env=env, overrides=overrides)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise CliError([f"bad configuration: {p}" for p in problems], EXIT_USAGE)
    return config


def signing_key_path(launch: Launch) -> Path | None:
    """``signing_key``, else ``SECRET-FILE.signing-key`` beside the secret file."""
    if launch.signing_key is not None or launch.secret_file is None:
        return launch.signing_key
    return launch.secret_file.with_name(launch.secret_file.name + ".signing-key")


def tls_files(launch: Launch) -> CertFiles | None:
    """The server's certificate and key files (re-read on SIGHUP), or None without TLS."""
    if not (launch.tls_cert or launch.tls_key):
        return None
    if not (launch.tls_cert and launch.tls_key):
        raise CliError("--tls-cert and --tls-key go together", EXIT_USAGE)
    from lapak.signaling.tls import CertFiles

    return CertFiles(launch.tls_cert, launch.tls_key)


def run(args: argparse.Namespace) -> int:
    if args.check_config:
        from lapak.cli.check_config import check

        return check(args, os.environ)
    config = settings(args, os.environ)
    launch = config.launch
    if launch.secret_file is None:
        raise CliError(
            "no secret file: pass --secret-file, set LAPAK_SECRET_FILE or [server] secret_file",
            EXIT_USAGE,
        )
    if launch.node_url and not launch.store:
        raise CliError("--node-url needs --store: the leases live in PostgreSQL", EXIT_USAGE)
    if launch.node_url and not config.offices:
        raise CliError("--node-url needs --office: the offices this node takes", EXIT_USAGE)
    certs = tls_files(launch)
    context = certs.context() if certs else None  # ssl.SSLError: a usage error
    from lapak.signaling.config import ConfigError
    from lapak.signaling.ice import load_ice

    try:
        load_ice(config.ice)  # the TURN secret file: a bad one is a usage error, not a crash
    except ConfigError as exc:
        raise CliError(exc.problems, EXIT_USAGE) from None

    import asyncio

    from lapak.cli.keys import load_or_create_keys
    from lapak.cli.process import stop_on_signals
    from lapak.signaling import signing
    from lapak.signaling.eventlog import LogError
    from lapak.signaling.server import SignalServer, run_server

    key_path = signing_key_path(launch)
    assert key_path is not None  # a secret file is set
    try:
        signer = signing.load_or_create(key_path, launch.data_dir)
    except signing.SigningKeyError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    secret_file = launch.secret_file

    async def serve() -> None:
        keys = load_or_create_keys(secret_file)
        server = SignalServer(
            launch.data_dir, keys, host=launch.host, port=launch.port, config=config,
            ssl_context=context, tune_gc=True, secret_file=secret_file, signer=signer,
            tls_files=certs,
        )  # fmt: skip
        stop = asyncio.Event()
        stop_on_signals(stop)
        await run_server(server, stop)

    try:
        asyncio.run(serve())
    except LogError as exc:  # a bad data directory at start, or a failed write later
        raise CliError(str(exc), EXIT_FAILED) from None
    return 0
