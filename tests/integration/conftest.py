"""Fixtures for the integration suite: real coturn processes."""

import shutil

import pytest

from sprechzimmer.relay.local_coturn import TURNSERVER, LocalCoturn, loopback_options
from tests.conftest import IN_CI

#: The shared secret of every coturn these tests start.
COTURN_SECRET = "integration-secret"


@pytest.fixture
async def start_coturn(tmp_path):
    """Start coturn processes on free ports; all are stopped at the end."""
    if shutil.which(TURNSERVER) is None:
        if IN_CI:
            pytest.fail(f"coturn is missing at {TURNSERVER}")
        pytest.skip(f"coturn is missing at {TURNSERVER}")
    started: list[LocalCoturn] = []

    async def start(**overrides: object) -> LocalCoturn:
        options = loopback_options(COTURN_SECRET, **overrides)
        coturn = LocalCoturn(options, tmp_path / f"coturn{len(started)}")
        started.append(coturn)
        await coturn.start()
        return coturn

    yield start
    for coturn in started:
        await coturn.stop()
        # Shown by pytest only when the test failed.
        print(f"--- {coturn.log_path}", *coturn.log_text().splitlines()[-40:], sep="\n")
