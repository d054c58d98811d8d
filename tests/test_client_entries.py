"""The Python client's fallback entry points (``entries=``): a cluster is reached through any
node, so a client given several keeps working when the one it used is down — at the first
connect and on a reconnect (issue 14)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import wait_for
from tests_support import free_port

from lapak.signaling.client import Backoff, SignalClient
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing


def _fast() -> Backoff:
    return Backoff(first=0.05, cap=0.2)


async def test_first_connect_goes_on_to_the_next_entry(server: SignalServer, keys: KeyRing) -> None:
    down = f"ws://127.0.0.1:{free_port()}/ws"  # nothing listens there
    client = SignalClient(down, keys.issue("booth", "b0", "main", booth="b0"),
                          entries=[down, server.url], policy=_fast())  # fmt: skip
    try:
        async with asyncio.timeout(20):
            welcome = await client.connect(retry=True)
        assert client.url == server.url and welcome.session, "connected through the live entry"
    finally:
        await client.close()


async def test_a_lone_entry_that_is_down_is_retried_not_replaced(keys: KeyRing) -> None:
    down = f"ws://127.0.0.1:{free_port()}/ws"
    client = SignalClient(down, keys.issue("booth", "b0", "main", booth="b0"), policy=_fast())
    try:
        async with asyncio.timeout(1):
            await client.connect(retry=True)
    except TimeoutError:
        pass
    finally:
        await client.close()
    assert client.url == down and client.last_failure, "still the one entry, with why it failed"


async def test_reconnect_after_its_node_dies_uses_another_entry(
    tmp_path: Path, keys: KeyRing
) -> None:
    first = SignalServer(tmp_path / "a", keys, host="127.0.0.1", port=0)
    second = SignalServer(tmp_path / "b", keys, host="127.0.0.1", port=0)
    await first.start()
    await second.start()
    client = SignalClient(first.url, keys.issue("booth", "b0", "main", booth="b0"),
                          entries=[first.url, second.url], policy=_fast())  # fmt: skip
    try:
        async with asyncio.timeout(20):
            await client.connect()
        await first.close()
        await wait_for(
            lambda: client.reconnects >= 1 and client.connected.is_set(),
            "the client reconnected through the second entry",
        )
        assert client.url == second.url
    finally:
        await client.close()
        await second.close()
        await first.close()


def test_console_and_supervise_take_a_cluster_as_server(tmp_path: Path) -> None:
    """``lapak console|supervise --server a,b``: the session's client starts at the first
    node and has the others as entries (with ``--token-file`` too)."""
    from lapak.cli import console as console_cli
    from lapak.cli.clients import server_urls
    from lapak.cli.main import build_parser
    from lapak.media.desk_session import DeskSession

    token_file = tmp_path / "t"
    token_file.write_text("tok\n")
    for argv in (
        ["console", "--server", "a:1, ws://b:2", "--token-file", str(token_file)],
        ["supervise", "--server", "a:1,ws://b:2", "--token", "tok"],
    ):
        args = build_parser().parse_args(argv)
        url, *entries = server_urls(args.server)
        factory = console_cli.client_sessions(args, entries)["session_factory"]
        session = factory(url, "tok", engine=None)
        assert isinstance(session, DeskSession)
        assert session.client.entries == ["ws://a:1/ws", "ws://b:2/ws"], argv
    single = build_parser().parse_args(["supervise", "--server", "a:1", "--token", "tok"])
    assert console_cli.client_sessions(single, []) == {}, "one server: the default session"
