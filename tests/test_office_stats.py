"""The hub reads only the clock, session ids and time zone it is given: "today" of the
office overview at a time-zone boundary, tokens checked against the injected clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hub_driver import HubDriver

from lapak.signaling.host import HostZone
from lapak.signaling.office_stats import day_start

JAKARTA = ZoneInfo("Asia/Jakarta")  # UTC+7, no daylight saving
# 2026-12-03 16:30 UTC is 23:30 in Jakarta; 17:00 UTC is midnight there.
LATE_EVENING = datetime(2026, 12, 3, 16, 30, tzinfo=UTC).timestamp()
JAKARTA_MIDNIGHT = datetime(2026, 12, 3, 17, 0, tzinfo=UTC).timestamp()


def test_day_start_is_midnight_in_the_given_zone() -> None:
    assert day_start(LATE_EVENING, JAKARTA) == JAKARTA_MIDNIGHT - 24 * 3600
    assert day_start(JAKARTA_MIDNIGHT, JAKARTA) == JAKARTA_MIDNIGHT
    assert day_start(JAKARTA_MIDNIGHT + 0.5, JAKARTA) == JAKARTA_MIDNIGHT
    utc_midnight = datetime(2026, 12, 3, tzinfo=UTC).timestamp()
    assert day_start(LATE_EVENING, UTC) == utc_midnight


def visits_today(tz: tzinfo, asked_at: float) -> int:
    hub = HubDriver(now=LATE_EVENING, tz=tz)
    booth = hub.join("booth", booth="b1")
    hub.start_visit(booth)  # 23:30 in Jakarta, no desk open: it waits
    sup = hub.join("supervisor", now=asked_at)
    stats = hub.say(sup, {"type": "office_stats", "id": 3}, asked_at)[0]
    assert stats["type"] == "ack", stats
    return int(stats["visits_today"])


def test_visits_today_count_from_midnight_in_the_offices_zone() -> None:
    assert visits_today(JAKARTA, JAKARTA_MIDNIGHT - 60) == 1, "23:59 in Jakarta: still today"
    assert visits_today(JAKARTA, JAKARTA_MIDNIGHT + 60) == 0, "00:01 in Jakarta: a new day"
    assert visits_today(UTC, JAKARTA_MIDNIGHT + 60) == 1, "17:01 UTC is the same UTC day"


def test_the_hub_checks_tokens_against_its_own_clock_not_the_hosts() -> None:
    long_ago = 1_000_000.0
    hub = HubDriver(now=long_ago)
    _, welcome = hub.hello("supervisor", ttl=60)  # expired for the host's clock
    assert welcome["type"] == "welcome", welcome
    assert welcome["session"] is None, "a supervisor holds no place"
    assert hub.tick(long_ago + 30).closes == []
    assert hub.tick(long_ago + 61).closes != [], "expired by the injected clock"


def test_session_ids_come_from_the_injected_source() -> None:
    hub = HubDriver()
    _, first = hub.hello("booth", booth="b1")
    _, second = hub.hello("booth", booth="b2", sub="b2")
    nonces = (first["session"].split(".")[0], second["session"].split(".")[0])
    assert nonces == ("session-1", "session-2"), "sealed: <nonce>.<mac> (signaling/resume.py)"


@pytest.mark.parametrize("tz", ["UTC", "Asia/Jakarta", "Europe/Berlin"])
def test_the_host_zone_is_the_hosts_local_time(tz: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """HostZone follows ``TZ`` as ``time.localtime`` does, daylight saving included."""
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        zone = HostZone()
        summer = datetime(2026, 7, 1, 12, tzinfo=UTC).timestamp()
        for t in (0.0, LATE_EVENING, summer, float(round(time.time()))):
            local = datetime.fromtimestamp(t, zone)
            assert local.utcoffset() == datetime.fromtimestamp(t, ZoneInfo(tz)).utcoffset(), t
            assert local.timestamp() == t, "round trip through the zone's offset"
    finally:
        monkeypatch.undo()
        time.tzset()
