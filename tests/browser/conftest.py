"""Real Chromium pages with fake camera and microphone, one context each.

Playwright cannot download browsers here; Debian's Chromium is used.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.conftest import IN_CI, RunningServer, seconds

CHROMIUM = os.environ.get("SPRECHZIMMER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module.

    Not for the whole run: Playwright's sync API keeps an event loop
    running in the main thread, which asyncio tests after it cannot share.
    """
    if not shutil.which(CHROMIUM):
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@dataclass
class Person:
    """One person's browser context and page, with what it requested."""

    context: BrowserContext
    page: Page
    requests: list[str] = field(default_factory=list)
    ws_frames: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)


@pytest.fixture
def people(browser) -> Iterator[callable]:
    """Make people: each gets a separate browser context (no shared state)."""
    made: list[Person] = []

    def make(locale: str = "en-US") -> Person:
        context = browser.new_context(locale=locale)
        page = context.new_page()
        person = Person(context, page)
        page.on("request", lambda request: person.requests.append(request.url))
        page.on("websocket", lambda ws: _capture(ws, person))
        page.on("console", lambda m: person.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: person.console.append(f"error: {e}"))
        made.append(person)
        return person

    yield make
    for index, person in enumerate(made):
        # Shown by pytest only when the test failed.
        print(f"--- console of person {index}:", *person.console[-30:], sep="\n")
        person.context.close()


def _capture(ws, person: Person) -> None:
    ws.on("framesent", lambda payload: person.ws_frames.append(str(payload)))
    ws.on("framereceived", lambda payload: person.ws_frames.append(str(payload)))


# -- steps a person takes ------------------------------------------------------


def log_in(page: Page, server: RunningServer, username: str, password: str) -> None:
    page.goto(server.base_url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard")


def open_session(page: Page, client_id: str) -> tuple[str, str]:
    """Open a session on the dashboard; the invite link and the call page."""
    page.fill("[data-testid=client-id]", client_id)
    page.click("[data-testid=open-session]")
    page.wait_for_selector("[data-testid=invite-url]", state="visible")
    invite = page.input_value("[data-testid=invite-url]")
    call = page.get_attribute("[data-testid=start-call]", "href")
    return invite, call


def join_as_client(page: Page, invite_url: str, name: str) -> None:
    page.goto(invite_url)
    page.wait_for_selector("[data-testid=join]", state="visible")
    page.fill("[data-testid=display-name]", name)
    page.click("[data-testid=join]")
    page.wait_for_selector("[data-testid=waiting]", state="visible")


def stats(page: Page) -> dict:
    return page.evaluate("() => window.sprechzimmer.stats()") or {}


def wait_until(page: Page, check, timeout: float, what: str) -> dict:
    """Poll the page's call statistics until ``check(stats)`` holds."""
    deadline = time.monotonic() + seconds(timeout)
    current: dict = {}
    while time.monotonic() < deadline:
        current = stats(page)
        if current and check(current):
            return current
        page.wait_for_timeout(250)
    raise AssertionError(f"timed out waiting for {what}; last stats: {current}")


def wait_for_media(page: Page, frames: int = 50, timeout: float = 40) -> dict:
    """Wait until this page decoded ``frames`` video frames and got audio."""
    return wait_until(
        page,
        lambda s: s["framesDecoded"] >= frames and s["audioPacketsReceived"] > 0,
        timeout,
        f"{frames} decoded frames and audio",
    )


def start_call(people, server: RunningServer, client_id: str = "K-1042"):
    """Therapist logs in, opens a session, client joins, therapist admits."""
    username, password = server.add_therapist()
    therapist, client = people(), people()
    log_in(therapist.page, server, username, password)
    invite, call_url = open_session(therapist.page, client_id)
    therapist.page.goto(call_url)
    join_as_client(client.page, invite, "Alex")
    therapist.page.wait_for_selector("[data-testid=admit]", state="visible")
    therapist.page.click("[data-testid=admit]")
    return therapist, client, invite, call_url
