"""``lapak recorder``: record every visit of the token's office (docs/recording.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from lapak.cli.errors import CliError
from lapak.cli.exit_codes import EXIT_TOKEN
from lapak.cli.options import add_ca_option

log = logging.getLogger("lapak.recorder")


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "recorder",
        help="record every visit of an office (a receive-only peer, like a supervisor)",
        description="Joins each visit of its token's office from routing to end and writes one "
        "WebM file per visit into --dir, encrypted with the visit's recording key (from the "
        "server), with a JSON sidecar; each closed file's SHA-256 goes into the visit's audit "
        "trail (lapak recordings verify; lapak recordings export decrypts).",
    )
    add_ca_option(p)
    p.add_argument(
        "--server", required=True,
        help="ws://HOST:PORT/ws of the signalling server (a cluster: its nodes, comma-separated)",
    )  # fmt: skip
    p.add_argument("--token", help="a token of role recorder (lapak token issue --role recorder)")
    p.add_argument("--token-file", type=Path, help="read the token from this file instead")
    p.add_argument("--dir", required=True, type=Path, help="where the recordings go")
    p.add_argument(
        "--video-size",
        default="640x480",
        help="the booth camera's size in the file, WIDTHxHEIGHT (default 640x480)",
    )


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise CliError(f"--video-size must be WIDTHxHEIGHT, e.g. 640x480, not {text!r}") from None
    if not (16 <= width <= 4096 and 16 <= height <= 4096) or width % 2 or height % 2:
        raise CliError(f"--video-size: even sizes from 16 to 4096, not {text!r}")
    return width, height


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            return str(args.token_file.read_text().strip())
        except OSError as exc:
            raise CliError(f"cannot read --token-file {args.token_file}: {exc.strerror}") from None
    if not args.token:
        raise CliError("give --token or --token-file (a token of role recorder)")
    return str(args.token)


def run(args: argparse.Namespace) -> int:
    from lapak.cli.clients import prepare, server_urls

    token = _token(args)
    prepare("recorder", token, args.ca_file)
    size = _size(args.video_size)
    if args.dir.exists() and not args.dir.is_dir():
        raise CliError(f"--dir {args.dir} is not a directory")
    return asyncio.run(_main(server_urls(args.server), token, args.dir, size))


async def _main(urls: list[str], token: str, directory: Path, size: tuple[int, int]) -> int:
    from lapak.cli.process import stop_on_signals
    from lapak.media.recorder import Recorder

    recorder = Recorder(urls[0], token, directory, booth_size=size, entries=urls[1:])
    stop = asyncio.Event()
    stop_on_signals(stop)
    welcome = await recorder.start(retry=True)  # a refused token raises: cli.errors says why
    log.info(
        "event=recorder_ready office=%s desks=%s dir=%s", welcome.office, welcome.desks, directory
    )
    while not stop.is_set() and recorder.client.ended is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
    await recorder.close()  # every open file closed and reported
    if recorder.client.ended is not None:
        raise CliError(
            f"the server ended the recorder's session: {recorder.client.end_detail}", EXIT_TOKEN
        )
    return 0
