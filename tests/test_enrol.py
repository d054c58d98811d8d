"""Booth enrolment: one-time codes made on the server host, traded once for a booth token
over ``POST /enrol``; used, unknown and expired codes are refused and nothing is issued."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lapak.cli import enrol as enrol_cli
from lapak.cli.errors import CliError
from lapak.cli.main import build_parser
from lapak.signaling.enrolment import (
    ENROLMENTS_FILE,
    EnrolDesk,
    Enrolment,
    EnrolmentError,
    code_from_header,
    create,
    new_code,
    normalize,
    redeem,
)
from lapak.signaling.server import SignalServer
from lapak.signaling.tokens import KeyRing

NOW = 1_800_000_000.0


def test_codes_are_short_typable_and_forgiving_to_type() -> None:
    codes = {new_code() for _ in range(50)}
    assert len(codes) == 50, "random"
    assert all(re.fullmatch(r"[A-Z2-7]{5}-[A-Z2-7]{5}", c) for c in codes), codes
    assert normalize(" abcde-fgh23 ") == normalize("ABCDEFGH23") == "ABCDEFGH23"


def test_a_code_is_exchanged_once_and_stored_only_hashed(tmp_path: Path) -> None:
    path = tmp_path / ENROLMENTS_FILE
    code = create(path, "main", "b7", 900, NOW, make_code=lambda: "ABCDE-FGH23")
    assert code == "ABCDE-FGH23"
    assert "ABCDE" not in path.read_text(), "the code itself is never written down"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert redeem(path, "abcde fgh23", NOW + 10) == Enrolment("main", "b7", NOW + 900)
    with pytest.raises(EnrolmentError) as used:
        redeem(path, code, NOW + 20)
    assert (used.value.status, used.value.code) == (410, "code_used")


def test_expired_and_unknown_codes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / ENROLMENTS_FILE
    code = create(path, "main", "b1", 60, NOW)
    with pytest.raises(EnrolmentError) as expired:
        redeem(path, code, NOW + 60)
    assert (expired.value.status, expired.value.code) == (410, "code_expired")
    with pytest.raises(EnrolmentError) as unknown:
        redeem(path, "ZZZZZ-ZZZZZ", NOW)
    assert (unknown.value.status, unknown.value.code) == (400, "unknown_code")
    path.write_text("[1, 2]")
    with pytest.raises(EnrolmentError, match="not a list of codes"):
        redeem(path, code, NOW)


def test_the_desk_rate_limits_tries_per_address_and_needs_the_header(tmp_path: Path) -> None:
    issued: list[Enrolment] = []

    def issue(e: Enrolment) -> str:
        issued.append(e)
        return "token"

    now = [NOW]
    desk = EnrolDesk(tmp_path / ENROLMENTS_FILE, issue, lambda: now[0], per_minute=3)
    assert desk.exchange(None, "10.0.0.1")[0] == 400
    assert desk.exchange("WRONG-WRONG", "10.0.0.1")[0] == 400
    assert desk.exchange("WRONG-WRONG", "10.0.0.1")[0] == 400
    code = create(tmp_path / ENROLMENTS_FILE, "main", "b1", 900, NOW)
    status, body = desk.exchange(code, "10.0.0.1")
    assert (status, body["error"]) == (429, "rate_limited"), "the 4th try within a minute waits"
    assert desk.exchange(code, "10.0.0.2") == (
        200,
        {"token": "token", "office": "main", "booth": "b1"},
    )
    now[0] += 61
    assert desk.exchange(code, "10.0.0.1")[0] == 410, "a minute later: tried, but already used"
    assert issued == [Enrolment("main", "b1", NOW + 900)], "one token for one code"
    assert code_from_header("Enrol ab-cd") == "ab-cd"
    assert code_from_header("Bearer x") is None and code_from_header("Enrol ") is None


def _post(url: str, code: str | None, method: str = "POST") -> tuple[int, dict[str, str]]:
    headers = {"Authorization": f"Enrol {code}"} if code else {}
    request = urllib.request.Request(url, data=b"", method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, json.loads(body) if body.startswith(b"{") else {}


async def test_the_server_trades_a_code_once_for_the_booth_it_names(
    server: SignalServer, keys: KeyRing
) -> None:
    code = create(server.data_dir / ENROLMENTS_FILE, "main", "b9", 900, server.clock())
    base = f"http://127.0.0.1:{server.port}/enrol"
    # The client cannot choose another office or booth: the query is ignored.
    status, body = await asyncio.to_thread(_post, base + "?office=other&booth=b1", code)
    assert status == 200, body
    claims = keys.verify(body["token"])
    assert (claims.role, claims.office, claims.booth, claims.sub) == ("booth", "main", "b9", "b9")
    assert claims.exp - claims.iat == server.config.ttl_max("booth") and claims.jti
    again = await asyncio.to_thread(_post, base, code)
    assert again == (410, {"error": "code_used", "message": "this enrolment code was already used"})
    assert (await asyncio.to_thread(_post, base, "NOPE-NOPE"))[0] == 400
    assert (await asyncio.to_thread(_post, base, code, "GET"))[0] == 405


def test_lapak_enrol_prints_the_code_and_a_qr_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    argv = ["enrol", "--booth", "b3", "--office", "main", "--data-dir", str(data)]
    args = build_parser().parse_args([*argv, "--ttl", "10m", "--server", "wss://lapak.example/ws"])
    assert enrol_cli.run(args) == 0
    out = capsys.readouterr().out
    code = re.search(r"booth b3 of office main: ([A-Z2-7]{5}-[A-Z2-7]{5})", out)
    assert code, out
    assert f"https://lapak.example/booth?enrol={code.group(1)}" in out
    assert "▀" in out or "▄" in out, "a QR code in half blocks"
    assert redeem(data / ENROLMENTS_FILE, code.group(1), time.time()).booth == "b3"
    with pytest.raises(CliError, match="pass --data-dir"):
        enrol_cli.run(build_parser().parse_args(argv[:5]))
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--ttl", "soon"])


async def test_lapak_booth_enrol_saves_the_token_0600(
    server: SignalServer, keys: KeyRing, tmp_path: Path
) -> None:
    code = create(server.data_dir / ENROLMENTS_FILE, "main", "b4", 900, server.clock())
    token_file = tmp_path / "booth.token"
    args = argparse.Namespace(
        token_file=token_file, enrol=code, server=f"127.0.0.1:{server.port}", ca_file=None
    )
    token = await asyncio.to_thread(enrol_cli.token_from_file, args)
    assert keys.verify(token).booth == "b4"
    assert token_file.read_text().strip() == token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    with pytest.raises(CliError, match=r"enrolment refused.*already used"):
        await asyncio.to_thread(enrol_cli.token_from_file, args)
    args.enrol = None
    assert enrol_cli.token_from_file(args) == token, "later runs read the file"
    args.token_file = None
    with pytest.raises(CliError, match="needs --token-file"):
        enrol_cli.token_from_file(args)


def test_links_are_built_from_any_server_spelling() -> None:
    assert enrol_cli.http_base("ws://h:1/ws") == "http://h:1"
    assert enrol_cli.http_base("h:1") == "http://h:1"
    assert enrol_cli.kiosk_link("https://h/booth", "C") == "https://h/booth?enrol=C"
