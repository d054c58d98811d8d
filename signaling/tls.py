"""The server's TLS certificate: loaded from files, reloaded in place on SIGHUP.

A renewed certificate (certbot, an internal CA) is picked up without a restart: the new
chain goes into the same ``SSLContext``, so handshakes from then on present it, while
connections already open keep the session they negotiated and are not dropped.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("lapak.signal")


@dataclass(frozen=True)
class CertFiles:
    cert: Path  # PEM: the certificate, then its chain
    key: Path  # PEM: the private key

    def context(self) -> ssl.SSLContext:
        """A server context holding this chain (ssl.SSLError or OSError when it cannot)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


def reload(context: ssl.SSLContext, files: CertFiles) -> bool:
    """Load ``files`` into the live ``context``; on any problem keep the old chain.

    The pair is first tried in a scratch context: a key that does not match its
    certificate fails there, never half-way through the live one."""
    try:
        files.context()
        context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as exc:
        log.error("event=tls_reload_failed cert=%s key=%s error=%s", files.cert, files.key, exc)
        return False
    log.info("event=tls_reloaded cert=%s", files.cert)
    return True
