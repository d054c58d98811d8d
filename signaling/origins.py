"""Which browser origins may open the websocket: this server's own, and the configured ones.

Browsers send ``Origin``; only this server's own origins (its listen address, localhost,
``public_url``) and ``allowed_origins`` may open the websocket, compared as exact strings.
The Host header is never trusted: a DNS-rebinding page sends ``Host: evil:PORT`` with
``Origin: http://evil:PORT``. Machine clients send no Origin and are let through (they
authenticate with their token like everyone). The address the client reached us at also
counts (a kiosk page loaded from ``http://192.168.1.5:PORT``): a rebinding page's Origin is
a name, not our address.
"""

from __future__ import annotations

import contextlib
import socket

WILDCARDS = ("", "0.0.0.0", "::")


def origin(tls: bool, host: str, port: int) -> str:
    """The origin a browser shows for a page at ``host:port`` (default ports left out)."""
    scheme = "https" if tls else "http"
    suffix = "" if port == (443 if tls else 80) else f":{port}"
    return f"{scheme}://{bracket(host)}{suffix}"


def bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def own_origins(host: str, port: int, tls: bool) -> set[str]:
    """The origins of pages served at the listen address; for a wildcard listen address,
    also this machine's name and addresses."""
    hosts = {"localhost", "127.0.0.1", "::1"}
    if host in WILDCARDS:
        name = socket.gethostname()
        hosts.add(name.lower())
        with contextlib.suppress(OSError):
            for info in socket.getaddrinfo(name, None):
                hosts.add(str(info[4][0]))
    else:
        hosts.add(host.lower())
    return {origin(tls, h, port) for h in hosts}


class OriginCheck:
    def __init__(self, allowed: set[str], tls: bool) -> None:
        self.allowed = allowed
        self.tls = tls

    def allows(self, sent: str | None, sockname: tuple[object, ...] | None) -> bool:
        """``sent`` is the request's Origin; ``sockname`` the local address it reached."""
        if sent is None or sent in self.allowed:
            return True
        if not sockname or len(sockname) < 2 or not isinstance(sockname[1], int):
            return False
        address = str(sockname[0]).removeprefix("::ffff:")  # IPv4 reached over a dual stack
        return sent == origin(self.tls, address, sockname[1])
