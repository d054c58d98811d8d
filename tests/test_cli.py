"""The ``lapak`` command as an operator uses it: real processes, real ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tests_support import free_port

from console.cli import build_parser, server_url
from signaling.tokens import KeyRing

LAPAK = [sys.executable, "-m", "console"]
SUBCOMMANDS = ("signal", "audit", "token", "booth", "console", "supervise", "demo")


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LAPAK, *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_every_subcommand_and_each_has_its_own() -> None:
    top = run("--help")
    assert top.returncode == 0
    for name in SUBCOMMANDS:
        assert name in top.stdout, f"`lapak --help` mentions {name}"
        sub = run(name, "--help")
        assert sub.returncode == 0 and "usage: lapak " + name in sub.stdout


def test_token_prints_a_verifiable_token(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    KeyRing.generate().write(secret)
    out = run("token", "--secret-file", str(secret), "--role", "booth", "--sub", "b1",
              "--office", "main", "--booth", "b1", "--ttl", "60")  # fmt: skip
    assert out.returncode == 0, out.stderr
    claims = KeyRing.from_file(secret).verify(out.stdout.strip())
    assert (claims.role, claims.booth) == ("booth", "b1")
    bad = run("token", "--secret-file", str(secret), "--role", "officer", "--sub", "a",
              "--office", "main")  # fmt: skip
    assert bad.returncode == 2 and "desk" in bad.stderr


def test_signal_runs_headless_logs_structured_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*LAPAK, "signal", "--port", str(port), "--data-dir", str(tmp_path / "d"),
         "--secret-file", str(tmp_path / "secret")],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        health = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    health = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.1)
        assert health is not None and health["status"] == "ok", "healthz answers"
        assert (tmp_path / "secret").exists(), "a missing secret file is created"
        assert os.stat(tmp_path / "secret").st_mode & 0o077 == 0, "the secret is private"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    lines = [ln for ln in err.splitlines() if ln]
    assert lines and all(ln.startswith("ts=") and " level=" in ln for ln in lines), err
    assert "Traceback" not in err
    assert any("event=listening" in ln for ln in lines)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("127.0.0.1:8765", "ws://127.0.0.1:8765/ws"),
        ("ws://h:1", "ws://h:1/ws"),
        ("wss://h/lapak/ws", "wss://h/lapak/ws"),
    ],
)
def test_server_url_normalises(given: str, expected: str) -> None:
    assert server_url(given) == expected


def test_parser_rejects_odd_sizes() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--size", "641x480"])
