"""A therapist and a client hold a video call in two real browsers."""

from __future__ import annotations

from tests.browser.conftest import start_call, wait_for_media


def test_call_decodes_video_and_audio_both_ways(people, server, tmp_path):
    """Both pages decode at least 50 remote frames and receive audio."""
    therapist, client, invite, _ = start_call(people, server)
    got_client = wait_for_media(client.page)
    got_therapist = wait_for_media(therapist.page)
    therapist.page.screenshot(path="/tmp/therapist.png")
    client.page.screenshot(path="/tmp/client.png")
    assert got_client["framesDecoded"] >= 50
    assert got_therapist["framesDecoded"] >= 50
