"""Every message type from every role, checked against the table in docs/protocol.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hub_driver import HubDriver

from lapak.signaling.tokens import KeyRing

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
ROLES = ("officer", "booth", "supervisor", "admin")


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


EXTRA: dict[str, dict[str, str]] = {
    "officer": {"desk": "d1"},
    "booth": {"booth": "b1"},
    "supervisor": {},
    "admin": {},
}


def token_for(hub: HubDriver, role: str) -> str:
    return hub.token(role, sub=f"{role}-1", **EXTRA[role])


def world() -> tuple[HubDriver, dict[str, int], str]:
    """One office with a desk, an open visit, and one connection per role (all watching);
    the officer has offered media to the booth (offer ``o1``)."""
    hub = HubDriver(keys=KeyRing((b"r" * 32,)))
    conns = {role: hub.join(role, sub=f"{role}-1", **EXTRA[role]) for role in ROLES}
    visit = hub.start_visit(conns["booth"])
    for role in ("supervisor", "admin"):
        hub.send(conns[role], {"type": "watch", "id": 3, "desk": "d1"})
    offer = {"type": "sdp", "id": 4, "visit": visit, "sdp_type": "offer", "sdp": "v=0"}
    hub.send(conns["officer"], {**offer, "offer_id": "o1"})
    return hub, conns, visit


def sample(kind: str, role: str, visit: str, hub: HubDriver) -> dict[str, Any]:
    sdp_type = "answer" if role == "booth" else "offer"
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
        "purge_visit": {"visit": _ended(hub, visit)},
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
