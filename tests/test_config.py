"""Server TOML: every key typed, unknown keys and wrong types refused by name (issue 12)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lapak.signaling.config import ConfigError, ServerConfig
from lapak.signaling.tokens import KeyRing

BAD = [
    ('[server]\ngrace_s = "abc"\n', "[server] grace_s"),
    ("[server]\ngrase_s = 5\n", "'grase_s'"),
    ('[workflow.JHT]\nsteps = ["a"]\n', "'workflow'"),
    ('[workflows.JHT]\nstep = ["a"]\n', "[workflows.JHT]"),
    ('[workflows.JHT]\nsteps = ["a", "a"]\n', "[workflows.JHT]"),
    ('[[desks]]\nid = "d"\noffice = "m"\ncapcity = 3\n', "[[desks]] #1"),
    ('[[desks]]\nid = "d"\noffice = "m"\ncapacity = 9\n', "[[desks]] #1 capacity"),
    ("[pins]\nbooth-01 = 3\n", "[pins"),
    ("[server]\nmax_frame_bytes = 10\n", "[server] max_frame_bytes"),
    ('[server]\nallowed_origins = ["http://a.lan/"]\n', "allowed_origins"),
    ("[server]\nhello_timeout_s = 0\n", "[server] hello_timeout_s"),
    ('[token_ttl_max_s]\nofficer = "1h"\n', "[token_ttl_max_s] officer"),
    ("[server]\noffices = main\n", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "where"), BAD)
def test_bad_keys_and_types_are_refused_by_name(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "lapak.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        ServerConfig.load(path)
    message = str(err.value)
    assert where in message and "\n" not in message, message


def test_every_documented_key_loads(tmp_path: Path) -> None:
    path = tmp_path / "lapak.toml"
    path.write_text(
        '[server]\noffices = ["main"]\ngrace_s = 5\nmax_frame_bytes = 4096\nrate_per_s = 5\n'
        "rate_burst = 10\nsnapshot_every = 100\nsnapshot_min_s = 0\ndefault_visit_minutes = 7\n"
        'allowed_origins = ["http://kiosk.lan:8080"]\npublic_url = "https://lapak.example/"\n'
        "hello_timeout_s = 3\nmax_connections = 500\nstrict_outcomes = false\n"
        '[workflows.JHT]\nsteps = ["identity", "decision"]\n'
        '[reasons]\nlist = ["missing"]\n[pins]\nbooth-01 = "desk-1"\n'
        "[token_ttl_max_s]\nofficer = 600\nadmin = 60\n"
        '[[desks]]\nid = "desk-1"\noffice = "main"\ncapacity = 4\n'
    )
    c = ServerConfig.load(path)
    assert (c.offices, c.grace_s, c.max_frame_bytes, c.rate_burst) == (["main"], 5, 4096, 10)
    assert (c.hello_timeout_s, c.connection_limit, c.strict_outcomes) == (3, 500, False)
    assert c.configured_origins() == {"http://kiosk.lan:8080", "https://lapak.example"}
    assert c.workflows == {"JHT": ["identity", "decision"]} and c.reasons == ["missing"]
    assert c.desks[0].capacity == 4 and c.pins == {"booth-01": "desk-1"}
    assert (c.ttl_max("officer"), c.ttl_max("admin"), c.ttl_max("booth")) == (600, 60, 604800)


def test_defaults_without_a_file() -> None:
    c = ServerConfig.load(None)
    assert c.grace_s == 30 and c.hello_timeout_s == 10 and "JHT" in c.workflows
    assert c.connection_limit >= 8, "derived from RLIMIT_NOFILE"


def _lapak(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lapak.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_lapak_signal_with_a_bad_config_says_one_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "lapak.toml"
    path.write_text('[server]\ngrace_s = "abc"\n')
    out = _lapak("signal", "--port", "0", "--data-dir", str(tmp_path / "d"), "--secret-file",
                 str(tmp_path / "secret"), "--config", str(path))  # fmt: skip
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "grace_s" in lines[0] and "Traceback" not in out.stderr, lines
    assert not (tmp_path / "d").exists(), "nothing was started"


def test_lapak_token_ttl_is_capped_per_role(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    KeyRing.generate().write(secret)
    config = tmp_path / "lapak.toml"
    config.write_text("[token_ttl_max_s]\nofficer = 600\n")
    base = ("token", "--secret-file", str(secret), "--role", "officer", "--sub", "ana",
            "--office", "main", "--desk", "d1", "--config", str(config))  # fmt: skip
    too_long = _lapak(*base, "--ttl", "601")
    assert too_long.returncode == 2 and "token_ttl_max_s" in too_long.stderr, too_long.stderr
    default = _lapak(*base)
    assert default.returncode == 0, default.stderr
    claims = KeyRing.from_file(secret).verify(default.stdout.strip())
    import jwt

    raw = jwt.decode(default.stdout.strip(), options={"verify_signature": False})
    assert raw["exp"] - raw["iat"] == 600 and claims.role == "officer", "default is the cap"
    admin = _lapak("token", "--secret-file", str(secret), "--role", "admin", "--sub", "root",
                   "--office", "main", "--ttl", "86400")  # fmt: skip
    assert admin.returncode == 2, "the default admin cap (1 h) applies without --config"
