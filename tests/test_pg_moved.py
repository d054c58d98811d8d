"""A ``*`` supervisor's console and commands across a cluster's nodes (issue 14), with real
``lapak signal`` nodes on one real PostgreSQL: node A owns office north, node B south.

- The supervisor console connected to A that picks south's desk follows ``moved``: its one
  session is now on B, its desk model is that desk's (the booth's visit started on B, then a
  delta), the status line names B; picking north's desk again takes it back to A.
- A ``*`` watcher's command about south's visit or desk sent to A is answered ``moved
  {office, url}`` and not applied there; ``DeskSession`` follows it: the escalation is taken
  on B (its owner's state says so) and the next step is decided there.
- The owner node is down: one error line in the console, the session stays on A watching
  the desk it had, nothing raised.
"""

# ruff: noqa: F811  (the cluster fixtures are imported, then named as test arguments)
from __future__ import annotations

import asyncio
import signal

import pytest
from conftest import wait_for
from pg_cluster import pg_cluster, pg_url  # noqa: F401  (fixtures)
from pg_nodes import Node, Nodes, pg_nodes  # noqa: F401  (fixture)

from lapak.console.supervisor import SupervisorConsole
from lapak.media.booth import BoothMediaConfig
from lapak.media.desk_session import DeskSession
from lapak.media.officer import SupervisorMedia
from lapak.media.simulator import make_booths
from lapak.signaling.client import SignalClient, WatchMoved
from lapak.signaling.messages import Moved, OfficeFigures
from lapak.signaling.protocol import CloseDesk, TakeEscalation

pytestmark = pytest.mark.integration

SIZE = (160, 48)


async def _two_nodes(nodes: Nodes, lease_s: float = 5.0) -> tuple[Node, Node]:
    a = await nodes.start(["north"], lease_s=lease_s)
    b = await nodes.start(["south"], lease_s=lease_s)
    await wait_for(
        lambda: "north" in a.owned() and "south" in b.owned(), "each node owns its office", 30
    )
    return a, b


async def _figures(client: SignalClient, office: str | None = None) -> OfficeFigures:
    request = {"type": "office_stats"} if office is None else {"type": "office_stats",
                                                                 "office": office}  # fmt: skip
    return (await client.request(request)).figures()  # type: ignore[union-attr]


async def _until_seen(client: SignalClient, check: object, what: str) -> OfficeFigures:
    """Ask ``office_stats`` until ``check(figures)`` holds (the other node publishes each
    tick, this one reads each tick): bounded, not a sleep."""
    assert callable(check)
    for _ in range(150):
        figures = await _figures(client)
        if check(figures):
            return figures
        await asyncio.sleep(0.2)
    raise AssertionError(f"never seen: {what}: {figures}")


async def _booth(url: str, nodes: Nodes, name: str) -> tuple[SignalClient, str]:
    booth = SignalClient(url, nodes.keys.issue("booth", name, "south", booth=name))
    await booth.connect(retry=True)
    claimant = {"name": f"Claimant {name}", "membership_no": "1"}
    ack = await booth.request({"type": "start_visit", "claimant": claimant})
    assert ack.visit is not None  # type: ignore[union-attr]
    return booth, ack.visit  # type: ignore[union-attr]


def _officers_probe_console(
    nodes: Nodes, a: Node, b: Node
) -> tuple[list[SignalClient], SupervisorConsole]:
    """North's officer on A, south's on B and a ``*`` probe on A (the last client), not yet
    connected; and supervisor sv's ``*`` console on A watching d-north, media off."""
    keys = nodes.keys
    north = SignalClient(a.url, keys.issue("officer", "on", "north", desk="d-north"))
    south = SignalClient(b.url, keys.issue("officer", "os", "south", desk="d-south"))
    probe = SignalClient(a.url, keys.issue("supervisor", "probe", "*"))
    console = SupervisorConsole(
        a.url, keys.issue("supervisor", "sv", "*"), desk="d-north", media=False
    )
    return [north, south, probe], console


def _status(console: SupervisorConsole) -> str:
    return console.desk_screen.status.render().plain  # type: ignore[no-any-return, union-attr]


def _errors(console: SupervisorConsole) -> list[str]:
    return [text for severity, text in console.messages if severity == "error"]


async def test_the_supervisor_console_follows_moved_to_the_desks_node_and_back(
    pg_nodes: Nodes,
) -> None:
    a, b = await _two_nodes(pg_nodes)
    keys = pg_nodes.keys
    clients, console = _officers_probe_console(pg_nodes, a, b)
    probe = clients[-1]
    try:
        for client in clients:
            await client.connect(retry=True)
        booth, visit = await _booth(b.url, pg_nodes, "b1")
        clients.append(booth)
        await _until_seen(
            probe, lambda f: any(d.desk == "d-south" and d.load == 1 for d in f.desks),
            "A knows south's desk from B's digest",
        )  # fmt: skip
        async with console.run_test(size=SIZE):
            session = console.session
            await wait_for(
                lambda: session.connected and session.desk == "d-north" and session.model.synced,
                "the console watches north's desk on A",
            )
            assert session.node == a.url and "on node" not in _status(console)

            await console._watch("d-south")  # what the desk picker's choice runs
            assert session.node == b.url, "moved to the node that owns south"
            assert session.desk == "d-south" and session.model.synced
            assert list(session.model.visits) == [visit], "the visit started on B"
            assert session.moves == 1 and _errors(console) == []
            await wait_for(lambda: b.url in _status(console), "the status line names B")
            assert "d-south" in _status(console)

            second, visit2 = await _booth(b.url, pg_nodes, "b2")
            clients.append(second)
            await wait_for(
                lambda: set(session.model.visits) == {visit, visit2},
                "a delta from B reaches the console",
            )

            at_b = SignalClient(b.url, keys.issue("supervisor", "probe-b", "*"))
            clients.append(at_b)
            await at_b.connect()
            await _until_seen(
                at_b, lambda f: any(d.desk == "d-north" for d in f.desks),
                "B knows north's desk from A's digest",
            )  # fmt: skip
            await console._watch("d-north")
            assert session.node == a.url, f"north's desk: back on A: {_errors(console)}"
            assert session.desk == "d-north" and session.model.synced
            assert session.model.visits == {} and session.moves == 2
            await wait_for(lambda: "on node" not in _status(console), "the entry's status")
            assert _errors(console) == []
            assert console.is_running, "the console kept working"
    finally:
        for client in clients:
            await client.close()


async def test_star_commands_for_another_nodes_office_are_moved_and_followed(
    pg_nodes: Nodes,
) -> None:
    a, b = await _two_nodes(pg_nodes)
    keys = pg_nodes.keys
    south = SignalClient(b.url, keys.issue("officer", "os", "south", desk="d-south"))
    north = SignalClient(a.url, keys.issue("officer", "on", "north", desk="d-north"))
    star = keys.issue("supervisor", "sv", "*", grants=["resolve"])
    raw = SignalClient(a.url, star)
    admin = SignalClient(a.url, keys.issue("admin", "root", "*"))
    at_b = SignalClient(b.url, keys.issue("supervisor", "look", "*"))
    clients = [south, north, raw, admin, at_b]
    session = DeskSession(a.url, star, engine=None, watch="d-north", read_only=True,
                          watch_all=True)  # fmt: skip
    try:
        for client in clients:
            await client.connect(retry=True)
        booth, visit = await _booth(b.url, pg_nodes, "b1")
        clients.append(booth)
        await wait_for(lambda: south.welcome is not None, "south's officer")
        await south.request(
            {"type": "end_visit", "visit": visit, "outcome": "escalated", "note": "photo"}
        )
        await _until_seen(
            raw, lambda f: [e.visit for e in f.escalations] == [visit],
            "A lists south's escalation from B's digest",
        )  # fmt: skip

        with pytest.raises(WatchMoved) as moved:
            await raw.request(TakeEscalation(visit=visit))
        assert (moved.value.moved.office, moved.value.moved.url) == ("south", b.url)
        assert moved.value.code == "moved" and raw.connected.is_set()
        with pytest.raises(WatchMoved):
            await admin.request(CloseDesk(desk="d-south"))
        answer = await admin.request({"type": "set_workflow", "claim_type": "death",
                                      "steps": ["id_card"], "office": "south"})  # fmt: skip
        assert isinstance(answer, Moved) and answer.url == b.url, "the frame as sent"
        [escalation] = (await _figures(at_b, "south")).escalations
        assert escalation.taken_by is None, "nothing was applied by A"
        assert not (await _figures(at_b, "south")).desks[0].closed
        ack = await admin.request({"type": "configure_desk", "desk": "d-n2", "capacity": 2,
                                   "office": "north"})  # fmt: skip
        assert ack.desk == "d-n2", "A's own office: applied on A"  # type: ignore[union-attr]

        await session.start()
        assert session.node == a.url and session.desk == "d-north"
        taken = await session.take_escalation(visit)
        assert taken.visit == visit and session.node == b.url, "followed to B"
        assert session.desk == "d-south", "north's desk is not on B: the desk served there"
        [escalation] = (await _figures(at_b, "south")).escalations
        assert escalation.taken_by == "sv", "B applied it"
        decided = await session.decide(visit, 0, "approve")
        assert decided.step == 0 and session.moves == 1, "already on B: no move"
        await session.end_visit(visit, "abandoned")
        assert (await _figures(at_b, "south")).escalations == []
    finally:
        await session.close()
        for client in clients:
            await client.close()


async def test_the_owner_node_down_is_one_error_line_and_the_console_stays(
    pg_nodes: Nodes,
) -> None:
    """B killed: A still names it the owner until its lease (long here) runs out, or says
    south has no node; either way the console says so in one line and stays on A."""
    a, b = await _two_nodes(pg_nodes, lease_s=60.0)
    clients, console = _officers_probe_console(pg_nodes, a, b)
    probe = clients[-1]
    try:
        for client in clients:
            await client.connect(retry=True)
        await _until_seen(
            probe, lambda f: any(d.desk == "d-south" for d in f.desks), "A knows south's desk"
        )
        async with console.run_test(size=SIZE):
            session = console.session
            await wait_for(
                lambda: session.connected and session.model.synced, "the console is on A"
            )
            pg_nodes.kill(b, signal.SIGKILL)
            await console._watch("d-south")
            [line] = _errors(console)
            assert line.startswith("Cannot watch desk d-south: "), line
            assert "Traceback" not in line
            assert session.node == a.url and session.connected, "still on A"
            assert session.desk == "d-north" and session.model.synced, "watching north again"
            assert session.moves == 0 and console.is_running
    finally:
        for client in clients:
            await client.close()


async def test_the_supervisors_media_links_to_the_booth_through_the_node_it_moved_to(
    pg_nodes: Nodes,
) -> None:
    """media=True: after the move to B, the console's SupervisorMedia offers to south's booth
    over B (a real Python booth with a test card) and receives its frames; back on A the
    link is dropped and its peer connection closed."""
    a, b = await _two_nodes(pg_nodes)
    keys = pg_nodes.keys
    south = SignalClient(b.url, keys.issue("officer", "os", "south", desk="d-south"))
    north = SignalClient(a.url, keys.issue("officer", "on", "north", desk="d-north"))
    probe = SignalClient(a.url, keys.issue("supervisor", "probe", "*"))
    (booth,) = make_booths(
        b.url, keys, 1, office="south", media=BoothMediaConfig(width=160, height=120, fps=10),
        seed=3,
    )  # fmt: skip
    console = SupervisorConsole(a.url, keys.issue("supervisor", "sv", "*"), desk="d-north")
    clients = [south, north, probe]
    try:
        for client in clients:
            await client.connect(retry=True)
        visit = await booth.start()
        await _until_seen(
            probe, lambda f: any(d.desk == "d-south" and d.load == 1 for d in f.desks),
            "A knows south's seated visit",
        )  # fmt: skip
        async with console.run_test(size=SIZE):
            engine, session = console.engine, console.session
            assert isinstance(engine, SupervisorMedia)
            await wait_for(lambda: session.connected and session.model.synced, "on A")
            await console._watch("d-south")
            assert session.node == b.url and visit in session.model.visits
            await wait_for(lambda: visit in engine.links, "a link to south's booth", 30)
            await wait_for(
                lambda: visit in engine.links and engine.links[visit].frames > 10,
                "the booth's frames reach the supervisor through B",
                timeout=45,
            )
            link = engine.links[visit]
            await console._watch("d-north")
            assert session.node == a.url
            await wait_for(lambda: visit not in engine.links, "the link is dropped on A")
            await wait_for(lambda: link.pc.connectionState == "closed", "its connection closed")
            assert _errors(console) == []
    finally:
        await booth.close()
        for client in clients:
            await client.close()
