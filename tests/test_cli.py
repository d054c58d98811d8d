"""The ``lapak`` command as an operator uses it: real processes, real ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests_support import free_port, wait_healthy

from lapak.cli.clients import server_url
from lapak.cli.main import build_parser
from lapak.signaling.tokens import KeyRing

LAPAK = [sys.executable, "-m", "lapak.cli"]
SUBCOMMANDS = (
    "signal",
    "audit",
    "backup",
    "purge",
    "token",
    "enrol",
    "booth",
    "console",
    "supervise",
    "demo",
)


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
    assert f"jti={claims.jti}" in out.stderr, f"the token's id is said on stderr: {out.stderr!r}"
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
        health = wait_healthy(port, proc, 20)
        assert health["status"] == "ok", "healthz answers"
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


# -- operator errors: one line, a documented exit code, never a traceback ------------------------

EXIT_USAGE, EXIT_NO_FILE, EXIT_TOKEN, EXIT_TLS, EXIT_PIPE = 2, 3, 5, 6, 141


def assert_one_line_error(out: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    # Structured log lines (``ts=... level=...``) may come first; the message is one line.
    lines = [ln for ln in out.stderr.splitlines() if not ln.startswith("ts=")]
    assert out.returncode == code, f"expected exit {code}, got {out.returncode}: {out.stderr}"
    assert "Traceback" not in out.stderr, out.stderr
    assert len(lines) == 1, f"expected one message line on stderr, got {lines}"
    for word in words:
        assert word in lines[0], f"expected {word!r} in {lines[0]!r}"


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "secret"
    KeyRing.generate().write(path)
    return path


def token(secret: Path, role: str, **extra: str) -> str:
    where = {"officer": {"desk": "d1"}, "booth": {"booth": "booth-01"}}.get(role, {})
    return KeyRing.from_file(secret).issue(role, "someone", "main", **{**where, **extra})


def test_version() -> None:
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("lapak "), out


def test_every_subcommand_takes_log_level_and_client_ones_take_ca_file() -> None:
    names = [*SUBCOMMANDS, "simulate"]
    for name in [*names, "audit verify", "audit export"]:
        out = run(*name.split(), "--help")
        assert out.returncode == 0 and "--log-level" in out.stdout, f"lapak {name} --log-level"
        assert "--log-format" in out.stdout, f"lapak {name} --log-format"
    for name in ("booth", "console", "supervise"):
        assert "--ca-file" in run(name, "--help").stdout, f"lapak {name} --ca-file"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--log-level", "bogus", "token"], EXIT_USAGE, ["--log-level", "bogus"]),
        (["token", "--log-level", "bogus"], EXIT_USAGE, ["--log-level", "bogus"]),
        (["token", "--secret-file", "/nonexistent/secret", "--role", "booth", "--sub", "b",
          "--office", "main", "--booth", "b"], EXIT_NO_FILE, ["/nonexistent/secret"]),
        (["audit", "export", "--data-dir", ".", "--day", "2026-13-45"], EXIT_USAGE,
         ["2026-13-45"]),
        (["booth", "--server", "127.0.0.1:1", "--token", "garbage"], EXIT_TOKEN, ["token"]),
        (["console", "--server", "127.0.0.1:1", "--token", "garbage"], EXIT_TOKEN, ["token"]),
        (["booth", "--server", "127.0.0.1:1", "--secret-file", "/nonexistent/secret"],
         EXIT_NO_FILE, ["/nonexistent/secret"]),
        (["booth", "--server", "wss://127.0.0.1:1", "--ca-file", "/nonexistent/ca.pem",
          "--secret-file", "/nonexistent/secret"], EXIT_NO_FILE, ["/nonexistent/ca.pem"]),
    ],
)  # fmt: skip
def test_operator_errors_are_one_line_with_a_distinct_code(
    args: list[str], code: int, words: list[str]
) -> None:
    assert_one_line_error(run(*args), code, *words)


@pytest.mark.parametrize(
    ("command", "role", "hint"),
    [
        ("console", "supervisor", "lapak supervise"),
        ("supervise", "officer", "lapak console"),
        ("booth", "officer", "lapak console"),
        ("console", "booth", "lapak booth"),
    ],
)
def test_a_token_for_another_role_names_the_right_command(
    secret: Path, command: str, role: str, hint: str
) -> None:
    out = run(command, "--server", "127.0.0.1:1", "--token", token(secret, role))
    assert_one_line_error(out, EXIT_TOKEN, role, hint)


def test_console_log_is_private_rotated_and_one_per_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse
    import logging
    import logging.handlers

    from lapak.cli.logging_setup import console_log_path, to_console_file

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    root = logging.getLogger("lapak")
    saved = (root.handlers[:], root.level, root.propagate)
    try:
        paths = []
        for command in ("console", "supervise"):
            to_console_file(argparse.Namespace(command=command, log_level="DEBUG"))
            logging.getLogger("lapak.test").debug("event=hello command=%s", command)
            (handler,) = root.handlers
            assert isinstance(handler, logging.handlers.RotatingFileHandler)
            assert handler.maxBytes > 0 and handler.backupCount > 0, "the log is rotated"
            handler.doRollover()  # a rotated file is created private too
            logging.getLogger("lapak.test").info("event=after_rollover")
            handler.close()
            paths.append(console_log_path(command))
        assert paths == [
            tmp_path / "state/lapak/console.log",
            tmp_path / "state/lapak/supervise.log",
        ]
        assert os.stat(tmp_path / "state/lapak").st_mode & 0o777 == 0o700
        for path in paths:
            for file in (path, path.with_name(path.name + ".1")):
                assert os.stat(file).st_mode & 0o777 == 0o600, f"{file} is 0600"
            assert "event=hello" in path.with_name(path.name + ".1").read_text(), "DEBUG kept"
    finally:
        root.handlers[:], root.level, root.propagate = saved


# -- against a real server ----------------------------------------------------------------------


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself, and its key (PEM files)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Lines:
    """A child's stderr, read as it comes (select, no blocking read)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        self.proc, self.fd, self.text = proc, proc.stderr.fileno(), ""

    def until(self, needle: str, timeout: float = 60) -> str:
        import select

        deadline = time.monotonic() + timeout
        while needle not in self.text:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"expected {needle!r} on stderr; got {self.text[-1500:]}")
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                self.text += os.read(self.fd, 65536).decode(errors="replace")
        return self.text


def stop(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return (err or b"").decode(errors="replace")


def test_booth_waits_for_the_server_then_tls_token_and_pipe_errors_are_messages(
    tmp_path: Path, secret: Path
) -> None:
    """A booth PC that boots before the server retries with back-off; then, against the
    running (TLS) server: an untrusted certificate, a foreign token, ``audit export | head``."""
    port = free_port()
    url = f"wss://127.0.0.1:{port}"
    cert, key = self_signed(tmp_path)
    booth = subprocess.Popen(
        [*LAPAK, "booth", "--server", url, "--secret-file", str(secret), "--ca-file", str(cert),
         "--size", "64x48", "--fps", "5"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    server = None
    try:
        booth_err = Lines(booth)
        booth_err.until("event=server_unreachable")
        server = subprocess.Popen(
            [*LAPAK, "signal", "--port", str(port), "--data-dir", str(tmp_path / "data"),
             "--secret-file", str(secret), "--tls-cert", str(cert), "--tls-key", str(key),
             "--log-level", "WARNING"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        booth_err.until("event=visit_started", timeout=90)
        assert booth.poll() is None, "the booth keeps running"

        untrusted = run("booth", "--server", url, "--secret-file", str(secret), "--first", "1")
        assert_one_line_error(untrusted, EXIT_TLS, "certificate", "--ca-file")

        other = tmp_path / "other-secret"
        KeyRing.generate().write(other)
        foreign = run("booth", "--server", url, "--ca-file", str(cert), "--token",
                      token(other, "booth", booth="booth-09"))  # fmt: skip
        assert_one_line_error(foreign, EXIT_TOKEN, "refused")
    finally:
        booth_log = stop(booth)
        server_log = stop(server) if server is not None else ""
    assert booth.returncode == 0 and "Traceback" not in booth_log, booth_log[-2000:]
    assert server is not None and server.returncode == 0, server_log[-2000:]
    assert "level=info" not in server_log, "--log-level WARNING after the subcommand works"

    reader = subprocess.Popen(
        [*LAPAK, "audit", "export", "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.close()  # `| head` that has read enough
    err = reader.stderr.read().decode()
    reader.stderr.close()
    assert reader.wait(timeout=30) == EXIT_PIPE and err == "", err


def test_signal_with_an_empty_secret_file_or_a_bad_tls_key_says_so(tmp_path: Path) -> None:
    """Operator mistakes in the server's own files are one line, not a traceback (and never
    'certificate not trusted', which is a client's problem)."""
    empty = tmp_path / "secret"
    empty.write_text("")
    data = ["--data-dir", str(tmp_path / "data"), "--port", "0"]
    out = run("signal", "--secret-file", str(empty), *data)
    assert_one_line_error(out, EXIT_NO_FILE, str(empty))
    secret = tmp_path / "good-secret"
    KeyRing.generate().write(secret)
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    tls = ["--tls-cert", str(bogus), "--tls-key", str(bogus)]
    out = run("signal", "--secret-file", str(secret), *data, *tls)
    assert_one_line_error(out, EXIT_USAGE, "--tls-cert")


def test_a_new_secret_file_is_private_from_its_first_byte(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("old\n")
    path.chmod(0o644)  # an existing looser file is tightened too
    KeyRing.generate().write(path)
    assert path.stat().st_mode & 0o777 == 0o600
    fresh = tmp_path / "fresh"
    KeyRing.generate().write(fresh)
    assert fresh.stat().st_mode & 0o777 == 0o600


# -- the server path stays headless; logs as JSON ------------------------------------------------

HEADLESS_CHECK = """
import sys
from pathlib import Path
from lapak.cli.main import main

d = Path(sys.argv[1])
try:
    main(["signal", "--help"])
except SystemExit:
    pass
assert main(["token", "--secret-file", str(d / "secret"), "--role", "booth", "--sub", "b",
             "--office", "main", "--booth", "b"]) == 0
assert main(["audit", "verify", "--data-dir", str(d / "nothing")]) == 3
assert main(["signal", "--check-config", "--secret-file", str(d / "secret"),
             "--data-dir", str(d / "data")]) == 0
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "aiortc", "av")
                or m.startswith(("lapak.console", "lapak.media")))
assert not loaded, f"the server path imported {loaded}"
"""


def test_signal_audit_and_token_never_import_the_console_media_or_textual(
    tmp_path: Path, secret: Path
) -> None:
    (tmp_path / "secret").write_bytes(secret.read_bytes())
    out = subprocess.run([sys.executable, "-c", HEADLESS_CHECK, str(tmp_path)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]


def test_signal_from_a_config_file_logs_json_lines(tmp_path: Path) -> None:
    """The server reads where to listen and which files to use from its TOML file (found
    through LAPAK_SERVER_CONFIG), and ``--log-format json`` writes one JSON object a line."""
    import json

    port = free_port()
    conf = tmp_path / "server.toml"
    conf.write_text(f'[server]\nport = {port}\ndata_dir = "data"\nsecret_file = "secret"\n')
    env = {**os.environ, "LAPAK_SERVER_CONFIG": str(conf)}
    proc = subprocess.Popen([*LAPAK, "signal", "--log-format", "json"],
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        wait_healthy(port, proc, 20)
        assert (tmp_path / "data").is_dir() and (tmp_path / "secret").exists(), "paths from file"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in err.splitlines() if line]
    assert records, "the server logged"
    for record in records:
        assert {"ts", "level", "logger", "event"} <= record.keys(), record
    listening = [r for r in records if r["event"] == "listening"]
    assert listening and listening[0]["port"] == port, records


def test_json_log_lines_carry_the_fields_as_keys() -> None:
    import json
    import logging

    from lapak.signaling.logs import JsonFormatter

    def line(msg: str, *args: object, exc: bool = False) -> dict[str, object]:
        record = logging.LogRecord("lapak.x", logging.WARNING, __file__, 1, msg, args, None)
        if exc:
            try:
                raise ValueError("boom")
            except ValueError:
                record.exc_info = sys.exc_info()
        return dict(json.loads(JsonFormatter().format(record)))

    got = line('event=x n=%d f=%s name="a \\"b\\" c" level=7 booth=01 free text', 3, "0.5")
    assert got["event"] == "x" and got["n"] == 3 and got["f"] == 0.5 and got["name"] == 'a "b" c'
    assert got["level"] == "warning" and got["level_"] == 7, "a field never hides the level"
    assert got["booth"] == "01" and got["msg"] == "free text" and got["logger"] == "lapak.x"
    assert "ValueError: boom" in str(line("event=failed", exc=True)["exc"])


async def test_backup_copies_a_log_and_never_overwrites(tmp_path: Path) -> None:
    from lapak.signaling.server import SignalServer

    server = SignalServer(tmp_path / "data", KeyRing.generate(), host="127.0.0.1", port=0)
    await server.start()
    await server.close()
    out_file = tmp_path / "copy.sqlite3"
    made = run("backup", "--data-dir", str(tmp_path / "data"), "--output", str(out_file))
    assert made.returncode == 0 and out_file.is_file(), made.stderr
    assert made.stdout.startswith(f"{out_file}: "), made.stdout
    again = run("backup", "--data-dir", str(tmp_path / "data"), "--output", str(out_file))
    assert_one_line_error(again, 1, str(out_file))
    missing = run("backup", "--data-dir", str(tmp_path / "none"), "--output", str(out_file))
    assert_one_line_error(missing, EXIT_NO_FILE, str(tmp_path / "none"))


def test_log_settings_from_the_environment_and_a_bad_one_named(tmp_path: Path) -> None:
    import json

    env = {**os.environ, "LAPAK_LOG_FORMAT": "json", "LAPAK_LOG_LEVEL": "debug"}
    out = subprocess.run(
        [*LAPAK, "signal", "--check-config", "--secret-file", str(tmp_path / "s"),
         "--data-dir", str(tmp_path / "d"), "--tls-cert", str(tmp_path / "c")],
        capture_output=True, text=True, timeout=30, env={**env, "LAPAK_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    assert_one_line_error(out, 1, "--tls-cert and --tls-key go together")
    bad = subprocess.run([*LAPAK, "token", "--secret-file", "x", "--role", "booth", "--sub", "b",
                          "--office", "m"], capture_output=True, text=True, timeout=30,
                         env={**env, "LAPAK_LOG_FORMAT": "xml"})  # fmt: skip
    assert_one_line_error(bad, EXIT_USAGE, "LAPAK_LOG_FORMAT", "xml")
    port = free_port()
    server = subprocess.Popen(
        [*LAPAK, "signal", "--port", str(port), "--data-dir", str(tmp_path / "d"),
         "--secret-file", str(tmp_path / "s")], stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        wait_healthy(port, server, 20)
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=15)
    levels = {json.loads(line)["level"] for line in err.splitlines() if line}
    assert "debug" in levels or "info" in levels, err


def test_booth_given_a_cluster_goes_on_to_the_node_that_is_up(tmp_path: Path, secret: Path) -> None:
    """``--server`` may list a cluster's nodes: the first is down, the booth goes on to the
    next and starts its visit there; a list naming no server is a usage error."""
    down, port = free_port(), free_port()
    server = subprocess.Popen(
        [*LAPAK, "signal", "--port", str(port), "--data-dir", str(tmp_path / "data"),
         "--secret-file", str(secret)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    booth = subprocess.Popen(
        [*LAPAK, "booth", "--server", f"127.0.0.1:{down}, ws://127.0.0.1:{port}",
         "--secret-file", str(secret), "--size", "64x48", "--fps", "5"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        booth_err = Lines(booth)
        booth_err.until(f"url=ws://127.0.0.1:{down}/ws")  # tried the first, which is down
        booth_err.until("event=visit_started", timeout=90)
    finally:
        booth_log = stop(booth)
        stop(server)
    assert booth.returncode == 0 and "Traceback" not in booth_log, booth_log[-2000:]
    empty = run("booth", "--server", " , ", "--secret-file", str(secret))
    assert_one_line_error(empty, EXIT_USAGE, "--server")
