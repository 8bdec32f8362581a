"""End-to-end encryption between two peer connections in one real page.

The page (pages/e2ee_loopback.*) imports the real modules from the static
directory and holds a call between an impolite side (therapist) and a polite
side (client), each with fake camera and microphone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.browser.e2ee_checks import key_channel_values, leaked_values
from tests.browser.static_site import serve
from tests.conftest import seconds

TRAILER_BYTES = 7
TAG_BYTES = 16
TRAILER_MAGIC = 0xE2


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The static site with the loopback page."""
    with serve() as base:
        yield base


@pytest.fixture
def loopback(browser, site) -> Iterator[Page]:
    """A fresh loopback page in its own browser context."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(site + "/pages/e2ee_loopback.html")
    page.wait_for_function("() => window.loopback !== undefined")
    yield page
    page.evaluate("() => window.loopback.stop()")
    context.close()


def start(page: Page, **options) -> None:
    page.evaluate("o => window.loopback.start(o)", options)


def sides(page: Page) -> dict[str, dict]:
    """Both sides' stats by side name."""
    return {s["side"]: s for s in page.evaluate("() => window.loopback.stats()")}


def wait_for(page: Page, condition: str, timeout: float = 20) -> dict[str, dict]:
    """Wait until a JS condition over ``i`` and ``p`` (the sides) holds.

    Polled from here: wait_for_function does not await a returned promise,
    and the stats come from the asynchronous getStats().
    """
    check = f"() => window.loopback.stats().then(([i, p]) => Boolean({condition}))"
    deadline = time.monotonic() + seconds(timeout)
    while not page.evaluate(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}: {sides(page)}")
        page.wait_for_timeout(250)
    return sides(page)


def audio_played(side: dict) -> float:
    return side["audioSamples"] - side["concealedSamples"]


def test_both_directions_decode_encrypted_media_with_one_code(loopback):
    """Both sides decode 50+ frames and audio, and show the same safety code."""
    start(loopback)
    got = wait_for(
        loopback,
        """[i, p].every(s => s.e2ee.status === "encrypted"
            && s.framesDecoded >= 50 && s.e2ee.framesDecrypted > 0
            && s.audioSamples - s.concealedSamples > 0)""",
    )
    impolite, polite = got["impolite"], got["polite"]
    code = impolite["e2ee"]["safetyCode"]
    assert code and len(code.split(" ")) == 4
    assert polite["e2ee"]["safetyCode"] == code
    for side in (impolite, polite):
        assert side["e2ee"]["decryptFailures"] == 0
        assert side["e2ee"]["unencryptedRefused"] == 0
        assert side["e2ee"]["epoch"] == 1


def test_key_channel_carries_commit_key_reveal_and_ready(loopback):
    """The exchange runs commit, key, reveal, ready; its values are findable."""
    start(loopback)
    wait_for(loopback, '[i, p].every(s => s.e2ee.status === "encrypted")')
    messages = loopback.evaluate("() => window.loopback.channelMessages('impolite')")
    kinds = [json.loads(m)["t"] for m in messages]
    assert kinds[:3] == ["commit", "key", "reveal"]
    assert kinds.count("ready") == 2
    values = key_channel_values(messages)
    # commitment, two public keys; each in several text forms
    assert len(values) >= 3 * 4
    assert leaked_values(messages, messages)
    assert leaked_values(['{"type": "offer", "sdp": "v=0"}'], messages) == []


def test_sender_bytes_differ_after_the_transform(loopback):
    """Each frame after the sender's transform is sealed and differs."""
    start(loopback)
    wait_for(loopback, 'i.e2ee.status === "encrypted"')
    captured = loopback.evaluate("() => window.loopback.capture('impolite', 30)")
    frames = list(
        zip(captured["kinds"], captured["before"], captured["after"], strict=True)
    )
    assert len(frames) == 30
    for kind, before, after in frames:
        assert len(after) == len(before) + TAG_BYTES + TRAILER_BYTES
        assert after[-1] == TRAILER_MAGIC
        assert after[: len(before)] != before
        # the codec bytes a packetizer reads stay in clear, the rest is not
        clear = 1 if kind == "audio" else (10 if before[0] & 1 == 0 else 3)
        assert after[:clear] == before[:clear], kind
        if len(before) > clear + 8:
            assert after[clear : len(before)] != before[clear:], kind
    assert {kind for kind, _, _ in frames} == {"audio", "video"}


def test_wrong_receive_key_decodes_nothing_and_counts(loopback):
    """A receiver with a wrong key decodes no video frame and counts failures."""
    start(loopback, wrongKeyOn="polite")
    got = wait_for(
        loopback,
        "p.e2ee.decryptFailures >= 60 && i.framesDecoded >= 30",
    )
    polite = got["polite"]
    assert polite["framesDecoded"] == 0
    assert polite["e2ee"]["framesDecrypted"] == 0
    assert audio_played(polite) == 0
    assert got["impolite"]["e2ee"]["decryptFailures"] == 0


def test_unencrypted_frames_are_refused_and_clear_never_sent(loopback):
    """A peer without E2EE gets nothing; its clear frames are refused."""
    start(loopback, plainOn="impolite")
    got = wait_for(loopback, "p.e2ee.unencryptedRefused >= 60")
    polite, impolite = got["polite"], got["impolite"]
    assert polite["e2ee"]["status"] == "negotiating"
    assert polite["framesDecoded"] == 0
    assert audio_played(polite) == 0
    # without a key the polite sender drops every frame
    assert polite["e2ee"]["framesEncrypted"] == 0
    assert impolite["framesDecoded"] == 0


def test_restart_runs_a_new_exchange_while_media_stays_encrypted(loopback):
    """Each side's restart gives a new code, resets 'compared', loses no frame."""
    start(loopback)
    first = wait_for(loopback, '[i, p].every(s => s.e2ee.status === "encrypted")')
    loopback.evaluate("() => window.loopback.act('impolite', 'markCompared')")
    wait_for(loopback, "p.e2ee.compared && i.e2ee.compared")

    codes = {first["impolite"]["e2ee"]["safetyCode"]}
    for side, epoch in (("polite", 2), ("impolite", 3)):
        loopback.evaluate(f"() => window.loopback.act('{side}', 'restart')")
        got = wait_for(
            loopback,
            f"""[i, p].every(s => s.e2ee.status === "encrypted"
                && s.e2ee.epoch === {epoch} && s.e2ee.safetyCode)""",
        )
        code = got["impolite"]["e2ee"]["safetyCode"]
        assert got["polite"]["e2ee"]["safetyCode"] == code
        assert code not in codes
        codes.add(code)
        for s in got.values():
            assert s["e2ee"]["compared"] is False

    frames = wait_for(loopback, "[i, p].every(s => s.framesDecoded >= 50)")
    for s in frames.values():
        assert s["e2ee"]["decryptFailures"] == 0
        assert s["e2ee"]["unencryptedRefused"] == 0


def test_rotation_every_3s_for_40s_without_failure_or_freeze(loopback):
    """Ten or more epochs each side, no decrypt failure, no frozen second."""
    start(loopback, rotationSeconds=3)
    wait_for(loopback, "[i, p].every(s => s.framesDecoded > 0)")
    samples = loopback.evaluate(
        "([d, i]) => window.loopback.sample(d, i)",
        [seconds(40) * 1000, seconds(1) * 1000],
    )

    last = {s["side"]: s for s in samples[-1]}
    for name, side in last.items():
        assert side["e2ee"]["epoch"] >= 10, f"{name}: epoch {side['e2ee']['epoch']}"
        assert side["e2ee"]["decryptFailures"] == 0, name
        assert side["e2ee"]["unencryptedRefused"] == 0, name
    for earlier, later in zip(samples, samples[1:], strict=False):
        for a, b in zip(earlier, later, strict=True):
            name = a["side"]
            assert b["framesDecoded"] > a["framesDecoded"], f"{name}: video froze"
            assert audio_played(b) > audio_played(a), f"{name}: audio stopped"
