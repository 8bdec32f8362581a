"""A server killed mid-call (kill -9) and started again: billing holds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy import text

from sprechzimmer.store.billing import billing_report, month_of
from sprechzimmer.store.db import Database
from tests.browser.conftest import join_as_client, log_in, open_session
from tests.browser.test_billing_call import MARK_SENDS, _connected_at, _end_at
from tests.conftest import seconds

SPRECHZIMMER = Path(sys.executable).with_name("sprechzimmer")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """``sprechzimmer serve`` in a subprocess over a SQLite file."""

    def __init__(self, data_dir: Path) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "server.log"
        self.env = {
            **os.environ,
            "SPRECHZIMMER_DATA_DIR": str(data_dir),
            "SPRECHZIMMER_DATABASE_URL": "",
            "SPRECHZIMMER_PUBLIC_BASE_URL": self.base_url,
            "SPRECHZIMMER_HEARTBEAT_SECONDS": "2",
        }
        self.db = Database(f"sqlite:///{data_dir / 'sprechzimmer.db'}")
        self.process: subprocess.Popen | None = None

    def command(self, *args: str, stdin: str = "") -> None:
        subprocess.run(
            [str(SPRECHZIMMER), *args], env=self.env, input=stdin, text=True, check=True
        )

    def start(self) -> None:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [str(SPRECHZIMMER), "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        # generous: a loaded machine takes long to import and start Python
        deadline = time.monotonic() + seconds(120)
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).is_success:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        pytest.fail("the server did not come up:\n" + self.log.read_text())

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no shutdown code runs
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        self.db.dispose()


@pytest.fixture
def served(tmp_path):
    server = ServerProcess(tmp_path)
    yield server
    server.stop()


def _events(db: Database) -> list[tuple]:
    with db.engine.connect() as conn:
        query = "SELECT id, at_ms, kind, role FROM session_events ORDER BY id"
        return [tuple(row) for row in conn.execute(text(query))]


def _wait_for(db: Database, test, what: str) -> list[tuple]:
    deadline = time.monotonic() + seconds(60)
    while time.monotonic() < deadline:
        events = _events(db)
        if test(events):
            return events
        time.sleep(0.2)
    pytest.fail(f"waited in vain for {what}: {events}")


def _count(events, kind: str, role: str, after_ms: int = 0) -> int:
    return sum(1 for _, at, k, r in events if k == kind and r == role and at > after_ms)


def test_kill_9_mid_call_closes_at_last_heartbeat(people, served):
    """After kill -9 and a restart, media ends at each role's last heartbeat."""
    served.command("therapist", "add", "dr-kill", "--password-stdin", stdin="x" * 12)
    served.start()
    server = SimpleNamespace(base_url=served.base_url)
    therapist, client = people(), people()
    for person in (therapist, client):
        person.context.add_init_script(MARK_SENDS)
    log_in(therapist.page, server, "dr-kill", "x" * 12)
    invite, call_url = open_session(therapist.page, "K-9")
    therapist.page.goto(call_url)
    join_as_client(client.page, invite, "Sam")
    therapist.page.wait_for_selector("[data-testid=admit]", state="visible")
    therapist.page.click("[data-testid=admit]")
    started = max(_connected_at(therapist), _connected_at(client))

    # mid-call: both browsers have sent heartbeats
    _wait_for(
        served.db,
        lambda ev: all(
            _count(ev, "heartbeat", r) >= 2 for r in ("therapist", "client")
        ),
        "two heartbeats from each browser",
    )
    served.kill()
    before = _events(served.db)
    served.start()
    restarted_ms = int(time.time() * 1000)

    after = _events(served.db)
    assert set(before) <= set(after), "events recorded before the kill are gone"
    for role in ("therapist", "client"):
        last_beat = max(at for _, at, k, r in before if k == "heartbeat" and r == role)
        closing = [at for _, at, k, r in after if k == "media_lost" and r == role]
        assert closing == [last_beat], (role, closing, last_beat)

    # the browsers, whose peer connection never broke, come back and report
    _wait_for(
        served.db,
        lambda ev: all(
            _count(ev, "media_connected", r, restarted_ms)
            for r in ("therapist", "client")
        ),
        "media reported again after the restart",
    )
    ended = _end_at(therapist, client, int(time.time() * 1000) + 3000)

    rows = billing_report(served.db, month_of(started), 10, therapist="dr-kill")
    outage = max(at for _, at, k, _r in after if k == "media_connected") - min(
        at for _, at, k, _r in after if k == "media_lost"
    )
    [row] = rows
    assert row.billable_seconds <= (ended - started - outage) / 1000 + 1, (row, outage)
