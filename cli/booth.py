"""``lapak booth``: one booth PC (camera, microphone, speaker) or simulated booths."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lapak.cli.errors import CliError
from lapak.cli.exit_codes import EXIT_OK, EXIT_USAGE
from lapak.cli.options import add_ca_option, size

if TYPE_CHECKING:
    from lapak.media.booth import BoothAgent


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "booth", help="run a booth (camera, mic, speaker) or simulated booths"
    )
    p.add_argument(
        "--server", required=True,
        help="ws://host:port of the signalling server (a cluster: its nodes, comma-separated)",
    )  # fmt: skip
    auth = p.add_mutually_exclusive_group(required=True)
    auth.add_argument("--token", help="a booth token (then --count must be 1)")
    auth.add_argument("--secret-file", type=Path, help="mint booth tokens from this key file")
    auth.add_argument("--token-file", type=Path, help="read the booth token from this file")
    p.add_argument("--enrol", metavar="CODE", help="first trade this code for --token-file")
    p.add_argument("--count", type=int, default=1, help="how many booths (default 1)")
    p.add_argument("--first", type=int, default=0, help="index of the first booth (default 0)")
    p.add_argument("--office", default="main", help="office of minted tokens (default main)")
    p.add_argument("--size", type=size, default=(640, 480), help="video size (640x480)")
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
    add_ca_option(p)


def run(args: argparse.Namespace) -> int:
    from lapak.cli.clients import prepare, server_urls

    if args.token_file is not None or args.enrol is not None:
        from lapak.cli.enrol import token_from_file

        args.token = token_from_file(args)
    claims = prepare("booth", args.token, args.ca_file)
    import asyncio
    import contextlib
    import random

    from lapak.cli.keys import read_keys
    from lapak.cli.process import stop_on_signals, watch_parent
    from lapak.media.booth import BoothAgent, BoothMediaConfig
    from lapak.media.simulator import generated_claimant, make_booths, run_booths

    url, *entries = server_urls(args.server)
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
        raise CliError("devices are for one booth; drop --count", EXIT_USAGE)
    if args.token:
        if args.count != 1:
            raise CliError("one --token runs one booth; use --secret-file", EXIT_USAGE)
        name = str(claims.get("booth", "booth"))
        claimant = generated_claimant(random.Random())
        agents = [BoothAgent(url, args.token, name, args.first % 6, claimant, entries=entries)]
        agents[0].media = media
    else:
        keys = read_keys(args.secret_file)
        agents = make_booths(
            url, keys, args.count, args.office, media, first=args.first, entries=entries
        )
    if args.status_view:
        for agent in agents:
            agent.on_change = show_status

    async def serve() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        watcher = None
        if args.exit_with_parent:
            watcher = asyncio.create_task(watch_parent(stop), name="parent-watch")
        try:
            await run_booths(agents, stop, retry=True)  # the server may not be up yet
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    asyncio.run(serve())
    return EXIT_OK


def show_status(agent: BoothAgent) -> None:
    """The claimant's screen, redrawn in this terminal on every change."""
    import sys

    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
    sys.stdout.write(f"{clear}{agent.name}\n{agent.screen.render()}\n")
    sys.stdout.flush()
