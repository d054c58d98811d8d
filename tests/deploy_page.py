"""docs/deploy.md as a script: its tagged blocks, and a host under a temporary root that runs
them in order (tests/test_deploy.py says what the tags mean)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from install_support import ROOT, clean_env

DOC = ROOT / "docs" / "deploy.md"
UNIT = ROOT / "deploy" / "lapak-signal.service"
BACKUP_UNIT = ROOT / "deploy" / "lapak-backup.service"
UNITS = sorted([*ROOT.glob("deploy/*.service"), *ROOT.glob("deploy/*.timer")])
EXAMPLE_CONFIG = ROOT / "deploy" / "server.toml"
HOST = "lapak.branch.example"
PORT = "8765"
# Paths of a real host that the walk-through puts under its temporary root.
ROOTED = (
    "/etc/lapak", "/etc/prometheus", "/etc/systemd/system", "/var/lib/lapak",
    "/var/backups/lapak", "/opt/lapak", "/usr/local/bin", "/root",
)  # fmt: skip
ACTIONS = ("start", "stop", "restart", "reload", "backup")
# Steps that need the lapak user, dropped where the walk-through runs them.
AS_LAPAK = ("runuser -u lapak -- ", "-o lapak -g lapak ")
TOOLS = ("bash", "openssl", "curl", "promtool", "tmux")
OUTPUT_LANGS = ("text",)  # samples of output, not commands


@dataclass(frozen=True)
class Block:
    lang: str
    tags: tuple[str, ...]
    body: str
    line: int

    @property
    def kind(self) -> str | None:
        return next((t for t in self.tags if t.startswith("deploy-")), None)

    @property
    def where(self) -> str:
        return f"docs/deploy.md:{self.line}"


def doc_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("```"):
            info = lines[i][3:].split()
            start = i
            i += 1
            body: list[str] = []
            while i < len(lines) and lines[i] != "```":
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"docs/deploy.md:{start + 1}: fence never closed"
            lang = info[0] if info else ""
            blocks.append(Block(lang, tuple(info[1:]), "\n".join(body) + "\n", start + 1))
        i += 1
    return blocks


BLOCKS = doc_blocks(DOC.read_text())


def tag_value(block: Block, name: str, default: str = "") -> str:
    return next((t.split("=", 1)[1] for t in block.tags if t.startswith(f"{name}=")), default)


def tty_text(block: Block) -> str:
    """``tty=TEXT``: run in a terminal until TEXT is on the screen, then type ``keys=KEYS``
    (default q) one key at a time, and expect exit 0."""
    return tag_value(block, "tty")


def unit_settings(text: str) -> list[tuple[str, str]]:
    """(key, value) pairs of a unit file, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            pairs.append((key.strip(), value.strip()))
    return pairs


@dataclass
class Walk:
    """A host under ``root``: runs the page's blocks and the unit's server, in order."""

    root: Path
    port: int
    server: subprocess.Popen[bytes] | None = None
    server_logs: list[Path] = field(default_factory=list)
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)
    trusted_before: str = ""  # the certificate served until a reload, trusted meanwhile

    def subst(self, text: str) -> str:
        for path in ROOTED:
            text = re.sub(rf"(?<![\w/.]){re.escape(path)}(?=/|\b|$)", f"{self.root}{path}", text)
        for words in AS_LAPAK:
            text = text.replace(words, "")
        return text.replace(HOST, "localhost").replace(PORT, str(self.port))

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = clean_env(HOME=str(self.root / "root"), **(extra or {}))
        env["PATH"] = f"{self.root}/usr/local/bin{os.pathsep}{env['PATH']}"
        return env

    def run(self, block: Block) -> None:
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", self.subst(block.body)],
            capture_output=True, text=True, timeout=900, env=self.env(), cwd=self.root / "root",
        )  # fmt: skip
        assert proc.returncode == 0, (
            f"{block.where} failed (exit {proc.returncode}):\n{self.subst(block.body)}\n"
            f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
        )

    def write(self, block: Block) -> None:
        target = Path(self.subst(block.tags[1]))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.subst(block.body))

    # The server, as systemd would run it.

    def unit_env(self) -> dict[str, str]:
        texts = [UNIT.read_text()]
        dropins = self.root / "etc/systemd/system" / f"{UNIT.name}.d"
        texts += [p.read_text() for p in sorted(dropins.glob("*.conf"))]
        env: dict[str, str] = {}
        for text in texts:
            for key, value in unit_settings(text):
                if key == "Environment":
                    for pair in shlex.split(value):
                        name, _, val = pair.partition("=")
                        env[name] = val
        return env

    def start(self) -> None:
        assert self.server is None, "started twice"
        exec_start = dict(unit_settings(UNIT.read_text()))["ExecStart"]
        log = self.root / f"server-{len(self.server_logs)}.log"
        self.server_logs.append(log)
        with log.open("wb") as out:
            self.server = subprocess.Popen(
                shlex.split(self.subst(exec_start)),
                stdout=out, stderr=subprocess.STDOUT, env=self.env(self.unit_env()),
                cwd="/",
            )  # fmt: skip
        wait(lambda: self.health() is not None, 60, "/healthz over TLS", self.why)
        if self.unit_env().get("LAPAK_LOG_FORMAT") == "json":
            lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
            assert lines and all(json.loads(ln).get("ts") for ln in lines), log.read_text()

    def stop(self) -> None:
        assert self.server is not None, "stopped while not running"
        self.server.send_signal(signal.SIGTERM)
        code = self.server.wait(timeout=60)
        assert code == 0, f"server exited {code} on SIGTERM: {self.why()}"
        self.server = None

    def restart(self) -> None:
        """Stop and start; the booths running here are back before the next step."""
        booths = self.booth_connections()
        self.stop()
        self.start()
        wait(lambda: self.booth_connections() >= booths, 60, f"{booths} booth(s) back")

    def backup(self) -> None:
        """What lapak-backup.service runs, as systemd would unescape it."""
        settings = unit_settings(BACKUP_UNIT.read_text())
        for key, command in settings:
            if key not in ("ExecStart", "ExecStartPost"):
                continue
            argv = shlex.split(self.subst(command.replace("%%", "%").replace("$$", "$")))
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=120, env=self.env(), cwd="/"
            )
            assert proc.returncode == 0, f"{BACKUP_UNIT.name} {key} failed: {proc.stderr}"
        assert list((self.root / "var/backups/lapak").glob("events-*.sqlite3")), "no backup"

    def reload(self) -> None:
        """SIGHUP: the new certificate is served, and no connection drops."""
        assert self.server is not None
        self.trusted_before = self.served_certificate()  # the files are new, the server not yet
        before = self.health()
        assert before is not None, "no /healthz before the reload"
        self.server.send_signal(signal.SIGHUP)
        wanted = (self.root / "etc/lapak/tls/cert.pem").read_text()
        wait(lambda: pem_equal(self.served_certificate(), wanted), 20, "the renewed certificate")
        after = self.health()
        assert after is not None and after["connections"] == before["connections"], (
            f"connections changed across reload: {before['connections']} -> {after}"
        )

    def why(self) -> str:
        logs = "\n".join(p.read_text()[-2000:] for p in self.server_logs if p.exists())
        code = self.server.poll() if self.server else None
        return f"server exit code {code}; its log:\n{logs}"

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.root / "etc/lapak/tls/cert.pem")
        if self.trusted_before:
            context.load_verify_locations(cadata=self.trusted_before)
        return context

    def health(self) -> dict[str, Any] | None:
        if self.server is not None and self.server.poll() is not None:
            raise AssertionError(f"the server exited: {self.why()}")
        url = f"https://localhost:{self.port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5, context=self.context()) as r:
                return dict(json.loads(r.read()))
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return None

    def served_certificate(self) -> str:
        try:
            return ssl.get_server_certificate(("localhost", self.port), timeout=5)
        except OSError:
            return ""

    def booth_connections(self) -> int:
        health = self.health()
        return int(health["connections"].get("booth", 0)) if health else 0

    def in_background(self, block: Block) -> None:
        before = self.booth_connections()
        log = self.root / f"background-{len(self.background)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["bash", "-euo", "pipefail", "-c", "exec " + self.subst(block.body)],
                stdout=out, stderr=subprocess.STDOUT, env=self.env(),
                cwd=self.root / "root", start_new_session=True,
            )  # fmt: skip
        self.background.append(proc)
        wait(
            lambda: self.booth_connections() > before, 90, f"{block.where}'s booth on /healthz",
            lambda: log.read_text()[-3000:],
        )  # fmt: skip

    def in_terminal(self, block: Block, text: str) -> None:
        """A terminal program: in a tmux pane until ``text`` shows, then q, then exit 0."""
        tmux = ["tmux", "-S", str(self.root / "tmux.sock")]
        name = f"line{block.line}"
        command = f"{self.subst(block.body).rstrip()}\necho EXITED $?; sleep 600"
        env = self.env({"TERM": "xterm-256color"})
        env.pop("TMUX", None)  # a private tmux server, also when the tests run inside tmux
        subprocess.run(
            [*tmux, "new-session", "-d", "-s", name, "-x", "120", "-y", "40", "bash", "-c",
             command],
            check=True, env=env, cwd=self.root / "root", timeout=30,
        )  # fmt: skip

        def screen() -> str:
            return subprocess.run(
                [*tmux, "capture-pane", "-p", "-t", name],
                capture_output=True, text=True, env=env, timeout=30,
            ).stdout  # fmt: skip

        try:
            wait(lambda: text in screen(), 90, f"{text!r} on {block.where}'s screen", screen)
            keys = tag_value(block, "keys", "q")
            for key in keys:
                subprocess.run([*tmux, "send-keys", "-t", name, key], check=True, env=env)
                time.sleep(0.5)  # a person's pace: the next key goes to the screen this one opens
            wait(lambda: "EXITED" in screen(), 30, f"{block.where} to quit on {keys}", screen)
            assert "EXITED 0" in screen(), f"{block.where} did not exit 0:\n{screen()}"
        finally:
            subprocess.run([*tmux, "kill-session", "-t", name], env=env, capture_output=True)

    def close(self) -> None:
        sock = self.root / "tmux.sock"
        if sock.exists():
            subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True)
        for proc in [*self.background, *([self.server] if self.server else [])]:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def pem_equal(a: str, b: str) -> bool:
    return bool(a) and ssl.PEM_cert_to_DER_cert(a) == ssl.PEM_cert_to_DER_cert(b)


def wait(
    ok: Callable[[], bool], timeout: float, what: str, why: Callable[[], str] = lambda: ""
) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f}s for {what}\n{why()}")
        time.sleep(0.1)
