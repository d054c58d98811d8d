"""The wheel an operator installs: builds without warnings, installs into a clean venv (and with
pipx), runs, and ships only the ``lapak`` namespace with its data files and licence."""

from __future__ import annotations

import email.parser
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
from install_support import (
    BUILD_WARNING,
    ROOT,
    build_wheel,
    checkout_files,
    clean_env,
    make_venv,
    pip_install,
    site_packages,
)

pytestmark = pytest.mark.slow  # installs the dependencies into fresh environments

SUBPACKAGES = ("signaling", "media", "console", "cli")


def run(*argv: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=120,
        env=env or clean_env(), cwd="/",
    )  # fmt: skip


def test_build_prints_no_setuptools_warning() -> None:
    warnings = [ln for ln in build_wheel().output.splitlines() if BUILD_WARNING.search(ln)]
    assert not warnings, "the wheel build warned (fix pyproject.toml):\n" + "\n".join(warnings)


def test_wheel_metadata_declares_the_licence_it_ships() -> None:
    with zipfile.ZipFile(build_wheel().wheel) as whl:
        names = whl.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.parser.HeaderParser().parsestr(whl.read(meta_name).decode())
        licence_files = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert licence_files, f"no LICENSE in the wheel's dist-info: {names}"
        shipped = whl.read(licence_files[0]).decode()
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["License-File"] == "LICENSE"
    assert shipped == (ROOT / "LICENSE").read_text()
    assert "Apache License" in shipped and "Version 2.0, January 2004" in shipped, (
        "LICENSE is not the Apache 2.0 text that License-Expression declares"
    )


def test_wheel_holds_only_the_lapak_namespace() -> None:
    with zipfile.ZipFile(build_wheel().wheel) as whl:
        tops = {n.split("/", 1)[0] for n in whl.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"lapak"}, tops


def test_wheel_ships_every_module_of_the_checkout_and_no_other() -> None:
    with zipfile.ZipFile(build_wheel().wheel) as whl:
        shipped = {n.removeprefix("lapak/") for n in whl.namelist() if n.endswith(".py")}
    source = {n for n in checkout_files() if n.endswith(".py") and n.split("/")[0] in SUBPACKAGES}
    assert shipped == source, (
        f"missing: {source - shipped}; not in the checkout: {shipped - source}"
    )


def test_wheel_installs_in_a_clean_venv_and_runs(tmp_path: Path) -> None:
    bin_dir = make_venv(tmp_path / "venv")
    pip_install(bin_dir, str(build_wheel().wheel))

    version = run(bin_dir / "lapak", "--version")
    assert version.returncode == 0 and version.stdout.startswith("lapak "), version
    assert "unknown" not in version.stdout, f"installed metadata not found: {version.stdout}"
    help_ = run(bin_dir / "lapak", "signal", "--help")
    assert help_.returncode == 0 and "--secret-file" in help_.stdout, help_

    site = site_packages(bin_dir)
    for name in SUBPACKAGES:
        assert (site / "lapak" / name / "__init__.py").is_file(), f"lapak/{name} not installed"
        assert not (site / name).exists(), f"a top-level {name!r} leaked into site-packages"
    assert not (site / "lapak" / "__init__.py").exists(), "lapak must stay a namespace package"

    kiosk = site / "lapak" / "signaling" / "kiosk"
    shipped = {p.name for p in (ROOT / "signaling" / "kiosk").iterdir() if p.is_file()}
    assert shipped and {p.name for p in kiosk.iterdir()} >= shipped, "kiosk files missing"
    assert (site / "lapak" / "signaling" / "workflows.toml").is_file()
    assert (site / "lapak" / "signaling" / "simulation" / "office.toml").is_file()
    assert list((site / "lapak" / "console").glob("*.tcss")), "console stylesheet missing"

    # The installed server finds its data files: the kiosk page and the shipped workflows.
    probe = run(
        bin_dir / "python", "-c",
        "from importlib.resources import files; "
        "assert files('lapak.signaling').joinpath('kiosk/index.html').is_file(); "
        "assert files('lapak.console').joinpath('console.tcss').is_file()",
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr


def test_wheel_installs_with_pipx(tmp_path: Path) -> None:
    tool = make_venv(tmp_path / "pipx-tool")
    try:
        pip_install(tool, "pipx")
    except AssertionError as exc:  # pragma: no cover - depends on the package index
        if os.environ.get("CI"):
            raise
        pytest.skip(f"pipx is not installable from the configured index: {exc}")
    home, bins = tmp_path / "pipx-home", tmp_path / "pipx-bin"
    env = clean_env(PIPX_HOME=str(home), PIPX_BIN_DIR=str(bins), PIPX_MAN_DIR=str(tmp_path / "m"))
    proc = subprocess.run(
        [str(tool / "pipx"), "install", str(build_wheel().wheel)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, f"pipx install failed:\n{proc.stdout}\n{proc.stderr}"
    version = run(bins / "lapak", "--version", env=env)
    assert version.returncode == 0 and version.stdout.startswith("lapak "), version
