"""A therapist and a client hold a video call in two real browsers."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sprechzimmer.rooms.events import EventKind
from sprechzimmer.store.models import Invite
from sprechzimmer.store.sessions import events_of
from sprechzimmer.store.tokens import hash_token
from tests.browser.conftest import (
    join_as_client,
    start_call,
    stats,
    wait_for_media,
    wait_until,
)

IP_ADDRESS = re.compile(
    r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){4,7}\b"
)


def test_call_from_login_to_end(people, server, all_logs):
    """Admitted client and therapist see and hear each other; ending closes both."""
    therapist, client, invite, _ = start_call(people, server, client_id="K-7731")

    got_client = wait_for_media(client.page)
    got_therapist = wait_for_media(therapist.page)
    assert got_client["framesDecoded"] >= 50
    assert got_therapist["framesDecoded"] >= 50
    assert got_client["audioPacketsReceived"] > 0
    assert got_therapist["audioPacketsReceived"] > 0
    assert therapist.page.text_content("[data-testid=connection-state]") == "Connected"

    # The token left the address bar at once.
    assert "#" not in client.page.url
    assert urlsplit(client.page.url).path == "/join"

    therapist.page.click("[data-testid=end]")
    for person in (therapist, client):
        person.page.wait_for_selector("[data-testid=closed]", state="visible")
    assert client.page.get_attribute("[data-testid=closed]", "data-state") == "ended"

    # The link is dead now, and says so.
    late = people()
    late.page.goto(invite)
    late.page.wait_for_selector("[data-testid=link-state]", state="visible")
    assert late.page.get_attribute("[data-testid=link-state]", "data-state") == "ended"
    assert "ended" in late.page.text_content("[data-testid=link-state]")

    _check_events(server, invite)
    _check_privacy(server, all_logs, [therapist, client, late], invite, "K-7731")


def _check_events(server, invite):
    token = invite.split("#", 1)[1]
    with server.db.session() as db:
        invite_row = db.query(Invite).filter_by(token_hash=hash_token(token)).one()
        events = events_of(db, invite_row.session_id)
    kinds = [e.kind for e in events]
    expected = [
        EventKind.SESSION_OPENED,
        EventKind.CLIENT_WAITING,
        EventKind.ADMITTED,
        EventKind.MEDIA_CONNECTED,
        EventKind.SESSION_ENDED,
    ]
    positions = [kinds.index(kind) for kind in expected]
    assert positions == sorted(positions), kinds
    assert kinds.count(EventKind.MEDIA_CONNECTED) == 2
    times = [e.at_ms for e in events]
    assert times == sorted(times)
    assert all(t > 1_700_000_000_000 for t in times)


def _check_privacy(server, all_logs, people, invite, client_id):
    token = invite.split("#", 1)[1]
    text = "\n".join(all_logs.lines)
    assert all_logs.lines, "the call logged nothing at all"
    for secret in (client_id, "Alex", token, "a=fingerprint", "candidate:"):
        assert secret not in text
    assert not IP_ADDRESS.search(text), IP_ADDRESS.search(text)

    origin = server.base_url
    for person in people:
        for url in person.requests:
            assert url.startswith(origin + "/") or url.startswith("data:"), url
            assert "?" not in url or token not in url


def test_third_person_with_the_same_link_is_refused(people, server):
    """A second browser with the link during the call never reaches it."""
    therapist, client, invite, _ = start_call(people, server)
    wait_for_media(client.page, frames=20)
    wait_for_media(therapist.page, frames=20)

    intruder = people()
    intruder.page.goto(invite)
    intruder.page.wait_for_selector("[data-testid=join]", state="visible")
    intruder.page.fill("[data-testid=display-name]", "Mallory")
    intruder.page.click("[data-testid=join]")
    intruder.page.wait_for_selector("[data-testid=closed]", state="visible")
    assert intruder.page.get_attribute("[data-testid=closed]", "data-state") == "in_use"
    assert "already in use" in intruder.page.text_content("[data-testid=closed]")
    assert "Mallory" not in therapist.page.content()

    # The call goes on: frames keep rising on both sides.
    for person in (therapist, client):
        before = stats(person.page)["framesDecoded"]
        wait_until(
            person.page,
            lambda s, before=before: s["framesDecoded"] >= before + 30,
            20,
            "frames to keep rising",
        )


def test_client_sees_waiting_room_then_decline(people, server):
    """A declined client is told so, and the link then says it was declined."""
    from tests.browser.conftest import log_in, open_session

    username, password = server.add_therapist()
    therapist, client = people(), people()
    log_in(therapist.page, server, username, password)
    invite, _ = open_session(therapist.page, "K-2")
    join_as_client(client.page, invite, "Sam")
    therapist.page.wait_for_selector("[data-testid=decline]", state="visible")
    assert "Sam is waiting" in therapist.page.text_content("[data-testid=sessions]")
    therapist.page.click("[data-testid=decline]")
    client.page.wait_for_selector("[data-testid=closed]", state="visible")
    assert client.page.get_attribute("[data-testid=closed]", "data-state") == "declined"

    again = people()
    again.page.goto(invite)
    again.page.wait_for_selector("[data-testid=link-state]", state="visible")
    assert (
        again.page.get_attribute("[data-testid=link-state]", "data-state") == "declined"
    )
