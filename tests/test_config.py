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


# -- flags, LAPAK_* variables and --check-config (issue 16) --------------------------------------


def _settings(argv: list[str], env: dict[str, str]) -> ServerConfig:
    from lapak.cli.main import build_parser
    from lapak.cli.signal import settings

    return settings(build_parser().parse_args(["signal", *argv]), env)


def test_a_flag_wins_over_a_variable_which_wins_over_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "server.toml"
    conf.parent.mkdir()
    conf.write_text(
        '[server]\nport = 1000\ngrace_s = 5\ndata_dir = "data"\nsecret_file = "/abs/secret"\n'
        'offices = ["a"]\n'
    )
    env = {"LAPAK_SERVER_CONFIG": str(conf), "LAPAK_PORT": "2000", "LAPAK_OFFICES": "b, c"}
    c = _settings([], env)
    assert (c.launch.port, c.grace_s, c.offices) == (2000, 5, ["b", "c"]), "variable over file"
    assert c.launch.data_dir == conf.parent / "data", "a relative path in the file: its directory"
    assert c.launch.secret_file == Path("/abs/secret")
    c = _settings(["--port", "3000", "--office", "d", "--data-dir", "rel"], env)
    assert (c.launch.port, c.offices, c.launch.data_dir) == (3000, ["d"], Path("rel")), "flag wins"
    c = _settings(["--config", str(conf)], {"LAPAK_GRACE_S": "", "LAPAK_STRICT_OUTCOMES": "false"})
    assert c.grace_s == 5 and c.strict_outcomes is False, "an empty variable counts as unset"


def test_every_server_key_has_a_documented_variable() -> None:
    from lapak.signaling.config import _Server, env_name

    doc = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    for key in _Server.__struct_fields__:
        assert f"`{key}`" in doc and env_name(key) in doc, f"{key} / {env_name(key)} documented"


def check_config(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, list[str], str]:
    import os

    out = subprocess.run(
        [sys.executable, "-m", "lapak.cli", "signal", "--check-config", *args],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("LAPAK_")}, **(env or {})},
    )  # fmt: skip
    assert "Traceback" not in out.stderr, out.stderr
    problems = [ln for ln in out.stderr.splitlines() if ln and not ln.startswith("ts=")]
    return out.returncode, problems, out.stdout


def test_check_config_passes_without_binding_or_creating_anything(tmp_path: Path) -> None:
    import socket

    conf = tmp_path / "server.toml"
    conf.write_text('[server]\nhost = "127.0.0.1"\ndata_dir = "data"\nsecret_file = "secret"\n')
    with socket.socket() as taken:  # the configured port is in use: not our business here
        taken.bind(("127.0.0.1", 0))
        port = str(taken.getsockname()[1])
        code, problems, out = check_config(tmp_path, "--config", str(conf),
                                           env={"LAPAK_PORT": port})  # fmt: skip
    assert (code, problems) == (0, []), problems
    assert out.startswith("configuration ok: listen 127.0.0.1:" + port), out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.toml"], "nothing created"


@pytest.mark.parametrize(
    ("files", "args", "env", "expected"),
    [
        ({}, ["--config", "{d}/missing.toml"], {}, ["missing.toml: No such file"]),
        ({"bad.toml": "[server\n"}, ["--config", "{d}/bad.toml"], {}, ["not valid TOML"]),
        (
            {"s.toml": '[server]\ngrase_s = 5\nport = "x"\n[desks]\n'},
            ["--config", "{d}/s.toml", "--secret-file", "{d}/k"],
            {"LAPAK_GRACE_S": "soon", "LAPAK_PUBLIC_URL": "lapak.example"},
            ["'grase_s'", "[server] port", "[desks]", "LAPAK_GRACE_S", "LAPAK_PUBLIC_URL"],
        ),
        ({}, [], {"LAPAK_DATA_DIR": "{d}/data"}, ["no secret file"]),
        ({"k": ""}, ["--secret-file", "{d}/k", "--port", "70000"], {}, ["--port"]),
        ({"k": ""}, ["--secret-file", "{d}/k"], {}, ["{d}/k"]),
        (
            {"k": "", "cert.pem": "nope"},
            ["--secret-file", "{d}/k", "--tls-cert", "{d}/cert.pem"],
            {},
            ["{d}/k", "--tls-cert and --tls-key go together"],
        ),
        (
            {"cert.pem": "nope", "key.pem": "nope"},
            ["--secret-file", "{d}/new", "--tls-cert", "{d}/cert.pem", "--tls-key", "{d}/key.pem"],
            {},
            ["cert.pem"],
        ),
        (
            {"data": None},
            ["--secret-file", "{d}/new", "--data-dir", "{d}/data", "--signing-key", "{d}/data/k"],
            {},
            ["inside the data directory"],
        ),
    ],
)  # fmt: skip
def test_check_config_names_every_problem_one_line_each(
    tmp_path: Path, files: dict[str, str | None], args: list[str], env: dict[str, str],
    expected: list[str],
) -> None:  # fmt: skip
    for name, text in files.items():
        if text is None:
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_text(text)
    fill = str(tmp_path)
    code, problems, out = check_config(
        tmp_path,
        *(a.replace("{d}", fill) for a in args),
        env={k: v.replace("{d}", fill) for k, v in env.items()},
    )
    assert code == 1 and out == "", f"expected exit 1, got {code}: {problems}"
    assert len(problems) == len(expected), f"expected {len(expected)} lines, got {problems}"
    for line, word in zip(problems, expected, strict=True):
        word = word.replace("{d}", fill)
        assert line.startswith("lapak signal: ") and word in line, f"{word!r} in {line!r}"


def test_lapak_token_signs_with_the_config_files_secret(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    KeyRing.generate().write(secret)
    config = tmp_path / "server.toml"
    config.write_text('[server]\nsecret_file = "secret"\n[token_ttl_max_s]\nbooth = 60\n')
    out = _lapak("token", "--config", str(config), "--role", "booth", "--sub", "b",
                 "--office", "main", "--booth", "b")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert KeyRing.from_file(secret).verify(out.stdout.strip()).booth == "b"
    none = _lapak("token", "--role", "booth", "--sub", "b", "--office", "main")
    assert none.returncode == 2 and "--secret-file" in none.stderr, none.stderr
