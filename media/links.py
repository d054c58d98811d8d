"""Per-booth link statistics and the link quality grade shown on each tile.

aiortc's ``getStats`` gives cumulative RTP counters (packets received and lost, interarrival
jitter in RTP clock units, a smoothed round-trip time from RTCP) but no frame rate: frames are
counted by the media engine's own video reader. ``LinkStatsSampler`` turns two successive
samples of those counters into rates; ``grade`` is the pure rule the console displays.

Grade rule (first match wins; a figure that is unknown never makes a link worse):

* ``poor``: loss ≥ 5 %, or round-trip ≥ 400 ms, or jitter ≥ 60 ms, or video < 4 fps
* ``fair``: loss ≥ 1 %, or round-trip ≥ 150 ms, or jitter ≥ 30 ms, or video < 8 fps
* ``good``: otherwise

Loss hurts speech first (Opus conceals ~1 % well, not 5 %); 150 ms one-way is the ITU-T G.114
comfort bound, so 150 ms round-trip is still fine for conversation and 400 ms is not; fps
below 8 makes reading a document shown to the camera hard, below 4 impossible. A booth that
sends a thumbnail (off air, not zoomed: 5 of its 15 fps on purpose) is held to the same rule
scaled to its rate (``fps_scale``): fair below 2.7 fps, poor below 1.3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Grade = Literal["good", "fair", "poor"]

POOR = {"loss_pct": 5.0, "rtt_ms": 400.0, "jitter_ms": 60.0, "fps": 4.0}
FAIR = {"loss_pct": 1.0, "rtt_ms": 150.0, "jitter_ms": 30.0, "fps": 8.0}
CLOCK_RATES = {"audio": 48000, "video": 90000}


def grade(
    *,
    loss_pct: float | None,
    rtt_ms: float | None,
    jitter_ms: float | None,
    fps: float | None,
    fps_scale: float = 1.0,
) -> Grade:
    """The link quality grade by the rule in this module's docstring; ``fps_scale``: the share
    of the full frame rate the booth sends on purpose (a thumbnail's 5 of 15)."""

    def crosses(limits: dict[str, float]) -> bool:
        return (
            (loss_pct is not None and loss_pct >= limits["loss_pct"])
            or (rtt_ms is not None and rtt_ms >= limits["rtt_ms"])
            or (jitter_ms is not None and jitter_ms >= limits["jitter_ms"])
            or (fps is not None and fps < limits["fps"] * fps_scale)
        )

    if crosses(POOR):
        return "poor"
    if crosses(FAIR):
        return "fair"
    return "good"


@dataclass(frozen=True)
class LinkStats:
    """One reading of a booth link, over the interval since the previous reading."""

    rtt_ms: float | None
    loss_pct: float | None
    jitter_ms: float | None
    fps: float | None
    kbps: float | None
    grade: Grade
    fps_scale: float = 1.0  # the share of the full rate the booth sent on purpose


@dataclass
class Counters:
    """Cumulative counters pulled out of one ``getStats`` report (plus our frame count)."""

    at: float
    packets_received: int = 0
    packets_lost: int = 0
    bytes_received: int = 0
    frames: int = 0
    jitter_ms: float | None = None
    rtt_ms: float | None = None


def counters_from_report(report: dict[str, Any], frames: int, at: float) -> Counters:
    """Sum the inbound RTP streams of a report; take the worst jitter and the round-trip.

    Round-trip comes from ``remote-inbound-rtp`` (our sender's RTCP receiver reports), which
    exists only on links where we send (the officer's voice); a receive-only supervisor link
    has none and reports ``None``.
    """
    c = Counters(at=at, frames=frames)
    for stat in report.values():
        kind = getattr(stat, "type", None)
        if kind == "inbound-rtp":
            c.packets_received += int(stat.packetsReceived)
            c.packets_lost += max(0, int(stat.packetsLost))
            rate = CLOCK_RATES.get(getattr(stat, "kind", "video"), 90000)
            jitter = float(stat.jitter) * 1000.0 / rate
            c.jitter_ms = jitter if c.jitter_ms is None else max(c.jitter_ms, jitter)
        elif kind == "remote-inbound-rtp" and getattr(stat, "roundTripTime", None) is not None:
            rtt = float(stat.roundTripTime) * 1000.0
            c.rtt_ms = rtt if c.rtt_ms is None else max(c.rtt_ms, rtt)
        elif kind == "transport":
            c.bytes_received += int(getattr(stat, "bytesReceived", 0) or 0)
    return c


def link_stats(previous: Counters, current: Counters, fps_scale: float = 1.0) -> LinkStats:
    """Rates over the interval between two readings, and their grade."""
    dt = current.at - previous.at
    received = current.packets_received - previous.packets_received
    lost = max(0, current.packets_lost - previous.packets_lost)
    expected = received + lost
    loss = 100.0 * lost / expected if expected > 0 else None
    fps = (current.frames - previous.frames) / dt if dt > 0 else None
    kbps = (current.bytes_received - previous.bytes_received) * 8 / 1000 / dt if dt > 0 else None
    if kbps is not None and kbps < 0:  # transport replaced (rebuilt link)
        kbps = None
    return LinkStats(
        rtt_ms=current.rtt_ms,
        loss_pct=loss,
        jitter_ms=current.jitter_ms,
        fps=fps,
        kbps=kbps,
        grade=grade(
            loss_pct=loss,
            rtt_ms=current.rtt_ms,
            jitter_ms=current.jitter_ms,
            fps=fps,
            fps_scale=fps_scale,
        ),
        fps_scale=fps_scale,
    )
