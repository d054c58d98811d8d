"""``lapak purge`` on a stopped server: destroy one visit's key in its data directory.

The running server holds the claimant's data in memory as well as its key on disk, so a
purge must go through it while it runs (``purge_visit``, an admin's message); this offline
path is for a stopped server and refuses a data directory a server holds (its lock). It
appends the same ``visit_purged`` event, through the same log writer (chain, checkpoint,
key destroyed and scrubbed in one go), so the result is what the live path leaves.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from lapak.signaling.datadir import LOG_NAME, DataDirError, open_data_dir
from lapak.signaling.domain import Domain
from lapak.signaling.errors import LapakError
from lapak.signaling.eventlog import EventLog, LogError, load
from lapak.signaling.events import Event
from lapak.signaling.permissions import Actor
from lapak.signaling.signing import Signer

log = logging.getLogger("lapak.purge")


class PurgeError(LogError):
    """The purge cannot be done; the message says why, for the operator."""


@dataclass(frozen=True)
class Purged:
    visit: str
    seq: int  # the ``visit_purged`` event's number in the log


def purge_offline(
    data_dir: Path, visit: str, reason: str, by: str, now: float, signer: Signer | None = None
) -> Purged:
    """Purge ``visit`` in the data directory of a stopped server (as admin ``by`` of every
    office). PurgeError when there is no log, a server holds it, or the visit cannot be
    purged (the domain's reason: open, already purged, unknown, logged in clear)."""
    if not (data_dir / LOG_NAME).is_file():
        raise PurgeError(f"no event log in {data_dir}")
    try:
        datadir = open_data_dir(data_dir, signer)
    except DataDirError as exc:
        if "in use" in str(exc):
            raise PurgeError(
                f"{exc}. The running server holds the visit's data in memory too: send the "
                "purge to it (lapak purge --server URL --token ADMIN_TOKEN --visit V)"
            ) from None
        raise PurgeError(str(exc)) from None
    try:
        conn = datadir.take_connection()
        try:
            loaded = load(conn, signer.public if signer else None)
            events = Domain(loaded.state).purge_visit(Actor("admin", by, "*"), visit, reason, now)
        except LapakError as exc:
            conn.close()
            raise PurgeError(f"{exc.code}: {exc.message}") from None
        except BaseException:
            conn.close()
            raise
        eventlog = EventLog(
            datadir.log_path, loaded, signer=signer, marker=datadir.marker_path
        )  # closes conn when it stops
        asyncio.run(_append(eventlog, conn, events))
        if eventlog.failure is not None:
            raise PurgeError(f"the purge was not written: {eventlog.failure}")
    finally:
        datadir.close()
    log.info("event=visit_purged visit=%s by=%s offline=1", visit, by)
    return Purged(visit, loaded.last_seq + len(events))


async def _append(eventlog: EventLog, conn: sqlite3.Connection, events: list[Event]) -> None:
    eventlog.start(conn)
    try:
        await eventlog.append(events)
    finally:
        await eventlog.close()
