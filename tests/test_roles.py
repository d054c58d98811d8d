"""Every message type from every role, checked against the table in docs/protocol.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hub_driver import HubDriver

from lapak.signaling.tokens import KeyRing

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
# A column per role, and per grant a supervisor's token may carry beyond monitor.
ROLES = (
    "officer",
    "booth",
    "supervisor",
    "supervisor +coach",
    "supervisor +barge",
    "supervisor +resolve",
    "admin",
    "recorder",
)


def role_table() -> dict[str, dict[str, str]]:
    text = DOC.read_text()
    block = text.split("<!-- role-table -->")[1].split("<!-- /role-table -->")[0]
    rows = [r for r in block.strip().splitlines() if r.startswith("|")][2:]
    table = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        table[cells[0]] = dict(zip(ROLES, cells[1:], strict=True))
    return table


TABLE = role_table()


def test_table_covers_every_client_message() -> None:
    from lapak.signaling.protocol import CLIENT_TYPES

    assert set(TABLE) == set(CLIENT_TYPES) - {"hello"}, "docs table lists every message"


EXTRA: dict[str, dict[str, Any]] = {
    "officer": {"desk": "d1"},
    "booth": {"booth": "b1"},
    "supervisor": {},
    "supervisor +coach": {"grants": ["coach"]},
    "supervisor +barge": {"grants": ["barge"]},
    "supervisor +resolve": {"grants": ["resolve"]},
    "admin": {},
    "recorder": {},
}


def role_of(column: str) -> str:
    return column.split()[0]


def sub_of(column: str) -> str:
    return column.replace(" +", "-") + "-1"


def token_for(hub: HubDriver, column: str) -> str:
    return hub.token(role_of(column), sub=sub_of(column), **EXTRA[column])


ESCALATED: dict[str, str] = {}  # "waiting", and each resolving column -> its visit


def world() -> tuple[HubDriver, dict[str, int], str]:
    """One office with a desk, an open visit, and one connection per role (all watching);
    the officer has offered media to the booth (offer ``o1``). Three more visits were
    escalated: one waits, the others were taken by the resolving columns (``ESCALATED``)."""
    hub = HubDriver(keys=KeyRing((b"r" * 32,)))
    conns = {c: hub.join(role_of(c), sub=sub_of(c), **EXTRA[c]) for c in ROLES}
    visit = hub.start_visit(conns["booth"])
    for column in ROLES:
        if role_of(column) in ("supervisor", "admin", "recorder"):
            hub.send(conns[column], {"type": "watch", "id": 3, "desk": "d1"})
    offer = {"type": "sdp", "id": 4, "visit": visit, "sdp_type": "offer", "sdp": "v=0"}
    hub.send(conns["officer"], {**offer, "offer_id": "o1"})
    for name, taker in (("waiting", None), ("r", "supervisor +resolve"), ("a", "admin")):
        booth = hub.join("booth", sub=f"b-{name}", booth=f"b-{name}")
        escalated = ESCALATED[taker or name] = hub.start_visit(booth)
        note = {"outcome": "escalated", "note": "n", "visit": escalated}
        assert hub.say(conns["officer"], {"type": "end_visit", "id": 5, **note})[0]["type"] == "ack"
        if taker is not None:
            take = {"type": "take_escalation", "id": 6, "visit": escalated}
            assert hub.say(conns[taker], take)[0]["type"] == "ack"
    return hub, conns, visit


def sample(kind: str, role: str, visit: str, hub: HubDriver) -> dict[str, Any]:
    sdp_type = "answer" if role == "booth" else "offer"
    if kind in ("decide", "end_visit") and role in ESCALATED:  # the visit it resolves
        visit = ESCALATED[role]
        if kind == "end_visit":
            return {"visit": visit, "outcome": "abandoned"}
    return {
        "start_visit": {"claimant": {"name": "N", "membership_no": "2"}},
        "focus": {"visit": visit},
        "zoom": {"visit": visit},
        "decide": {"visit": visit, "step": 0, "decision": "approve"},
        "snapshot_taken": {"visit": visit, "sha256": "a" * 64},
        "end_visit": {"visit": visit, "outcome": "abandoned" if role == "booth" else "escalated"}
        | ({} if role == "booth" else {"note": "n"}),
        "watch": {"desk": "d1"},
        "office_stats": {},
        "sdp": {"visit": visit, "sdp_type": sdp_type, "sdp": "v=0", "offer_id": "o1"},
        "configure_desk": {"desk": "d2", "capacity": 3},
        "close_desk": {"desk": "d1"},
        "set_workflow": {"claim_type": "JKM", "steps": ["identity", "decision"]},
        "refresh": {"token": token_for(hub, role)},
        # coach, but barge for the column whose grant is barge
        "supervise": {"desk": "d1", "mode": "barge" if role.endswith("+barge") else "coach"},
        "take_escalation": {"visit": ESCALATED["waiting"]},
        "recording_closed": {
            "visit": visit,
            "file": f"{visit}.webm",
            "sha256": "a" * 64,
            "duration_s": 1.5,
            "bytes": 100,
            "gaps": [[1.0, 2.0]],
        },
        "recording_notice_shown": {"visit": visit},
        "purge_visit": {"visit": _ended(hub, visit)},
        "get_recording_key": {"visit": visit},
        "link_quality": {"visit": visit, "grade": "poor"},
    }[kind]


def _ended(hub: HubDriver, visit: str) -> str:
    """Another visit of the office, started and ended (only an ended visit can be purged);
    the world's open visit stays open for the other messages."""
    booth = hub.join("booth", sub="booth-2", booth="b2")
    ended = hub.start_visit(booth)
    hub.send(booth, {"type": "end_visit", "id": 98, "visit": ended, "outcome": "abandoned"})
    assert hub.state.visits[ended].state == "ended"
    return ended


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", sorted(TABLE))
def test_role_may_send_exactly_what_the_table_says(kind: str, role: str) -> None:
    hub, conns, visit = world()
    message = {"type": kind, "id": 99, **sample(kind, role, visit, hub)}
    before = hub.state.events_applied
    step = hub.send(conns[role], message)
    answers = [m for m in step.to(conns[role]) if m.get("re") == 99]
    assert answers, f"{role} sending {kind} gets an answer"
    expected = TABLE[kind][role]
    if expected == "ok":
        assert answers[0]["type"] != "error", f"{role} may send {kind}: got {answers[0]}"
    else:
        assert answers[0].get("code") == expected, f"{role} sending {kind}: want {expected}"
        assert hub.state.events_applied == before, "a refused message changes nothing"
        assert step.events == []


def test_doc_table_uses_only_known_outcomes() -> None:
    cells = {v for row in TABLE.values() for v in row.values()}
    assert cells <= {"ok", "forbidden", "read_only"}, cells
    assert re.search(r"\| `read_only` \|", DOC.read_text()), "read_only is a documented code"
