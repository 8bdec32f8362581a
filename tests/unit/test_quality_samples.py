"""Checking and storing anonymous quality samples (quality/samples.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from sprechzimmer.quality.samples import (
    MAX_SAMPLE_BYTES,
    Sample,
    SampleError,
    bucket,
    new_call_tag,
    store_sample,
)
from sprechzimmer.store.models import QualitySample
from tests.conftest import IN_CI, seconds

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "js" / "fixtures"

GOOD = {
    "send_kbps": 812.5,
    "recv_kbps": 640,
    "loss_pct": 1.2,
    "rtt_ms": 34.0,
    "jitter_ms": 4.5,
    "fps": 24,
    "width": 640,
    "height": 360,
    "candidate": "srflx",
    "path": "direct",
    "profile": "medium",
    "decrypt_failures": 0,
    "errors": 2,
}


def test_a_full_sample_is_accepted():
    """A sample with every field in range parses, ints accepted as floats."""
    sample = Sample.parse(GOOD)
    assert sample.recv_kbps == 640.0
    assert sample.profile == "medium"


def test_an_empty_sample_is_accepted():
    """Every measurement is optional: a browser may not know them yet."""
    sample = Sample.parse({})
    assert sample.rtt_ms is None
    assert sample.errors == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client_id", "C-17"),
        ("session", "abc"),
        ("ip", "192.0.2.1"),
        ("sdp", "v=0"),
    ],
)
def test_extra_fields_are_refused(field, value):
    """A field the schema does not know (an ID, an address) is refused."""
    with pytest.raises(SampleError):
        Sample.parse({**GOOD, field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("loss_pct", 101),
        ("loss_pct", -1),
        ("rtt_ms", 60_001),
        ("send_kbps", 1e9),
        ("fps", 500),
        ("width", 10_000),
        ("width", 640.5),
        ("errors", -3),
        ("errors", True),
        ("rtt_ms", "34"),
        ("rtt_ms", float("nan")),
        ("rtt_ms", float("inf")),
        ("path", "satellite"),
        ("candidate", "192.0.2.1"),
        ("profile", "ultra"),
    ],
)
def test_values_out_of_bounds_or_type_are_refused(field, value):
    """Numbers outside their bounds, wrong types and unknown words fail."""
    with pytest.raises(SampleError):
        Sample.parse({**GOOD, field: value})


def test_a_sample_that_is_not_an_object_is_refused():
    """Lists, strings and numbers are not samples."""
    for raw in ([GOOD], "sample", 3, None):
        with pytest.raises(SampleError):
            Sample.parse(raw)


def test_an_oversized_sample_is_refused_before_validation():
    """A sample whose JSON exceeds the size cap is refused as too large."""
    raw = {**GOOD, "pad": "x" * MAX_SAMPLE_BYTES}
    with pytest.raises(SampleError, match="too large"):
        Sample.parse(raw)


def test_the_error_does_not_echo_the_input():
    """The refusal says nothing of what was sent, so logs stay clean."""
    with pytest.raises(SampleError) as caught:
        Sample.parse({**GOOD, "client_id": "Frau-Mueller-1970"})
    assert "Mueller" not in str(caught.value)
    assert caught.value.__cause__ is not None


def test_call_tags_are_random_and_unlike_session_ids():
    """Call tags differ each time and never have a session id's shape."""
    tags = {new_call_tag() for _ in range(100)}
    assert len(tags) == 100
    for tag in tags:
        # a session id is 32 hex digits; a tag is 24 base64url characters
        assert re.fullmatch(r"[A-Za-z0-9_-]{24}", tag)


def test_bucket_coarsens_to_ten_minutes():
    """Times fall to the start of their ten-minute bucket."""
    assert bucket(datetime(2026, 12, 3, 13, 29, 59, 999_999)) == datetime(
        2026, 12, 3, 13, 20
    )
    assert bucket(datetime(2026, 12, 3, 13, 30)) == datetime(2026, 12, 3, 13, 30)
    assert bucket(datetime(2026, 12, 3, 0, 9, 1)) == datetime(2026, 12, 3, 0, 0)


def test_store_sample_writes_a_coarse_row(db):
    """A stored sample has its call tag, a bucket time and the measurements."""
    tag = new_call_tag()
    now = datetime(2026, 12, 3, 13, 47, 12, 345_678)
    store_sample(db, Sample.parse(GOOD), call_tag=tag, now=now)
    with db.session() as session:
        rows = session.scalars(
            select(QualitySample).where(QualitySample.call_tag == tag)
        ).all()
    assert len(rows) == 1
    row = rows[0]
    assert row.bucket_at == datetime(2026, 12, 3, 13, 40)
    assert (row.rtt_ms, row.loss_pct, row.width, row.profile) == (
        34.0,
        1.2,
        640,
        "medium",
    )
    assert (row.path, row.errors, row.decrypt_failures) == ("direct", 2, 0)


def test_store_sample_refuses_a_session_id_as_tag(db):
    """Passing a session id (32 hex digits) instead of a call tag fails."""
    with pytest.raises(ValueError, match="call tag"):
        store_sample(
            db, Sample.parse(GOOD), call_tag="ab" * 16, now=datetime(2026, 1, 1)
        )


def _node_samples() -> list[dict]:
    """Samples made by the browser code from the recorded Chromium stats."""
    node = shutil.which("node")
    if node is None:
        if IN_CI:
            pytest.fail("node is required to check the browser's samples")
        pytest.skip("node not installed")
    script = ROOT / "tests" / "js" / "quality-fixture-samples.mjs"
    files = sorted(str(p) for p in FIXTURES.glob("quality-*.json"))
    assert files, "no recorded stats in tests/js/fixtures"
    result = subprocess.run(
        [node, str(script), *files],
        capture_output=True,
        text=True,
        timeout=seconds(60),
        check=True,
    )
    return json.loads(result.stdout)


def test_the_browser_samples_of_recorded_calls_validate():
    """Samples the call page makes from real Chromium stats pass the schema."""
    samples = _node_samples()
    assert len(samples) >= 4
    for raw in samples:
        sample = Sample.parse(raw)
        assert sample.path == "direct"
        assert sample.candidate == "host"
    assert any(s["send_kbps"] and s["send_kbps"] > 50 for s in samples)
