"""``lapak signal --check-config``: everything the server would read at start, checked
without binding a port, creating the data directory or writing a key."""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys
from pathlib import Path

from lapak.cli.errors import CliError
from lapak.cli.exit_codes import EXIT_FAILED, EXIT_OK
from lapak.signaling.config import Launch, ServerConfig

log = logging.getLogger("lapak.cli")

Notes = list[tuple[str, Path]]
"""Files that do not exist yet and that the server creates at start: (which, where)."""


def check(args: argparse.Namespace, env: os._Environ[str] | dict[str, str]) -> int:
    """Exit 0 and one ``configuration ok`` line on stdout; else CliError (exit 1) with one
    line per problem. Files the server will create are logged (``event=created_at_start``)."""
    from lapak.cli.signal import settings

    try:
        config = settings(args, env)
    except CliError as exc:
        raise CliError(exc.problems, EXIT_FAILED) from None
    problems, notes = check_files(config.launch)
    from lapak.signaling.config import ConfigError
    from lapak.signaling.ice import load_ice

    try:
        load_ice(config.ice)
    except ConfigError as exc:
        problems += exc.problems
    for what, path in notes:
        log.info("event=created_at_start what=%s path=%s", what, path)
    if problems:
        raise CliError(problems, EXIT_FAILED)
    sys.stdout.write(f"configuration ok: {summary(config)}\n")
    return EXIT_OK


def summary(config: ServerConfig) -> str:
    launch = config.launch
    offices = f"offices {','.join(config.offices)}" if config.offices else "any office"
    tls = "tls on" if launch.tls_cert else "tls off"
    return f"listen {launch.host}:{launch.port}, data {launch.data_dir}, {offices}, {tls}"


def check_files(launch: Launch) -> tuple[list[str], Notes]:
    """Problems and notes about the files the server reads: keys, certificate, data dir."""
    problems: list[str] = []
    notes: Notes = []
    problems += _secret_file(launch, notes)
    problems += _tls(launch)
    problems += _signing_key(launch, notes)
    problems += _data_dir(launch.data_dir, notes)
    return problems, notes


def _secret_file(launch: Launch, notes: Notes) -> list[str]:
    from lapak.cli.keys import read_keys

    path = launch.secret_file
    if path is None:
        return ["no secret file: pass --secret-file, set LAPAK_SECRET_FILE or [server] secret_file"]
    if not path.exists():
        notes.append(("secret_file", path))
        return []
    try:
        read_keys(path)
    except CliError as exc:
        return exc.problems
    return []


def _tls(launch: Launch) -> list[str]:
    from lapak.cli.signal import tls_files

    try:
        certs = tls_files(launch)
        if certs is not None:
            certs.context()
    except CliError as exc:
        return exc.problems
    except (OSError, ssl.SSLError) as exc:
        return [f"cannot use --tls-cert {launch.tls_cert} / --tls-key {launch.tls_key}: {exc}"]
    return []


def _signing_key(launch: Launch, notes: Notes) -> list[str]:
    from lapak.cli.signal import signing_key_path
    from lapak.signaling import signing

    path = signing_key_path(launch)
    if path is None:
        return []
    data_dir = launch.data_dir.resolve()
    if path.resolve() == data_dir or data_dir in path.resolve().parents:
        return [f"signing key {path} is inside the data directory {launch.data_dir}"]
    if not path.exists():
        notes.append(("signing_key", path))
        return []
    try:
        signing.load(path)
    except signing.SigningKeyError as exc:
        return [str(exc)]
    return []


def _data_dir(path: Path, notes: Notes) -> list[str]:
    if not path.exists():
        notes.append(("data_dir", path))
        return []
    if not path.is_dir():
        return [f"data directory {path} is not a directory"]
    if not os.access(path, os.W_OK | os.X_OK):
        return [f"data directory {path} is not writable by this user"]
    return []
