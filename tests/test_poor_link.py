"""The ``poor_link`` alert (issue 15): an officer's console reports a seated visit's link grade
(``link_quality``), the hub keeps the latest in memory and raises ``poor_link`` once a grade
has been poor for ``alert_poor_link_s``; who may report what (docs/protocol.md)."""

from __future__ import annotations

from typing import Any

from hub_driver import NOW, HubDriver

from lapak.signaling.config import ServerConfig
from lapak.signaling.metrics import ServerMetrics

Message = dict[str, Any]


class Offices:
    """Office main: desks d1 (ana, booth b1 seated) and d2 (budi, booth b2 seated); office
    north: desk n1 (nur, booth b1 of north seated); supervisor wati of main."""

    def __init__(self, poor_link_s: float = 10.0) -> None:
        self.hub = HubDriver(ServerConfig(alert_poor_link_s=poor_link_s))
        admin = self.hub.join("admin", sub="root", office="*")
        for desk, office in (("d1", "main"), ("d2", "main"), ("n1", "north")):
            configure = {"type": "configure_desk", "desk": desk, "capacity": 1, "office": office}
            assert self.hub.say(admin, {"id": 1, **configure})[0]["type"] == "ack"
        self.ana = self.hub.join("officer", sub="ana", desk="d1")
        self.v1 = self.hub.start_visit(self.hub.join("booth", sub="b1", booth="b1"))
        self.budi = self.hub.join("officer", sub="budi", desk="d2")
        self.v2 = self.hub.start_visit(self.hub.join("booth", sub="b2", booth="b2"))
        self.nur = self.hub.join("officer", sub="nur", desk="n1", office="north")
        north_booth = self.hub.join("booth", sub="nb1", booth="b1", office="north")
        self.vn = self.hub.start_visit(north_booth)
        self.wati = self.hub.join("supervisor", sub="wati")
        seated = {v: self.hub.state.visits[v].desk for v in (self.v1, self.v2, self.vn)}
        assert seated == {self.v1: "d1", self.v2: "d2", self.vn: "n1"}

    def report(self, conn: int, visit: str, grade: str, now: float | None = None) -> Message:
        message = {"type": "link_quality", "id": 9, "visit": visit, "grade": grade}
        step = self.hub.send(conn, message, now)
        assert step.events == [], "telemetry: nothing is logged"
        return next(m for m in step.to(conn) if m.get("re") == 9)

    def alerts(self, now: float) -> list[Message]:
        answer = self.hub.say(self.wati, {"type": "office_stats", "id": 3}, now)[0]
        return [a for a in answer["alerts"] if a["kind"] == "poor_link"]


def test_a_poor_grade_past_the_threshold_raises_the_alert_and_recovery_clears_it() -> None:
    o = Offices(poor_link_s=10)
    assert o.report(o.ana, o.v1, "fair", now=NOW + 1)["type"] == "ack"
    assert o.report(o.ana, o.v1, "poor", now=NOW + 2) == {
        "type": "ack", "re": 9, "visit": o.v1,
    }  # fmt: skip
    assert o.alerts(NOW + 11.9) == [], "poor, but not for 10 s yet"
    o.report(o.ana, o.v1, "poor", now=NOW + 5)  # the same grade again keeps its start
    [alert] = o.alerts(NOW + 12)
    assert (alert["desk"], alert["slot"], alert["visit"], alert["booth"], alert["office"]) == (
        "d1", 1, o.v1, "b1", "main",
    )  # fmt: skip
    assert alert["seconds"] == 10
    text = ServerMetrics().render({}, {}, o.hub.hub.office_gauges()).decode()
    assert 'lapak_alerts{kind="poor_link",office="main"} 1.0' in text
    o.report(o.ana, o.v1, "good", now=NOW + 13)
    assert o.alerts(NOW + 30) == [], "recovered: cleared"
    text = ServerMetrics().render({}, {}, o.hub.hub.office_gauges()).decode()
    assert 'lapak_alerts{kind="poor_link",office="main"} 0.0' in text
    o.report(o.ana, o.v1, "poor", now=NOW + 40)
    assert o.alerts(NOW + 49) == [], "poor again: the threshold counts from anew"
    assert len(o.alerts(NOW + 50)) == 1


def test_the_alert_goes_when_the_visit_leaves_the_desk() -> None:
    o = Offices(poor_link_s=1)
    o.report(o.ana, o.v1, "poor", now=NOW + 1)
    assert len(o.alerts(NOW + 5)) == 1
    end = {"type": "end_visit", "id": 4, "visit": o.v1, "outcome": "abandoned"}
    assert o.hub.say(o.ana, end, NOW + 6)[0]["type"] == "ack"
    assert o.alerts(NOW + 7) == []
    o.hub.tick(NOW + 8)
    assert o.v1 not in o.hub.hub.links.by_visit, "forgotten once it left"


def test_only_the_officer_of_the_visits_desk_may_report() -> None:
    o = Offices()
    other_desk = o.report(o.ana, o.v2, "poor")
    assert other_desk["type"] == "error" and other_desk["code"] == "visit_not_active"
    other_office = o.report(o.ana, o.vn, "poor")
    assert other_office["type"] == "error" and other_office["code"] == "visit_not_active"
    assert o.report(o.ana, "V-nope", "poor")["code"] == "not_found"
    assert o.report(o.wati, o.v1, "poor")["code"] == "forbidden", "a supervisor only watches"
    assert o.hub.hub.links.by_visit == {}, "nothing refused was kept"
    assert o.alerts(NOW + 60) == []


def test_a_grade_that_is_not_one_of_the_three_is_an_invalid_message() -> None:
    o = Offices()
    for grade in ("bad", "", "POOR"):
        answer = o.report(o.ana, o.v1, grade)
        assert answer["type"] == "error" and answer["code"] == "invalid_message", grade
    missing = o.hub.say(o.ana, {"type": "link_quality", "id": 9, "visit": o.v1})[0]
    assert missing["code"] == "invalid_message"
    assert o.hub.hub.links.by_visit == {}


def test_the_supervisor_console_names_the_alert_and_jumps_to_its_slot() -> None:
    from lapak.console.escalations import Jump, alert_target, where
    from lapak.console.i18n import STRINGS
    from lapak.signaling.messages import Alert

    alert = Alert(kind="poor_link", office="main", desk="d1", slot=2, visit="V1",
                  booth="b1", seconds=12.0)  # fmt: skip
    assert alert_target(alert) == Jump("d1", 2), "enter goes to the visit's tile"
    assert where(alert) == "desk d1 slot 2"
    english, indonesian = STRINGS["alert.poor_link"]
    assert english == "poor link" and indonesian and indonesian != english
