"""Prometheus series of one server instance (a registry each, so tests can run several)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Gauge(
            "lapak_connections", "Open websocket connections by role", ["role"],
            registry=self.registry,
        )  # fmt: skip
        self.messages = Counter(
            "lapak_messages", "Inbound messages by type", ["type"], registry=self.registry
        )
        self.errors = Counter(
            "lapak_errors", "Error answers by code", ["code"], registry=self.registry
        )
        self.visits = Gauge("lapak_visits", "Visits by state", ["state"], registry=self.registry)
        self.refused = Counter(
            "lapak_connections_refused",
            "Sockets closed at accept: over max_connections, or shutting down",
            ["reason"],
            registry=self.registry,
        )
        self.events = Counter(
            "lapak_events_appended", "Events made durable", registry=self.registry
        )

    def render(self, roles: Mapping[str, int], visits: Mapping[str, int]) -> bytes:
        for role in ("officer", "booth", "supervisor", "admin", "anonymous"):
            self.connections.labels(role).set(roles.get(role, 0))
        for state in ("queued", "active", "ended"):
            self.visits.labels(state).set(visits.get(state, 0))
        return generate_latest(self.registry)
