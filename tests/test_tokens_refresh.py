"""Short-lived officer tokens refreshed on a live connection: the client re-reads its token
source and sends ``refresh`` at 80% of the token's lifetime."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lapak.signaling.client import SignalClient
from lapak.signaling.protocol import Focus
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing, refresh_due
from tests.conftest import wait_for


def test_refresh_is_due_at_four_fifths_of_the_lifetime(keys: KeyRing) -> None:
    assert refresh_due(keys.issue("admin", "a", "main", ttl=100, now=1000)) == 1080
    assert refresh_due("not a token") is None


async def test_a_connection_outlives_its_first_token_when_the_file_has_a_newer_one(
    server: SignalServer, keys: KeyRing, tmp_path: Path
) -> None:
    first = keys.issue("officer", "ana", "main", desk="d1", ttl=3)
    token_file = tmp_path / "officer.token"
    token_file.write_text(first + "\n")
    client = SignalClient(server.url, first, token_source=token_file.read_text, reconnect=False)
    try:
        await client.connect()
        second = keys.issue("officer", "ana", "main", desk="d1", ttl=60)
        token_file.write_text(second + "\n")  # what a renewal job does
        await wait_for(lambda: client.refreshes == 1, "a refresh at 80% of 3 s", timeout=10)
        assert client.token == second
        expired_at = keys.verify(first).exp
        await wait_for(lambda: time.time() > expired_at + 2, "the first token's expiry + 2 s")
        assert client.connected.is_set() and client.ended is None, client.end_detail
        ack = await client.request(Focus(visit=None))
        assert ack.on_air is None, "the connection still serves requests"
    finally:
        await client.close()


async def test_without_a_newer_token_the_connection_ends_at_expiry(
    server: SignalServer, keys: KeyRing, tmp_path: Path
) -> None:
    first = keys.issue("officer", "ana", "main", desk="d1", ttl=2)
    client = SignalClient(server.url, first, token_source=lambda: first, reconnect=False)
    try:
        await client.connect()
        await wait_for(lambda: client.ended is not None, "the token's expiry ends it", timeout=10)
        assert client.ended == "refused" and client.refreshes == 0
    finally:
        await client.close()


@pytest.mark.parametrize("problem", ["missing", "other desk"])
async def test_a_broken_or_wrong_source_keeps_the_old_token(
    server: SignalServer, keys: KeyRing, tmp_path: Path, problem: str
) -> None:
    first = keys.issue("officer", "ana", "main", desk="d1", ttl=3)
    wrong = keys.issue("officer", "ana", "main", desk="d2", ttl=60)

    def source() -> str:
        if problem == "missing":
            return (tmp_path / "nowhere").read_text()
        return wrong

    client = SignalClient(server.url, first, token_source=source, reconnect=False)
    try:
        await client.connect()
        await wait_for(lambda: client.ended is not None, "expiry without a usable refresh")
        assert client.token == first and client.refreshes == 0
    finally:
        await client.close()


def test_console_token_file_is_read_now_and_by_the_session_later(tmp_path: Path) -> None:
    from lapak.cli import console as console_cli
    from lapak.cli.errors import CliError
    from lapak.cli.main import build_parser

    token_file = tmp_path / "officer.token"
    token_file.write_text("  the-token\n")
    args = build_parser().parse_args(
        ["console", "--server", "ws://h:1", "--token-file", str(token_file)]
    )
    factory = console_cli.token_file_sessions(args)["session_factory"]
    assert args.token == "the-token"
    assert factory.keywords["token_source"]() == "  the-token\n", "re-read each time (stripped)"
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["console", "--server", "h:1", "--token", "t", "--token-file", "f"]
        )
    token_file.write_text("")
    with pytest.raises(CliError, match="is empty"):
        console_cli.token_file_sessions(args)
    assert (
        console_cli.token_file_sessions(
            build_parser().parse_args(["supervise", "--server", "h:1", "--token", "t"])
        )
        == {}
    )
