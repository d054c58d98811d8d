"""Session ids that any node of a cluster can check: ``<nonce>.<mac>``, the MAC an HMAC of
the place (role, office, booth or desk) and the nonce under the servers' key ring (the
secret file every node shares, the one that signs tokens).

Why self-verifying rather than a ``lapak_sessions`` table: a session must survive its node
dying at any instant. A row written at hello is either on the hello's commit path (an extra
write in the transaction of a booth's hello, which otherwise writes nothing) or behind it
(a node killed between the welcome and the write loses the session). A MAC needs no write
and no read: the node that takes an office over knows every session issued for it, as of
the moment it was issued. What a table would add — which of two sessions of a place is the
newer — the node that owns the place knows in memory, and the place is bound to the token's
identity, so an older session of one's own place is no gain to anybody. The window in which
an unknown session is accepted is the grace period after the node took the office over
(start or adopt), and only while the place still holds something (sessions.py). Pure:
no I/O, no clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Sequence

from lapak.signaling.permissions import Place

MAC_BYTES = 16  # 22 characters: nonce (16) + "." + MAC stays under the hello's 64
_DOMAIN = b"lapak-session-v1"  # the token keys sign tokens; derived keys sign sessions


def _mac(key: bytes, place: Place, nonce: str) -> str:
    derived = hmac.new(key, _DOMAIN, hashlib.sha256).digest()
    kind, office, ident = place
    text = "\x1f".join((kind, office, ident, nonce)).encode()
    digest = hmac.new(derived, text, hashlib.sha256).digest()[:MAC_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class SessionSeal:
    """Issues and checks session ids bound to a place. ``keys`` is read at each call, so a
    key ring re-read on SIGHUP applies at once (``keys[0]`` signs, any key checks)."""

    def __init__(self, keys: Callable[[], Sequence[bytes]], nonce: Callable[[], str]) -> None:
        self._keys = keys
        self._nonce = nonce

    def issue(self, place: Place) -> str:
        nonce = self._nonce()
        return f"{nonce}.{_mac(self._keys()[0], place, nonce)}"

    def check(self, place: Place, session: str) -> bool:
        """Was ``session`` issued for ``place`` by a node holding one of our keys?"""
        nonce, dot, mac = session.rpartition(".")
        if not dot or not nonce or not mac:
            return False
        return any(hmac.compare_digest(_mac(k, place, nonce), mac) for k in self._keys())
