"""Runs the JavaScript unit tests (tests/js/*.test.mjs) under Node."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI, seconds

JS_TESTS = Path(__file__).resolve().parents[1] / "js"


def test_node_unit_tests_pass():
    """Every tests/js/*.test.mjs file passes under node --test."""
    node = shutil.which("node")
    if node is None:
        message = "node is required for the JavaScript unit tests"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    files = sorted(str(p) for p in JS_TESTS.glob("*.test.mjs"))
    assert files, "no JavaScript tests found"
    result = subprocess.run(
        [node, "--test", *files],
        capture_output=True,
        text=True,
        timeout=seconds(120),
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
