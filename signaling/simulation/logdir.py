"""Write a simulated day's events through the real ``EventLog``, so the server can replay it
(``lapak signal --data-dir D``) and the auditor can check it (``lapak audit verify``): if
the simulator ever produced an event the product would not, replay or the audit says so."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lapak.signaling.datadir import LOG_NAME, DataDirError, open_data_dir
from lapak.signaling.eventlog import EventLog
from lapak.signaling.events import Event

BATCH = 5_000  # events per append; the log commits whatever is queued in one transaction


class LogDirError(Exception):
    """The directory cannot take the simulated log; the message says why."""


def write_log(data_dir: Path, events: list[Event]) -> Path:
    """Append ``events`` to a new log in ``data_dir``, opened, locked and checkpointed the
    way the server does it (signaling/datadir.py); returns the log's path. Unsigned: the
    simulator holds no signing key, so the auditor notes the checkpoint is unsigned."""
    if (data_dir / LOG_NAME).exists():
        raise LogDirError(
            f"{data_dir / LOG_NAME} already exists: give --log-dir an empty or new directory"
        )
    try:
        opened = open_data_dir(data_dir)
    except DataDirError as exc:
        raise LogDirError(str(exc)) from None
    try:
        asyncio.run(_append_all(opened.log_path, opened.marker_path, events))
    finally:
        opened.close()
    return opened.log_path


async def _append_all(path: Path, marker: Path, events: list[Event]) -> None:
    log = EventLog(path, marker=marker)
    log.start()
    try:
        pending = [log.append(events[i : i + BATCH]) for i in range(0, len(events), BATCH)]
        await asyncio.gather(*pending)
    finally:
        await log.close()
