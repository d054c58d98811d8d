"""Build the wheel once per test run and install it into clean environments.

Shared by tests/test_wheel.py and tests/test_deploy.py: both install what an operator would
get, not the editable checkout the rest of the suite runs against.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What a setuptools build says when the project's packaging is out of date or ambiguous.
BUILD_WARNING = re.compile(r"\b\w*(Deprecation|BuildBackend|Setuptools)\w*Warning\b")


@dataclass(frozen=True)
class Build:
    wheel: Path
    output: str  # everything pip and the build backend printed


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this test run's venv, Python and Lapak settings (a fresh
    shell's)."""
    skip = ("PYTHON", "VIRTUAL_ENV", "LAPAK_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env.update(extra)
    return env


def copy_checkout(dest: Path) -> None:
    """The checkout as an operator copies it: the files git knows (tracked or new, not
    ignored), as they are in the working tree. Never build in the repository itself: pip
    builds in place, and setuptools packs whatever an earlier build left in build/lib (a
    module deleted since would ship again)."""
    for name in checkout_files():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)


def checkout_files() -> list[str]:
    """Paths (relative to the repository) of the files git knows that exist."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True, cwd=ROOT,
    ).stdout.decode()  # fmt: skip
    return [name for name in filter(None, listed.split("\0")) if (ROOT / name).is_file()]


@functools.cache
def build_wheel() -> Build:
    """``pip wheel`` of a clean copy of the checkout (build isolation, as a user's build);
    once per run."""
    work = Path(tempfile.mkdtemp(prefix="lapak-wheel-"))
    atexit.register(shutil.rmtree, work, True)
    out, source = work / "dist", work / "lapak"
    copy_checkout(source)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=300, env=clean_env(),
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"pip wheel failed:\n{output[-4000:]}"
    wheels = sorted(out.glob("lapak-*.whl"))
    assert len(wheels) == 1, f"expected one lapak wheel in {out}, found {wheels}"
    return Build(wheels[0], output)


def make_venv(where: Path) -> Path:
    """A new venv without system site-packages; returns its bin directory."""
    subprocess.run(
        [sys.executable, "-m", "venv", str(where)], check=True, timeout=120, env=clean_env()
    )
    return where / "bin"


def pip_install(bin_dir: Path, *what: str) -> None:
    """Install into a venv from the package index pip is configured with (never the checkout)."""
    proc = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", *what],
        capture_output=True, text=True, timeout=600, env=clean_env(), cwd=bin_dir,
    )  # fmt: skip
    assert proc.returncode == 0, f"pip install {what} failed:\n{proc.stderr[-4000:]}"


def site_packages(bin_dir: Path) -> Path:
    out = subprocess.run(
        [str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True, timeout=60, env=clean_env(),
    )  # fmt: skip
    return Path(out.stdout.strip())
