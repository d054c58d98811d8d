"""Prometheus series of one server instance (a registry each, so tests can run several)."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from lapak.signaling.alerts import OfficeGauges

# Seconds; from a loopback round trip (~0.5 ms) to a stalled disk (2.5 s).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def version() -> str:
    try:
        return metadata.version("lapak")
    except metadata.PackageNotFoundError:
        return "unknown"


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.connections = Gauge(
            "lapak_connections", "Open websocket connections by role", ["role"], registry=r
        )
        self.messages = Counter("lapak_messages", "Inbound messages by type", ["type"], registry=r)
        self.errors = Counter("lapak_errors", "Error answers by code", ["code"], registry=r)
        self.visits = Gauge("lapak_visits", "Visits by state", ["state"], registry=r)
        self.refused = Counter(
            "lapak_connections_refused",
            "Sockets closed at accept: over max_connections, or shutting down",
            ["reason"],
            registry=r,
        )
        self.events = Counter("lapak_events_appended", "Events made durable", registry=r)
        self.ack_latency = Histogram(
            "lapak_ack_latency_seconds",
            "From a frame read to its answer written (commit included)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_latency = Histogram(
            "lapak_commit_latency_seconds",
            "From events handed to the log to their transaction committed (durable)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.relay_latency = Histogram(
            "lapak_relay_latency_seconds",
            "From an sdp frame read to its relay written to the other peer",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.escalations_waiting = Gauge(
            "lapak_escalations_waiting",
            "Escalated visits no supervisor has taken yet, by office",
            ["office"],
            registry=r,
        )
        self.queue_wait_max = Gauge(
            "lapak_queue_wait_seconds_max",
            "The longest wait in the office queue now (since the visit started), by office",
            ["office"],
            registry=r,
        )
        self.alerts = Gauge(
            "lapak_alerts",
            "Supervisors' alerts now, by office and kind (docs/protocol.md, Alerts)",
            ["office", "kind"],
            registry=r,
        )
        build = Info("lapak_build", "The running server's version", registry=r)
        build.info({"version": version(), "python": platform.python_version()})

    def render(
        self,
        roles: Mapping[str, int],
        visits: Mapping[str, int],
        offices: Mapping[str, OfficeGauges] | None = None,
    ) -> bytes:
        for role in ("officer", "booth", "supervisor", "admin", "anonymous"):
            self.connections.labels(role).set(roles.get(role, 0))
        for state in ("queued", "active", "escalated", "ended"):
            self.visits.labels(state).set(visits.get(state, 0))
        for gauge in (self.escalations_waiting, self.queue_wait_max, self.alerts):
            gauge.clear()  # an office that went away leaves no stale series
        for office, figures in (offices or {}).items():
            self.escalations_waiting.labels(office).set(figures.escalations_waiting)
            self.queue_wait_max.labels(office).set(figures.queue_wait_max_s)
            for kind, count in figures.alerts.items():
                self.alerts.labels(office, kind).set(count)
        return generate_latest(self.registry)
