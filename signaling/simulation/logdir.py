"""Write a simulated day's events through the real ``EventLog``, so the server can replay it
(``lapak signal --data-dir D``) and the auditor can check it (``lapak audit verify``): if
the simulator ever produced an event the product would not, replay or the audit says so."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from signaling.eventlog import EventLog
from signaling.events import Event

BATCH = 5_000  # events per append; the log commits whatever is queued in one transaction


class LogDirError(Exception):
    """The directory cannot take the simulated log; the message says why."""


def write_log(data_dir: Path, events: list[Event]) -> Path:
    """Append ``events`` to a new ``data_dir/events.sqlite3``; returns its path."""
    path = data_dir / "events.sqlite3"
    if path.exists():
        raise LogDirError(f"{path} already exists: give --log-dir an empty or new directory")
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise LogDirError(f"cannot create {data_dir}: {exc.strerror or exc}") from None
    if not os.access(data_dir, os.W_OK):
        raise LogDirError(f"{data_dir} is not writable")
    asyncio.run(_append_all(path, events))
    return path


async def _append_all(path: Path, events: list[Event]) -> None:
    log = EventLog(path)
    log.start()
    try:
        pending = [log.append(events[i : i + BATCH]) for i in range(0, len(events), BATCH)]
        await asyncio.gather(*pending)
    finally:
        await log.close()
