"""The server's side of recording (issue 15), through the sans-I/O hub: the recorder role
watches and offers like a supervisor but only in its own office, its report is validated and
logged, and booths are told a visit is recorded from its routing."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import msgspec
from hub_driver import HubDriver

from lapak.signaling.config import ServerConfig
from lapak.signaling.events import RecordingClosed, RecordingNoticeShown
from lapak.signaling.logformat import connect
from lapak.signaling.personal_data import recording_key
from lapak.signaling.state import State, conceal
from lapak.signaling.visitkeys import SqliteKeyStore, reveal

SHA = "c" * 64


def closed(visit: str, **over: Any) -> dict[str, Any]:
    report = {"type": "recording_closed", "id": 9, "visit": visit, "file": f"{visit}.webm"}
    return {**report, "sha256": SHA, "duration_s": 12.5, "bytes": 1000, "gaps": [], **over}


def office_with_visit(recording: bool = True) -> tuple[HubDriver, int, int, str]:
    hub = HubDriver(ServerConfig(recording=recording))
    booth = hub.join("booth", booth="b1")
    officer = hub.join("officer", desk="d1")
    return hub, booth, officer, hub.start_visit(booth)


def test_a_recorder_of_another_office_can_neither_watch_nor_report() -> None:
    hub, _, _, visit = office_with_visit()
    north = hub.join("recorder", office="north")
    answer = hub.say(north, {"type": "watch", "id": 3, "desk": "d1"})[0]
    assert answer["code"] == "forbidden", answer
    answer = hub.say(north, closed(visit))[0]
    assert answer["code"] == "forbidden", answer


def test_a_recorder_token_for_every_office_is_refused() -> None:
    hub = HubDriver()
    _, answer = hub.hello("recorder", office="*")
    assert answer["code"] == "bad_token", answer


def test_the_recorder_offers_like_a_supervisor_and_gets_the_booth_answer() -> None:
    hub, booth, _, visit = office_with_visit()
    recorder = hub.join("recorder")
    snapshot = hub.say(recorder, {"type": "watch", "id": 3, "desk": "d1"})[0]
    assert [v["visit"] for v in snapshot["state"]["visits"]] == [visit], "it sees the visit"
    offer = {"type": "sdp", "id": 4, "visit": visit, "sdp_type": "offer", "sdp": "v=0"}
    step = hub.send(recorder, {**offer, "offer_id": "r1"})
    relayed = [m for m in step.to(booth) if m["type"] == "sdp"]
    assert relayed and relayed[0]["from"] == "recorder", relayed
    peer = relayed[0]["peer"]
    reply = {"type": "sdp", "id": 5, "visit": visit, "sdp_type": "answer", "sdp": "v=0"}
    step = hub.send(booth, {**reply, "offer_id": "r1", "peer": peer})
    assert [m["sdp_type"] for m in step.to(recorder) if m["type"] == "sdp"] == ["answer"]
    left = hub.disconnect(recorder)
    assert [m for m in left.to(booth) if m["type"] == "peer_left"], "the booth drops its peer"


def test_a_recording_report_is_checked_then_logged() -> None:
    hub, _, officer, visit = office_with_visit()
    recorder = hub.join("recorder")
    for bad in (
        {"sha256": "XYZ"},
        {"file": "../etc/passwd"},
        {"gaps": [[5.0, 1.0]]},
        {"bytes": -1},
    ):
        answer = hub.say(recorder, closed(visit, **bad))[0]
        assert answer["code"] == "invalid_message", (bad, answer)
    assert hub.say(recorder, closed("V999999"))[0]["code"] == "not_found"
    ended = {"type": "end_visit", "id": 6, "visit": visit, "outcome": "abandoned"}
    assert hub.say(officer, ended)[0]["type"] == "ack"
    step = hub.send(recorder, closed(visit, gaps=[[1.0, 2.5]]))  # after the end: allowed
    assert step.to(recorder)[0] == {"type": "ack", "re": 9, "visit": visit}
    (event,) = step.events
    assert isinstance(event, RecordingClosed)
    assert (event.visit, event.sha256, event.gaps, event.by, event.role) == (
        visit, SHA, [(1.0, 2.5)], "recorder", "recorder",
    )  # fmt: skip


def test_booths_are_told_from_routing_that_the_visit_is_recorded() -> None:
    hub = HubDriver(ServerConfig(recording=True))
    booth = hub.join("booth", booth="b1")
    hub.start_visit(booth)
    queued = [m for m in hub.inbox[booth] if m["type"] == "booth_state"]
    assert queued and not queued[-1]["recorded"], "queued: nobody speaks to it yet"
    officer = hub.join("officer", desk="d1")
    assert officer
    routed = [m for m in hub.inbox[booth] if m["type"] == "booth_state"][-1]
    assert routed["desk"] == "d1" and routed["recorded"] is True
    _, _, _, visit = off = office_with_visit(recording=False)
    states = [m for m in off[0].inbox[off[1]] if m["type"] == "booth_state"]
    assert states[-1]["visit"] == visit and states[-1]["recorded"] is False, "recording off"


def test_only_the_booth_of_the_visit_logs_the_notice() -> None:
    hub, booth, officer, visit = office_with_visit()
    other = hub.join("booth", booth="b2")
    notice = {"type": "recording_notice_shown", "id": 7, "visit": visit}
    assert hub.say(other, notice)[0]["code"] == "forbidden"
    assert hub.say(officer, notice)[0]["code"] == "forbidden"
    step = hub.send(booth, notice)
    (event,) = step.events
    assert isinstance(event, RecordingNoticeShown) and event.by == "b1"


# -- the recording key (encrypted recordings) -----------------------------------------------


def key_request(visit: str, id: int = 4) -> dict[str, Any]:
    return {"type": "get_recording_key", "id": id, "visit": visit}


def test_a_recorder_gets_an_open_visits_recording_key_and_nobody_else_does() -> None:
    hub = HubDriver(ServerConfig(recording=True))
    booth = hub.join("booth", booth="b1")
    officer = hub.join("officer", desk="d1")
    who = {"name": "S", "membership_no": "1"}
    step = hub.send(booth, {"type": "start_visit", "id": 2, "claimant": who})
    visit = str(step.to(booth)[0]["visit"])
    visit_key = step.result.keys[visit]  # what the log stores in visit_keys
    recorder = hub.join("recorder")
    step = hub.send(recorder, key_request(visit))
    (answer,) = step.to(recorder)
    assert (answer["type"], answer["re"], answer["visit"]) == ("recording_key", 4, visit)
    key = base64.b64decode(answer["key"])
    assert key == recording_key(visit_key, visit), "HKDF of the visit key, bound to the visit"
    assert key != visit_key and len(key) == 32, "never the visit key itself"
    assert [c for c, m in step.outputs if m["type"] == "recording_key"] == [recorder]
    north = hub.join("recorder", office="north")
    assert hub.say(north, key_request(visit))[0]["code"] == "forbidden"
    for role, claims in (("officer", {"desk": "d1"}), ("supervisor", {}), ("admin", {})):
        other = officer if role == "officer" else hub.join(role, **claims)
        assert hub.say(other, key_request(visit))[0]["code"] == "forbidden", role
    assert hub.say(recorder, key_request("V999999"))[0]["code"] == "not_found"
    ended = {"type": "end_visit", "id": 6, "visit": visit, "outcome": "abandoned"}
    assert hub.say(officer, ended)[0]["type"] == "ack"
    answer = hub.say(recorder, key_request(visit))[0]
    assert answer["code"] == "visit_not_active", "an ended visit's key is not handed out"
    admin = hub.join("admin")
    purge = {"type": "purge_visit", "id": 8, "visit": visit, "reason": "claimant request"}
    assert hub.say(admin, purge)[0]["type"] == "ack"
    assert hub.state.visits[visit].recording_key is None, "a purge drops it from memory"


def test_the_recording_key_is_never_in_a_snapshot_and_comes_back_after_a_restart(
    tmp_path: Path,
) -> None:
    hub = HubDriver(ServerConfig(recording=True))
    booth = hub.join("booth", booth="b1")
    hub.join("officer", desk="d1")
    who = {"name": "S", "membership_no": "1"}
    step = hub.send(booth, {"type": "start_visit", "id": 2, "claimant": who})
    visit = str(step.to(booth)[0]["visit"])
    held = hub.state.visits[visit].recording_key
    assert held is not None
    # what the writer's replica (and so every snapshot) holds
    replica = msgspec.json.decode(msgspec.json.encode(hub.state), type=State)
    conceal(replica)
    assert replica.visits[visit].recording_key is None
    assert base64.b64encode(held) not in msgspec.json.encode(replica)
    conn = connect(tmp_path / "events.sqlite3")  # the log's visit_keys, as the writer keeps it
    store = SqliteKeyStore(conn)
    store.put_many(step.result.keys)
    reveal(replica, store)  # start-up, with the stored keys
    conn.close()
    assert replica.visits[visit].recording_key == held
    restarted = HubDriver(ServerConfig(recording=True), keys=hub.keys, state=replica)
    recorder = restarted.join("recorder")
    answer = restarted.say(recorder, key_request(visit))[0]
    assert base64.b64decode(answer["key"]) == held, "a restarted server hands out the same key"
