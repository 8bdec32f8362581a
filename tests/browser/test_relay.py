"""Calls through real coturn: relay-only, region policy and failover."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sprechzimmer.relay.local_coturn import TURNSERVER, LocalCoturn, loopback_options
from sprechzimmer.store.db import Database
from tests.browser.conftest import (
    join_as_client,
    log_in,
    open_session,
    stats,
    wait_for_media,
)
from tests.conftest import IN_CI, running_server, seconds

pytestmark = pytest.mark.coturn

SECRET = "browser-relay-secret"


class Coturn:
    """A LocalCoturn driven from synchronous tests.

    Playwright's sync API owns the main thread's event loop, so coturn's
    loop runs in a thread of its own.
    """

    def __init__(self, directory: Path) -> None:
        self.process = LocalCoturn(loopback_options(SECRET), directory)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"turn:{self.process.host}:{self.process.port}?transport=udp"

    def start(self) -> None:
        self._run(self.process.start())

    def stop(self) -> None:
        self._run(self.process.stop())

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
            self.loop.close()

    def _run(self, coroutine) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(seconds(20))


@pytest.fixture
def coturns(tmp_path) -> Iterator[callable]:
    """Start coturn processes on free ports; every one is stopped at the end."""
    if shutil.which(TURNSERVER) is None:
        if IN_CI:
            pytest.fail(f"coturn is missing at {TURNSERVER}")
        pytest.skip(f"coturn is missing at {TURNSERVER}")
    made: list[Coturn] = []

    def start() -> Coturn:
        coturn = Coturn(tmp_path / f"coturn{len(made)}")
        made.append(coturn)
        coturn.start()
        return coturn

    yield start
    for coturn in made:
        coturn.close()


def relay_server(tmp_path: Path, *servers: tuple[Coturn, str], **overrides):
    """A Sprechzimmer server on SQLite that knows the given coturns."""
    url = f"sqlite:///{tmp_path / 'relay.db'}"
    Database(url).migrate()
    return running_server(
        url,
        tmp_path,
        region="DE",
        allowed_regions=["DE"],
        turn_servers=[{"urls": [c.url], "region": r} for c, r in servers],
        turn_secret=SECRET,
        **overrides,
    )


def call(people, server, relay_only: bool):
    """Therapist opens a session (relay-only or not), client joins, admitted."""
    username, password = server.add_therapist()
    therapist, client = people(), people()
    log_in(therapist.page, server, username, password)
    if relay_only:
        therapist.page.check("[data-testid=relay-only]")
    invite, call_url = open_session(therapist.page, "K-4711")
    therapist.page.goto(call_url)
    join_as_client(client.page, invite, "Alex")
    therapist.page.wait_for_selector("[data-testid=admit]", state="visible")
    therapist.page.click("[data-testid=admit]")
    return therapist, client


def ice_configs(*people) -> list[dict]:
    """The ICE configurations the pages received (welcome and ice messages)."""
    configs = []
    for person in people:
        for frame in person.ws_frames:
            with contextlib.suppress(ValueError):
                message = json.loads(frame)
                if isinstance(message, dict) and "ice" in message:
                    configs.append(message["ice"])
    return configs


def handed_usernames(*people) -> set[str]:
    """TURN usernames that the pages received over their WebSockets."""
    return {
        server["username"]
        for config in ice_configs(*people)
        for server in config["iceServers"]
    }


def path_text(page) -> str:
    page.wait_for_function(
        "() => document.querySelector('[data-testid=call-path]').textContent",
        timeout=seconds(20) * 1000,
    )
    return page.text_content("[data-testid=call-path]") or ""


def test_relay_only_call_goes_through_coturn(people, coturns, tmp_path):
    """A relay-only call uses relay pairs on both sides and coturn logs it."""
    coturn = coturns()
    with relay_server(tmp_path, (coturn, "DE")) as server:
        therapist, client = call(people, server, relay_only=True)
        for page in (therapist.page, client.page):
            assert wait_for_media(page)["framesDecoded"] >= 50

        # Each side's own candidate is a relay one: the pair is relayed on
        # both sides (the remote one may show as prflx, learned by a check).
        for page in (therapist.page, client.page):
            assert stats(page)["candidateType"] == "relay"
            assert "DE" in path_text(page)

    handed = handed_usernames(therapist, client)
    assert handed
    assert handed & set(coturn.process.allocation_users())


def test_foreign_relay_is_never_used_and_call_goes_direct(people, coturns, tmp_path):
    """An up foreign coturn is never handed out; the call connects directly."""
    home, foreign = coturns(), coturns()
    home.stop()
    with relay_server(
        tmp_path, (home, "DE"), (foreign, "FR"), turn_skip_foreign_servers=True
    ) as server:
        therapist, client = call(people, server, relay_only=False)
        for page in (therapist.page, client.page):
            assert wait_for_media(page)["framesDecoded"] >= 50

        for person in (therapist, client):
            assert stats(person.page)["candidateType"] != "relay"
            assert "No relay" in person.page.text_content("[data-testid=notice]")
            assert "Direct" in path_text(person.page)
            assert f":{foreign.process.port}" not in "".join(person.ws_frames)

    configs = ice_configs(therapist, client)
    assert len(configs) >= 2
    for config in configs:
        assert config["iceServers"] == []
        assert config["relayAvailable"] is False
    assert foreign.process.allocation_users() == []
    assert "session " not in foreign.process.log_text()


def test_failover_to_the_second_coturn(people, coturns, tmp_path):
    """With the first coturn stopped, a relay-only call goes via the second."""
    first, second = coturns(), coturns()
    with relay_server(
        tmp_path, (first, "DE"), (second, "DE"), turn_health_interval_seconds=0.5
    ) as server:
        down = threading.Event()
        server.app.state.relay.monitor.add_listener(
            lambda turn, old, new: new == "unhealthy" and down.set()
        )
        first.stop()
        assert down.wait(seconds(10))

        therapist, client = call(people, server, relay_only=True)
        for page in (therapist.page, client.page):
            assert wait_for_media(page)["framesDecoded"] >= 50
            assert stats(page)["candidateType"] == "relay"

    handed = handed_usernames(therapist, client)
    assert handed & set(second.process.allocation_users())
    assert first.process.allocation_users() == []
