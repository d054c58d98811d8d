"""Plain HTTP on the websocket's port: ``/healthz``, ``/metrics``, the kiosk page at
``/booth``, booth enrolment at ``POST /enrol``, and the Origin check in front of ``/ws``.
Answered during the opening handshake, before any websocket exists."""

from __future__ import annotations

import http
import json
import logging
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from lapak.signaling.enrolment import EnrolDesk, code_from_header
from lapak.signaling.metrics import ServerMetrics
from lapak.signaling.origins import OriginCheck

log = logging.getLogger("lapak.signal")

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HttpRoutes:
    def __init__(
        self,
        origins: OriginCheck,
        metrics: ServerMetrics,
        health: Callable[[], dict[str, Any]],
        metrics_text: Callable[[], bytes],
        enrol: EnrolDesk | None = None,
    ) -> None:
        self.enrol = enrol
        self.origins = origins
        self.metrics = metrics
        self.health = health
        self.metrics_text = metrics_text

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        """websockets' ``process_request``: None lets the websocket handshake go on."""
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            return self._websocket(connection, request)
        if path == "/enrol" and self.enrol is not None:
            return self._enrol(connection, request, self.enrol)
        if request.method != "GET":
            return connection.respond(http.HTTPStatus.METHOD_NOT_ALLOWED, "GET only\n")
        if path == "/booth" or path.startswith("/booth/"):
            from lapak.signaling.kiosk_http import csp, respond, websocket_origins

            return respond(connection, path, csp(websocket_origins(self.origins.allowed)))
        if path == "/healthz":
            health = self.health()
            ok = health["status"] == "ok"
            status = http.HTTPStatus.OK if ok else http.HTTPStatus.SERVICE_UNAVAILABLE
            return _typed(connection.respond(status, json.dumps(health) + "\n"), "application/json")
        if path == "/metrics":
            text = self.metrics_text().decode()
            return _typed(connection.respond(http.HTTPStatus.OK, text), METRICS_TYPE)
        return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")

    def _enrol(self, connection: ServerConnection, request: Request, desk: EnrolDesk) -> Response:
        """``POST /enrol`` with ``Authorization: Enrol CODE``: a booth token, once per code."""
        if request.method != "POST":
            return connection.respond(http.HTTPStatus.METHOD_NOT_ALLOWED, "POST only\n")
        peer = connection.remote_address
        address = str(peer[0]) if peer else "?"
        code = code_from_header(request.headers.get("Authorization"))
        status, body = desk.exchange(code, address)
        log.info("event=enrol status=%d address=%s", status, address)
        response = connection.respond(http.HTTPStatus(status), json.dumps(body) + "\n")
        response.headers["Cache-Control"] = "no-store"
        return _typed(response, "application/json")

    def _websocket(self, connection: ServerConnection, request: Request) -> Response | None:
        transport = connection.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        sent = request.headers.get("Origin")
        if self.origins.allows(sent, sockname):
            return None
        self.metrics.errors.labels("bad_origin").inc()
        log.warning("event=refused code=bad_origin origin=%s", sent)
        return connection.respond(http.HTTPStatus.FORBIDDEN, "origin not allowed\n")


def _typed(response: Response, content_type: str) -> Response:
    headers: Headers = response.headers
    del headers["Content-Type"]
    headers["Content-Type"] = content_type
    return response
