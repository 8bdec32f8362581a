"""Fixtures shared by every suite: databases and a real server on port 0.

Every test that touches a database runs against SQLite and PostgreSQL
(127.0.0.1:5432). With CI=true a missing PostgreSQL fails the run instead
of skipping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from sprechzimmer.config import Settings
from sprechzimmer.server import uvicorn_config
from sprechzimmer.store import accounts
from sprechzimmer.store.db import Database

POSTGRES_ADMIN = os.environ.get(
    "SPRECHZIMMER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = os.environ.get("SPRECHZIMMER_TEST_BACKENDS", "sqlite,postgresql").split(",")
IN_CI = os.environ.get("CI", "").lower() == "true"

#: One unit of waiting time; SPRECHZIMMER_TEST_TIME_SCALE stretches it.
TIME_SCALE = float(os.environ.get("SPRECHZIMMER_TEST_TIME_SCALE", "1"))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Run browser tests last, after pytest grouped tests by backend.

    They are the slowest, and a quick failure elsewhere should show first.
    """
    items.sort(key=lambda item: "tests/browser/" in str(item.path))


def seconds(value: float) -> float:
    """A timeout in seconds, stretched on slow machines."""
    return value * TIME_SCALE


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test run, dropped afterwards."""
    name = f"sz_test_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI: {error}")
        pytest.skip(f"PostgreSQL not reachable: {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request, tmp_path_factory) -> Iterator[str]:
    """A migrated database URL: SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "test.db"
        url = f"sqlite:///{path}"
        Database(url).migrate()
        yield url
        return
    with postgres_database() as url:
        # Dispose of the migrating engine, or its pooled connection outlives
        # the database and warns when collected.
        migrating = Database(url)
        migrating.migrate()
        migrating.dispose()
        yield url


@pytest.fixture
def db(database_url) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


@dataclass
class RunningServer:
    """A real Sprechzimmer server in a thread of the test process."""

    base_url: str
    settings: Settings
    db: Database
    app: object

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/ws"

    def add_therapist(self, username: str | None = None) -> tuple[str, str]:
        username = username or f"t{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(12)
        with self.db.session() as session:
            accounts.add_therapist(session, username, password)
        return username, password


@contextlib.contextmanager
def running_server(
    database_url: str, tmp_path: Path, **overrides
) -> Iterator[RunningServer]:
    """Start the app under uvicorn on a free port; stop it afterwards."""
    import uvicorn

    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        public_base_url="http://127.0.0.1:0",
        **overrides,
    )
    config = uvicorn_config(settings, "127.0.0.1", 0)
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),))
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server did not start")
        threading.Event().wait(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    settings.public_base_url = f"http://127.0.0.1:{port}"
    services = config.app.state.services  # type: ignore[union-attr]
    try:
        yield RunningServer(settings.public_base_url, settings, services.db, config.app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        loop.close()


@pytest.fixture
def server(database_url, tmp_path) -> Iterator[RunningServer]:
    """A fresh server on port 0 over the session's database."""
    with running_server(database_url, tmp_path) as running:
        yield running


class LogCapture(logging.Handler):
    """Every log record of the process, formatted, for privacy checks."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def all_logs() -> Iterator[LogCapture]:
    """Capture every log line at DEBUG and above while the test runs."""
    capture = LogCapture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    yield capture
    root.removeHandler(capture)
    root.setLevel(previous)
