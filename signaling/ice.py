"""ICE servers handed to clients in ``welcome``, with short-lived TURN credentials.

Media is peer to peer; a booth in another building or behind NAT reaches its officer through
STUN/TURN. TURN servers are not given a shared password: each client gets credentials made
for it at ``hello`` by the TURN REST scheme that coturn's ``use-auth-secret`` implements
(username ``"<expiry unix time>:<sub>"``, credential ``base64(HMAC-SHA1(secret, username))``).
coturn recomputes the HMAC with its ``static-auth-secret`` and refuses an expired username,
so a credential copied off a booth stops working after ``turn_ttl_s``. Pure: the shell reads
the secret file (:func:`load_ice`) and the hub calls :meth:`IcePolicy.for_client`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from lapak.signaling.config import ConfigError, IceConfig, IceServerSpec
from lapak.signaling.messages import IceServer

__all__ = ["IcePolicy", "is_turn", "load_ice", "turn_credential", "turn_username"]


def turn_username(sub: str, now: float, ttl_s: float) -> str:
    """``"<expiry>:<sub>"``: the expiry (Unix seconds, whole) is what coturn checks."""
    return f"{int(now + ttl_s)}:{sub}"


def turn_credential(secret: str, username: str) -> str:
    """``base64(HMAC-SHA1(secret, username))``: the password coturn expects for ``username``."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def is_turn(url: str) -> bool:
    return url.startswith(("turn:", "turns:"))


@dataclass(frozen=True)
class IcePolicy:
    """The configured servers and, when a TURN secret is set, how to make credentials."""

    servers: tuple[IceServerSpec, ...] = ()
    turn_secret: str | None = None
    turn_ttl_s: float = 3600.0

    def for_client(self, sub: str, now: float) -> list[IceServer]:
        """The ``ice_servers`` of one client's welcome. A server with credentials in the
        config keeps them; a TURN server without gets fresh ones when a secret is set."""
        out: list[IceServer] = []
        for spec in self.servers:
            urls = list(spec.urls)
            if spec.username is not None and spec.credential is not None:
                out.append(IceServer(urls=urls, username=spec.username, credential=spec.credential))
            elif self.turn_secret is not None and any(is_turn(u) for u in urls):
                username = turn_username(sub, now, self.turn_ttl_s)
                credential = turn_credential(self.turn_secret, username)
                out.append(IceServer(urls=urls, username=username, credential=credential))
            else:
                out.append(IceServer(urls=urls))
        return out


def load_ice(config: IceConfig) -> IcePolicy:
    """The policy of ``[ice]``, the TURN secret read from its file (the shell calls this;
    ConfigError when the file cannot be read or is empty)."""
    secret: str | None = None
    if config.turn_secret_file is not None:
        path = Path(config.turn_secret_file)
        try:
            secret = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"[ice] turn_secret_file: {path}: {exc.strerror or exc}") from None
        if not secret:
            raise ConfigError(f"[ice] turn_secret_file: {path} is empty")
    return IcePolicy(tuple(config.servers), secret, config.turn_ttl_s)
