"""The typed wire contract: every frame the real hub sends decodes into its struct in
lapak.signaling.messages and encodes back to the same JSON."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any, get_args

import jsonschema
import msgspec
import pytest
from hub_driver import NOW, HubDriver

from lapak.signaling import messages as m
from lapak.signaling import protocol as p
from lapak.signaling import schema

SENT: list[dict[str, Any]] = []
"""Every request of the scenario below, as clients send it."""


def day() -> list[dict[str, Any]]:
    """Every kind of frame the hub sends, from a real scenario at one desk (the driver encodes
    each output as the server does)."""
    hub = HubDriver()
    frames: list[dict[str, Any]] = []
    ids = itertools.count(100)

    def answer(conn: int, message: dict[str, Any]) -> dict[str, Any]:
        """Send a request; its answer (the frame to ``conn`` carrying its ``re``)."""
        request = next(ids)
        SENT.append({"id": request, **message})
        step = hub.send(conn, SENT[-1])
        frames.extend(f for _, f in step.outputs)
        answers = [f for f in step.to(conn) if f.get("re") == request]
        assert answers, f"{message['type']} gets an answer: {step.outputs}"
        return answers[0]

    def join(role: str, **claims: str) -> int:
        conn = hub.connect()
        answer(conn, {"type": "hello", "token": hub.token(role, **claims)})
        return conn

    officer = join("officer", desk="d1")
    booth = join("booth", booth="b1")
    supervisor = join("supervisor")
    admin = join("admin")
    answer(supervisor, {"type": "watch", "desk": "d1"})
    claimant = {"name": "S", "membership_no": "1"}
    visit = answer(booth, {"type": "start_visit", "claimant": claimant})["visit"]
    answer(officer, {"type": "focus", "visit": visit})
    answer(officer, {"type": "zoom", "visit": visit})
    answer(officer, {"type": "zoom", "visit": None})
    answer(officer, {"type": "link_quality", "visit": visit, "grade": "poor"})  # poor_link
    reason = hub.hub.config.reasons[0]
    decide = {"type": "decide", "visit": visit}
    answer(officer, {**decide, "step": 0, "decision": "approve"})
    answer(officer, {**decide, "step": 1, "decision": "reject", "reason": reason})
    answer(officer, {**decide, "step": 1, "decision": "reopen"})
    answer(officer, {"type": "snapshot_taken", "visit": visit, "sha256": "a" * 64, "step": 0})
    offer = {"type": "sdp", "visit": visit, "sdp_type": "offer", "sdp": "v=0"}
    answer(officer, {**offer, "offer_id": "o1"})
    reply = {"type": "sdp", "visit": visit, "sdp_type": "answer", "sdp": "v=0"}
    answer(booth, {**reply, "offer_id": "o1"})
    relayed = hub.send(supervisor, {**offer, "offer_id": "s1"}).outputs
    frames.extend(f for _, f in relayed)
    peer = next(f["peer"] for _, f in relayed if f["type"] == "sdp")
    answer(booth, {**reply, "offer_id": "s1", "peer": peer})
    answer(officer, {"type": "office_stats"})
    recorder = join("recorder")  # issue 15: the recorder's offer, answer and closing report
    answer(recorder, {"type": "watch", "desk": "d1"})
    relayed = hub.send(recorder, {**offer, "offer_id": "r1"}).outputs
    frames.extend(f for _, f in relayed)
    rec_peer = next(f["peer"] for _, f in relayed if f["type"] == "sdp")
    answer(booth, {**reply, "offer_id": "r1", "peer": rec_peer})
    answer(booth, {"type": "recording_notice_shown", "visit": visit})
    answer(recorder, {"type": "get_recording_key", "visit": visit})  # its file's key
    closed = {"visit": visit, "file": "v.webm", "sha256": "b" * 64, "duration_s": 2.0}
    answer(recorder, {"type": "recording_closed", **closed, "bytes": 9, "gaps": [[1, 2]]})
    answer(officer, {"type": "focus", "visit": None})
    answer(booth, {"type": "focus", "visit": visit})  # forbidden
    answer(officer, {**decide, "visit": "nope", "step": 0, "decision": "approve"})
    answer(admin, {"type": "configure_desk", "desk": "d2", "capacity": 2})
    answer(admin, {"type": "set_workflow", "claim_type": "JKM", "steps": ["a", "b"]})
    answer(admin, {"type": "refresh", "token": hub.token("admin")})
    answer(admin, {"type": "supervise", "desk": "d1", "mode": "barge"})  # admin: every grant
    coach = {"type": "sdp", "desk": "d1", "sdp": "v=0", "offer_id": "c1"}
    relayed = hub.send(admin, {**coach, "sdp_type": "offer"}).outputs
    frames.extend(f for _, f in relayed)
    coach_peer = next(f["peer"] for _, f in relayed if f["type"] == "sdp")
    answer(officer, {**coach, "sdp_type": "answer", "peer": coach_peer})
    answer(admin, {"type": "supervise", "desk": "d1", "mode": "monitor"})
    frames.extend(f for _, f in hub.disconnect(booth).outputs)  # the desk sees the booth away
    booth = join("booth", booth="b1")  # back: its booth_state
    frames.extend(f for _, f in hub.disconnect(supervisor).outputs)  # peer_left
    answer(officer, {"type": "end_visit", "visit": visit, "outcome": "escalated", "note": "n"})
    answer(admin, {"type": "office_stats"})  # an escalation waiting: listed, and an alert
    answer(admin, {"type": "take_escalation", "visit": visit})
    answer(admin, {"type": "end_visit", "visit": visit, "outcome": "abandoned"})
    answer(admin, {"type": "close_desk", "desk": "d2"})
    answer(admin, {"type": "purge_visit", "visit": visit, "reason": "claimant request"})
    join("officer", desk="d1")  # takes over: the first officer is replaced
    frames.extend(f for _, f in hub.tick(now=NOW + 13 * 3600).outputs)  # tokens expired
    return frames


FRAMES = day()


def test_scenario_covers_every_server_message() -> None:
    seen = {f["type"] for f in FRAMES}
    shell_only = {"moved"}  # sent by server.py in a cluster: tests/test_pg_leases.py
    assert seen == {m.tag(t) for t in m.SERVER_MESSAGES} - shell_only, "every message type"
    acks = {k for f in FRAMES if f["type"] == "ack" for k in f}
    assert acks == set(m.Ack.__struct_encode_fields__) | {"type"}, "every ack field is sent"


def test_every_frame_round_trips() -> None:
    """What a client decodes, encoded again, is what the server sent: no field is lost,
    renamed or defaulted on the way."""
    for frame in FRAMES:
        text = json.dumps(frame)
        decoded = m.decode_server(text)
        assert m.tag(type(decoded)) == frame["type"]
        assert json.loads(m.encode(decoded)) == frame, f"re-encoded frame differs: {text}"


def test_office_figures_travel_in_an_ack() -> None:
    frame = next(f for f in FRAMES if f["type"] == "ack" and "desks" in f)
    ack = m.decode_server(json.dumps(frame))
    assert isinstance(ack, m.Ack)
    assert m.Ack.of_figures(ack.re, ack.figures()) == ack, "figures() and of_figures() agree"
    with pytest.raises(ValueError, match="office_stats"):
        m.Ack(re=1, visit="V1").figures()


def test_decode_is_strict() -> None:
    with pytest.raises(msgspec.ValidationError):
        m.decode_server('{"type": "peer_left", "visit": "V1", "peer": "3", "extra": 1}')
    with pytest.raises(msgspec.ValidationError):
        m.decode_server('{"type": "peer_left", "visit": "V1", "peer": 3}')
    with pytest.raises(msgspec.ValidationError):
        m.decode_server('{"type": "teleport"}')


# --- the JSON Schema (docs/protocol.schema.json) ------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "docs" / "protocol.schema.json"


def test_schema_file_is_current() -> None:
    assert SCHEMA_FILE.read_text() == schema.render(), (
        f"docs/protocol.schema.json is stale; regenerate it: {schema.REGENERATE}"
    )


def test_every_frame_is_valid_against_the_schema_file() -> None:
    document = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft202012Validator({**document, "$ref": "#/$defs/ServerMessage"})
    for frame in FRAMES:
        errors = [e.message for e in validator.iter_errors(frame)]
        assert not errors, f"{frame['type']} frame {frame} breaks the schema: {errors}"
    assert list(validator.iter_errors({"type": "ack"})), "the schema requires ack's re"


def test_every_request_is_valid_against_the_schema_file() -> None:
    document = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft202012Validator({**document, "$ref": "#/$defs/ClientMessage"})
    assert {r["type"] for r in SENT} == set(p.CLIENT_TYPES), "the scenario sends every request"
    for request in SENT:
        errors = [e.message for e in validator.iter_errors(request)]
        assert not errors, f"{request['type']} request {request} breaks the schema: {errors}"
    refused = {"type": "decide", "visit": "V1", "step": 0, "decision": "maybe"}
    assert list(validator.iter_errors(refused)), "the schema knows the decisions"


# --- docs/protocol.md against the structs --------------------------------------------------

DOC = ROOT / "docs" / "protocol.md"


def doc_rows(marker: str) -> dict[str, list[str]]:
    """The rows of the table between ``<!-- marker -->`` comments, by first cell."""
    block = DOC.read_text().split(f"<!-- {marker} -->")[1].split(f"<!-- /{marker} -->")[0]
    rows = [r for r in block.strip().splitlines() if r.startswith("|")][2:]
    table: dict[str, list[str]] = {}
    for row in rows:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))]
        table[cells[0].strip("`")] = cells[1:]
    return table


def _outside_parentheses(text: str) -> str:
    depth, kept = 0, []
    for char in text:
        depth += char == "("
        if depth == 0:
            kept.append(char)
        depth -= char == ")" and depth > 0
    return "".join(kept)


def documented_fields(cell: str) -> set[str]:
    """Field names a cell documents: the `names` outside parentheses, plus every field of
    a struct it includes as "every field of a [`Struct`]"."""
    text = _outside_parentheses(cell)
    names = set(re.findall(r"`([a-z_][a-z0-9_]*)`", text))
    for included in re.findall(r"every field of an? \[`(\w+)`\]", text):
        names |= set(struct_named(included).__struct_encode_fields__)
    return names


def struct_named(name: str) -> type[msgspec.Struct]:
    found = getattr(m, name, None) or getattr(p, name, None)
    assert isinstance(found, type) and issubclass(found, msgspec.Struct), f"no struct {name}"
    return found


def fields(struct: type[msgspec.Struct]) -> set[str]:
    """Wire names of a struct's fields, without the tag and the request id."""
    return set(struct.__struct_encode_fields__) - {"type", "id"}


CLIENT_STRUCTS = {m.tag(t): t for t in get_args(p.ClientMessage)}
assert set(CLIENT_STRUCTS) == set(p.CLIENT_TYPES)
SERVER_STRUCTS = {m.tag(t): t for t in m.SERVER_MESSAGES}


@pytest.mark.parametrize(
    ("marker", "structs"),
    [("client-messages", CLIENT_STRUCTS), ("server-messages", SERVER_STRUCTS)],
)
def test_doc_messages_match_the_structs(
    marker: str, structs: dict[str, type[msgspec.Struct]]
) -> None:
    table = doc_rows(marker)
    assert set(table) == set(structs), f"docs/protocol.md {marker}: one row per message"
    for kind, cells in table.items():
        documented = documented_fields(cells[0])
        assert documented == fields(structs[kind]), (
            f"docs/protocol.md, {kind}: documents {sorted(documented)}, "
            f"the struct has {sorted(fields(structs[kind]))}"
        )


def test_doc_views_match_the_structs() -> None:
    """Every object nested in a message (both directions) has a row in the views table."""
    _, components = msgspec.json.schema_components((p.ClientMessage, m.ServerMessage))
    messages = {t.__name__ for t in (*CLIENT_STRUCTS.values(), *SERVER_STRUCTS.values())}
    nested = {n for n, s in components.items() if s.get("type") == "object"} - messages
    table = doc_rows("views")
    assert set(table) == nested, "the views table lists every nested struct"
    for name, cells in table.items():
        documented = documented_fields(cells[0])
        assert documented == fields(struct_named(name)), (
            f"docs/protocol.md, view {name}: documents {sorted(documented)}, "
            f"the struct has {sorted(fields(struct_named(name)))}"
        )


def test_doc_ack_results_are_the_ack_fields() -> None:
    """The braces of the "answer" column name, together, exactly the ack's result fields."""
    named: set[str] = set()
    for cells in doc_rows("client-messages").values():
        for inside in re.findall(r"`ack \{([^}]*)\}`", cells[-1]):
            named |= {n.strip() for n in inside.split(",")}
    assert named == fields(m.Ack) - {"re"}, f"ack results in the docs: {sorted(named)}"


def test_doc_error_and_close_codes_match_the_code() -> None:
    text = DOC.read_text()
    errors = text.split("## Error codes")[1].split("\n## ")[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", errors, re.M))
    assert documented == {str(c) for c in p.ErrorCode}, "the error table lists every ErrorCode"
    closes = text.split("## Close codes")[1]
    numbers = {int(n) for n in re.findall(r"^\| (\d{4}) \|", closes, re.M)}
    defined = {v for k, v in vars(p.CloseCode).items() if k.isupper()}
    assert numbers == defined, "the close-code table lists every CloseCode"
