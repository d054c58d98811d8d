"""``lapak demo``: a server, simulated booths and the console in one go, everything in a
temporary directory that is removed at the end."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lapak.cli.errors import CliError
from lapak.cli.exit_codes import EXIT_OK, EXIT_USAGE
from lapak.cli.options import add_ui_options, size

if TYPE_CHECKING:
    from lapak.console.config import ConsoleConfig

STOP_BOOTHS_S = 8.0


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo", help="server, simulated booths and the console in one go"
    )
    p.add_argument("--booths", type=int, default=6, help="how many booths (1..6, default 6)")
    p.add_argument("--size", type=size, default=(640, 480), help="booth video size (640x480)")
    add_ui_options(p)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import os
    import shutil
    import tempfile

    from lapak.cli.console import ui_config

    if not 1 <= args.booths <= 6:
        raise CliError("--booths must be 1..6", EXIT_USAGE)
    config = ui_config(args)
    tmp = Path(tempfile.mkdtemp(prefix="lapak-demo-"))
    # Everything the demo writes stays in its temporary directory (removed at the end): the
    # console's log and snapshots follow the state directory.
    os.environ["XDG_STATE_HOME"] = str(tmp / "state")
    os.environ["LAPAK_SNAPSHOT_DIR"] = str(tmp / "state" / "lapak" / "snapshots")
    try:
        asyncio.run(_demo(args, config, tmp))
    finally:
        logging.getLogger("lapak").handlers.clear()
        shutil.rmtree(tmp, ignore_errors=True)
    return EXIT_OK


async def _demo(args: argparse.Namespace, config: ConsoleConfig, tmp: Path) -> None:
    import asyncio
    import sys

    from lapak.cli.logging_setup import to_stream
    from lapak.console.app import LapakConsole
    from lapak.signaling.server import SignalServer
    from lapak.signaling.tokens import KeyRing

    log_file = (tmp / "demo.log").open("a")
    to_stream(args, log_file)
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
            server.url, officer, config=config, language=args.lang, confirm_quit=False
        ).run_async()
    finally:
        if booths is not None and booths.returncode is None:
            booths.terminate()
            try:
                async with asyncio.timeout(STOP_BOOTHS_S):
                    await booths.wait()
            except TimeoutError:
                booths.kill()
                await booths.wait()
        await server.close()
        log_file.close()
