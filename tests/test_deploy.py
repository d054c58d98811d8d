"""The operator kit: the systemd units verify, and docs/deploy.md is followed step by step.

Each fenced block of docs/deploy.md carries a tag (the page says what they mean):
``deploy-test`` blocks run here in a temporary root (paths, host name and port substituted;
``background`` ones keep running, ``tty=TEXT keys=KEYS`` ones run in a tmux pane until TEXT
shows, then get KEYS); ``deploy-check`` blocks (root, systemd, another machine) are checked
for shell syntax, and their action word (start, stop, restart, reload, backup) is done to a
server the test runs from the unit's own ExecStart= and Environment= lines; ``deploy-file
PATH`` blocks are written to PATH. A block without a tag fails the test, so every command on
the page is exercised.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from deploy_page import (
    ACTIONS,
    BACKUP_UNIT,
    BLOCKS,
    EXAMPLE_CONFIG,
    OUTPUT_LANGS,
    ROOTED,
    TOOLS,
    UNIT,
    UNITS,
    Block,
    Walk,
    tty_text,
    unit_settings,
)
from install_support import copy_checkout
from tests_support import free_port


def skip_or_fail(reason: str) -> None:
    """Skip where this machine cannot run a check; in CI (.ci/run sets CI) that is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run this: see .ci/run)")
    pytest.skip(reason)


# -- the page itself ------------------------------------------------------------------------


def test_every_block_is_run_checked_or_written() -> None:
    assert len(BLOCKS) > 10, "docs/deploy.md lost its steps"
    for block in BLOCKS:
        if block.lang in OUTPUT_LANGS:
            assert block.kind is None, f"{block.where}: an output sample runs nothing"
            continue
        assert block.kind in ("deploy-test", "deploy-check", "deploy-file"), (
            f"{block.where}: ```{block.lang} block without deploy-test, deploy-check or "
            "deploy-file: every command on the page must be exercised"
        )
        if block.kind == "deploy-file":
            assert len(block.tags) == 2 and block.tags[1].startswith("/"), block.where
        else:
            assert block.lang == "sh", f"{block.where}: commands are ```sh blocks"
            extra = [t for t in block.tags if t != block.kind]
            if block.kind == "deploy-check":
                ok = all(t in ACTIONS for t in extra)
            else:
                ok = extra in ([], ["background"]) or (
                    tty_text(block) != "" and all(t.startswith(("tty=", "keys=")) for t in extra)
                )
            assert ok, f"{block.where}: unknown tag in {extra}"


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.lang == "sh"], ids=lambda b: f"line{b.line}"
)
def test_command_block_is_valid_shell(block: Block) -> None:
    proc = subprocess.run(["bash", "-n"], input=block.body, capture_output=True, text=True)
    assert proc.returncode == 0, f"{block.where}: {proc.stderr}"


def test_the_documented_server_toml_is_deploy_server_toml() -> None:
    documented = [b for b in BLOCKS if b.tags[1:] == ("/etc/lapak/server.toml",)]
    assert len(documented) == 1, "docs/deploy.md shows /etc/lapak/server.toml once"
    assert documented[0].body == EXAMPLE_CONFIG.read_text(), (
        "docs/deploy.md's server.toml and deploy/server.toml differ: keep them one file"
    )


# -- the systemd unit -----------------------------------------------------------------------


def test_unit_runs_a_sandboxed_restartable_service_as_its_own_user() -> None:
    settings = unit_settings(UNIT.read_text())
    one = dict(settings)
    assert one.get("User") == "lapak" or one.get("DynamicUser") == "yes"
    assert one["StateDirectory"] == "lapak"
    assert one["ConfigurationDirectory"] == "lapak"
    assert one["Restart"] == "on-failure"
    assert one["ExecStart"].split()[1:4] == ["signal", "--config", "/etc/lapak/server.toml"]
    assert "-HUP $MAINPID" in one["ExecReload"]
    assert int(one["LimitNOFILE"]) >= 4096
    for key, value in {
        "ProtectSystem": "strict", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
        "ProtectHome": "yes", "CapabilityBoundingSet": "",
    }.items():  # fmt: skip
        assert one.get(key) == value, f"{key}={value} expected, got {one.get(key)!r}"
    assert set(one["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}


def test_the_recorder_unit_is_sandboxed_like_the_server_and_reads_its_token_from_a_file() -> None:
    recorder = unit_settings((UNIT.parent / "lapak-recorder.service").read_text())
    one = dict(recorder)
    server = dict(unit_settings(UNIT.read_text()))
    assert one["User"] == "lapak-recorder" != server["User"], "not the server's user"
    assert one["StateDirectory"] == "lapak-recorder" and one["StateDirectoryMode"] == "0700"
    assert one["LoadCredential"] == "recorder.token:/etc/lapak/recorder.token"
    command = one["ExecStart"].split()
    assert command[1] == "recorder" and "--token" not in command, "never a token on argv"
    assert command[command.index("--token-file") + 1] == "%d/recorder.token"
    assert command[command.index("--dir") + 1] == "/var/lib/lapak-recorder"
    sandbox = (
        "NoNewPrivileges", "CapabilityBoundingSet", "ProtectSystem", "ProtectHome", "PrivateTmp",
        "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups",
        "RestrictAddressFamilies", "RestrictNamespaces", "SystemCallFilter", "UMask",
    )  # fmt: skip
    for key in sandbox:
        assert one.get(key) == server.get(key), f"{key}: {one.get(key)!r} != {server.get(key)!r}"
    assert [v for k, v in recorder if k == "SystemCallFilter"] == [
        v for k, v in unit_settings(UNIT.read_text()) if k == "SystemCallFilter"
    ]
    assert one["Restart"] == "on-failure" and "2" in one["RestartPreventExitStatus"].split()


def test_a_bad_config_exits_2_which_the_unit_does_not_restart(tmp_path: Path) -> None:
    """RestartPreventExitStatus=2 relies on this: a restart loop cannot fix a typo."""
    assert dict(unit_settings(UNIT.read_text()))["RestartPreventExitStatus"] == "2"
    bad = tmp_path / "server.toml"
    bad.write_text('[server]\nportt = 8765\nsecret_file = "secret"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "lapak.cli", "signal", "--config", str(bad)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2 and "portt" in proc.stderr, (proc.returncode, proc.stderr)


def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        skip_or_fail("systemd-analyze not installed (Debian's systemd package)")
    assert tool is not None
    return tool


def runnable_units(where: Path, lapak: Path) -> list[Path]:
    """deploy/'s units with their ``lapak`` pointed at a real one (verify checks that a
    command exists) and the drop-ins docs/deploy.md writes, under a private unit path."""
    units = []
    for source in UNITS:
        unit = where / source.name
        unit.write_text(source.read_text().replace("/usr/local/bin/lapak", str(lapak)))
        units.append(unit)
    for block in BLOCKS:
        target = block.tags[1] if block.kind == "deploy-file" else ""
        if target.startswith("/etc/systemd/system/") and ".d/" in target:
            dropin = where / Path(target).parent.name / Path(target).name
            dropin.parent.mkdir(exist_ok=True)
            dropin.write_text(block.body)
    return units


def test_deploy_has_the_server_unit_and_the_backup_timer() -> None:
    names = [u.name for u in UNITS]
    assert names == [
        "lapak-backup.service", "lapak-backup.timer", "lapak-recorder.service",
        "lapak-signal.service",
    ]  # fmt: skip
    backup = dict(unit_settings(BACKUP_UNIT.read_text()))
    assert backup["User"] == "lapak", "backups run as the server's user, never root"
    assert " backup --data-dir /var/lib/lapak " in backup["ExecStart"]


def test_systemd_analyze_verifies_the_units_and_the_documented_drop_ins(tmp_path: Path) -> None:
    tool = systemd_analyze()
    units = runnable_units(tmp_path, Path(sys.prefix) / "bin" / "lapak")
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"}
    proc = subprocess.run(
        [tool, "verify", "--man=no", *(u.name for u in units)],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip
    # verify exits 0 on an unknown key or a bad value ("ignoring"): any word about our files fails.
    said = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "lapak" in ln]
    assert proc.returncode == 0 and not said, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "name", ["lapak-signal.service", "lapak-backup.service", "lapak-recorder.service"]
)
def test_the_sandbox_scores_well(tmp_path: Path, name: str) -> None:
    tool = systemd_analyze()
    runnable_units(tmp_path, Path(sys.prefix) / "bin" / "lapak")
    proc = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", str(tmp_path / name)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    if found is None:
        pytest.skip(f"this systemd-analyze has no offline security report: {proc.stderr[:200]}")
    assert float(found.group(1)) <= 2.0, proc.stdout[-3000:]


# -- the walk-through -----------------------------------------------------------------------


@pytest.fixture
def walk(tmp_path: Path) -> Iterator[Walk]:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        skip_or_fail(f"the walk-through needs {', '.join(missing)} (apt-get install)")
    root = tmp_path / "host"
    for path in ROOTED:
        (root / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for made_by_the_page in ("etc/lapak", "var/lib/lapak", "var/backups/lapak", "opt/lapak"):
        (root / made_by_the_page).rmdir()
    copy_checkout(root / "root" / "lapak")
    w = Walk(root, free_port())
    try:
        yield w
    finally:
        w.close()


@pytest.mark.slow  # installs the wheel and its dependencies into a fresh venv
@pytest.mark.timeout(1200)
def test_docs_deploy_walkthrough(walk: Walk) -> None:
    actions: dict[str, Callable[[], None]] = {
        "start": walk.start,
        "stop": walk.stop,
        "reload": walk.reload,
        "restart": walk.restart,
        "backup": walk.backup,
    }
    for block in BLOCKS:
        if block.kind == "deploy-file":
            walk.write(block)
        elif block.kind == "deploy-test" and "background" in block.tags:
            walk.in_background(block)
        elif block.kind == "deploy-test" and tty_text(block):
            walk.in_terminal(block, tty_text(block))
        elif block.kind == "deploy-test":
            walk.run(block)
        elif block.kind == "deploy-check":
            for action in (t for t in block.tags if t in actions):
                actions[action]()

    # The JSON log line the page shows is what the server writes (same fields).
    sample = next(
        json.loads(ln) for b in BLOCKS if b.lang == "text" for ln in b.body.splitlines()
        if ln.startswith("{")
    )  # fmt: skip
    written = [
        json.loads(ln) for log in walk.server_logs for ln in log.read_text().splitlines()
        if ln.startswith("{") and json.loads(ln).get("event") == sample["event"]
    ]  # fmt: skip
    assert written, f"no {sample['event']} line in JSON from the server"
    assert list(written[0]) == list(sample), f"page shows {sample}, server wrote {written[0]}"
    assert (written[0]["logger"], written[0]["level"]) == (sample["logger"], sample["level"])

    # The last step restored the backup and started on it: the log replayed.
    health = walk.health()
    assert health is not None and health["status"] == "ok", health
    assert health["events"] > 0 and sum(health["visits"].values()) >= 1, (
        f"the restored log brought back no visit: {health}"
    )
