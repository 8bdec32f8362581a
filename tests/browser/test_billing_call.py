"""Billing of real calls between two Chromium pages.

The length of a call is taken from the pages' own clocks, at the moments
they send their reports, so that a slow test process does not blur it.
"""

from __future__ import annotations

import time

import pytest

from sprechzimmer.store.billing import billing_report, month_of
from sprechzimmer.store.clock import now_ms
from tests.browser.conftest import join_as_client, log_in, open_session
from tests.conftest import seconds

# The SQL itself is tested on both databases elsewhere; one is enough here.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# Notes the page time at which the page sends a media report or the end.
MARK_SENDS = """
(() => {
  const send = WebSocket.prototype.send;
  window.__sent = [];
  WebSocket.prototype.send = function (data) {
    try {
      const message = JSON.parse(data);
      if (message.type === "media" || message.type === "end") {
        window.__sent.push([message.type, message.state ?? null, Date.now()]);
      }
    } catch (error) {}
    return send.call(this, data);
  };
})();
"""


def _start(people, server):
    """Like the shared start_call, with the marks in both pages."""
    username, password = server.add_therapist()
    therapist, client = people(), people()
    for person in (therapist, client):
        person.context.add_init_script(MARK_SENDS)
    log_in(therapist.page, server, username, password)
    invite, call_url = open_session(therapist.page, "K-3310")
    therapist.page.goto(call_url)
    join_as_client(client.page, invite, "Robin")
    therapist.page.wait_for_selector("[data-testid=admit]", state="visible")
    therapist.page.click("[data-testid=admit]")
    return username, therapist, client


def _connected_at(person) -> int:
    """Wait for the page's media report; its page time, in ms."""
    handle = person.page.wait_for_function(
        """() => window.__sent?.find(
              ([type, state]) => type === "media" && state === "connected")?.[2]""",
        timeout=seconds(60) * 1000,
        polling=100,
    )
    return int(handle.json_value())


def _end_at(therapist, client, page_ms: int) -> int:
    """Let the call go on until then, end it from the page; the end's time."""
    # a timer in the page clicks, so a slow test process cannot stretch it
    therapist.page.evaluate(
        """until => new Promise(done => setTimeout(() => {
              document.querySelector("[data-testid=end]").click();
              done();
           }, until - Date.now()))""",
        page_ms,
    )
    for person in (therapist, client):
        person.page.wait_for_selector("[data-testid=closed]", state="visible")
    sent = therapist.page.evaluate("() => window.__sent")
    return next(at for kind, _, at in sent if kind == "end")


def _billed(server, username: str):
    """The therapist's report row of this month, once the session is in it."""
    deadline = time.monotonic() + seconds(10)
    while True:
        rows = billing_report(
            server.db,
            month_of(now_ms()),
            server.settings.billing_grace_seconds,
            therapist=username,
        )
        if rows or time.monotonic() > deadline:
            return rows[0] if rows else None
        time.sleep(0.1)


def test_call_of_20_seconds_is_billed_20_seconds(people, server):
    """A call of about 20 s is billed within 2 s of its length."""
    username, therapist, client = _start(people, server)
    started = max(_connected_at(therapist), _connected_at(client))
    ended = _end_at(therapist, client, started + 20_000)

    row = _billed(server, username)
    length = (ended - started) / 1000
    assert row is not None and row.sessions == 1
    assert 19 <= length <= 22, length
    assert abs(row.billable_seconds - length) <= 2, (row, length)
    assert row.interruptions == 0


def test_client_reload_is_billed_once(people, server):
    """A client who reloads mid-call is billed for the call, never twice."""
    username, therapist, client = _start(people, server)
    started = max(_connected_at(therapist), _connected_at(client))
    client.page.evaluate(
        "until => new Promise(done => setTimeout(done, until - Date.now()))",
        started + 8_000,
    )

    reloaded = client.page.evaluate("() => Date.now()")
    client.page.reload()
    back = _connected_at(client)
    ended = _end_at(therapist, client, back + 10_000)

    row = _billed(server, username)
    length, gap = (ended - started) / 1000, (back - reloaded) / 1000
    assert row is not None and row.sessions == 1
    # never more than the call lasted, and no more lost than the reload took
    assert row.billable_seconds <= length + 1, (row, length)
    assert row.billable_seconds >= length - gap - 2, (row, length, gap)
