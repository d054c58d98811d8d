"""Escalation is a hand-off, not an end: the officer's ``end_visit escalated`` frees the
slot and queues the visit for a supervisor with grant ``resolve``, who takes it, decides
its steps and ends it. And the alerts a supervisor's office view carries. Driven through
the real hub (tests/hub_driver.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hub_driver import NOW, HubDriver, Step

from lapak.media.booth_status import booth_screen
from lapak.signaling.config import ServerConfig
from lapak.signaling.events import EscalationTaken, Event, VisitEnded, VisitEscalated
from lapak.signaling.hub import Result
from lapak.signaling.messages import BoothState, decode_server
from lapak.signaling.metrics import ServerMetrics
from lapak.signaling.state import State, open_visit, replay

Message = dict[str, Any]


class Office:
    """Office main: desk d1 (capacity 1) with officer ana, booth b1 seated, booth b2 queued;
    supervisors: sri (resolve), tono (resolve), wati (monitor only), nia (resolve, north)."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.hub = HubDriver(config)
        self.events: list[Event] = []  # every event the hub made, as the log would hold
        record = self.hub._step

        def step(result: Result) -> Step:
            self.events += result.events
            return record(result)

        self.hub._step = step  # type: ignore[method-assign]
        admin = self.hub.join("admin", sub="root")
        self.send(admin, {"type": "configure_desk", "desk": "d1", "capacity": 1})
        self.officer = self.hub.join("officer", sub="ana", desk="d1")
        self.b1 = self.hub.join("booth", sub="b1", booth="b1")
        self.b2 = self.hub.join("booth", sub="b2", booth="b2")
        self.v1 = self.hub.start_visit(self.b1)
        self.v2 = self.hub.start_visit(self.b2)
        self.sri = self.hub.join("supervisor", sub="sri", grants=["resolve"])
        self.tono = self.hub.join("supervisor", sub="tono", grants=["resolve", "coach"])
        self.wati = self.hub.join("supervisor", sub="wati")
        self.nia = self.hub.join("supervisor", sub="nia", office="north", grants=["resolve"])
        self.send(self.officer, {"type": "focus", "visit": self.v1})

    def send(self, conn: int, message: Message, now: float | None = None) -> Message:
        """The answer (``re`` 7) to one request; ``self.last`` is all it produced."""
        self.last = self.hub.send(conn, {"id": 7, **message}, now)
        return next(m for m in self.last.to(conn) if m.get("re") == 7)

    def escalate(self, visit: str | None = None, note: str = "signature differs") -> Message:
        end = {"type": "end_visit", "visit": visit or self.v1, "outcome": "escalated"}
        return self.send(self.officer, {**end, "note": note})

    def take(self, conn: int, visit: str | None = None) -> Message:
        return self.send(conn, {"type": "take_escalation", "visit": visit or self.v1})

    def booth_state(self, conn: int) -> Message:
        return [m for m in self.last.to(conn) if m["type"] == "booth_state"][-1]

    def stats(self, conn: int, now: float | None = None) -> Message:
        return self.send(conn, {"type": "office_stats"}, now)


def test_escalating_hands_the_visit_over_and_frees_the_slot() -> None:
    o = Office()
    assert o.hub.state.visits[o.v2].state == "queued", "desk d1 seats one"
    assert o.escalate() == {"type": "ack", "re": 7, "visit": o.v1}
    kinds = [type(e).__name__ for e in o.last.events]
    assert kinds == ["VisitEscalated", "VisitRouted"], "the queue drains into the freed slot"
    visit = o.hub.state.visits[o.v1]
    assert (visit.state, visit.desk, visit.outcome) == ("escalated", None, None)
    assert o.hub.state.visits[o.v2].desk == "d1", "the next claimant sits in the freed slot"
    assert o.hub.state.desks["d1"].on_air is None
    told = o.booth_state(o.b1)
    assert told["state"] == "escalated" and told["supervisor_present"] is False, told
    assert told["on_air"] is False and told["video"] == "thumbnail"
    delta = next(m for m in o.last.to(o.officer) if m["type"] == "delta")
    gone = next(v for v in delta["visits"] if v["visit"] == o.v1)
    assert gone["state"] == "escalated" and gone["desk"] is None, "it left the officer's desk"
    assert open_visit(o.hub.state, "main", "b1") == o.v1, "the booth's visit stays open"
    claimant = {"name": "S", "membership_no": "1"}
    again = o.send(o.b1, {"type": "start_visit", "claimant": claimant})
    assert again["visit"] == o.v1, "a booth that reloads resumes it"


def test_escalations_are_listed_with_their_note_and_wait_and_raise_an_alert() -> None:
    o = Office()
    o.escalate(note="photo does not match")
    figures = o.stats(o.wati, now=NOW + 90)
    [entry] = figures["escalations"]
    assert {k: entry[k] for k in ("visit", "booth", "desk", "by", "note", "taken_by")} == {
        "visit": o.v1, "booth": "b1", "desk": "d1", "by": "ana",
        "note": "photo does not match", "taken_by": None,
    }  # fmt: skip
    assert entry["waiting_s"] == 90 and entry["booth_present"] is True
    assert [s["name"] for s in entry["visit_view"]["steps"]], "the resolver sees the steps"
    [alert] = [a for a in figures["alerts"] if a["kind"] == "escalation_waiting"]
    assert (alert["visit"], alert["desk"], alert["seconds"]) == (o.v1, "d1", 90)
    o.take(o.sri)
    figures = o.stats(o.wati)
    assert figures["escalations"][0]["taken_by"] == "sri"
    assert not [a for a in figures["alerts"] if a["kind"] == "escalation_waiting"]


def test_a_resolver_takes_decides_and_ends_it() -> None:
    o = Office()
    o.escalate()
    assert o.take(o.sri) == {"type": "ack", "re": 7, "visit": o.v1}
    [taken] = o.last.events
    assert isinstance(taken, EscalationTaken) and (taken.by, taken.role) == ("sri", "supervisor")
    told = o.booth_state(o.b1)
    assert told["supervisor_present"] is True and told["video"] == "full"
    assert o.take(o.sri)["type"] == "ack" and o.last.events == [], "again: nothing changes"
    decide = {"type": "decide", "visit": o.v1, "step": 0, "decision": "reject"}
    reason = o.hub.hub.config.reasons[0]
    assert o.send(o.sri, {**decide, "reason": reason})["type"] == "ack"
    assert (o.last.events[0].by, o.last.events[0].role) == ("sri", "supervisor")
    assert o.booth_state(o.b1)["steps"][0]["status"] == "rejected", "the booth sees it"
    end = {"type": "end_visit", "visit": o.v1}
    again = o.send(o.sri, {**end, "outcome": "escalated", "note": "n"})
    assert again["code"] == "invalid_message", "a resolver cannot escalate further"
    assert o.send(o.sri, {**end, "outcome": "completed"})["code"] == "outcome_mismatch"
    assert o.send(o.sri, {**end, "outcome": "rejected"})["type"] == "ack"
    [ended] = o.last.events
    assert isinstance(ended, VisitEnded) and (ended.by, ended.role) == ("sri", "supervisor")
    visit = o.hub.state.visits[o.v1]
    assert (visit.state, visit.outcome, visit.note) == ("ended", "rejected", "signature differs")
    assert o.booth_state(o.b1)["state"] == "ended"


@pytest.mark.parametrize(
    ("who", "visit", "code"),
    [
        ("wati", "v1", "forbidden"),  # no grant resolve
        ("nia", "v1", "forbidden"),  # another office
        ("officer", "v1", "forbidden"),
        ("b1", "v1", "forbidden"),
        ("sri", "v2", "not_escalated"),  # active at the desk
        ("sri", "nope", "not_found"),
    ],
)
def test_take_refusals_change_nothing(who: str, visit: str, code: str) -> None:
    o = Office()
    o.escalate()
    conn = {"wati": o.wati, "nia": o.nia, "officer": o.officer, "b1": o.b1, "sri": o.sri}[who]
    before = o.hub.state.events_applied
    target = {"v1": o.v1, "v2": o.v2}.get(visit, visit)
    answer = o.take(conn, target)
    assert answer["type"] == "error" and answer["code"] == code, answer
    assert o.hub.state.events_applied == before
    assert o.hub.state.visits[o.v1].taken_by is None


def test_only_the_taker_decides_or_ends_and_the_officer_no_longer_can() -> None:
    o = Office()
    o.escalate()
    decide = {"type": "decide", "visit": o.v1, "step": 0, "decision": "approve"}
    end = {"type": "end_visit", "visit": o.v1, "outcome": "abandoned"}
    assert o.send(o.sri, decide)["code"] == "forbidden", "not taken yet: take it first"
    o.take(o.sri)
    assert o.take(o.tono)["code"] == "conflict", "already taken by sri"
    before = o.hub.state.events_applied
    assert o.send(o.tono, decide)["code"] == "forbidden", "taken by another"
    assert o.send(o.tono, end)["code"] == "forbidden"
    assert o.send(o.wati, decide)["code"] == "read_only", "no grant resolve"
    assert o.send(o.officer, decide)["code"] == "visit_not_active", "it left the desk"
    assert o.send(o.officer, {**end, "outcome": "completed"})["code"] == "visit_not_active"
    assert o.hub.state.events_applied == before
    active = {"type": "decide", "visit": o.v2, "step": 0, "decision": "approve"}
    assert o.send(o.sri, active)["code"] == "not_escalated", "a resolver never decides at desks"
    # the same supervisor on a new connection still holds it (by sub)
    again = o.hub.join("supervisor", sub="sri", grants=["resolve"])
    assert o.send(again, decide)["type"] == "ack"


def test_the_booth_may_still_leave_and_a_gone_booth_is_abandoned() -> None:
    o = Office()
    o.escalate()
    o.take(o.sri)
    o.last = o.hub.disconnect(o.b1, now=NOW + 10)
    alerts = o.stats(o.wati, now=NOW + 25)["alerts"]
    away = [a for a in alerts if a["kind"] == "booth_away"]
    assert away and (away[0]["visit"], away[0]["seconds"]) == (o.v1, 15)
    grace = o.hub.hub.config.grace_s
    step = o.hub.tick(now=NOW + 10 + grace)
    [ended] = [e for e in step.events if isinstance(e, VisitEnded)]
    assert (ended.visit, ended.outcome) == (o.v1, "abandoned")
    assert o.hub.state.escalations == {}
    abandoned = [a for a in o.stats(o.wati)["alerts"] if a["kind"] == "abandoned"]
    assert [a["visit"] for a in abandoned] == [o.v1]


def test_a_booth_ends_its_own_escalated_visit_by_leaving() -> None:
    o = Office()
    o.escalate()
    end = {"type": "end_visit", "visit": o.v1, "outcome": "abandoned"}
    assert o.send(o.b1, end)["type"] == "ack"
    assert o.hub.state.visits[o.v1].state == "ended" and o.hub.state.escalations == {}


def test_the_resolver_speaks_with_the_booth_without_watching_a_desk() -> None:
    o = Office()
    o.escalate()
    offer = {"type": "sdp", "visit": o.v1, "sdp_type": "offer", "sdp": "v=0", "offer_id": "r1"}
    assert o.send(o.sri, offer)["code"] == "forbidden", "before taking it: not a peer"
    o.take(o.sri)
    assert o.send(o.sri, offer)["type"] == "ack"
    [relayed] = [m for m in o.last.to(o.b1) if m["type"] == "sdp"]
    assert (relayed["from"], relayed["peer"]) == ("supervisor", str(o.sri))
    answer = {**offer, "sdp_type": "answer", "peer": str(o.sri)}
    assert o.send(o.b1, answer)["type"] == "ack"
    assert [m["type"] for m in o.last.to(o.sri)] == ["sdp"]
    assert o.send(o.tono, offer)["code"] == "forbidden", "another supervisor is no peer"
    officer_offer = {**offer, "offer_id": "o9"}
    assert o.send(o.officer, officer_offer)["code"] == "forbidden", "the officer let it go"
    o.last = o.hub.disconnect(o.sri)
    assert [m["type"] for m in o.last.to(o.b1)] == ["peer_left", "booth_state"]
    assert o.booth_state(o.b1)["barge_peer"] is None, "nobody to hear now"


def test_replay_restores_the_escalation_queue_and_the_taker() -> None:
    o = Office()
    o.escalate()
    o.send(o.officer, {"type": "focus", "visit": o.v2})
    o.escalate(o.v2, note="second")
    o.take(o.sri, o.v2)
    live = o.hub.state
    again = replay(list(o.events))
    assert again.escalations == live.escalations == {"main": [o.v1]}
    assert again.visits[o.v2].taken_by == "sri" and again.visits[o.v1].taken_by is None
    assert (
        again.visits[o.v1].escalated_from == "d1" and again.visits[o.v1].note == "signature differs"
    )


def test_alerts_for_long_queue_waits_and_claimants_not_spoken_to() -> None:
    o = Office(ServerConfig(alert_queue_wait_s=60, alert_not_spoken_s=120))
    alerts = o.stats(o.wati, now=NOW + 59)["alerts"]
    assert [a["kind"] for a in alerts] == [], "nothing yet"
    alerts = o.stats(o.wati, now=NOW + 61)["alerts"]
    assert [(a["kind"], a["visit"], a["desk"]) for a in alerts] == [("queue_wait", o.v2, None)]
    o.send(o.officer, {"type": "focus", "visit": None}, now=NOW + 100)
    alerts = o.stats(o.wati, now=NOW + 219)["alerts"]
    assert "not_spoken_to" not in [a["kind"] for a in alerts]
    alerts = o.stats(o.wati, now=NOW + 221)["alerts"]
    [silent] = [a for a in alerts if a["kind"] == "not_spoken_to"]
    assert (silent["visit"], silent["desk"], silent["slot"], silent["seconds"]) == (
        o.v1, "d1", 1, 121,
    )  # fmt: skip
    assert [a["kind"] for a in alerts] == ["not_spoken_to", "queue_wait"], "most pressing first"


def test_escalated_event_carries_who_and_the_note() -> None:
    o = Office()
    o.escalate(note="ask a supervisor")
    escalated = next(e for e in o.last.events if isinstance(e, VisitEscalated))
    assert (escalated.by, escalated.role, escalated.note) == ("ana", "officer", "ask a supervisor")


# -- what the claimant sees -----------------------------------------------------------------


def booth_status(o: Office, conn: int) -> BoothState:
    message = decode_server(json.dumps(o.booth_state(conn)))
    assert isinstance(message, BoothState)
    return message


def test_the_booth_screen_says_a_supervisor_will_join_then_is_there() -> None:
    o = Office()
    o.escalate()
    screen = booth_screen(booth_status(o, o.b1), media_connected=True)
    assert screen.state == "escalated" and "A supervisor will join you" in " ".join(screen.lines)
    o.take(o.sri)
    screen = booth_screen(booth_status(o, o.b1), media_connected=True)
    assert screen.state == "supervisor" and "A supervisor is with you" in screen.lines[0]


def test_the_booth_screen_announces_a_barging_supervisor() -> None:
    o = Office()
    barger = o.hub.join("supervisor", sub="bima", grants=["barge"])
    o.send(barger, {"type": "supervise", "desk": "d1", "mode": "barge"})
    screen = booth_screen(booth_status(o, o.b1), media_connected=True)
    assert screen.state == "on_air"
    assert "A supervisor has joined the conversation." in screen.lines


NODE = shutil.which("node")
KIOSK = Path(__file__).resolve().parents[1] / "signaling" / "kiosk"


@pytest.mark.skipif(NODE is None, reason="node is not installed: the kiosk's modules need it")
def test_kiosk_shows_the_escalated_screen_in_both_languages() -> None:
    """The kiosk's pure modules (view.js, i18n.js) under node: an escalated visit stays
    open on its own screen, with its text in Indonesian and English."""
    script = f"""
globalThis.document = {{ documentElement: {{}} }};
const view = await import({json.dumps((KIOSK / "view.js").as_uri())});
const i18n = await import({json.dumps((KIOSK / "i18n.js").as_uri())});
const out = {{ screens: {{}}, text: {{}} }};
for (const [name, status] of Object.entries({{
  waiting: {{ state: "escalated", supervisor_present: false }},
  taken: {{ state: "escalated", supervisor_present: true }},
  ended: {{ state: "ended" }},
}})) {{
  out.screens[name] = view.chooseScreen({{ status, welcome: {{}} }});
  out.open = out.open ?? view.visitOpen(status);
}}
for (const lang of ["id", "en"]) {{
  i18n.setLanguage(lang);
  out.text[lang] = ["escalated.title", "escalated.body", "escalated.with",
                    "escalated.with_body", "onair.supervisor"].map((k) => i18n.t(k));
}}
console.log(JSON.stringify(out));
"""
    assert NODE is not None
    run = subprocess.run(
        [NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["screens"] == {"waiting": "escalated", "taken": "escalated", "ended": "finished"}
    assert out["open"] is True, "an escalated visit is still open"
    english, indonesian = out["text"]["en"], out["text"]["id"]
    assert english[0] == "A supervisor will join you"
    assert english[4] == "A supervisor has joined the conversation."
    keys = ("escalated.title", "escalated.body", "escalated.with", "escalated.with_body")
    for key, en, id_ in zip((*keys, "onair.supervisor"), english, indonesian, strict=True):
        assert en != key and id_ != key and en != id_, f"{key}: a text in each language"


def test_prometheus_gauges_count_waiting_escalations_queue_waits_and_alerts() -> None:
    o = Office()
    o.escalate()  # v1 waits for a supervisor; v2 took its slot
    booth3 = o.hub.join("booth", sub="b3", booth="b3")
    o.hub.start_visit(booth3)  # queued from NOW
    o.hub.at(NOW + 400)
    gauges = o.hub.hub.office_gauges()["main"]
    assert gauges.escalations_waiting == 1
    assert gauges.queue_wait_max_s == 400
    assert gauges.alerts["queue_wait"] == 1 and gauges.alerts["escalation_waiting"] == 1
    text = ServerMetrics().render({}, {}, o.hub.hub.office_gauges()).decode()
    assert 'lapak_escalations_waiting{office="main"} 1.0' in text
    assert 'lapak_queue_wait_seconds_max{office="main"} 400.0' in text
    assert 'lapak_alerts{kind="queue_wait",office="main"} 1.0' in text
    o.take(o.sri)
    text = ServerMetrics().render({}, {}, o.hub.hub.office_gauges()).decode()
    assert 'lapak_escalations_waiting{office="main"} 0.0' in text, "taken: no longer waiting"


def test_a_state_snapshot_keeps_the_escalation_queue_and_the_taker() -> None:
    """The log's snapshots encode the whole state (signaling/logsnapshots.py): a restart from
    one still knows who waits for a supervisor and who took what."""
    o = Office()
    o.escalate()
    o.send(o.officer, {"type": "focus", "visit": o.v2})
    o.escalate(o.v2, note="second")
    o.take(o.tono, o.v2)
    again = msgspec.json.decode(msgspec.json.encode(o.hub.state), type=State)
    assert again.escalations == {"main": [o.v1]}
    assert (again.visits[o.v2].taken_by, again.visits[o.v2].state) == ("tono", "escalated")


def test_a_recorder_keeps_reaching_the_booth_of_an_escalated_visit() -> None:
    o = Office()
    rec = o.hub.join("recorder", sub="rec-1")
    north = o.hub.join("recorder", sub="rec-2", office="north")
    offer = {"type": "sdp", "visit": o.v1, "sdp_type": "offer", "sdp": "v=0", "offer_id": "r1"}
    assert o.send(rec, offer)["code"] == "forbidden", "not watching d1 yet"
    o.send(rec, {"type": "watch", "desk": "d1"})
    assert o.send(rec, offer)["type"] == "ack", "at the desk: as a watcher"
    o.escalate()
    relink = {**offer, "offer_id": "r2"}
    assert o.send(rec, relink)["type"] == "ack", "escalated: the relink still reaches the booth"
    [relayed] = [m for m in o.last.to(o.b1) if m["type"] == "sdp"]
    assert relayed["from"] == "recorder" and relayed["peer"] == str(rec)
    answer = {**relink, "sdp_type": "answer", "peer": str(rec)}
    assert o.send(o.b1, answer)["type"] == "ack"
    assert [m["sdp_type"] for m in o.last.to(rec) if m["type"] == "sdp"] == ["answer"]
    assert o.send(north, {**offer, "offer_id": "n1"})["code"] == "forbidden", "other office"
    left = o.hub.disconnect(rec)
    assert [m for m in left.to(o.b1) if m["type"] == "peer_left"], "the booth drops its peer"
    again = o.hub.join("recorder", sub="rec-1")  # a restarted recorder relinks at once
    assert o.send(again, {**offer, "offer_id": "r3"})["type"] == "ack"


def test_the_resolvers_newest_connection_is_the_booths_barge_peer() -> None:
    o = Office()
    o.escalate()
    assert o.booth_state(o.b1)["barge_peer"] is None, "waiting: nobody speaks"
    o.take(o.sri)
    assert o.booth_state(o.b1)["barge_peer"] == str(o.sri)
    o.last = o.hub.disconnect(o.sri)
    assert o.booth_state(o.b1)["barge_peer"] is None, "the resolver's connection dropped"
    assert o.booth_state(o.b1)["supervisor_present"] is True, "still taken"
    back = o.hub.join("supervisor", sub="sri", grants=["resolve"])
    o.last = o.hub.send(o.wati, {"type": "office_stats", "id": 3})  # any later step
    states = [m for m in o.hub.inbox[o.b1] if m["type"] == "booth_state"]
    assert states[-1]["barge_peer"] == str(back), "back: its new connection is heard"
