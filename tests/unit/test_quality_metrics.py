"""Prometheus metrics of load and call quality (quality/metrics.py)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from sprechzimmer.quality.metrics import QualityMetrics
from sprechzimmer.quality.samples import Sample

#: Every label and the values it may take: none is an identifier.
ALLOWED_LABELS = {
    "path": {"direct", "relay", "unknown"},
    "candidate": {"host", "srflx", "prflx", "relay", "unknown"},
    "profile": {"audio-only", "low", "medium", "high", "unknown"},
    "direction": {"send", "recv"},
    "kind": {"decrypt", "client", "server"},
    "le": None,  # histogram bucket bounds
}


def _families(metrics: QualityMetrics) -> dict:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def _value(families: dict, name: str, sample_name: str, **labels) -> float:
    for sample in families[name].samples:
        if sample.name == sample_name and all(
            sample.labels.get(k) == v for k, v in labels.items()
        ):
            return sample.value
    raise AssertionError(f"{sample_name} {labels} not found")


def _busy_metrics() -> QualityMetrics:
    metrics = QualityMetrics()
    metrics.room_opened()
    metrics.room_opened()
    metrics.room_closed()
    metrics.client_waiting(+1)
    metrics.call_path("relay")
    metrics.call_path("direct")
    metrics.call_path("direct")
    metrics.call_path("satellite")
    for raw in (
        {
            "rtt_ms": 40,
            "loss_pct": 1.5,
            "send_kbps": 900,
            "recv_kbps": 700,
            "jitter_ms": 4,
            "path": "direct",
            "candidate": "srflx",
            "profile": "high",
            "decrypt_failures": 2,
            "errors": 1,
        },
        {
            "rtt_ms": 250,
            "loss_pct": 12,
            "send_kbps": 150,
            "path": "relay",
            "candidate": "relay",
            "profile": "low",
        },
        {},
    ):
        metrics.observe_sample(Sample.parse(raw))
    metrics.error()
    return metrics


def test_metrics_parse_with_prometheus_own_parser():
    """The exposition parses and holds the load, call and quality metrics."""
    families = _families(_busy_metrics())
    assert (
        _value(families, "sprechzimmer_rooms_active", "sprechzimmer_rooms_active") == 1
    )
    assert (
        _value(families, "sprechzimmer_clients_waiting", "sprechzimmer_clients_waiting")
        == 1
    )
    calls = "sprechzimmer_calls"
    assert _value(families, calls, "sprechzimmer_calls_total", path="direct") == 2
    assert _value(families, calls, "sprechzimmer_calls_total", path="relay") == 1
    rtt = "sprechzimmer_quality_rtt_seconds"
    assert _value(families, rtt, rtt + "_count") == 2
    assert _value(families, rtt, rtt + "_bucket", le="0.05") == 1
    loss = "sprechzimmer_quality_loss_ratio"
    assert _value(families, loss, loss + "_bucket", le="0.02") == 1
    bitrate = "sprechzimmer_quality_bitrate_bits_per_second"
    assert _value(families, bitrate, bitrate + "_count", direction="send") == 2
    assert _value(families, bitrate, bitrate + "_sum", direction="recv") == 700_000
    errors = "sprechzimmer_call_errors"
    assert _value(families, errors, errors + "_total", kind="decrypt") == 2
    assert _value(families, errors, errors + "_total", kind="client") == 1
    assert _value(families, errors, errors + "_total", kind="server") == 1
    samples = "sprechzimmer_quality_samples"
    assert (
        _value(families, samples, samples + "_total", path="unknown", profile="unknown")
        == 1
    )


def test_no_label_carries_an_identifier():
    """Every label value comes from a small fixed set."""
    for family in _families(_busy_metrics()).values():
        for sample in family.samples:
            for label, value in sample.labels.items():
                assert label in ALLOWED_LABELS, (family.name, label)
                allowed = ALLOWED_LABELS[label]
                assert allowed is None or value in allowed, (family.name, value)


def test_fresh_metrics_show_zero_series():
    """Before any call, the path and error series read zero, not absent."""
    families = _families(QualityMetrics())
    assert (
        _value(families, "sprechzimmer_calls", "sprechzimmer_calls_total", path="relay")
        == 0
    )
    assert (
        _value(
            families,
            "sprechzimmer_call_errors",
            "sprechzimmer_call_errors_total",
            kind="decrypt",
        )
        == 0
    )


def test_instances_do_not_share_a_registry():
    """Two apps in one process keep separate counts."""
    first, second = QualityMetrics(), QualityMetrics()
    first.room_opened()
    first.set_load(rooms=5, waiting=2)
    families = _families(second)
    assert (
        _value(families, "sprechzimmer_rooms_active", "sprechzimmer_rooms_active") == 0
    )
    families = _families(first)
    assert (
        _value(families, "sprechzimmer_rooms_active", "sprechzimmer_rooms_active") == 5
    )
    assert (
        _value(families, "sprechzimmer_clients_waiting", "sprechzimmer_clients_waiting")
        == 2
    )
