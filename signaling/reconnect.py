"""The client's reconnect policy and the rules that end a session for good.

Pure (no sockets, no sleeping; randomness injected) so that every client — console,
supervisor view, booth agent, headless desk — reconnects the same way and the rules are
unit-tested without a server (tests/test_client_policy.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

EndReason: TypeAlias = Literal["refused", "replaced"]

FINAL_CLOSE_CODES: dict[int, EndReason] = {4001: "refused", 4002: "replaced"}
"""Close codes after which reconnecting with the same token cannot help."""

FINAL_ERROR_CODES: dict[str, EndReason] = {
    "bad_token": "refused",
    "bad_signature": "refused",
    "token_expired": "refused",
    "wrong_office": "refused",
    "replaced": "replaced",
}
"""Error codes that end the session for good (the server closes after them)."""


@dataclass
class Backoff:
    """How long to wait before the next connection attempt: doubling from ``first`` up to
    ``cap``, each wait spread by ±``jitter`` (a fraction) so that a room of clients dropped
    together does not come back in lockstep. Pure: ``random`` is injected, nothing sleeps."""

    first: float = 0.25
    cap: float = 5.0
    factor: float = 2.0
    jitter: float = 0.1
    random: Callable[[], float] = field(default=random.random, repr=False)
    attempts: int = 0
    between_s: float = 1.0  # a cluster node said the office is between nodes: ask it again

    def next_delay(self) -> float:
        """The wait before the next attempt (counts it)."""
        base = min(self.cap, self.first * self.factor**self.attempts)
        self.attempts += 1
        return max(0.0, min(self.cap, self._spread(base)))

    def between_nodes_delay(self) -> float:
        """The wait after a node answered that no node owns the office yet (a failover under
        way: ``moved`` to itself). The node is up and the office is due within a lease, so
        the client asks again shortly, not after its growing back-off, which would round
        the failover up to its next step (BENCHMARKS.md, the cluster's failover). Not an
        attempt: the back-off does not grow."""
        return max(0.0, self._spread(self.between_s))

    def _spread(self, base: float) -> float:
        """``base`` moved by up to ±``jitter`` of itself, drawn uniformly."""
        return base + base * self.jitter * (2.0 * self.random() - 1.0)

    def reset(self) -> None:
        """A connection succeeded: the next loss starts from ``first`` again."""
        self.attempts = 0


def final_reason(
    *, error_code: str | None = None, close_code: int | None = None
) -> EndReason | None:
    """Whether this error or close code ends the session for good, and how."""
    if error_code is not None and error_code in FINAL_ERROR_CODES:
        return FINAL_ERROR_CODES[error_code]
    if close_code is not None:
        return FINAL_CLOSE_CODES.get(close_code)
    return None


class RequestError(Exception):
    """The server refused a request; ``code`` is the stable error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
