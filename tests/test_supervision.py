"""Supervisors beyond watching: token grants, ``supervise`` (coach, barge, monitor), the
officer's ``supervision`` message, the barged booth's ``supervisor_present`` and the desk
``sdp`` path between a coaching supervisor and the officer, driven through the real hub."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
import pytest
from hub_driver import HubDriver

from lapak.signaling.events import SupervisionChanged
from lapak.signaling.protocol import ErrorCode
from lapak.signaling.tokens import GRANTS, KeyRing, TokenError, key_id

Message = dict[str, Any]


# -- tokens ------------------------------------------------------------------------------


def test_grants_ride_in_the_supervisor_token_and_default_to_monitor() -> None:
    keys = KeyRing((b"g" * 32,))
    coach = keys.verify(keys.issue("supervisor", "sri", "main", grants=["resolve", "coach"]))
    assert coach.grants == ("monitor", "coach", "resolve"), "monitor always, in GRANTS order"
    plain = keys.verify(keys.issue("supervisor", "sri", "main"))
    assert plain.grants == ("monitor",), "no claim: monitor only (today's behaviour)"
    assert keys.verify(keys.issue("admin", "root", "main")).grants == GRANTS, "admin holds all"
    assert keys.verify(keys.issue("officer", "ana", "main", desk="d1")).grants == ()
    with pytest.raises(ValueError, match="only supervisor tokens carry grants"):
        keys.issue("officer", "ana", "main", desk="d1", grants=["coach"])
    with pytest.raises(ValueError, match="unknown grant 'sing'"):
        keys.issue("supervisor", "sri", "main", grants=["sing"])


@pytest.mark.parametrize(
    ("role", "grants", "why"),
    [
        ("supervisor", "coach", "must be a list"),
        ("supervisor", ["coach", 3], "must be a list"),
        ("supervisor", ["sing"], "unknown grant"),
        ("officer", ["barge"], "only supervisor tokens"),
        ("supervisor", ["coach"] * 9, "too many"),
    ],
)
def test_a_signed_token_with_a_bad_grants_claim_is_bad_token(
    role: str, grants: object, why: str
) -> None:
    key = b"g" * 32
    payload = {"role": role, "sub": "x", "office": "main", "iat": 1, "exp": 2**40, "desk": "d1"}
    token = jwt.encode({**payload, "grants": grants}, key, "HS256", headers={"kid": key_id(key)})
    with pytest.raises(TokenError) as err:
        KeyRing((key,)).verify(token, now=100)
    assert err.value.code == ErrorCode.BAD_TOKEN and why in err.value.message


LAPAK = [sys.executable, "-m", "lapak.cli"]


def test_cli_issues_grants_and_refuses_wrong_ones(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    KeyRing.generate().write(secret)
    base = [*LAPAK, "token", "--secret-file", str(secret), "--sub", "sri", "--office", "main"]
    out = subprocess.run(
        [*base, "--role", "supervisor", "--grant", "coach", "--grant", "resolve"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    claims = KeyRing.from_file(secret).verify(out.stdout.strip())
    assert claims.grants == ("monitor", "coach", "resolve")
    assert "grants=monitor,coach,resolve" in out.stderr
    officer = subprocess.run(
        [*base, "--role", "officer", "--desk", "d1", "--grant", "barge"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert officer.returncode == 2 and "only supervisor tokens carry grants" in officer.stderr
    assert "Traceback" not in officer.stderr
    unknown = subprocess.run(
        [*base, "--role", "supervisor", "--grant", "sing"], capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert unknown.returncode == 2 and "invalid choice: 'sing'" in unknown.stderr


# -- a desk with two booths, an officer and supervisors ---------------------------------


class Desk:
    """Office main: desk d1 with its officer, booths b1 (on air) and b2 seated; desk d9 in
    office north."""

    def __init__(self) -> None:
        self.hub = HubDriver()
        self.officer = self.hub.join("officer", sub="ana", desk="d1")
        self.b1 = self.hub.join("booth", sub="b1", booth="b1")
        self.b2 = self.hub.join("booth", sub="b2", booth="b2")
        self.v1 = self.hub.start_visit(self.b1)
        self.v2 = self.hub.start_visit(self.b2)
        self.hub.join("officer", sub="nia", office="north", desk="d9")
        assert self.send(self.officer, {"type": "focus", "visit": self.v1})["type"] == "ack"

    def supervisor(self, *grants: str, sub: str = "sri", office: str = "main") -> int:
        return self.hub.join("supervisor", sub=sub, office=office, grants=list(grants))

    def send(self, conn: int, message: Message) -> Message:
        """The answer (``re`` 7) to one request."""
        step = self.hub.send(conn, {"id": 7, **message})
        self.last = step
        return next(m for m in step.to(conn) if m.get("re") == 7)

    def supervise(self, conn: int, mode: str, desk: str = "d1") -> Message:
        return self.send(conn, {"type": "supervise", "desk": desk, "mode": mode})

    def got(self, conn: int, kind: str) -> list[Message]:
        return [m for m in self.last.to(conn) if m["type"] == kind]


def test_coach_is_logged_and_told_to_the_officer_only() -> None:
    d = Desk()
    sri = d.supervisor("coach")
    assert d.supervise(sri, "coach") == {"type": "ack", "re": 7, "desk": "d1"}
    [event] = d.last.events
    assert isinstance(event, SupervisionChanged)
    assert (event.desk, event.mode, event.by, event.role, event.visit) == (
        "d1", "coach", "sri", "supervisor", d.v1,
    ), "the audit trail says who coached which desk during which visit"  # fmt: skip
    assert d.got(d.officer, "supervision") == [
        {"type": "supervision", "desk": "d1", "supervisor": str(sri), "sub": "sri", "mode": "coach"}
    ]
    assert d.last.to(d.b1) == [] and d.last.to(d.b2) == [], "coach: the booths learn nothing"
    assert d.supervise(sri, "coach")["type"] == "ack"
    assert d.last.events == [] and d.last.to(d.officer) == [], "the same mode again: no change"
    d.supervise(sri, "monitor")
    assert [e.mode for e in d.last.events if isinstance(e, SupervisionChanged)] == ["monitor"]
    assert d.got(d.officer, "supervision")[0]["mode"] == "monitor"
    d.supervise(sri, "monitor")
    assert d.last.events == [], "monitor while only watching: nothing to end"


@pytest.mark.parametrize(
    ("grants", "mode", "desk", "office", "code"),
    [
        ((), "coach", "d1", "main", "forbidden"),  # monitor only
        (("barge",), "coach", "d1", "main", "forbidden"),  # barge does not grant coach
        (("coach", "resolve"), "barge", "d1", "main", "forbidden"),
        (("coach",), "coach", "d9", "main", "forbidden"),  # another office's desk
        (("coach",), "coach", "d1", "north", "forbidden"),
        (("coach",), "coach", "nope", "main", "not_found"),
    ],
)
def test_supervise_refusals_change_nothing(
    grants: tuple[str, ...], mode: str, desk: str, office: str, code: str
) -> None:
    d = Desk()
    sup = d.supervisor(*grants, office=office)
    before = d.hub.state.events_applied
    answer = d.supervise(sup, mode, desk)
    assert answer["type"] == "error" and answer["code"] == code, answer
    assert d.hub.state.events_applied == before and d.last.to(d.officer) == []


def test_officers_and_booths_may_not_supervise_and_admins_hold_every_grant() -> None:
    d = Desk()
    assert d.supervise(d.officer, "coach")["code"] == "forbidden"
    assert d.supervise(d.b1, "monitor")["code"] == "forbidden"
    root = d.hub.join("admin", sub="root")
    assert d.supervise(root, "barge")["type"] == "ack"


def test_one_supervisor_per_desk_and_one_desk_per_supervisor() -> None:
    d = Desk()
    d.hub.join("officer", sub="budi", desk="d2")
    sri, tono = d.supervisor("coach", sub="sri"), d.supervisor("coach", "barge", sub="tono")
    d.supervise(sri, "coach")
    taken = d.supervise(tono, "barge")
    assert taken["code"] == "conflict" and "sri" in taken["message"]
    assert d.last.events == []
    d.supervise(sri, "coach", desk="d2")  # moving on ends d1 first
    assert [(e.desk, e.mode) for e in d.last.events if isinstance(e, SupervisionChanged)] == [
        ("d1", "monitor"), ("d2", "coach"),
    ]  # fmt: skip
    assert d.got(d.officer, "supervision")[0]["mode"] == "monitor"
    assert d.supervise(tono, "barge")["type"] == "ack", "d1 is free again"


def booth_states(d: Desk, conn: int) -> list[bool]:
    return [m["supervisor_present"] for m in d.last.to(conn) if m["type"] == "booth_state"]


def test_barge_is_announced_to_the_on_air_booth_and_follows_the_air() -> None:
    d = Desk()
    sri = d.supervisor("barge", "coach")
    d.supervise(sri, "barge")
    assert booth_states(d, d.b1) == [True], "the on-air booth is told a supervisor joined"
    assert booth_states(d, d.b2) == [], "an off-air booth is not"
    assert d.got(d.officer, "supervision")[0]["mode"] == "barge"
    d.send(d.officer, {"type": "focus", "visit": d.v2})
    assert booth_states(d, d.b1) == [False] and booth_states(d, d.b2) == [True]
    d.send(d.officer, {"type": "focus", "visit": None})
    assert booth_states(d, d.b2) == [False]
    d.send(d.officer, {"type": "focus", "visit": d.v1})
    assert booth_states(d, d.b1) == [True]
    d.supervise(sri, "coach")  # barge -> coach: the booth no longer hears them
    assert booth_states(d, d.b1) == [False]
    assert d.got(d.officer, "supervision")[0]["mode"] == "coach"


def test_a_supervisor_leaving_ends_the_barge() -> None:
    d = Desk()
    sri = d.supervisor("barge")
    d.supervise(sri, "barge")
    d.last = d.hub.disconnect(sri)
    [event] = d.last.events
    assert isinstance(event, SupervisionChanged) and event.mode == "monitor"
    assert d.got(d.officer, "supervision")[0]["mode"] == "monitor"
    assert booth_states(d, d.b1) == [False]


def test_a_reconnecting_officer_learns_who_coaches_it() -> None:
    d = Desk()
    sri = d.supervisor("coach")
    d.supervise(sri, "coach")
    again = d.hub.connect()
    token = d.hub.token("officer", sub="ana", desk="d1")
    got = d.hub.send(again, {"type": "hello", "id": 1, "token": token}).to(again)
    assert {"type": "supervision", "desk": "d1", "supervisor": str(sri), "sub": "sri",
            "mode": "coach"} in got  # fmt: skip


# -- media between the coaching supervisor and the officer -----------------------------

OFFER = {"type": "sdp", "desk": "d1", "sdp_type": "offer", "sdp": "v=0 s", "offer_id": "c1"}
ANSWER = {"type": "sdp", "desk": "d1", "sdp_type": "answer", "sdp": "v=0 o", "offer_id": "c1"}


def test_a_coaching_supervisor_and_the_officer_exchange_sdp() -> None:
    d = Desk()
    sri = d.supervisor("coach")
    d.supervise(sri, "coach")
    assert d.send(sri, OFFER)["type"] == "ack"
    [relayed] = d.got(d.officer, "sdp")
    assert relayed == {"type": "sdp", "visit": "", "desk": "d1", "sdp_type": "offer",
                       "sdp": "v=0 s", "from": "supervisor", "peer": str(sri),
                       "offer_id": "c1"}  # fmt: skip
    assert d.last.to(d.b1) == [], "the booth never sees the coach's offer"
    assert d.send(d.officer, {**ANSWER, "peer": str(sri)})["type"] == "ack"
    [back] = d.got(sri, "sdp")
    assert (back["from"], back["sdp"], back["peer"]) == ("officer", "v=0 o", str(sri))
    stale = d.send(d.officer, {**ANSWER, "peer": str(sri), "offer_id": "old"})
    assert stale["code"] == "stale_answer"
    assert d.send(d.officer, {**OFFER})["code"] == "forbidden", "the officer never offers"
    assert d.send(sri, {**ANSWER, "peer": str(sri)})["code"] == "forbidden"
    both = d.send(sri, {**OFFER, "visit": d.v1})
    assert both["code"] == "invalid_message", "a visit and a desk: which?"
    d.supervise(sri, "monitor")
    assert d.send(sri, OFFER)["code"] == "forbidden", "after monitor: no more offers"
    late = d.send(d.officer, {**ANSWER, "peer": str(sri)})
    assert late["code"] == "stale_answer", "an answer after the coach ended reaches nobody"


def test_desk_sdp_refusals() -> None:
    d = Desk()
    watcher = d.supervisor("coach", sub="wati")
    assert d.send(watcher, OFFER)["code"] == "forbidden", "not coaching: no offer to the officer"
    assert d.send(watcher, {**OFFER, "desk": "nope"})["code"] == "not_found"
    assert d.send(d.b1, {**ANSWER, "peer": "1"})["code"] == "forbidden"
    assert d.send(d.officer, ANSWER)["code"] == "invalid_message", "an answer names its peer"
    neither = d.send(watcher, {"type": "sdp", "sdp_type": "offer", "sdp": "v", "offer_id": "x"})
    assert neither["code"] == "invalid_message"
    d.supervise(watcher, "coach")
    d.hub.disconnect(d.officer)
    assert d.send(watcher, OFFER)["code"] == "not_connected"


def test_refresh_must_keep_the_grants() -> None:
    d = Desk()
    sri = d.supervisor("coach")
    wider = d.hub.token("supervisor", sub="sri", grants=["coach", "barge"])
    assert d.send(sri, {"type": "refresh", "token": wider})["code"] == "bad_token"
    same = d.hub.token("supervisor", sub="sri", grants=["coach"])
    assert d.send(sri, {"type": "refresh", "token": same})["type"] == "ack"


def barge_peers(d: Desk, conn: int) -> list[str | None]:
    return [m["barge_peer"] for m in d.last.to(conn) if m["type"] == "booth_state"]


def test_booth_state_names_the_barging_peer_and_only_it() -> None:
    d = Desk()
    sri = d.supervisor("barge", "coach")
    d.supervise(sri, "barge")
    assert barge_peers(d, d.b1) == [str(sri)], "the peer of sri's sdp relays"
    d.send(d.officer, {"type": "focus", "visit": d.v2})
    assert barge_peers(d, d.b1) == [None] and barge_peers(d, d.b2) == [str(sri)]
    d.supervise(sri, "coach")
    assert barge_peers(d, d.b2) == [None], "coach: nobody barges"
    d.supervise(sri, "barge")
    d.last = d.hub.disconnect(sri)
    assert barge_peers(d, d.b2) == [None], "gone: nobody barges"
