"""One error hierarchy for the server core: every refusal is a ``LapakError`` with the code
the client gets, so the hub turns any of them into one ``error`` message."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # protocol.py subclasses LapakError, so this module cannot import it
    from lapak.signaling.protocol import ErrorCode


class LapakError(Exception):
    """A request refused, with the stable ``code`` and a readable ``message``."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TokenError(LapakError):
    """A token that cannot be accepted (malformed, forged, expired, wrong claims)."""


class AccessDenied(LapakError):
    """The actor may not do this, or not to this desk, booth, visit or office."""


class DomainError(LapakError):
    """A command the state does not allow (no such visit, step already decided, ...)."""
