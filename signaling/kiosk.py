"""The browser booth kiosk: static files served at ``/booth`` (placeholder until issue 8)."""

from __future__ import annotations

import http

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response


def respond(connection: ServerConnection, path: str) -> Response:
    return connection.respond(http.HTTPStatus.NOT_FOUND, "the kiosk page is not built yet\n")
