"""The browser booth kiosk: the static page served at ``/booth`` on the signalling port.

The files ship inside the package (``signaling/kiosk/``) and are read once, on the first
request, into memory: a request never touches the disk, and only names in that listing can
be served, so no path can reach outside the folder. (Not ``kiosk.py``: a module named like
the folder beside it is read as that folder by mypy.) Every answer carries a strict
Content-Security-Policy (scripts, styles and connections from this origin only, no inline
code) and an ETag; ``Cache-Control: no-cache`` makes a kiosk revalidate, so an upgraded
server's page is picked up at the next load while unchanged files cost a 304.
"""

from __future__ import annotations

import email.utils
import hashlib
import http
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Response

log = logging.getLogger("lapak.kiosk")

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".woff2": "font/woff2",
}


def csp(nodes: Iterable[str] = ()) -> str:
    """The page's policy; ``nodes``: more origins its websocket may open (``ws(s)://host:port``).
    A cluster's page follows ``moved`` to another node, a different origin: without them
    ``connect-src 'self'`` would block that websocket before it is opened."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "media-src 'self' blob: mediastream:",
            " ".join(["connect-src 'self'", *nodes]),
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


CSP = csp()
"""``connect-src 'self'`` covers ``ws:``/``wss:`` to the same host (CSP level 3)."""


def websocket_origins(origins: Iterable[str]) -> tuple[str, ...]:
    """The ``ws(s)://`` forms of the origins a server lets open its websocket (its own and
    ``allowed_origins``): on a cluster every node lists the others' (docs/protocol.md,
    "Clusters"), so a page may connect where ``moved`` sends it."""
    schemes = {"http://": "ws://", "https://": "wss://"}
    found = {
        schemes[scheme] + origin.removeprefix(scheme)
        for origin in origins
        for scheme in schemes
        if origin.startswith(scheme) and "[" not in origin
    }  # CSP's host-source has no IPv6 literal (Chromium warns and ignores it): 'self' covers ours
    return tuple(sorted(found))


SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(self), microphone=(self), autoplay=(self)"),
    ("Cache-Control", "no-cache"),
)

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*(\.[a-z0-9]+)+")
INDEX = "index.html"


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


_assets: dict[str, Asset] | None = None


def load_assets() -> dict[str, Asset]:
    """Every servable file of the kiosk folder (flat: sub-folders are never served)."""
    assets: dict[str, Asset] = {}
    folder = resources.files("lapak.signaling").joinpath("kiosk")
    for entry in folder.iterdir():
        name = entry.name
        suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
        if not entry.is_file() or not _NAME.fullmatch(name) or suffix not in CONTENT_TYPES:
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[name] = Asset(body, CONTENT_TYPES[suffix], etag)
    return assets


def assets() -> dict[str, Asset]:
    global _assets
    if _assets is None:
        _assets = load_assets()
        log.info("event=kiosk_loaded files=%d", len(_assets))
    return _assets


def asset_name(path: str) -> str | None:
    """The file a request path names, or None. ``/booth`` and ``/booth/`` are the page."""
    if path in ("/booth", "/booth/"):
        return INDEX
    name = path.removeprefix("/booth/")
    if name == path or not _NAME.fullmatch(name):
        return None  # anything with a slash, a percent sign, dots in front...
    return name


def respond(connection: ServerConnection, path: str, policy: str = CSP) -> Response:
    name = asset_name(path)
    asset = assets().get(name) if name is not None else None
    if asset is None:
        return _response(
            http.HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8", None, policy
        )
    request = getattr(connection, "request", None)
    if request is not None:
        tags = request.headers.get("If-None-Match", "")
        if asset.etag in (t.strip() for t in tags.split(",")):
            return _response(http.HTTPStatus.NOT_MODIFIED, b"", None, asset.etag, policy)
    return _response(http.HTTPStatus.OK, asset.body, asset.content_type, asset.etag, policy)


def _response(
    status: http.HTTPStatus,
    body: bytes,
    content_type: str | None,
    etag: str | None = None,
    policy: str = CSP,
) -> Response:
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
        ]
    )
    if content_type is not None:
        headers["Content-Type"] = content_type
    if etag is not None:
        headers["ETag"] = etag
    headers["Content-Security-Policy"] = policy
    for key, value in SECURITY_HEADERS:
        headers[key] = value
    return Response(status.value, status.phrase, headers, body)
