"""The /ws endpoint over real WebSockets against a server on port 0.

Every bad connection gets its own close code, leaves one log line without
a token or a name in it, and leaves a call in another room untouched: its
signals still flow and every one of its events is stored.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import update

from sprechzimmer.store.clock import utcnow
from sprechzimmer.store.models import Invite
from tests.conftest import running_server, seconds
from tests.integration.helpers import (
    Call,
    Participant,
    api,
    client_hello,
    invite_token,
    join_as_therapist,
    knock,
    log_in,
    logged,
    open_session,
    server_lines,
    start_call,
    stored_events,
    therapist_hello,
)

#: A name the client types; it must never reach a log line.
NAME = "Zelda Quistorp"


@pytest.fixture(autouse=True)
async def close_sockets(request):
    """Close the test's connections while their server still runs."""
    if "server" in request.fixturenames:
        request.getfixturevalue("server")
    yield
    await Participant.close_all()


@pytest.fixture
async def other_call(server) -> Call:
    """A call in another room that every test checks is unharmed."""
    call = await start_call(server, client_id="K-OTHER-ROOM")
    await call.check()
    return call


@pytest.fixture
def invite(server) -> dict:
    """A fresh session of a fresh therapist, with its login cookie."""
    cookie = log_in(server)
    session = open_session(server, cookie, "K-4711")
    return session | {"cookie": cookie, "token": invite_token(session)}


async def assert_logged(all_logs, text: str, *secrets: str) -> None:
    """A server log line says ``text``; no line holds any of ``secrets``."""
    assert await logged(all_logs.lines, text), f"no log line with {text!r}"
    lines = server_lines(all_logs.lines)
    for secret in (NAME, *secrets):
        leaks = [line for line in lines if secret in line]
        assert not leaks, f"{secret!r} logged: {leaks[0]}"


async def refused(server, first: dict | str, cookie: str | None = None):
    """Open a connection, send ``first``, and read how it is closed."""
    participant = await Participant.open(server, cookie)
    await participant.send(first)
    return await participant.closed()


# -- broken messages ------------------------------------------------------

BROKEN = [
    pytest.param("{not json", 4400, id="malformed-json"),
    pytest.param('{"type": "chat", "text": "hi"}', 4404, id="unknown-type"),
    pytest.param("[1, 2, 3]", 4422, id="not-an-object"),
    pytest.param('{"kind": "hello"}', 4422, id="no-type"),
    pytest.param('{"type": "media", "state": "maybe"}', 4422, id="invalid-field"),
    pytest.param('{"type": "heartbeat", "sender": "x"}', 4422, id="extra-field"),
]


@pytest.mark.parametrize(("raw", "code"), BROKEN)
async def test_broken_first_message_closes_with_its_code(
    server, other_call, all_logs, raw, code
):
    """A broken first message closes the socket with its own code."""
    closed = await refused(server, raw)

    assert closed.code == code
    assert closed.messages[-1]["type"] == "error"
    await assert_logged(all_logs, f"hello: closed with {code}")
    await other_call.check()


@pytest.mark.parametrize(("raw", "code"), BROKEN)
async def test_broken_message_in_the_waiting_room_closes_with_its_code(
    server, other_call, invite, all_logs, raw, code
):
    """A seated client's broken message closes it; it leaves the room."""
    client = await knock(server, invite["token"], NAME)

    await client.send(raw)
    closed = await client.closed()

    assert closed.code == code
    label = invite["id"][:6]
    await assert_logged(all_logs, f"room {label}: closed with {code}", invite["token"])
    with api(server, invite["cookie"]) as http:
        view = http.get(f"/api/sessions/{invite['id']}").json()
    assert view["client_waiting"] is False
    await other_call.check()


@pytest.mark.parametrize("when", ["first", "in the waiting room"])
async def test_binary_frame_closes_with_4400(
    server, other_call, invite, all_logs, when
):
    """Messages are text: a binary frame is malformed, not an internal error."""
    if when == "first":
        participant = await Participant.open(server)
    else:
        participant = await knock(server, invite["token"], NAME)

    await participant.ws.send(b'{"type": "heartbeat"}')
    closed = await participant.closed()

    assert closed.code == 4400
    await assert_logged(all_logs, "closed with 4400", invite["token"])
    assert not any("internal error" in line for line in all_logs.lines)
    await other_call.check()


async def test_message_over_64_kib_closes_with_1009(
    server, other_call, invite, all_logs
):
    """A message over the 64 KiB cap closes with 1009, message too big."""
    client = await knock(server, invite["token"], NAME)
    big = json.dumps({"type": "heartbeat", "pad": "x" * (64 * 1024)})

    await client.send(big)
    closed = await client.closed()

    assert closed.code == 1009
    await assert_logged(all_logs, "closed with 1009", invite["token"])
    await other_call.check()


async def test_message_over_64_kib_before_hello_closes_with_1009(
    server, other_call, all_logs
):
    """An oversized first message is refused the same way, and logged."""
    closed = await refused(server, "x" * (64 * 1024 + 1))

    assert closed.code == 1009
    await assert_logged(all_logs, "hello: closed with 1009")
    await other_call.check()


async def test_message_of_exactly_64_kib_is_read(server, other_call, invite):
    """The cap is inclusive: a 64 KiB message is still read (and judged)."""
    client = await knock(server, invite["token"], NAME)
    message = {"type": "heartbeat", "pad": ""}
    size = len(json.dumps(message))
    message["pad"] = "x" * (64 * 1024 - size)

    await client.send(json.dumps(message))
    closed = await client.closed()

    assert closed.code == 4422
    await other_call.check()


# -- the hello ------------------------------------------------------------


async def test_message_before_hello_closes_with_4412(server, other_call, all_logs):
    """A valid message that is not a hello cannot come first."""
    signal = {"type": "signal", "description": {"type": "offer", "sdp": "v=0"}}

    closed = await refused(server, signal)

    assert closed.code == 4412
    await assert_logged(all_logs, "hello: closed with 4412")
    await other_call.check()


async def test_wrong_protocol_version_closes_with_4426(
    server, other_call, invite, all_logs
):
    """A hello of another protocol version is refused with 4426."""
    closed = await refused(server, client_hello(invite["token"], NAME, version=2))

    assert closed.code == 4426
    await assert_logged(all_logs, "hello: closed with 4426", invite["token"])
    await other_call.check()


async def test_second_hello_closes_with_4422(server, other_call, invite, all_logs):
    """A hello after the hello is a protocol error."""
    client = await knock(server, invite["token"], NAME)

    await client.send(client_hello(invite["token"], NAME))
    closed = await client.closed()

    assert closed.code == 4422
    await assert_logged(all_logs, "closed with 4422", invite["token"])
    await other_call.check()


async def test_no_hello_in_time_closes_with_4408(database_url, tmp_path, all_logs):
    """A connection that says nothing is dropped after the hello timeout."""
    with running_server(database_url, tmp_path, ws_hello_timeout_seconds=0.3) as srv:
        other = await start_call(srv, client_id="K-OTHER-ROOM")
        silent = await Participant.open(srv)

        closed = await silent.closed()

        assert closed.code == 4408
        assert closed.messages == [
            {"type": "error", "code": "protocol_error", "message": "no hello in time"}
        ]
        await assert_logged(all_logs, "hello: closed with 4408")
        await other.check()
        await Participant.close_all()


# -- credentials ----------------------------------------------------------


async def test_wrong_invite_token_closes_with_4401(server, other_call, all_logs):
    """An invite token that never existed is not authorised."""
    token = "w" * 43

    closed = await refused(server, client_hello(token, NAME))

    assert closed.code == 4401
    assert closed.messages[-1]["message"] == "not authorised"
    await assert_logged(all_logs, "hello: closed with 4401 (NotAuthorised)", token)
    await other_call.check()


async def test_client_hello_without_token_closes_with_4401(
    server, other_call, all_logs
):
    """A client hello must carry a token."""
    hello = client_hello("x" * 16, NAME)
    del hello["token"]

    closed = await refused(server, hello)

    assert closed.code == 4401
    await assert_logged(all_logs, "hello: closed with 4401")
    await other_call.check()


async def test_expired_invite_closes_with_4410_expired(
    server, other_call, invite, all_logs
):
    """A link past its expiry is gone, and says it expired."""
    with server.db.session() as db:
        db.execute(
            update(Invite)
            .where(Invite.session_id == invite["id"])
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )

    closed = await refused(server, client_hello(invite["token"], NAME))

    assert (closed.code, closed.reason) == (4410, "expired")
    assert closed.messages[-1]["reason"] == "expired"
    await assert_logged(all_logs, "hello: closed with 4410 (Gone)", invite["token"])
    await other_call.check()


async def test_ended_session_closes_with_4410_ended(
    server, other_call, invite, all_logs
):
    """The link of an ended session is gone, and says it ended."""
    with api(server, invite["cookie"]) as http:
        assert http.post(f"/api/sessions/{invite['id']}/end").status_code == 200

    closed = await refused(server, client_hello(invite["token"], NAME))

    assert (closed.code, closed.reason) == (4410, "ended")
    await assert_logged(all_logs, "hello: closed with 4410", invite["token"])
    await other_call.check()


async def test_declined_link_closes_with_4410_declined(
    server, other_call, invite, all_logs
):
    """A declined client is closed with 4410 and the link stays dead."""
    therapist = await join_as_therapist(server, invite["cookie"], invite["id"])
    client = await knock(server, invite["token"], NAME)
    await therapist.expect("lobby")

    await therapist.send({"type": "decline"})
    closed = await client.closed()
    again = await refused(server, client_hello(invite["token"], NAME))

    assert (closed.code, closed.reason) == (4410, "declined")
    assert closed.messages == [{"type": "ended", "reason": "declined"}]
    assert (again.code, again.reason) == (4410, "declined")
    assert await therapist.expect("lobby") == {"type": "lobby", "waiting": None}
    await assert_logged(all_logs, "closed with 4410", invite["token"])
    await other_call.check()


async def test_therapist_without_login_closes_with_4401(
    server, other_call, invite, all_logs
):
    """A therapist hello needs the login cookie."""
    closed = await refused(server, therapist_hello(invite["id"]))

    assert closed.code == 4401
    await assert_logged(all_logs, "hello: closed with 4401")
    await other_call.check()


async def test_therapist_of_another_session_closes_with_4401(
    server, other_call, invite, all_logs
):
    """A logged-in therapist cannot join another therapist's session."""
    stranger = log_in(server, "stranger")

    closed = await refused(server, therapist_hello(invite["id"]), cookie=stranger)

    assert closed.code == 4401
    assert closed.messages[-1]["message"] == "not authorised"
    await assert_logged(all_logs, "hello: closed with 4401", stranger)
    await other_call.check()


async def test_therapist_joining_the_other_call_is_refused(
    server, other_call, all_logs
):
    """Another therapist aiming at a live call is refused; the call goes on."""
    stranger = log_in(server, "stranger")

    hello = therapist_hello(other_call.session_id)
    closed = await refused(server, hello, cookie=stranger)

    assert closed.code == 4401
    await assert_logged(all_logs, "hello: closed with 4401", stranger)
    await other_call.check()


async def test_client_cannot_admit_itself(server, other_call, invite, all_logs):
    """A waiting client sending a therapist's message is not authorised."""
    client = await knock(server, invite["token"], NAME)

    await client.send({"type": "admit"})
    closed = await client.closed()

    assert closed.code == 4401
    await assert_logged(all_logs, "closed with 4401", invite["token"])
    with api(server, invite["cookie"]) as http:
        view = http.get(f"/api/sessions/{invite['id']}").json()
    assert view["client_in_call"] is False
    await other_call.check()


async def test_waiting_client_cannot_signal(server, other_call, invite, all_logs):
    """A signal from the waiting room reaches nobody; the client is told."""
    therapist = await join_as_therapist(server, invite["cookie"], invite["id"])
    client = await knock(server, invite["token"], NAME)
    await therapist.expect("lobby")

    await client.send({"type": "signal", "description": {"type": "offer"}})
    error = await client.expect("error")

    assert (error["code"], error["message"]) == ("not_allowed", "not in the call")
    # Messages to one socket keep their order: a relayed signal would
    # arrive before the answer to this request.
    await therapist.send({"type": "ice"})
    assert (await therapist.next())["type"] == "ice"
    with api(server, invite["cookie"]) as http:
        view = http.get(f"/api/sessions/{invite['id']}").json()
    assert view["client_waiting"] is True
    await other_call.check()


# -- the same link twice --------------------------------------------------


async def test_third_person_while_the_client_waits_is_refused(
    server, other_call, invite, all_logs
):
    """A second knock on a waited link gets 4409; the therapist hears nothing."""
    therapist = await join_as_therapist(server, invite["cookie"], invite["id"])
    client = await knock(server, invite["token"], "Robin")
    await therapist.expect("lobby")

    closed = await refused(server, client_hello(invite["token"], NAME))

    assert closed.code == 4409
    assert closed.messages[-1]["code"] == "in_use"
    # Messages to one socket keep their order: a lobby update about the
    # intruder would arrive before this answer.
    await therapist.send({"type": "ice"})
    assert (await therapist.next())["type"] == "ice"
    await assert_logged(all_logs, "hello: closed with 4409 (Conflict)", invite["token"])
    await client.close()
    await other_call.check()


async def test_third_person_during_the_call_is_refused(server, all_logs):
    """The same link during a call gets 4409; neither side hears of it."""
    call = await start_call(server)
    await call.check()

    closed = await refused(server, client_hello(call.token, NAME))

    assert closed.code == 4409
    await call.check()
    await assert_logged(all_logs, "hello: closed with 4409", call.token)


async def test_third_person_with_a_wrong_resume_is_refused(server, all_logs):
    """A made-up resume credential does not take the client's seat."""
    call = await start_call(server)

    hello = client_hello(call.token, NAME, resume="r" * 43)
    closed = await refused(server, hello)

    assert closed.code == 4409
    await call.check()


# -- what works -----------------------------------------------------------


async def test_resume_takes_the_seat_and_closes_the_old_tab(server):
    """The resume credential lets a new tab in directly; the old gets 4000."""
    cookie = log_in(server)
    session = open_session(server, cookie, "K-1")
    token = invite_token(session)
    therapist = await join_as_therapist(server, cookie, session["id"])
    client = await knock(server, token, "Robin")
    await therapist.expect("lobby")
    await therapist.send({"type": "admit"})
    resume = (await client.expect("admitted"))["resume"]

    tab = await Participant.open(server)
    await tab.send(client_hello(token, "Robin", resume=resume))

    assert (await tab.expect("welcome"))["polite"] is True
    assert await tab.expect("joined") == {"type": "joined", "state": "in_call"}
    old = await client.closed()
    assert (old.code, old.reason) == (4000, "replaced")
    assert {"type": "replaced"} in old.messages


async def test_welcome_comes_first_with_the_settings(server, invite):
    """The welcome names the role, politeness, ICE and the timing settings."""
    client = await Participant.open(server)
    await client.send(client_hello(invite["token"]))

    welcome = await client.expect("welcome")

    assert welcome["protocol"] == 1
    assert welcome["ice"]["iceServers"] == []
    assert welcome["keyRotationSeconds"] == server.settings.key_rotation_seconds
    assert welcome["heartbeatSeconds"] == server.settings.heartbeat_seconds
    assert set(welcome) >= {"qualitySampleSeconds", "testHooks", "role"}


async def test_ice_request_is_answered(server, other_call):
    """A participant asking for fresh relay credentials gets them."""
    await other_call.therapist.send({"type": "ice"})

    answer = await other_call.therapist.expect("ice")

    assert "iceServers" in answer["ice"]
    await other_call.check()


async def test_heartbeats_are_stored_at_most_once_an_interval(server, other_call):
    """A burst of heartbeats stores one heartbeat event."""
    for _ in range(5):
        await other_call.client.send({"type": "heartbeat"})
    other_call.expected.append(("heartbeat", "client"))

    await other_call.check()


async def test_leave_records_the_departure(server, other_call):
    """A deliberate leave closes the socket and tells the other side."""
    await other_call.client.send({"type": "leave"})

    closed = await other_call.client.closed()
    peer = await other_call.therapist.expect("peer")

    assert closed.code == 1000
    assert peer == {"type": "peer", "present": False}
    assert other_call.stored()[-2:] == [
        ("media_lost", "client"),
        ("left", "client"),
    ]


async def test_end_closes_both_with_4410(server, other_call):
    """The therapist's end message closes both sockets and kills the link."""
    await other_call.therapist.send({"type": "end"})

    for participant in (other_call.therapist, other_call.client):
        closed = await participant.closed()
        assert (closed.code, closed.reason) == (4410, "ended")
        assert {"type": "ended", "reason": "ended"} in closed.messages
    again = await refused(server, client_hello(other_call.token))
    assert (again.code, again.reason) == (4410, "ended")


async def test_candidates_and_end_of_candidates_are_relayed(server, other_call):
    """A candidate reaches the other side as sent, and so does the null end."""
    candidate = {
        "candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
        "usernameFragment": "abcd",
    }
    sender = other_call.client.instance

    await other_call.client.send({"type": "signal", "candidate": candidate})
    await other_call.client.send({"type": "signal", "candidate": None})

    assert await other_call.therapist.expect("signal") == {
        "type": "signal",
        "sender": sender,
        "candidate": candidate,
    }
    assert await other_call.therapist.expect("signal") == {
        "type": "signal",
        "sender": sender,
        "candidate": None,
    }
    await other_call.check()


async def test_silent_peer_is_dropped_after_the_ping_timeout(database_url, tmp_path):
    """A peer that stops answering pings leaves the room."""
    ping = seconds(1)
    with running_server(database_url, tmp_path, ws_ping_seconds=ping) as srv:
        cookie = log_in(srv)
        session = open_session(srv, cookie, "K-SILENT")
        therapist = await join_as_therapist(srv, cookie, session["id"])
        client = await knock(srv, invite_token(session), "Robin")
        await therapist.expect("lobby")

        # Not reading at all: pings go unanswered, as from a dead network.
        client.ws.transport.pause_reading()
        lobby = await therapist.expect("lobby", timeout=10)

        assert lobby == {"type": "lobby", "waiting": None}
        assert ("left", "client") in stored_events(srv, session["id"])
        client.ws.transport.resume_reading()
        await Participant.close_all()


async def test_resume_survives_a_server_restart(database_url, tmp_path):
    """After a restart, an admitted client with its resume skips the wait."""
    with running_server(database_url, tmp_path) as first:
        cookie = log_in(first)
        session = open_session(first, cookie, "K-RESTART")
        token = invite_token(session)
        client = await knock(first, token, "Robin")
        with api(first, cookie) as http:
            http.post(f"/api/sessions/{session['id']}/admit").raise_for_status()
        resume = (await client.expect("admitted"))["resume"]
        await Participant.close_all()

    with running_server(database_url, tmp_path) as second:
        tab = await Participant.open(second)
        await tab.send(client_hello(token, "Robin", resume=resume))

        await tab.expect("welcome")
        assert await tab.expect("joined") == {"type": "joined", "state": "in_call"}
        await Participant.close_all()


async def test_admitting_twice_keeps_the_call(server, invite, all_logs):
    """A second admit (a double click, a race) is refused in words only."""
    therapist = await join_as_therapist(server, invite["cookie"], invite["id"])
    client = await knock(server, invite["token"], NAME)
    await therapist.expect("lobby")

    await therapist.send({"type": "admit"})
    await therapist.send({"type": "admit"})

    assert await therapist.expect("lobby") == {"type": "lobby", "waiting": None}
    assert (await therapist.expect("peer"))["present"] is True
    error = await therapist.expect("error")
    assert (error["code"], error["message"]) == ("not_allowed", "no client is waiting")
    # Still connected, still in the call.
    await therapist.send({"type": "signal", "description": {"type": "offer"}})
    await client.expect("admitted")
    await client.expect("peer")
    assert (await client.expect("signal"))["sender"] == therapist.instance


async def test_therapist_of_an_ended_session_closes_with_4410(server, invite, all_logs):
    """The therapist's page of an ended session is told it ended."""
    with api(server, invite["cookie"]) as http:
        http.post(f"/api/sessions/{invite['id']}/end").raise_for_status()

    hello = therapist_hello(invite["id"])
    closed = await refused(server, hello, cookie=invite["cookie"])

    assert (closed.code, closed.reason) == (4410, "ended")


async def test_second_therapist_tab_replaces_the_first(server, other_call):
    """A therapist's new tab takes the seat; the old one is closed with 4000."""
    call = other_call
    tab = await Participant.open(server, call.cookie)
    await tab.send(therapist_hello(call.session_id))

    await tab.expect("welcome")
    assert await tab.expect("joined") == {"type": "joined", "state": "in_call"}
    old = await call.therapist.closed()
    assert (old.code, old.reason) == (4000, "replaced")
    peer = await call.client.expect("peer")
    assert peer == {"type": "peer", "present": True, "instance": tab.instance}


async def test_websocket_from_another_origin_is_refused(server):
    """A page of another site cannot open /ws, so it cannot use the cookie."""
    import websockets

    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with websockets.connect(server.ws_url, origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403
