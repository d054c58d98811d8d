"""Prometheus series of one server instance (a registry each, so tests can run several)."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from lapak.signaling.alerts import OfficeGauges

# Seconds; from a loopback round trip (~0.5 ms) to a stalled disk (2.5 s).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class StoreGauges:
    """What /metrics says about the store and, on a cluster node, its leases (the same
    figures as /healthz: offices_owned, lease_renewed_s_ago, store_commit_ms)."""

    node: str  # this node's name in the store: its --node-url ("single" without leases)
    last_commit_s: float | None  # the last commit's duration (PostgreSQL), None: not known
    offices: tuple[str, ...] | None  # the offices this node holds; None: no leases
    lease_s: float = 0.0  # the configured lease
    renewed_s_ago: float | None = None  # since the last lease round renewed the leases


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
        # The store and the leases: labelled by node so that a SQLite server (no leases)
        # declares them and exports no sample.
        self.store_last_commit = Gauge(
            "lapak_store_last_commit_seconds",
            "Duration of the event log's last commit on the PostgreSQL store",
            ["node"],
            registry=r,
        )
        self.offices_owned = Gauge(
            "lapak_offices_owned",
            "Offices whose lease this node holds (a cluster node: --node-url)",
            ["node"],
            registry=r,
        )
        self.office_owned = Gauge(
            "lapak_office_owned",
            "1 for each office this node holds the lease of (no series: not held here)",
            ["node", "office"],
            registry=r,
        )
        self.lease_renewed_ago = Gauge(
            "lapak_lease_renewed_seconds_ago",
            "Seconds since this node last renewed its leases (every tick while the store "
            "answers); past lapak_lease_seconds another node may take its offices",
            ["node"],
            registry=r,
        )
        self.lease_seconds = Gauge(
            "lapak_lease_seconds", "The lease this node takes offices for", ["node"], registry=r
        )
        self.fenced = Counter(
            "lapak_fenced_batches",
            "Event-log batches refused because another node took one of their offices "
            "(the fencing epoch moved): nothing in them was acknowledged",
            ["node"],
            registry=r,
        )
        build = Info("lapak_build", "The running server's version", registry=r)
        build.info({"version": version(), "python": platform.python_version()})

    def render(
        self,
        roles: Mapping[str, int],
        visits: Mapping[str, int],
        offices: Mapping[str, OfficeGauges] | None = None,
        store: StoreGauges | None = None,
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
        if store is not None:
            self._store(store)
        return generate_latest(self.registry)

    def _store(self, store: StoreGauges) -> None:
        node = store.node
        if store.last_commit_s is not None:
            self.store_last_commit.labels(node).set(store.last_commit_s)
        if store.offices is None:
            return
        self.fenced.labels(node)  # a node with leases shows 0 before its first fence
        self.offices_owned.labels(node).set(len(store.offices))
        self.office_owned.clear()  # an office lost leaves no stale series
        for office in store.offices:
            self.office_owned.labels(node, office).set(1)
        self.lease_seconds.labels(node).set(store.lease_s)
        if store.renewed_s_ago is not None:
            self.lease_renewed_ago.labels(node).set(store.renewed_s_ago)
