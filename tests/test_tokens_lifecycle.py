"""Tokens with a lifecycle: durations, per-role caps (issue and hello), token ids and the
revocation list (the hub closes a revoked connection; the server applies the file)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from lapak.cli import token as token_cli
from lapak.cli.errors import CliError
from lapak.cli.main import build_parser
from lapak.signaling.config import ServerConfig, TokenTtl
from lapak.signaling.revocation import (
    REVOKED_FILE,
    RevocationError,
    RevocationWatch,
    read_revoked,
    revoke,
)
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing, parse_duration
from tests.hub_driver import NOW, HubDriver


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("8h", 28800), ("2d", 172800), ("45", 45), ("1.5h", 5400)],
)
def test_durations_read_with_their_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "8x", "-5m", "0", "0s", "8 h h", "1e3"])
def test_wrong_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_every_token_has_an_id_from_the_injected_source(keys: KeyRing) -> None:
    token = keys.issue("booth", "b1", "main", booth="b1", new_id=lambda: "jti-1")
    claims = keys.verify(token)
    assert claims.jti == "jti-1" and claims.exp - claims.iat == 12 * 3600
    a, b = (keys.verify(keys.issue("admin", "x", "main")) for _ in range(2))
    assert a.jti and b.jti and a.jti != b.jti, "default ids are random"
    assert a.exp - a.iat == 3600, "an admin token defaults to its role's 1 h cap"


def test_hello_refuses_a_token_living_longer_than_its_role_cap() -> None:
    config = ServerConfig(token_ttl_max_s=TokenTtl(officer=600))
    hub = HubDriver(config)
    _, answer = hub.hello("officer", desk="d1", ttl=601)
    assert answer["code"] == "bad_token" and "exceeds the 600 s" in answer["message"], answer
    _, welcome = hub.hello("officer", desk="d1", ttl=600)
    assert welcome["type"] == "welcome", "a token within the cap is accepted"


def test_refresh_with_an_over_cap_token_is_refused_and_the_old_one_holds() -> None:
    hub = HubDriver(ServerConfig(token_ttl_max_s=TokenTtl(supervisor=600)))
    conn, _ = hub.hello("supervisor", ttl=600)
    long = hub.token("supervisor", ttl=3600)
    (answer,) = hub.say(conn, {"type": "refresh", "id": 2, "token": long})
    assert answer["code"] == "bad_token", answer


def test_revoking_closes_the_holder_and_refuses_its_token_afterwards() -> None:
    hub = HubDriver()
    token = hub.token("officer", desk="d1", new_id=lambda: "lost")
    conn = hub.connect()
    answers = hub.say(conn, {"type": "hello", "id": 1, "token": token})
    assert answers[0]["type"] == "welcome", answers
    other, _ = hub.hello("booth", booth="b1")
    step = hub._step(hub.hub.revoke(frozenset({"lost"})))
    assert step.closes == [(conn, 4001, "bad_token")], "only the holder is closed, with 4001"
    assert step.to(conn) == [
        {"type": "error", "re": None, "code": "bad_token", "message": "token revoked"}
    ]
    assert hub.say(conn, {"type": "focus", "id": 3, "visit": None}) == [], "a closing conn is deaf"
    again = hub.connect()
    (refused,) = hub.say(again, {"type": "hello", "id": 1, "token": token})
    assert (refused["code"], refused["message"]) == ("bad_token", "token revoked")
    assert hub._step(hub.hub.revoke(frozenset({"lost"}))).closes == [], "no second close"
    assert other in hub.hub.conns


def test_a_refresh_with_a_revoked_token_is_refused() -> None:
    hub = HubDriver()
    conn, _ = hub.hello("supervisor")
    hub.hub.revoke(frozenset({"gone"}))
    revoked = hub.token("supervisor", new_id=lambda: "gone")
    (answer,) = hub.say(conn, {"type": "refresh", "id": 2, "token": revoked})
    assert (answer["code"], answer["message"]) == ("bad_token", "token revoked")


def test_the_revocation_list_is_private_atomic_and_refuses_damage(tmp_path: Path) -> None:
    path = tmp_path / REVOKED_FILE
    assert read_revoked(path) == frozenset(), "no file: nothing revoked"
    assert revoke(path, "a", NOW) and not revoke(path, "a", NOW), "the second time is a no-op"
    assert revoke(path, "b", NOW, note="lost laptop")
    assert read_revoked(path) == {"a", "b"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [REVOKED_FILE], "no temporary file left"
    with pytest.raises(RevocationError):
        revoke(path, "", NOW)
    path.write_text('{"revoked": [1]}')
    with pytest.raises(RevocationError, match="not a revocation list"):
        revoke(path, "c", NOW)
    watch = RevocationWatch(path)
    assert watch.poll() is None, "a damaged list is logged; the old set stays"
    path.write_text('{"revoked": [{"jti": "x"}]}')
    assert watch.poll() == {"x"}
    assert watch.poll() is None, "unchanged: nothing to do"
    assert watch.poll(force=True) == {"x"}, "SIGHUP re-reads anyway"


def _cli(*argv: str) -> int:
    args = build_parser().parse_args(["token", *argv])
    return token_cli.run(args)


def test_lapak_token_takes_durations_and_refuses_over_the_cap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "secret"
    keys = KeyRing.generate()
    keys.write(secret)
    base = ("--secret-file", str(secret), "--role", "officer", "--sub", "ana", "--office", "m")
    assert _cli(*base, "--desk", "d1", "--ttl", "8h") == 0
    claims = keys.verify(capsys.readouterr().out.strip())
    assert claims.exp - claims.iat == 8 * 3600 and claims.jti
    with pytest.raises(CliError, match=r"--ttl must be in \(0, 43200\] s for role officer"):
        _cli(*base, "--desk", "d1", "--ttl", "2d")
    with pytest.raises(CliError, match="needs --role"):
        _cli("--secret-file", str(secret), "--sub", "x", "--office", "m")
    bad = subprocess.run(
        [sys.executable, "-m", "lapak.cli", "token", *base, "--ttl", "8x"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "not a duration" in bad.stderr, bad.stderr


def test_lapak_token_revoke_writes_the_data_dirs_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert _cli("revoke", "--jti", "J1", "--data-dir", str(data)) == 0
    assert "revoked: J1" in capsys.readouterr().out
    assert _cli("revoke", "--jti", "J1", "--data-dir", str(data)) == 0
    assert "already revoked" in capsys.readouterr().out
    other = tmp_path / "list.json"
    assert _cli("revoke", "--jti", "J2", "--revocations", str(other)) == 0
    assert read_revoked(data / REVOKED_FILE) == {"J1"} and read_revoked(other) == {"J2"}
    with pytest.raises(CliError, match="needs --jti"):
        _cli("revoke", "--data-dir", str(data))
    with pytest.raises(CliError, match="pass --data-dir"):
        _cli("revoke", "--jti", "J3")
    with pytest.raises(CliError, match="no data directory"):
        _cli("revoke", "--jti", "J3", "--data-dir", str(tmp_path / "nowhere"))


async def test_a_revoked_officer_is_closed_4001_within_a_second_or_two(
    server: SignalServer, keys: KeyRing
) -> None:
    token = keys.issue("officer", "ana", "main", desk="d1", new_id=lambda: "ana-laptop")
    async with connect(server.url) as ws:
        await ws.send(json.dumps({"type": "hello", "id": 1, "token": token}))
        assert json.loads(await ws.recv())["type"] == "welcome"
        revoke(server.data_dir / REVOKED_FILE, "ana-laptop", NOW)  # no signal: the tick sees it
        told = []
        async with asyncio.timeout(5):
            with contextlib.suppress(ConnectionClosed):
                while True:
                    told.append(json.loads(await ws.recv()))
        assert {
            "type": "error",
            "re": None,
            "code": "bad_token",
            "message": "token revoked",
        } in told
        assert ws.close_code == 4001, f"expected close 4001, got {ws.close_code}"
    async with connect(server.url) as ws:
        await ws.send(json.dumps({"type": "hello", "id": 1, "token": token}))
        refused = json.loads(await ws.recv())
        assert (refused["code"], refused["message"]) == ("bad_token", "token revoked")
    fresh = keys.issue("officer", "ana", "main", desk="d1")
    async with connect(server.url) as ws:
        await ws.send(json.dumps({"type": "hello", "id": 1, "token": fresh}))
        assert json.loads(await ws.recv())["type"] == "welcome", "a new token still works"
