"""The host's clocks, time zone and randomness: what the shell injects into the sans-I/O hub
(``Hub(..., clock=host_clock(), new_session_id=new_session_id, tz=HostZone())``), so the
core itself never reads them."""

from __future__ import annotations

import os
import secrets
import time
from datetime import UTC, datetime, timedelta, tzinfo

from lapak.signaling.hub import Clock


def host_clock() -> Clock:
    return Clock(wall=time.time, mono=time.monotonic)


def new_session_id() -> str:
    """A session id a client cannot guess (resuming with it keeps the place)."""
    return secrets.token_urlsafe(12)


def random_bytes(n: int) -> bytes:
    """The OS's CSPRNG: visit keys and nonces (signaling/personal_data.py)."""
    return os.urandom(n)


class HostZone(tzinfo):
    """The host's local zone as ``time.localtime`` sees it (``TZ``, /etc/localtime), with
    its daylight-saving changes: the default office zone."""

    def fromutc(self, dt: datetime) -> datetime:
        seconds = dt.replace(tzinfo=UTC).timestamp()
        return dt + timedelta(seconds=time.localtime(seconds).tm_gmtoff)

    def utcoffset(self, dt: datetime | None) -> timedelta:
        seconds = time.time() if dt is None else time.mktime((*dt.timetuple()[:8], -1))
        return timedelta(seconds=time.localtime(seconds).tm_gmtoff)

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str:
        seconds = time.time() if dt is None else time.mktime((*dt.timetuple()[:8], -1))
        return time.localtime(seconds).tm_zone
