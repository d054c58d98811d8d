"""The officer's desk session reports its media engine's link grades (``link_quality``) to a
real server on loopback, on change only, and the supervisor's ``office_stats`` shows
``poor_link`` once the grade has been poor past the threshold (the server's wall clock is
driven by the test)."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import wait_for

from lapak.media.desk_session import DeskSession
from lapak.media.officer import OfficerMedia, OfficerMediaOptions
from lapak.signaling.client import SignalClient
from lapak.signaling.config import ServerConfig
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

CLAIMANT = {"name": "Siti", "membership_no": "123"}


def reports(server: SignalServer) -> float:
    """``link_quality`` frames the server has taken in (its Prometheus counter)."""
    value = server.metrics.registry.get_sample_value(
        "lapak_messages_total", {"type": "link_quality"}
    )
    return value or 0.0


async def poor_links(supervisor: SignalClient) -> list[tuple[str | None, int | None, str | None]]:
    figures = (await supervisor.request({"type": "office_stats"})).figures()
    return [(a.desk, a.slot, a.visit) for a in figures.alerts if a.kind == "poor_link"]


async def test_the_desk_session_reports_grade_changes_and_the_supervisor_sees_poor_link(
    tmp_path: Path,
) -> None:
    keys = KeyRing.generate()
    wall = [time.time()]
    server = SignalServer(
        tmp_path / "data", keys, host="127.0.0.1", port=0,
        clock=lambda: wall[0], config=ServerConfig(alert_poor_link_s=5),
    )  # fmt: skip
    await server.start()
    engine = OfficerMedia(None, OfficerMediaOptions(send_video=False))
    officer = DeskSession(
        server.url, keys.issue("officer", "ana", "main", desk="d1", now=wall[0]), engine=engine
    )
    booth = SignalClient(server.url, keys.issue("booth", "b1", "main", booth="b1", now=wall[0]))
    supervisor = SignalClient(server.url, keys.issue("supervisor", "wati", "main", now=wall[0]))
    try:
        await officer.start()
        await booth.connect()
        await supervisor.connect()
        visit = (await booth.request({"type": "start_visit", "claimant": CLAIMANT})).visit
        assert isinstance(visit, str)
        await wait_for(lambda: visit in officer.model.visits, "the visit is seated at d1")

        grade = engine.on_grade  # what the engine calls after each getStats reading
        assert grade is not None, "the officer's session listens to its engine's grades"
        grade(visit, "good")
        grade(visit, "poor")
        await wait_for(lambda: reports(server) == 2, "two changes reported")
        grade(visit, "poor")  # the same grade again: nothing sent
        grade("V-not-here", "poor")  # not a visit of this desk: nothing sent
        assert officer.reported_grades == {visit: "poor"}
        assert await poor_links(supervisor) == [], "poor, not yet for 5 s"
        wall[0] += 6
        assert await poor_links(supervisor) == [("d1", 1, visit)]
        assert reports(server) == 2, "on change only"

        grade(visit, "fair")
        await wait_for(lambda: reports(server) == 3, "the recovery reported")
        assert await poor_links(supervisor) == [], "recovered: cleared"
    finally:
        await officer.close()
        await booth.close()
        await supervisor.close()
        await server.close()
