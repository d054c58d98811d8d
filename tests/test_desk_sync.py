"""A client that builds a desk from one snapshot plus deltas sees what a fresh snapshot shows.

Random command sequences drive the pure hub; a supervisor watching both desks applies every
delta the way docs/protocol.md says, and after every command its copy of each desk must equal
the server's current view (the focus fields, presence and steps included).
"""

from __future__ import annotations

from typing import Any

import msgspec
from hub_driver import NOW, HubDriver
from hypothesis import given, settings
from hypothesis import strategies as st

from lapak.signaling.config import ServerConfig
from lapak.signaling.views import desk_view

DESKS = ("d1", "d2")
BOOTHS = 4
DESK_FIELDS = ("officer", "on_air", "closed", "vacant", "capacity", "queue")


class DeskCopy:
    """A watcher's copy of one desk, kept by the rules of docs/protocol.md."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.seq = snapshot["seq"]
        state = snapshot["state"]
        self.fields = {k: state[k] for k in DESK_FIELDS}
        self.visits = {v["visit"]: v for v in state["visits"]}

    def apply(self, delta: dict[str, Any]) -> None:
        assert delta["seq"] == self.seq + 1, f"deltas are numbered one by one: {delta['seq']}"
        self.seq = delta["seq"]
        self.fields = {k: delta[k] for k in DESK_FIELDS}
        for view in delta["visits"]:
            self.visits.pop(view["visit"], None)
            if view["state"] == "active" and view["desk"] == delta["desk"]:
                self.visits[view["visit"]] = view

    def view(self) -> dict[str, Any]:
        return {**self.fields, "visits": sorted(self.visits.values(), key=lambda v: v["slot"])}


class World:
    def __init__(self) -> None:
        self.driver = HubDriver(ServerConfig(grace_s=5))
        self.hub = self.driver.hub
        self.now = NOW
        self.sup = -1  # no watcher yet
        self.copies: dict[str, DeskCopy] = {}
        self.officers: dict[str, int | None] = {}
        self.booths: dict[int, int | None] = {}
        for desk in DESKS:
            self.officers[desk] = self.join("officer", desk=desk, sub=f"o-{desk}")
        self.admin = self.join("admin", sub="adm")
        self.sup = self.join("supervisor", sub="sup")
        for desk in DESKS:
            out = self.send(self.sup, {"type": "watch", "desk": desk})
            self.copies[desk] = DeskCopy(next(m for m in out if m["type"] == "snapshot"))
        for b in range(BOOTHS):
            self.booths[b] = self.join("booth", booth=f"b{b}", sub=f"b{b}")

    def join(self, role: str, **claims: str) -> int:
        conn = self.driver.connect()
        token = self.driver.token(role, now=NOW, **claims)
        self.send(conn, {"type": "hello", "token": token})
        return conn

    def observe(self, outputs: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        mine = [m for c, m in outputs if c == self.sup]
        for message in mine:
            if message["type"] == "delta":
                self.copies[message["desk"]].apply(message)
        return mine

    def send(self, conn: int, message: dict[str, Any]) -> list[dict[str, Any]]:
        result = self.driver.send(conn, {"id": 1, **message}, self.now)
        self.observe(result.outputs)
        return result.to(conn)

    def seated(self, desk: str, index: int) -> str | None:
        slots = self.hub.state.desks[desk].slots
        return slots[sorted(slots)[index % len(slots)]] if slots else None

    def run(self, cmd: tuple[Any, ...]) -> None:
        self.now += 1
        kind, desk = cmd[0], DESKS[cmd[1] % len(DESKS)]
        officer = self.officers[desk]
        booth = self.booths[cmd[1] % BOOTHS]
        visit = self.seated(desk, cmd[2])
        if kind == "start" and booth is not None:
            claimant = {"name": "N", "membership_no": str(cmd[1])}
            self.send(booth, {"type": "start_visit", "claimant": claimant})
        elif kind == "focus" and officer is not None:
            self.send(officer, {"type": "focus", "visit": visit if cmd[2] % 3 else None})
        elif kind == "approve" and officer is not None and visit:
            step = {"visit": visit, "step": cmd[2] % 3, "decision": "approve"}
            self.send(officer, {"type": "decide", **step})
        elif kind == "end" and officer is not None and visit:
            outcome = ("completed", "escalated", "abandoned")[cmd[2] % 3]
            self.send(
                officer, {"type": "end_visit", "visit": visit, "outcome": outcome, "note": "n"}
            )
        elif kind == "drop_booth" and booth is not None:
            self.observe(self.driver.disconnect(booth, self.now).outputs)
            self.booths[cmd[1] % BOOTHS] = None
        elif kind == "back_booth" and booth is None:
            b = cmd[1] % BOOTHS
            self.booths[b] = self.join("booth", booth=f"b{b}", sub=f"b{b}")
        elif kind == "drop_officer" and officer is not None:
            self.observe(self.driver.disconnect(officer, self.now).outputs)
            self.officers[desk] = None
        elif kind == "back_officer" and officer is None:
            self.officers[desk] = self.join("officer", desk=desk, sub=f"o-{desk}")
        elif kind == "configure":
            self.send(
                self.admin, {"type": "configure_desk", "desk": desk, "capacity": cmd[2] % 3 + 1}
            )
        elif kind == "close":
            self.send(self.admin, {"type": "close_desk", "desk": desk})
        elif kind == "wait":
            self.now += cmd[2]
            self.observe(self.driver.tick(self.now).outputs)

    def check(self) -> None:
        for desk, copy in self.copies.items():
            view = desk_view(self.hub.state, desk, self.hub.sessions.presence)
            fresh = msgspec.to_builtins(view)
            assert copy.view() == {k: fresh[k] for k in (*DESK_FIELDS, "visits")}, desk


KINDS = ("start", "focus", "approve", "end", "drop_booth", "back_booth", "drop_officer",
         "back_officer", "configure", "close", "wait")  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(KINDS), st.integers(0, 7), st.integers(0, 7)),
        max_size=50,
    )
)
def test_snapshot_plus_deltas_equals_a_fresh_snapshot(cmds: list[tuple[Any, ...]]) -> None:
    world = World()
    world.check()
    for cmd in cmds:
        world.run(cmd)
        world.check()


def test_focus_changes_list_the_visits_whose_times_moved() -> None:
    world = World()
    for cmd in (("start", 0, 0), ("start", 1, 0), ("focus", 0, 1), ("focus", 0, 2)):
        world.run(cmd)
        world.check()
    on_air = world.hub.state.desks["d1"].on_air
    assert on_air is not None and world.copies["d1"].visits[on_air]["on_air_since"] is not None
