"""Issue 15, the pure part: claimants' personal data sealed with a per-visit key (AES-GCM),
the hub's purge rule (``purge_visit`` by an admin of the visit's office) and retention
purges on the tick, at a fake clock."""

from __future__ import annotations

import base64
import os
import random

import msgspec
import pytest
from hub_driver import NOW, HubDriver

from lapak.signaling.config import ServerConfig
from lapak.signaling.events import VisitPurged, VisitStarted, encode_event
from lapak.signaling.personal_data import (
    KEY_BYTES,
    NONCE_BYTES,
    PURGED,
    PersonalDataError,
    Sealed,
    Sealer,
    open_sealed,
)
from lapak.signaling.state import State, apply
from lapak.signaling.tokens import KeyRing

DAY = 86400.0
NAME = "Siti Rahayu Wulandari"
MEMBER = "98765432101"

# -- sealing ------------------------------------------------------------------------------


def test_sealed_fields_open_with_their_key_only() -> None:
    sealer = Sealer(os.urandom)
    key = sealer.new_key()
    assert len(key) == KEY_BYTES
    sealed = sealer.seal(key, "V000001", NAME, MEMBER)
    assert open_sealed(key, "V000001", sealed) == (NAME, MEMBER)
    with pytest.raises(PersonalDataError, match="does not open"):
        open_sealed(sealer.new_key(), "V000001", sealed)


def test_the_ciphertext_never_holds_the_clear_text_and_each_field_has_its_own_nonce() -> None:
    sealer = Sealer(os.urandom)
    key = sealer.new_key()
    sealed = sealer.seal(key, "V000001", NAME, NAME)  # the same text in both fields
    raw = [base64.b64decode(sealed.name), base64.b64decode(sealed.membership_no)]
    assert raw[0][:NONCE_BYTES] != raw[1][:NONCE_BYTES], "a fresh nonce per field"
    assert raw[0] != raw[1], "the same clear text seals differently"
    body = msgspec.json.encode(sealed)
    assert NAME.encode() not in body and NAME.encode() not in raw[0] + raw[1]


def test_a_ciphertext_moved_to_another_visit_or_field_or_edited_does_not_open() -> None:
    sealer = Sealer(os.urandom)
    key = sealer.new_key()
    sealed = sealer.seal(key, "V000001", NAME, MEMBER)
    with pytest.raises(PersonalDataError):
        open_sealed(key, "V000002", sealed)  # the visit id is associated data
    swapped = Sealed(name=sealed.membership_no, membership_no=sealed.name)
    with pytest.raises(PersonalDataError):
        open_sealed(key, "V000001", swapped)  # so is the field name
    raw = bytearray(base64.b64decode(sealed.name))
    raw[-1] ^= 1
    edited = Sealed(name=base64.b64encode(bytes(raw)).decode(), membership_no=sealed.membership_no)
    with pytest.raises(PersonalDataError):
        open_sealed(key, "V000001", edited)
    with pytest.raises(PersonalDataError, match="too short"):
        open_sealed(key, "V000001", Sealed(name="AAAA", membership_no=sealed.membership_no))
    with pytest.raises(PersonalDataError, match="algorithm"):
        open_sealed(key, "V000001", Sealed(sealed.name, sealed.membership_no, alg="ROT13"))


def test_the_random_source_is_injected_and_checked() -> None:
    """The core never reads os.urandom: the same source gives the same keys and nonces."""
    one = Sealer(random.Random(1).randbytes)
    two = Sealer(random.Random(1).randbytes)
    k1, k2 = one.new_key(), two.new_key()
    assert k1 == k2
    assert one.seal(k1, "V1", NAME, MEMBER) == two.seal(k2, "V1", NAME, MEMBER)
    with pytest.raises(ValueError, match="random source"):
        Sealer(lambda n: b"short").new_key()


# -- the hub ------------------------------------------------------------------------------


def office(hub: HubDriver, name: str = "main") -> dict[str, int]:
    """An officer at desk d-<office>, a booth b-<office> and an admin of that office."""
    return {
        "officer": hub.join("officer", sub=f"ana-{name}", office=name, desk=f"d-{name}"),
        "booth": hub.join("booth", sub=f"b-{name}", office=name, booth=f"b-{name}"),
        "admin": hub.join("admin", sub=f"root-{name}", office=name),
    }


def ended_visit(hub: HubDriver, conns: dict[str, int], name: str = NAME) -> str:
    """A visit started by the office's booth and left by it (ended: it can be purged)."""
    step = hub.send(
        conns["booth"],
        {"type": "start_visit", "id": 2, "claimant": {"name": name, "membership_no": MEMBER}},
    )
    visit = str(step.to(conns["booth"])[0]["visit"])
    leave = {"type": "end_visit", "id": 3, "visit": visit, "outcome": "abandoned"}
    assert hub.say(conns["booth"], leave)[0]["type"] == "ack"
    return visit


def test_the_logged_event_is_sealed_while_memory_and_the_wire_keep_the_name() -> None:
    hub = HubDriver()
    conns = office(hub)
    claimant = {"name": NAME, "membership_no": MEMBER}
    step = hub.send(conns["booth"], {"type": "start_visit", "id": 2, "claimant": claimant})
    started = next(e for e in step.events if isinstance(e, VisitStarted))
    assert (started.name, started.membership_no) == ("", ""), "no clear text in the event"
    assert started.sealed is not None and NAME.encode() not in encode_event(started)
    key = step.result.keys[started.visit]
    assert open_sealed(key, started.visit, started.sealed) == (NAME, MEMBER)
    views = [v for m in step.to(conns["officer"]) for v in m.get("visits", [])]
    assert [(v["name"], v["membership_no"]) for v in views] == [(NAME, MEMBER)], "officer sees it"
    assert step.to(conns["booth"])[-1]["name"] == NAME, "and so does the booth"
    replayed = State()
    apply(replayed, started)
    assert replayed.visits[started.visit].name == "", "replay alone cannot read it"


def test_an_admin_of_the_office_purges_an_ended_visit() -> None:
    hub = HubDriver()
    conns = office(hub)
    visit = ended_visit(hub, conns)
    step = hub.send(conns["admin"], {"type": "purge_visit", "id": 9, "visit": visit})
    assert step.to(conns["admin"]) == [{"type": "ack", "re": 9, "visit": visit}]
    (purged,) = step.events
    assert purged == VisitPurged(visit, "root-main", "admin", "claimant request", NOW)
    assert NAME.encode() not in encode_event(purged) and MEMBER.encode() not in encode_event(purged)
    shown = hub.state.visits[visit]
    assert (shown.name, shown.membership_no, shown.purged) == (PURGED, PURGED, True)
    assert visit not in hub.state.keyed
    again = hub.say(conns["admin"], {"type": "purge_visit", "id": 10, "visit": visit})
    assert again[0]["code"] == "conflict" and "already purged" in again[0]["message"]


def test_purge_is_refused_to_everyone_else_and_for_open_or_unknown_visits() -> None:
    hub = HubDriver()
    conns = office(hub)
    other = office(hub, "east")
    supervisor = hub.join("supervisor", sub="sue", office="main")
    visit = ended_visit(hub, conns)
    ask = {"type": "purge_visit", "id": 9, "visit": visit}
    for who, code in (
        (conns["officer"], "forbidden"),
        (conns["booth"], "forbidden"),
        (supervisor, "read_only"),
        (other["admin"], "forbidden"),  # an admin of another office
    ):
        step = hub.send(who, ask)
        assert step.to(who)[0]["code"] == code and step.events == []
    assert hub.state.visits[visit].name == NAME and visit in hub.state.keyed
    claimant = {"name": "Budi", "membership_no": "1"}
    open_one = hub.say(other["booth"], {"type": "start_visit", "id": 2, "claimant": claimant})
    still_open = str(open_one[0]["visit"])
    refused = hub.say(other["admin"], {**ask, "visit": still_open})[0]
    assert refused["code"] == "conflict" and "still open" in refused["message"]
    assert hub.say(conns["admin"], {**ask, "visit": "V999999"})[0]["code"] == "not_found"
    blank = hub.say(conns["admin"], {**ask, "reason": ""})[0]
    assert blank["code"] == "invalid_message", "a purge says why"


def test_an_admin_of_every_office_may_purge_any_office() -> None:
    hub = HubDriver()
    visit = ended_visit(hub, office(hub, "east"))
    root = hub.join("admin", sub="root", office="*")
    answer = hub.say(root, {"type": "purge_visit", "id": 9, "visit": visit, "reason": "UU PDP"})
    assert answer[0]["type"] == "ack"
    assert hub.state.visits[visit].purged


def test_retention_purges_each_office_after_its_own_days_on_the_tick() -> None:
    config = ServerConfig.from_dict({"retention": {"days": 2, "offices": {"east": 5}}})
    hub = HubDriver(config)
    main, east = office(hub), office(hub, "east")
    first = ended_visit(hub, main)
    hub.now += 3600
    second = ended_visit(hub, main, "Budi")
    far = ended_visit(hub, east)
    assert hub.tick(now=NOW + 2 * DAY - 1).events == [], "nothing is due before two days"
    step = hub.tick(now=NOW + 2 * DAY)
    assert [
        (e.visit, e.by, e.role, e.reason) for e in step.events if isinstance(e, VisitPurged)
    ] == [(first, "server", "system", "retention")]
    step = hub.tick(now=NOW + 2 * DAY + 3600)
    assert [e.visit for e in step.events] == [second]
    assert hub.tick(now=NOW + 4 * DAY).events == [], "east keeps its visits five days"
    west = ended_visit(hub, office(hub, "west"))  # started now: forgets those ended a day ago
    assert far not in hub.state.visits, "ended visits leave memory after a day..."
    assert far in hub.state.keyed, "...but their keys are still tracked for retention"
    step = hub.tick(now=NOW + 5 * DAY + 3600)
    assert [e.visit for e in step.events] == [far]
    assert list(hub.state.keyed) == [west], "west's visit is not two days old yet"
    assert [e.visit for e in hub.tick(now=NOW + 30 * DAY).events] == [west]
    assert hub.state.keyed == {} and hub.tick(now=NOW + 31 * DAY).events == []


def test_without_retention_nothing_is_purged_on_the_tick() -> None:
    hub = HubDriver(keys=KeyRing((b"p" * 32,)))
    ended_visit(hub, office(hub))
    assert hub.tick(now=NOW + 3650 * DAY).events == []


def test_retention_purges_a_bounded_batch_per_tick() -> None:
    hub = HubDriver(ServerConfig.from_dict({"retention": {"days": 0}}))
    conns = office(hub)
    visits = [ended_visit(hub, conns, f"N{i}") for i in range(5)]
    events = hub.hub.domain.purge_expired(NOW + 1, limit=2)
    assert [e.visit for e in events if isinstance(e, VisitPurged)] == visits[:2]
    assert [e.visit for e in hub.tick(now=NOW + 2).events] == visits[2:]


def test_retention_config_is_checked_by_name() -> None:
    from lapak.signaling.config import ConfigError

    with pytest.raises(ConfigError, match=r"\[retention\] days"):
        ServerConfig.from_dict({"retention": {"days": -1}})
    with pytest.raises(ConfigError, match="unknown key 'dayz'"):
        ServerConfig.from_dict({"retention": {"dayz": 3}})
    config = ServerConfig.from_dict({"retention": {"offices": {"east": 7}}})
    assert (config.retention.days, config.retention.offices) == (None, {"east": 7.0})


def test_start_up_opens_sealed_names_with_the_stored_keys_and_names_a_missing_one() -> None:
    """``visitkeys.reveal`` after replay: a visit whose key is held shows its name again; a
    key that is missing or wrong leaves it blank (and is logged), never a crash."""
    import sqlite3

    from lapak.signaling.logformat import KEYS_SCHEMA
    from lapak.signaling.visitkeys import SqliteKeyStore, reveal

    hub = HubDriver()
    conns = office(hub)
    started: list[VisitStarted] = []
    keys: dict[str, bytes] = {}
    for name in (NAME, "Budi", "Ayu"):
        claimant = {"name": name, "membership_no": MEMBER}
        step = hub.send(conns["booth"], {"type": "start_visit", "id": 2, "claimant": claimant})
        started += [e for e in step.events if isinstance(e, VisitStarted)]
        keys |= step.result.keys
        leave = {"type": "end_visit", "id": 3, "visit": started[-1].visit, "outcome": "abandoned"}
        hub.say(conns["booth"], leave)
    conn = sqlite3.connect(":memory:")
    conn.executescript(KEYS_SCHEMA)
    store = SqliteKeyStore(conn)
    first, second, third = (e.visit for e in started)
    store.put(first, keys[first])
    store.put(third, keys[first])  # the wrong visit's key
    state = State()
    for event in started:
        apply(state, event)
    assert reveal(state, store) == 2, "two visits cannot be opened"
    assert [state.visits[v].name for v in (first, second, third)] == [NAME, "", ""]
    assert store.destroy(first) and not store.destroy(first), "destroyed once"
    assert store.get(first) is None
    conn.close()


def test_the_writer_stores_many_keys_in_a_few_statements() -> None:
    """A connect storm's batch holds hundreds of new visits' keys: all kept, chunked."""
    import sqlite3

    from lapak.signaling.logformat import KEYS_SCHEMA
    from lapak.signaling.visitkeys import ROWS_PER_STATEMENT, SqliteKeyStore

    conn = sqlite3.connect(":memory:")
    conn.executescript(KEYS_SCHEMA)
    store = SqliteKeyStore(conn)
    keys = {f"V{i:06d}": os.urandom(KEY_BYTES) for i in range(2 * ROWS_PER_STATEMENT + 3)}
    store.put_many(keys)
    store.put_many({})
    assert all(store.get(v) == k for v, k in keys.items())
    assert conn.execute("SELECT count(*) FROM visit_keys").fetchone()[0] == len(keys)
    conn.close()
