"""The ``lapak`` command: one entry point for every role.

Subcommands import what they need lazily, so ``lapak signal`` on a headless server never
loads Textual.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import logging.handlers
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit, urlunsplit

from lapak.cli.exit_codes import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NO_FILE,
    EXIT_PIPE,
    EXIT_REPLACED,
    EXIT_TLS,
    EXIT_TOKEN,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)

if TYPE_CHECKING:
    from textual.app import App

log = logging.getLogger("lapak.cli")

DEFAULT_PORT = 8765

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
CONSOLE_LOG_BYTES = 5 * 1024 * 1024
CONSOLE_LOG_BACKUPS = 3
TOKEN_CODES = frozenset(
    {"bad_token", "bad_signature", "token_expired", "wrong_office", "forbidden"}
)
"""Server error codes that mean: this token cannot do this."""


class CliError(Exception):
    """An operator error: one line on stderr, and ``code`` as the exit status."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (the full usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LOG_LEVELS)}, not {text!r}")
    return level


def _day(text: str) -> str:
    import datetime as dt

    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lapak")
    except PackageNotFoundError:
        return "unknown"


def server_url(url: str) -> str:
    """Accept ``ws://host:port`` or ``host:port``; the websocket lives at ``/ws``."""
    if "://" not in url:
        url = f"ws://{url}"
    parts = urlsplit(url)
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("size must look like 640x480") from None
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError("size must be even and at least 16x16")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lapak",
        description="One officer, six video booths, one keyboard.",
    )
    parser.add_argument("--version", action="version", version=f"lapak {_version()}")
    parser.add_argument(
        "--log-level", type=_log_level, default="INFO", help="DEBUG, INFO, WARNING or ERROR"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("signal", help="run the headless signalling server")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0 picks a free one)")
    p.add_argument("--data-dir", type=Path, default=Path("data"), help="event log directory")
    p.add_argument(
        "--secret-file",
        type=Path,
        required=True,
        help="token keys, one per line (first signs); created when missing",
    )
    p.add_argument("--config", type=Path, help="server TOML (offices, workflows, reasons, ...)")
    p.add_argument(
        "--office",
        action="append",
        default=[],
        help="an office this server serves (repeatable; default: any in a valid token)",
    )
    p.add_argument("--grace", type=float, help="seconds a dropped client keeps its place")
    p.add_argument("--tls-cert", type=Path, help="PEM certificate: serve wss:// and https://")
    p.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert")
    p.add_argument(
        "--signing-key",
        type=Path,
        help="Ed25519 key (PEM) that signs the log's checkpoints; created (0600) when missing; "
        "must be outside --data-dir (default: SECRET-FILE.signing-key)",
    )

    p = sub.add_parser("audit", help="verify or export the audit trail of a data directory")
    audit = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    a = audit.add_parser(
        "verify", help="check the hash chain and checkpoints: exit 1 if anything was altered"
    )
    a.add_argument("--data-dir", type=Path, required=True)
    a.add_argument(
        "--public-key",
        type=Path,
        help="the server's public key (from `lapak audit public-key`): also check signatures",
    )
    a = audit.add_parser("public-key", help="print the public half of a signing key (PEM)")
    a.add_argument("--signing-key", type=Path, required=True)
    a = audit.add_parser("export", help="write who decided what, when, from which role")
    a.add_argument("--data-dir", type=Path, required=True)
    a.add_argument("--visit", help="only this visit")
    a.add_argument("--day", type=_day, help="only this day (YYYY-MM-DD, server local time)")
    a.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    a.add_argument("--output", type=Path, help="file to write (default: stdout)")

    p = sub.add_parser("token", help="print a signed access token")
    p.add_argument("--secret-file", type=Path, required=True)
    p.add_argument("--role", required=True, choices=("officer", "booth", "supervisor", "admin"))
    p.add_argument("--sub", required=True, help="who the token is for (user or booth id)")
    p.add_argument("--office", required=True)
    p.add_argument("--desk", help="the officer's desk")
    p.add_argument("--booth", help="the booth id (role booth)")
    p.add_argument(
        "--ttl", type=float, help="seconds until expiry (default 12 h, capped per role by config)"
    )
    p.add_argument("--config", type=Path, help="server TOML whose [token_ttl_max_s] caps --ttl")

    p = sub.add_parser("booth", help="run a booth (camera, mic, speaker) or simulated booths")
    p.add_argument("--server", required=True, help="ws://host:port of the signalling server")
    auth = p.add_mutually_exclusive_group(required=True)
    auth.add_argument("--token", help="a booth token (then --count must be 1)")
    auth.add_argument("--secret-file", type=Path, help="mint booth tokens from this key file")
    p.add_argument("--count", type=int, default=1, help="how many booths (default 1)")
    p.add_argument("--first", type=int, default=0, help="index of the first booth (default 0)")
    p.add_argument("--office", default="main", help="office of minted tokens (default main)")
    p.add_argument("--size", type=_size, default=(640, 480), help="video size (640x480)")
    p.add_argument("--fps", type=int, default=15, help="video frames per second (15)")
    p.add_argument(
        "--camera", help="capture device (/dev/video0, 0 on macOS, a dshow name); else test card"
    )
    p.add_argument("--mic", help="microphone (default, hw:1, alsa:hw:1, :0) or none; else a tone")
    p.add_argument(
        "--speaker", default="none", help="where the officer is played: device, a name, FILE.wav"
    )
    p.add_argument("--source", help="a recording played as camera and microphone (looped)")
    p.add_argument(
        "--status-view", action="store_true", help="show the claimant's screen state here"
    )
    p.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the starting process ends (used by lapak demo)",
    )
    _ca_option(p)

    p = sub.add_parser("console", help="the officer's console")
    p.add_argument("--server", required=True)
    p.add_argument("--token", required=True, help="an officer token")
    p.add_argument(
        "--audio-in",
        default="none",
        help="what the on-air booth hears: none, tone, or FILE played as the mic (default none)",
    )
    p.add_argument("--camera", help="the officer's camera; else a card with name and desk")
    p.add_argument(
        "--audio-out", default="none", help="where booths are heard: device, a name, FILE.wav"
    )
    p.add_argument(
        "--monitor-level",
        type=float,
        default=0.0,
        help="gain 0..1 for booths not on air (default 0: muted)",
    )
    _ca_option(p)
    _ui_options(p)

    p = sub.add_parser("supervise", help="watch a desk, read-only")
    p.add_argument("--server", required=True)
    p.add_argument("--token", required=True, help="a supervisor token")
    p.add_argument("--desk", help="desk to watch (default: the office's first)")
    _ca_option(p)
    _ui_options(p)

    p = sub.add_parser("demo", help="server, simulated booths and the console in one go")
    p.add_argument("--booths", type=int, default=6, help="how many booths (1..6, default 6)")
    p.add_argument("--size", type=_size, default=(640, 480), help="booth video size (640x480)")
    _ui_options(p)

    from lapak.signaling.simulation.cli import add_parser as add_simulate  # argparse only

    add_simulate(sub)
    _log_level_everywhere(parser)
    return parser


def _log_level_everywhere(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` after any subcommand too (``lapak booth --log-level DEBUG ...``)."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in action.choices.values():
            if not any("--log-level" in a.option_strings for a in child._actions):
                child.add_argument(
                    "--log-level",
                    type=_log_level,
                    default=argparse.SUPPRESS,
                    help="DEBUG, INFO, WARNING or ERROR (default INFO)",
                )
            _log_level_everywhere(child)


def _ca_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ca-file",
        type=Path,
        help="PEM certificate(s) to trust for wss:// (a server with a self-signed certificate)",
    )


def _ui_options(p: argparse.ArgumentParser) -> None:
    """Language and settings file of the console screens."""
    p.add_argument("--lang", choices=("en", "id"), help="en or id (default: config, then locale)")
    p.add_argument(
        "--config",
        type=Path,
        help="console settings (TOML); default $LAPAK_CONFIG or ~/.config/lapak/console.toml",
    )


def _ui_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The console settings, or None after saying why they cannot be read."""
    from lapak.console.app import BINDING_IDS
    from lapak.console.config import ConfigError, load_config

    try:
        return load_config(args.config, known_bindings=BINDING_IDS)
    except ConfigError as exc:
        sys.stderr.write(f"lapak {args.command}: {exc}\n")
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; operator errors end in one line on stderr and a documented code."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except CliError as exc:
        _say(args, str(exc))
        return exc.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Python's advice: point stdout at devnull so the interpreter's final flush is quiet.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE
    except Exception as exc:
        failure = _operator_error(exc, args.command)
        if failure is None:
            raise
        _say(args, failure.args[0])
        return failure.code


def _say(args: argparse.Namespace, message: str) -> None:
    sub = getattr(args, "audit_command", None)
    who = f"lapak {args.command}" + (f" {sub}" if sub else "")
    sys.stderr.write(f"{who}: {message}\n")
    sys.stderr.flush()


def _operator_error(exc: BaseException, command: str) -> CliError | None:
    """What an exception means to an operator, or None when it is a bug (left to raise)."""
    import socket
    import ssl

    from lapak.signaling.client import RequestError

    if isinstance(exc, ssl.SSLCertVerificationError):
        return CliError(
            f"the server's certificate is not trusted ({exc.verify_message}); "
            "pass its CA with --ca-file",
            EXIT_TLS,
        )
    if isinstance(exc, ssl.SSLError):
        if command == "signal":  # our own --tls-cert/--tls-key, not a server we distrust
            return CliError(f"cannot use --tls-cert/--tls-key: {exc}", EXIT_USAGE)
        return CliError(f"TLS failed: {exc}", EXIT_TLS)
    if isinstance(exc, RequestError):
        code = EXIT_TOKEN if exc.code in TOKEN_CODES else EXIT_FAILED
        return CliError(f"the server refused: {exc.code}: {exc.message}", code)
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
        name = exc.filename or "a file"
        return CliError(f"cannot read {name}: {exc.strerror}", EXIT_NO_FILE)
    if command != "signal" and isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror)):
        return CliError(f"cannot reach the server: {exc}", EXIT_UNREACHABLE)
    if isinstance(exc, OSError) and exc.errno is not None:  # e.g. the port is taken
        return CliError(str(exc), EXIT_FAILED)
    return None


def _run(args: argparse.Namespace) -> int:
    from lapak.signaling.logs import setup_logging

    if args.command not in ("console", "supervise", "demo"):
        setup_logging(args.log_level)
    _trust(getattr(args, "ca_file", None))
    if args.command in TOKEN_ROLES:
        _check_token(args.command, args.token)
    handlers = {
        "signal": cmd_signal,
        "audit": cmd_audit,
        "token": cmd_token,
        "booth": cmd_booth,
        "console": cmd_console,
        "supervise": cmd_supervise,
        "demo": cmd_demo,
        "simulate": cmd_simulate,
    }
    return handlers[args.command](args)


TOKEN_ROLES = {
    "console": ("officer",),
    "supervise": ("supervisor", "admin"),
    "booth": ("booth",),
}
"""The roles whose token each client subcommand takes (``--token``)."""
COMMAND_FOR_ROLE = {
    "officer": "lapak console",
    "supervisor": "lapak supervise",
    "admin": "lapak supervise",
    "booth": "lapak booth",
}


def _token_claims(token: str) -> dict[str, object]:
    """A token's claims, unverified (the server verifies); CliError when it is not one."""
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise CliError("--token is not a Lapak token (see lapak token)", EXIT_TOKEN) from None
    if not isinstance(claims, dict):
        raise CliError("--token is not a Lapak token (see lapak token)", EXIT_TOKEN)
    return claims


def _check_token(command: str, token: str | None) -> None:
    """Refuse a token for another role before connecting, naming the right command."""
    if token is None:
        return
    role = _token_claims(token).get("role")
    if role in TOKEN_ROLES[command]:
        return
    other = COMMAND_FOR_ROLE.get(str(role))
    hint = f"; use {other}" if other else ""
    wanted = " or ".join(TOKEN_ROLES[command])
    raise CliError(f"this is {_a(str(role))} token, not {_a(wanted)} token{hint}", EXIT_TOKEN)


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _trust(ca_file: Path | None) -> None:
    """``--ca-file``: trust the certificates in this file (instead of the system's CAs)."""
    if ca_file is None:
        return
    import ssl

    from lapak.signaling.client import SignalClient

    try:
        context = ssl.create_default_context(cafile=str(ca_file))
    except FileNotFoundError:
        raise CliError(f"cannot read --ca-file {ca_file}", EXIT_NO_FILE) from None
    except (ssl.SSLError, ValueError) as exc:
        problem = f"--ca-file {ca_file} holds no usable certificate: {exc}"
        raise CliError(problem, EXIT_USAGE) from None
    SignalClient.tls = context


def cmd_simulate(args: argparse.Namespace) -> int:
    from lapak.signaling.simulation.cli import run

    return run(args)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


def _load_or_create_keys(path: Path):  # type: ignore[no-untyped-def]
    from lapak.signaling.tokens import KeyRing

    if not path.exists():
        keys = KeyRing.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        keys.write(path)
        log.info("event=secret_created path=%s", path)
        return keys
    return _read_keys(path)


def cmd_signal(args: argparse.Namespace) -> int:
    from lapak.signaling.config import ServerConfig
    from lapak.signaling.server import SignalServer, run_server

    try:
        config = ServerConfig.load(args.config)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        sys.stderr.write(f"lapak signal: bad --config: {exc}\n")
        return 2
    if args.office:
        config.offices = list(args.office)
    if args.grace is not None:
        config.grace_s = args.grace
    context = None
    if args.tls_cert or args.tls_key:
        import ssl

        if not (args.tls_cert and args.tls_key):
            sys.stderr.write("lapak signal: --tls-cert and --tls-key go together\n")
            return 2
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)

    from lapak.signaling import signing
    from lapak.signaling.eventlog import LogError

    key_path = args.signing_key or args.secret_file.with_name(
        args.secret_file.name + ".signing-key"
    )
    try:
        signer = signing.load_or_create(key_path, args.data_dir)
    except signing.SigningKeyError as exc:
        sys.stderr.write(f"lapak signal: {exc}\n")
        return 2

    async def run() -> None:
        keys = _load_or_create_keys(args.secret_file)
        server = SignalServer(
            args.data_dir, keys, host=args.host, port=args.port, config=config,
            ssl_context=context, tune_gc=True, secret_file=args.secret_file, signer=signer,
        )  # fmt: skip
        stop = asyncio.Event()
        _stop_on_signals(stop)
        await run_server(server, stop)

    try:
        asyncio.run(run())
    except LogError as exc:  # a bad data directory at start, or a failed write later
        sys.stderr.write(f"lapak signal: {exc}\n")
        return 1
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    import sqlite3

    from lapak.signaling import signing
    from lapak.signaling.audit import export, verify_dir

    try:
        if args.audit_command == "public-key":
            sys.stdout.write(signing.load(args.signing_key).public_pem())
            return 0
        public = signing.load_public(args.public_key) if getattr(args, "public_key", None) else None
    except FileNotFoundError:
        sys.stderr.write(f"lapak audit: no signing key at {args.signing_key}\n")
        return EXIT_NO_FILE
    except signing.SigningKeyError as exc:
        sys.stderr.write(f"lapak audit: {exc}\n")
        return 2
    marker = args.data_dir / "checkpoint.json"
    if not (args.data_dir / "events.sqlite3").exists() and not marker.exists():
        sys.stderr.write(f"lapak audit: no event log in {args.data_dir}\n")
        return EXIT_NO_FILE
    if args.audit_command == "verify":
        report = verify_dir(args.data_dir, public)
        for problem in report.problems:
            sys.stdout.write(f"BROKEN {problem}\n")
        for note in report.notes:
            sys.stdout.write(f"NOTE {note}\n")
        sys.stdout.write(f"{report.count} events checked, {len(report.problems)} problems\n")
        return 1 if report.problems else 0
    if not (args.data_dir / "events.sqlite3").exists():
        sys.stderr.write(f"lapak audit: no event log in {args.data_dir} (run audit verify)\n")
        return EXIT_NO_FILE
    out = args.output.open("w", newline="") if args.output else sys.stdout
    try:
        export(args.data_dir, out, fmt=args.format, visit=args.visit, day=args.day)
    except (sqlite3.Error, ValueError) as exc:  # a damaged log: verify names the rows
        sys.stderr.write(f"lapak audit: cannot export ({exc}); run `lapak audit verify`\n")
        return 1
    finally:
        if args.output:
            out.close()
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from lapak.signaling.config import ServerConfig

    keys = _read_keys(args.secret_file)
    try:
        cap = ServerConfig.load(args.config).ttl_max(args.role)
        ttl = min(12 * 3600, cap) if args.ttl is None else args.ttl
        if not 0 < ttl <= cap:
            raise ValueError(
                f"--ttl must be in (0, {cap:g}] s for role {args.role} (token_ttl_max_s)"
            )
        token = keys.issue(
            args.role, args.sub, args.office, desk=args.desk, booth=args.booth, ttl=ttl
        )
    except ValueError as exc:
        sys.stderr.write(f"lapak token: {exc}\n")
        return 2
    sys.stdout.write(token + "\n")
    return 0


def _read_keys(path: Path):  # type: ignore[no-untyped-def]
    """The key ring in ``--secret-file``; CliError when it is missing or holds no key."""
    from lapak.signaling.tokens import KeyRing

    try:
        return KeyRing.from_file(path)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise CliError(f"cannot read --secret-file {path}: {exc.strerror}", EXIT_NO_FILE) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CliError(f"--secret-file {path}: {exc}", EXIT_NO_FILE) from None


def cmd_booth(args: argparse.Namespace) -> int:
    from lapak.media.booth import BoothAgent, BoothMediaConfig
    from lapak.media.simulator import generated_claimant, make_booths, run_booths

    url = server_url(args.server)
    media = BoothMediaConfig(
        width=args.size[0],
        height=args.size[1],
        fps=args.fps,
        camera=args.camera,
        mic=args.mic,
        source=args.source,
        speaker=args.speaker,
    )
    if args.count != 1 and (args.camera or args.mic or args.source or args.speaker != "none"):
        sys.stderr.write("lapak booth: devices are for one booth; drop --count\n")
        return 2
    if args.token:
        if args.count != 1:
            sys.stderr.write("lapak booth: one --token runs one booth; use --secret-file\n")
            return 2
        claims = _token_claims(args.token)
        import random

        name = str(claims.get("booth", "booth"))
        agents = [
            BoothAgent(url, args.token, name, args.first % 6, generated_claimant(random.Random()))
        ]
        agents[0].media = media
    else:
        keys = _read_keys(args.secret_file)
        agents = make_booths(url, keys, args.count, args.office, media, first=args.first)

    if args.status_view:

        def show_status(agent: BoothAgent) -> None:
            """The claimant's screen, redrawn in this terminal on every change."""
            clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
            sys.stdout.write(f"{clear}{agent.name}\n{agent.screen.render()}\n")
            sys.stdout.flush()

        for agent in agents:
            agent.on_change = show_status

    async def run() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        watcher = None
        if args.exit_with_parent:
            watcher = asyncio.create_task(_watch_parent(stop), name="parent-watch")
        try:
            await run_booths(agents, stop, retry=True)  # the server may not be up yet
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    asyncio.run(run())
    return 0


async def _watch_parent(stop: asyncio.Event) -> None:
    """Stop when the process that started us is gone (even if it was SIGKILLed)."""
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(0.5)
        if os.getppid() != parent:
            log.info("event=parent_gone action=stop")
            stop.set()


def _unverified_claims(token: str) -> dict[str, object]:
    """Name and desk for the officer's card; the server verifies the token, not us."""
    import jwt

    try:
        return dict(jwt.decode(token, options={"verify_signature": False}))
    except jwt.PyJWTError:
        return {}


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotated log readable by its owner only: every file it opens is created 0600."""

    def _open(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)  # an older file may have been created wider
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def console_log_path(command: str) -> Path:
    """``$XDG_STATE_HOME/lapak/<command>.log``: console.log, supervise.log (personal data)."""
    from lapak.console.config import state_dir

    return state_dir() / f"{command}.log"


def _console_logging(args: argparse.Namespace | None = None) -> None:
    """The console owns the terminal: logs go to a private, rotated file, never to the screen.

    ``console.log`` or ``supervise.log`` under the state directory (0600 in a 0700 directory),
    rotated at 5 MiB, three old files kept."""
    from lapak.console.config import private_dir
    from lapak.signaling.logs import KeyValueFormatter

    command = getattr(args, "command", "console")
    path = console_log_path(command)
    try:
        private_dir(path.parent)
        handler = _PrivateRotatingFileHandler(
            path, maxBytes=CONSOLE_LOG_BYTES, backupCount=CONSOLE_LOG_BACKUPS, encoding="utf-8"
        )
    except OSError as exc:
        raise CliError(f"cannot write the log {path}: {exc.strerror}", EXIT_NO_FILE) from None
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger("lapak")
    root.handlers[:] = [handler]
    root.setLevel(getattr(args, "log_level", "INFO"))
    root.propagate = False


def cmd_console(args: argparse.Namespace) -> int:
    from lapak.console.app import LapakConsole

    config = _ui_config(args)
    if config is None:
        return 2
    _console_logging(args)
    from lapak.media.officer import OfficerMediaOptions

    if not 0.0 <= args.monitor_level <= 1.0:
        sys.stderr.write("lapak console: --monitor-level must be within 0..1\n")
        return 2
    claims = _unverified_claims(args.token)  # its role was checked by _check_token
    options = OfficerMediaOptions(
        audio_in=args.audio_in,
        camera=args.camera,
        audio_out=args.audio_out,
        monitor_level=args.monitor_level,
        officer_name=str(claims.get("sub", "Officer")),
        desk=str(claims.get("desk", "")),
    )
    app = LapakConsole(
        server_url(args.server),
        args.token,
        media_options=options,
        config=config,
        language=args.lang,
    )
    return _run_console(app, "console")


def _run_console(app: App[None], command: str) -> int:
    """Run the console; when the server ended it for good (token refused, expired or of the
    wrong role: 5; replaced by a newer console: 7) say why in one line and exit non-zero."""
    app.run()
    fatal = getattr(app, "fatal", None)
    if fatal:
        sys.stderr.write(f"lapak {command}: {fatal}\n")
        ended = getattr(app, "ended", None)
        return {"replaced": EXIT_REPLACED, "refused": EXIT_TOKEN}.get(ended or "", EXIT_FAILED)
    return int(app.return_code or 0)


def cmd_supervise(args: argparse.Namespace) -> int:
    from lapak.console.app import SupervisorConsole

    config = _ui_config(args)
    if config is None:
        return 2
    _console_logging(args)
    app = SupervisorConsole(
        server_url(args.server), args.token, desk=args.desk, config=config, language=args.lang
    )
    return _run_console(app, "supervise")


def cmd_demo(args: argparse.Namespace) -> int:
    if not 1 <= args.booths <= 6:
        sys.stderr.write("lapak demo: --booths must be 1..6\n")
        return 2
    args.ui_config = _ui_config(args)
    if args.ui_config is None:
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="lapak-demo-"))
    # Everything the demo writes stays in its temporary directory (removed at the end): the
    # console's log and snapshots follow the state directory.
    os.environ["XDG_STATE_HOME"] = str(tmp / "state")
    os.environ["LAPAK_SNAPSHOT_DIR"] = str(tmp / "state" / "lapak" / "snapshots")
    try:
        asyncio.run(_demo(args, tmp))
    finally:
        logging.getLogger("lapak").handlers.clear()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


async def _demo(args: argparse.Namespace, tmp: Path) -> None:
    from lapak.console.app import LapakConsole
    from lapak.signaling.server import SignalServer
    from lapak.signaling.tokens import KeyRing

    log_file = (tmp / "demo.log").open("a")
    from lapak.signaling.logs import setup_logging

    setup_logging(args.log_level, stream=log_file)
    keys = KeyRing.generate()
    secret = tmp / "secret"
    keys.write(secret)
    server = SignalServer(tmp / "data", keys, host="127.0.0.1", port=0)
    await server.start()
    booths: asyncio.subprocess.Process | None = None
    try:
        officer = keys.issue("officer", "officer-1", "main", desk="desk-1")
        w, h = args.size
        booths = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lapak.cli", "booth", "--exit-with-parent",
            "--server", server.url, "--secret-file", str(secret),
            "--count", str(args.booths), "--size", f"{w}x{h}",
            stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
            start_new_session=True,
        )  # fmt: skip
        await LapakConsole(  # a demo's visits are thrown away anyway: q quits at once
            server.url, officer, config=args.ui_config, language=args.lang, confirm_quit=False
        ).run_async()
    finally:
        if booths is not None and booths.returncode is None:
            booths.terminate()
            try:
                async with asyncio.timeout(8):
                    await booths.wait()
            except TimeoutError:
                booths.kill()
                await booths.wait()
        await server.close()
        log_file.close()
