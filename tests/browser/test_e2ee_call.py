"""End-to-end encryption in a real call: therapist and client pages.

The server runs with ``test_hooks`` on, so that the pages' E2EE layer
exposes its test hooks: the tests read the key channel messages and look for
them in the WebSocket traffic.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

from sprechzimmer.store.db import Database
from tests.browser.conftest import start_call, wait_for_media
from tests.browser.e2ee_checks import leaked_values
from tests.conftest import running_server, seconds

# Samples one page's E2EE state and media counters in the page, so that
# both pages are sampled at the same time and the windows are even.
SAMPLER = """([durationMs, intervalMs]) => {
  const read = async () => {
    const e = window.sprechzimmer.e2ee.state;
    const out = {epoch: e.epoch, status: e.status, failures: e.decryptFailures,
                 refused: e.unencryptedRefused, framesDecoded: 0, audio: 0};
    (await window.sprechzimmer.peer.pc.getStats()).forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      if (s.kind === "video") out.framesDecoded += s.framesDecoded || 0;
      if (s.kind === "audio") {
        out.audio += (s.totalSamplesReceived || 0) - (s.concealedSamples || 0);
      }
    });
    return out;
  };
  window.__e2eeSamples = (async () => {
    const samples = [await read()];
    const end = performance.now() + durationMs;
    while (performance.now() < end) {
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
      samples.push(await read());
    }
    return samples;
  })();
}"""


@pytest.fixture
def call_server(tmp_path) -> Iterator[callable]:
    """Start a server over SQLite, with test hooks and the given settings."""
    url = f"sqlite:///{tmp_path / 'e2ee.db'}"
    Database(url).migrate()
    stack: list = []

    def start(**overrides):
        context = running_server(url, tmp_path, test_hooks=True, **overrides)
        stack.append(context)
        return context.__enter__()

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


def wait_for_encryption(page: Page, timeout: float = 30) -> None:
    page.wait_for_function(
        """() => {
            const s = document.querySelector('[data-testid=e2ee-state]');
            const c = document.querySelector('[data-testid=safety-code]');
            return s && s.dataset.status === 'encrypted'
                && c && c.textContent.trim().split(' ').length === 4;
        }""",
        timeout=seconds(timeout) * 1000,
        polling=250,
    )


def e2ee_state(page: Page) -> dict:
    return page.evaluate("() => window.sprechzimmer.e2ee.state")


def describe(pages) -> str:
    """Both pages' transceivers and E2EE state, for a failure message."""
    return "\n".join(
        str(
            page.evaluate(
                """() => ({
                  e2ee: window.sprechzimmer.e2ee?.state,
                  transceivers: window.sprechzimmer.peer?.pc.getTransceivers().map(
                    (t) => [t.mid, t.currentDirection, t.receiver.track.kind,
                            Boolean(t.sender.transform),
                            Boolean(t.receiver.transform)]),
                })"""
            )
        )
        for page in pages
    )


def channel_messages(page: Page) -> list[str]:
    return page.evaluate("() => window.sprechzimmer.e2ee.test.channelMessages()")


def test_encrypted_call_decodes_both_ways_and_shows_one_code(people, call_server):
    """50+ frames and audio each way, one safety code, no key on a WebSocket."""
    server = call_server()
    therapist, client, _, _ = start_call(people, server)
    for page in (therapist.page, client.page):
        wait_for_encryption(page)
        got = wait_for_media(page)
        assert got["framesDecoded"] >= 50

    code = therapist.page.text_content("[data-testid=safety-code]").strip()
    assert client.page.text_content("[data-testid=safety-code]").strip() == code
    assert len(code.split(" ")) == 4
    for page in (therapist.page, client.page):
        state = e2ee_state(page)
        assert state["decryptFailures"] == 0
        assert state["unencryptedRefused"] == 0
        assert state["framesDecrypted"] > 0

    # the key agreement went over the data channel, not the WebSocket
    messages = channel_messages(therapist.page) + channel_messages(client.page)
    assert any('"commit"' in m for m in messages)
    assert therapist.ws_frames and client.ws_frames
    assert leaked_values(therapist.ws_frames + client.ws_frames, messages) == []

    # the therapist marks the code as compared; both pages show it
    therapist.page.click("[data-testid=mark-compared]")
    for page in (therapist.page, client.page):
        page.wait_for_function(
            "() => window.sprechzimmer.e2ee.state.compared === true",
            timeout=seconds(5) * 1000,
        )


def test_rotation_every_3s_for_40s_and_no_key_on_the_websocket(people, call_server):
    """10+ epochs, no failure, no frozen second; no key value on a WebSocket."""
    server = call_server(key_rotation_seconds=3)
    therapist, client, _, _ = start_call(people, server)
    pages = (therapist.page, client.page)
    try:
        for page in pages:
            wait_for_encryption(page)
            wait_for_media(page, frames=10)
    except (AssertionError, PlaywrightError) as error:
        raise AssertionError(f"{error}\n{describe(pages)}") from error

    for page in pages:
        page.evaluate(SAMPLER, [seconds(40) * 1000, seconds(1) * 1000])
    samples = {
        name: page.evaluate("() => window.__e2eeSamples")
        for name, page in zip(("therapist", "client"), pages, strict=True)
    }

    for name, series in samples.items():
        last = series[-1]
        assert last["epoch"] >= 10, f"{name}: epoch {last['epoch']}"
        assert last["failures"] == 0, f"{name}: {last['failures']} failures"
        assert last["refused"] == 0, f"{name}: {last['refused']} refused"
        for a, b in zip(series, series[1:], strict=False):
            assert b["framesDecoded"] > a["framesDecoded"], f"{name}: video froze"
            assert b["audio"] > a["audio"], f"{name}: audio stopped"

    frames = therapist.ws_frames + client.ws_frames
    assert frames, "no WebSocket traffic was captured"
    messages = channel_messages(therapist.page) + channel_messages(client.page)
    assert sum('"rekey"' in m for m in messages) >= 9
    assert leaked_values(frames, messages) == []
