"""Calls survive reloads, second tabs, simultaneous joins, server restarts,
lost networks and missing devices (issue 6), in real Chromium.

The servers here keep their data in SQLite in the test's directory: what is
tested is the call's behaviour, and a restarted server process must find
the same file. Both database backends are tested elsewhere.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page

from sprechzimmer.store.db import Database
from tests.browser.conftest import (
    Person,
    start_call,
    stats,
    wait_for_media,
    wait_until,
)
from tests.conftest import running_server, seconds

#: Frames that count as "media flows"; small, as the tests are many.
FRAMES = 15


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A migrated SQLite database in the test's directory."""
    url = f"sqlite:///{tmp_path / 'resilience.db'}"
    database = Database(url)
    database.migrate()
    database.dispose()
    return url


@pytest.fixture
def server(sqlite_url, tmp_path):
    """A server over the test's own SQLite database."""
    with running_server(sqlite_url, tmp_path) as running:
        yield running


def open_page(person: Person, url: str) -> Person:
    """Another page (a tab) in the same browser context as ``person``."""
    page = person.context.new_page()
    tab = Person(person.context, page)
    page.on("console", lambda m: tab.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: tab.console.append(f"error: {e}"))
    page.on(
        "websocket",
        lambda ws: ws.on("framereceived", lambda f: tab.ws_frames.append(str(f))),
    )
    page.goto(url)
    return tab


def _keep_received(ws, person: Person) -> None:
    ws.on("framereceived", lambda payload: person.ws_frames.append(str(payload)))


def frames_rise(page: Page, by: int = FRAMES, timeout: float = 20) -> None:
    """Wait until the page decodes ``by`` more video frames than now."""
    before = stats(page).get("framesDecoded", 0)
    wait_until(
        page,
        lambda s: s["framesDecoded"] >= before + by,
        timeout,
        f"{by} more decoded frames",
    )


def mark_peer(page: Page) -> None:
    """Remember the page's current peer connection, to see it replaced."""
    page.evaluate("() => { window.oldPeer = window.sprechzimmer.peer; }")


def new_peer_flows(page: Page, timeout: float) -> dict:
    """Wait for a peer connection other than the marked one to decode frames."""
    deadline = time.monotonic() + seconds(timeout)
    while time.monotonic() < deadline:
        fresh = page.evaluate("() => window.sprechzimmer.peer !== window.oldPeer")
        current = stats(page)
        if fresh and current.get("framesDecoded", 0) >= FRAMES:
            return current
        page.wait_for_timeout(200)
    raise AssertionError(f"no new peer connection with media; last: {stats(page)}")


def waited(frames: list) -> bool:
    """True if the server put this page in the waiting room."""
    return any('"state":"waiting"' in str(frame) for frame in frames)


# -- reload -------------------------------------------------------------------


def test_reload_is_back_in_the_call_without_the_waiting_room(people, server):
    """A reloaded client page is back in the call within 5 s, not waiting."""
    therapist, client, _, _ = start_call(people, server)
    wait_for_media(client.page, frames=FRAMES)
    wait_for_media(therapist.page, frames=FRAMES)
    mark_peer(therapist.page)
    client.ws_frames.clear()

    started = time.monotonic()
    client.page.reload()
    wait_until(
        client.page,
        lambda s: s["framesDecoded"] >= FRAMES and s["audioPacketsReceived"] > 0,
        5,
        "media in the reloaded page",
    )
    assert time.monotonic() - started <= seconds(5)
    new_peer_flows(therapist.page, 10)

    assert not waited(client.ws_frames)
    assert client.page.is_hidden("[data-testid=waiting]")
    assert therapist.page.is_hidden("[data-testid=admit]")


def test_rejoin_after_the_grace_period_goes_through_the_waiting_room(
    people, sqlite_url, tmp_path
):
    """A client back after the grace period waits to be admitted again."""
    grace = 2.0
    with running_server(sqlite_url, tmp_path, rejoin_grace_seconds=grace) as server:
        therapist, client, invite, _ = start_call(people, server)
        wait_for_media(client.page, frames=FRAMES)
        client.page.close()
        therapist.page.wait_for_function(
            "() => document.getElementById('connection-state')"
            ".textContent.includes('left')"
        )
        # The grace period is a span of time: nothing to await but the clock.
        time.sleep(grace + 0.5)

        back = open_page(client, invite)
        back.page.wait_for_selector("[data-testid=waiting]", state="visible")
        assert waited(back.ws_frames)
        therapist.page.wait_for_selector("[data-testid=admit]", state="visible")
        therapist.page.click("[data-testid=admit]")
        wait_for_media(back.page, frames=FRAMES, timeout=20)


# -- a second tab -------------------------------------------------------------


def test_second_tab_takes_over_and_closing_the_first_keeps_the_call(people, server):
    """The newer tab takes over, the older says so; closing it changes nothing."""
    therapist, client, invite, _ = start_call(people, server)
    wait_for_media(client.page, frames=FRAMES)
    wait_for_media(therapist.page, frames=FRAMES)
    mark_peer(therapist.page)

    second = open_page(client, invite)
    wait_for_media(second.page, frames=FRAMES, timeout=15)
    client.page.wait_for_selector("[data-testid=closed]", state="visible")
    assert client.page.get_attribute("[data-testid=closed]", "data-state") == (
        "replaced"
    )
    assert "continues in another window" in client.page.text_content(
        "[data-testid=closed]"
    )
    assert not waited(second.ws_frames)
    new_peer_flows(therapist.page, 10)

    client.page.close()
    for page in (second.page, therapist.page):
        frames_rise(page)
    assert second.page.text_content("[data-testid=connection-state]") == "Connected"
