"""Operator errors: what an exception means to the person at the terminal, as one line and a
documented exit code (cli/exit_codes.py). Anything not listed here is a bug and raises."""

from __future__ import annotations

import socket
import ssl

from lapak.cli.exit_codes import (
    EXIT_FAILED,
    EXIT_NO_FILE,
    EXIT_REPLACED,
    EXIT_TLS,
    EXIT_TOKEN,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)


class CliError(Exception):
    """An operator error: one line on stderr (one per problem when there are several), and
    ``code`` as the exit status."""

    def __init__(self, message: str | list[str], code: int = EXIT_USAGE) -> None:
        self.problems = [message] if isinstance(message, str) else list(message)
        super().__init__("; ".join(self.problems))
        self.code = code


ENDED_CODES = {"replaced": EXIT_REPLACED, "refused": EXIT_TOKEN}
"""How a session ended for good (signaling.client's reasons, a console's ``app.ended``) ->
the exit status."""


def refused_code(code: str) -> int:
    """The exit status for a server's refusal: a code that ends the session for good
    (signaling.client decides which, and how) or ``forbidden`` (this token cannot do this)."""
    from lapak.signaling.client import final_reason

    reason = "refused" if code == "forbidden" else final_reason(error_code=code)
    return ENDED_CODES.get(reason or "", EXIT_FAILED)


def operator_error(exc: BaseException, command: str) -> CliError | None:
    """What an exception means to an operator, or None when it is a bug (left to raise)."""
    from lapak.signaling.client import RequestError

    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return CliError(
            f"the server's certificate is not trusted ({exc.verify_message}); "
            "pass its CA with --ca-file",
            EXIT_TLS,
        )
    if isinstance(exc, ssl.SSLError):
        if command == "signal":  # our own --tls-cert/--tls-key, not a server we distrust
            return CliError(f"cannot use --tls-cert/--tls-key: {exc}", EXIT_USAGE)
        return CliError(f"TLS failed: {exc}", EXIT_TLS)
    if isinstance(exc, RequestError):
        return CliError(f"the server refused: {exc.code}: {exc.message}", refused_code(exc.code))
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
        name = exc.filename or "a file"
        return CliError(f"cannot read {name}: {exc.strerror}", EXIT_NO_FILE)
    if command != "signal" and isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror)):
        return CliError(f"cannot reach the server: {exc}", EXIT_UNREACHABLE)
    if isinstance(exc, OSError) and exc.errno is not None:  # e.g. the port is taken
        return CliError(str(exc), EXIT_FAILED)
    return None
