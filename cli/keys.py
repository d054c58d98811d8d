"""The token key ring named by ``--secret-file``, read (or created) as the CLI reports it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from lapak.cli.errors import CliError
from lapak.cli.exit_codes import EXIT_NO_FILE

if TYPE_CHECKING:
    from lapak.signaling.tokens import KeyRing

log = logging.getLogger("lapak.cli")


def read_keys(path: Path) -> KeyRing:
    """The key ring in ``--secret-file``; CliError when it is missing or holds no key."""
    from lapak.signaling.tokens import KeyRing

    try:
        return KeyRing.from_file(path)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise CliError(f"cannot read --secret-file {path}: {exc.strerror}", EXIT_NO_FILE) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CliError(f"--secret-file {path}: {exc}", EXIT_NO_FILE) from None


def load_or_create_keys(path: Path) -> KeyRing:
    """The server's key ring; a new one (0600) when the file does not exist yet."""
    from lapak.signaling.tokens import KeyRing

    if not path.exists():
        keys = KeyRing.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        keys.write(path)
        log.info("event=secret_created path=%s", path)
        return keys
    return read_keys(path)
