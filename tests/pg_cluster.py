"""A throwaway PostgreSQL cluster for tests: ``initdb`` in a temporary directory, run as an
unprivileged user (PostgreSQL refuses to run as root, and CI runs as root), listening on a
free loopback port and a unix socket in that directory; stopped and removed afterwards.

Binaries come from PATH, else Debian's /usr/lib/postgresql/*/bin. Without them the tests
skip saying how to install PostgreSQL; in CI (``CI`` set) that is a failure instead.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests_support import free_port

UNPRIVILEGED = ("lapakpg", "postgres", "nobody")  # a system user to run the cluster as, when root


def pg_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: PATH first, then the newest Debian version."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


def need_postgresql() -> Path:
    """The binaries' directory, else skip (or fail in CI) saying how to get them."""
    found = pg_bin_dir()
    if found is None:
        reason = "PostgreSQL is not installed: `apt install postgresql` (initdb, pg_ctl)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the PostgreSQL tests (.ci/run installs it)")
        pytest.skip(reason)
    return found


@dataclass
class Cluster:
    bin_dir: Path
    root: Path  # the temporary directory: data/ and the unix socket
    port: int
    user: str | None  # whom the server runs as (None: ourselves)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://lapak@127.0.0.1:{self.port}/{database}"

    def _as_user(self, argv: list[str]) -> list[str]:
        if self.user is None:
            return argv
        return ["runuser", "-u", self.user, "--", *argv]

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._as_user([str(self.bin_dir / argv[0]), *argv[1:]]),
            capture_output=True, text=True, timeout=120, cwd=self.root,
        )  # fmt: skip

    def start(self) -> None:
        init = self.run(
            "initdb", "-D", str(self.data), "-U", "lapak", "-A", "trust", "-E", "UTF8",
            "--no-sync", "--no-instructions",
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr or init.stdout}")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c max_connections=100 -c shared_buffers=16MB"
        )
        started = self.run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip
        if started.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pg_ctl start failed: {started.stderr}\n{log}")

    def create_database(self) -> str:
        """A fresh database on this cluster; its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        made = subprocess.run(
            [str(self.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "lapak", name],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if made.returncode != 0:
            raise RuntimeError(f"createdb failed: {made.stderr}")
        return self.url(name)

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _unprivileged_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in UNPRIVILEGED:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and no unprivileged user (nobody) to run PostgreSQL")


def start_cluster() -> Cluster:
    """A running throwaway cluster (the caller stops it)."""
    bin_dir = need_postgresql()
    user = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="lapak-pg-"))  # /tmp: reachable by that user
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(bin_dir, root, free_port(), user)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One throwaway cluster for the session (tests take a fresh database each)."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    """The URL of a fresh, empty database on the session's cluster."""
    return pg_cluster.create_database()
