"""``lapak console`` (the officer's desk) and ``lapak supervise`` (a desk, read-only): the
Textual screens, their settings file, their private log, and how they ended as an exit code."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from lapak.cli.errors import ENDED_CODES, CliError
from lapak.cli.exit_codes import EXIT_FAILED, EXIT_USAGE
from lapak.cli.options import add_ca_option, add_server_option, add_ui_options

if TYPE_CHECKING:
    from textual.app import App

    from lapak.console.config import ConsoleConfig
    from lapak.console.graphics_detect import TerminalGraphics


def add_graphics_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--graphics",
        choices=("auto", "kitty", "sixel", "blocks"),
        default=None,
        help="the zoomed tile in real pixels: auto asks the terminal (default: config, then auto)",
    )


def graphics(args: argparse.Namespace, config: ConsoleConfig) -> TerminalGraphics:
    """Asked of the terminal now, before Textual takes it."""
    from lapak.console.graphics_detect import detect

    return detect(args.graphics or config.graphics)


def add_parsers(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("console", help="the officer's console")
    add_server_option(p, "an officer token")
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
    add_ca_option(p)
    add_ui_options(p)
    add_graphics_option(p)

    p = sub.add_parser("supervise", help="watch a desk, read-only")
    add_server_option(p, "a supervisor token")
    p.add_argument("--desk", help="desk to watch (default: the office's first)")
    p.add_argument(
        "--audio-in",
        default="none",
        help="the supervisor's voice when coaching or barging: none, tone, or FILE (default none)",
    )
    p.add_argument(
        "--audio-out", default="none", help="where the desk's booths are heard: device, FILE.wav"
    )
    add_ca_option(p)
    add_ui_options(p)
    add_graphics_option(p)


def ui_config(args: argparse.Namespace) -> ConsoleConfig:
    """The console settings; CliError saying why they cannot be read."""
    from lapak.console.config import ConfigError, load_config
    from lapak.console.keys import BINDING_IDS

    try:
        return load_config(args.config, known_bindings=set(BINDING_IDS))
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


def run_console(args: argparse.Namespace) -> int:
    from lapak.cli.clients import prepare, server_urls
    from lapak.cli.logging_setup import to_console_file

    url, *entries = server_urls(args.server)
    factory = client_sessions(args, entries)
    claims = prepare("console", args.token, args.ca_file)
    if not 0.0 <= args.monitor_level <= 1.0:
        raise CliError("--monitor-level must be within 0..1", EXIT_USAGE)
    from lapak.console.app import LapakConsole
    from lapak.media.officer import OfficerMediaOptions

    config = ui_config(args)
    to_console_file(args)
    options = OfficerMediaOptions(
        audio_in=args.audio_in,
        camera=args.camera,
        audio_out=args.audio_out,
        monitor_level=args.monitor_level,
        officer_name=str(claims.get("sub", "Officer")),
        desk=str(claims.get("desk", "")),
    )
    app = LapakConsole(
        url,
        args.token,
        media_options=options,
        config=config,
        language=args.lang,
        graphics=graphics(args, config),
        **factory,
    )
    return _run(app)


def token_file_sessions(args: argparse.Namespace) -> dict[str, Any]:
    """``--token-file F``: the token is read from F now, and again whenever it is due for a
    refresh (a renewal job rewrites F); as LapakConsole keywords."""
    path = args.token_file
    if path is None:
        return {}
    import functools

    from lapak.cli.clients import read_token_file
    from lapak.media.desk_session import DeskSession

    args.token = read_token_file(path)
    return {"session_factory": functools.partial(DeskSession, token_source=path.read_text)}


def client_sessions(args: argparse.Namespace, entries: list[str]) -> dict[str, Any]:
    """``token_file_sessions``, and a cluster's other nodes (``--server a,b``) as the
    session's fallback entry points; as LapakConsole keywords."""
    import functools

    from lapak.media.desk_session import DeskSession

    factory = token_file_sessions(args)
    if not entries:
        return factory
    return {"session_factory": functools.partial(factory.get("session_factory", DeskSession),
                                                 entries=entries)}  # fmt: skip


def check_audio_in(spec: str) -> None:
    """``--audio-in``: none, tone, or a recording that exists (else exit 3, one line)."""
    from pathlib import Path

    from lapak.cli.exit_codes import EXIT_NO_FILE

    if spec not in ("none", "tone", "") and not Path(spec).is_file():
        raise CliError(f"--audio-in: no such file {spec}", EXIT_NO_FILE)


def run_supervise(args: argparse.Namespace) -> int:
    from lapak.cli.clients import prepare, server_urls
    from lapak.cli.logging_setup import to_console_file

    check_audio_in(args.audio_in)
    url, *entries = server_urls(args.server)
    factory = client_sessions(args, entries)
    prepare("supervise", args.token, args.ca_file)
    from lapak.console.supervisor import SupervisorConsole

    config = ui_config(args)
    to_console_file(args)
    app = SupervisorConsole(
        url,
        args.token,
        desk=args.desk,
        audio_in=args.audio_in,
        audio_out=args.audio_out,
        config=config,
        language=args.lang,
        graphics=graphics(args, config),
        **factory,
    )
    return _run(app)


def _run(app: App[None]) -> int:
    """Run the console; when the server ended it for good (token refused, expired or of the
    wrong role: 5; replaced by a newer console: 7) say why in one line and exit non-zero."""
    app.run()
    fatal = getattr(app, "fatal", None)
    if fatal:
        raise CliError(str(fatal), ENDED_CODES.get(getattr(app, "ended", None) or "", EXIT_FAILED))
    return int(app.return_code or 0)
