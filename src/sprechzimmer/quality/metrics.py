"""Prometheus metrics of server load and call quality, for ``/metrics``.

Every metric lives in the registry of one :class:`QualityMetrics`, not in
prometheus-client's global one, so that tests can build several apps in
one process. No label carries an identifier: label values come from
small fixed sets (path, candidate type, profile, direction, error kind).
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from .samples import Sample

PATHS = ("direct", "relay")
ErrorKind = Literal["decrypt", "client", "server"]

_RTT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)
_LOSS_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
_JITTER_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32)
_BITRATE_BUCKETS = (
    32e3, 64e3, 128e3, 256e3, 512e3, 1e6, 2e6, 4e6
)  # fmt: skip


class QualityMetrics:
    """The metrics of one server process and the calls it carries."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rooms = Gauge(
            "sprechzimmer_rooms_active", "Rooms live on this server.", registry=r
        )
        self.waiting = Gauge(
            "sprechzimmer_clients_waiting",
            "Clients in a waiting room.",
            registry=r,
        )
        self.calls = Counter(
            "sprechzimmer_calls",
            "Calls by the path their media took.",
            ["path"],
            registry=r,
        )
        self.samples = Counter(
            "sprechzimmer_quality_samples",
            "Quality samples received.",
            ["path", "candidate", "profile"],
            registry=r,
        )
        self.rtt = Histogram(
            "sprechzimmer_quality_rtt_seconds",
            "Round-trip time reported in quality samples.",
            buckets=_RTT_BUCKETS,
            registry=r,
        )
        self.loss = Histogram(
            "sprechzimmer_quality_loss_ratio",
            "Share of received packets lost, from quality samples.",
            buckets=_LOSS_BUCKETS,
            registry=r,
        )
        self.jitter = Histogram(
            "sprechzimmer_quality_jitter_seconds",
            "Jitter of received audio, from quality samples.",
            buckets=_JITTER_BUCKETS,
            registry=r,
        )
        self.bitrate = Histogram(
            "sprechzimmer_quality_bitrate_bits_per_second",
            "Media bitrate per browser and direction, from quality samples.",
            ["direction"],
            buckets=_BITRATE_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "sprechzimmer_call_errors",
            "Errors: decrypt failures and client errors reported in samples, "
            "and server errors.",
            ["kind"],
            registry=r,
        )
        # Series that exist from the start read 0 instead of being absent.
        for path in PATHS:
            self.calls.labels(path=path)
        for kind in ("decrypt", "client", "server"):
            self.errors.labels(kind=kind)
        for direction in ("send", "recv"):
            self.bitrate.labels(direction=direction)

    # -- load ---------------------------------------------------------------

    def room_opened(self) -> None:
        """A room became live on this server."""
        self.rooms.inc()

    def room_closed(self) -> None:
        """A live room was closed or dropped from memory."""
        self.rooms.dec()

    def client_waiting(self, delta: int) -> None:
        """A client entered (+1) or left (-1) a waiting room."""
        self.waiting.inc(delta)

    def set_load(self, rooms: int, waiting: int) -> None:
        """Set both gauges from a count of the live rooms."""
        self.rooms.set(rooms)
        self.waiting.set(waiting)

    # -- calls ----------------------------------------------------------------

    def call_path(self, path: str) -> None:
        """Count a call once, by its path (from its first sample)."""
        if path in PATHS:
            self.calls.labels(path=path).inc()

    def observe_sample(self, sample: Sample) -> None:
        """Add a checked sample to the histograms and counters."""
        self.samples.labels(
            path=sample.path or "unknown",
            candidate=sample.candidate or "unknown",
            profile=sample.profile or "unknown",
        ).inc()
        if sample.rtt_ms is not None:
            self.rtt.observe(sample.rtt_ms / 1000)
        if sample.loss_pct is not None:
            self.loss.observe(sample.loss_pct / 100)
        if sample.jitter_ms is not None:
            self.jitter.observe(sample.jitter_ms / 1000)
        if sample.send_kbps is not None:
            self.bitrate.labels(direction="send").observe(sample.send_kbps * 1000)
        if sample.recv_kbps is not None:
            self.bitrate.labels(direction="recv").observe(sample.recv_kbps * 1000)
        if sample.decrypt_failures:
            self.errors.labels(kind="decrypt").inc(sample.decrypt_failures)
        if sample.errors:
            self.errors.labels(kind="client").inc(sample.errors)

    def error(self, kind: ErrorKind = "server") -> None:
        """Count one error of the server (or of a kind above)."""
        self.errors.labels(kind=kind).inc()

    # -- exposition -----------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The text exposition and its content type, for ``/metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
