"""Which terminal graphics the console uses: asked of the terminal at start, before Textual
takes it, with a short bounded wait; else read from the environment; else half-blocks.

The queries: kitty's graphics query (``a=q``: a kitty-protocol terminal answers ``OK``), the
cell size in pixels (``CSI 16 t``), and primary device attributes (``CSI c``; a ``4`` among the
attributes means sixel). Every terminal answers device attributes, and in order, so its answer
ends the wait: a terminal that ignores the first two costs no timeout.
"""

from __future__ import annotations

import logging
import os
import re
import select
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from lapak.console.graphics import GraphicsMode

log = logging.getLogger(__name__)

QUERY = "\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\\x1b[16t\x1b[c"
MODES: tuple[GraphicsMode, ...] = ("kitty", "sixel", "blocks")
DEFAULT_CELL = (10, 20)
"""Cell size in pixels (width, height) assumed when the terminal does not say."""

_DA1 = re.compile(rb"\x1b\[\?([0-9;]*)c")
_CELL = re.compile(rb"\x1b\[6;(\d+);(\d+)t")


@dataclass(frozen=True)
class TerminalGraphics:
    mode: GraphicsMode
    cell: tuple[int, int]  # width, height in pixels
    how: str  # "asked" | "env" | "flag" | "no terminal"


def parse_answers(data: bytes) -> tuple[bool, bool, tuple[int, int] | None, bool]:
    """(kitty, sixel, cell size, complete: the device attributes came) from the replies."""
    kitty = b"_Gi=31;OK" in data
    da = _DA1.search(data)
    sixel = da is not None and "4" in da.group(1).decode().split(";")
    cell_m = _CELL.search(data)
    cell = None
    if cell_m is not None and int(cell_m.group(1)) > 0 and int(cell_m.group(2)) > 0:
        cell = (int(cell_m.group(2)), int(cell_m.group(1)))
    return kitty, sixel, cell, da is not None


def from_env(env: Mapping[str, str]) -> GraphicsMode:
    """Kitty's protocol by the terminal's own name; sixel cannot be told from the environment."""
    if env.get("TERM") == "xterm-kitty" or env.get("KITTY_WINDOW_ID"):
        return "kitty"
    if env.get("TERM_PROGRAM") in ("WezTerm", "ghostty") or env.get("GHOSTTY_RESOURCES_DIR"):
        return "kitty"
    return "blocks"


def forced(requested: str) -> GraphicsMode | None:
    """The mode ``--graphics`` names, or None for "auto"."""
    for mode in MODES:
        if requested == mode:
            return mode
    return None


def detect(requested: str = "auto", timeout: float = 0.3) -> TerminalGraphics:
    """The graphics to use. ``requested`` other than "auto" is obeyed (the cell size is still
    asked for); "auto" asks the terminal, falling back to the environment."""
    flag = forced(requested)
    if flag == "blocks":
        return TerminalGraphics(flag, DEFAULT_CELL, "flag")  # nothing to ask
    answers = _ask(timeout)
    if answers is None:
        if flag is not None:
            return TerminalGraphics(flag, DEFAULT_CELL, "flag")
        return TerminalGraphics(from_env(os.environ), DEFAULT_CELL, "env")
    kitty, sixel, cell, complete = parse_answers(answers)
    chosen: GraphicsMode
    if flag is not None:
        chosen, how = flag, "flag"
    elif kitty:
        chosen, how = "kitty", "asked"
    elif sixel:
        chosen, how = "sixel", "asked"
    elif complete:
        chosen, how = "blocks", "asked"
    else:
        chosen, how = from_env(os.environ), "env"
    log.info(
        "event=graphics mode=%s how=%s kitty=%s sixel=%s cell=%s",
        chosen, how, kitty, sixel, cell,
    )  # fmt: skip
    return TerminalGraphics(chosen, cell or DEFAULT_CELL, how)


def _ask(timeout: float) -> bytes | None:
    """Send the queries to the controlling terminal and read the replies until the device
    attributes arrive or ``timeout``; None when there is no terminal to ask."""
    if sys.platform == "win32" or not (sys.stdin.isatty() and sys.stdout.isatty()):
        return None
    import termios
    import tty

    fd = sys.stdin.fileno()
    try:
        saved = termios.tcgetattr(fd)
    except termios.error:
        return None
    data = b""
    try:
        tty.setcbreak(fd, termios.TCSANOW)
        os.write(sys.stdout.fileno(), QUERY.encode())
        deadline = time.monotonic() + timeout
        while not _DA1.search(data):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            data += os.read(fd, 4096)
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)
    return data
