"""Tests for the room and waiting-room state machine (no I/O)."""

from __future__ import annotations

import pytest

from sprechzimmer.rooms.errors import Conflict, Gone, NotAllowed
from sprechzimmer.rooms.events import EventKind, Role
from sprechzimmer.rooms.room import Close, Finish, Record, Room, Send

GRACE = 120_000
#: A realistic clock: milliseconds since the epoch, not zero.
T0 = 1_800_000_000_000

THERAPIST_PAGE = "therapist-page-1"
CLIENT_PAGE = "client-page-1"


def sent(actions, conn: str) -> list[dict]:
    """The messages that ``actions`` send to ``conn``, in order."""
    return [a.message for a in actions if isinstance(a, Send) and a.conn == conn]


def recipients(actions) -> set[str]:
    return {a.conn for a in actions if isinstance(a, Send | Close)}


def recorded(actions) -> list[tuple[EventKind, Role | None]]:
    return [(a.kind, a.role) for a in actions if isinstance(a, Record)]


def closes(actions) -> list[tuple[str, int, str]]:
    return [(a.conn, a.code, a.reason) for a in actions if isinstance(a, Close)]


def finishes(actions) -> list[str]:
    return [a.reason for a in actions if isinstance(a, Finish)]


def room_with_waiting_client() -> Room:
    room = Room(session_id="s1", grace_ms=GRACE)
    room.therapist_joins("t1", THERAPIST_PAGE, T0)
    room.client_knocks("c1", CLIENT_PAGE, "Alex", resume=False, now=T0 + 1)
    return room


def room_in_call() -> Room:
    room = room_with_waiting_client()
    room.admit("resume-1", T0 + 2)
    return room


# -- waiting room and admission -------------------------------------------


def test_client_waits_and_therapist_sees_the_name():
    """A knocking client is told to wait; the therapist sees who waits."""
    room = Room(session_id="s1", grace_ms=GRACE)
    room.therapist_joins("t1", THERAPIST_PAGE, T0)

    actions = room.client_knocks("c1", CLIENT_PAGE, "Alex", resume=False, now=T0)

    assert sent(actions, "c1") == [{"type": "joined", "state": "waiting"}]
    assert sent(actions, "t1") == [{"type": "lobby", "waiting": {"name": "Alex"}}]
    assert recorded(actions) == [(EventKind.CLIENT_WAITING, Role.CLIENT)]
    assert room.client_waiting and room.client is None


def test_therapist_arriving_later_sees_the_waiting_client():
    """A therapist who joins after the client knocked is shown the lobby."""
    room = Room(session_id="s1", grace_ms=GRACE)
    room.client_knocks("c1", CLIENT_PAGE, "Alex", resume=False, now=T0)

    actions = room.therapist_joins("t1", THERAPIST_PAGE, T0 + 1)

    assert sent(actions, "t1") == [
        {"type": "joined", "state": "in_call"},
        {"type": "lobby", "waiting": {"name": "Alex"}},
    ]
    assert recorded(actions) == [(EventKind.JOINED, Role.THERAPIST)]


def test_admit_seats_the_client_and_introduces_both_pages():
    """Admission hands out the resume credential and names each page."""
    room = room_with_waiting_client()

    actions = room.admit("resume-1", T0 + 2)

    assert sent(actions, "c1") == [
        {"type": "admitted", "resume": "resume-1"},
        {"type": "peer", "present": True, "instance": THERAPIST_PAGE},
    ]
    assert sent(actions, "t1") == [
        {"type": "lobby", "waiting": None},
        {"type": "peer", "present": True, "instance": CLIENT_PAGE},
    ]
    assert recorded(actions) == [
        (EventKind.ADMITTED, Role.CLIENT),
        (EventKind.JOINED, Role.CLIENT),
    ]
    assert not room.client_waiting and room.role_of("c1") is Role.CLIENT


def test_admit_before_the_therapist_connects_introduces_later():
    """Admitted without a therapist page, the client meets it on arrival."""
    room = Room(session_id="s1", grace_ms=GRACE)
    room.client_knocks("c1", CLIENT_PAGE, "Alex", resume=False, now=T0)
    actions = room.admit("resume-1", T0 + 1)
    assert sent(actions, "c1") == [{"type": "admitted", "resume": "resume-1"}]

    actions = room.therapist_joins("t1", THERAPIST_PAGE, T0 + 2)

    assert {"type": "peer", "present": True, "instance": CLIENT_PAGE} in sent(
        actions, "t1"
    )
    assert sent(actions, "c1") == [
        {"type": "peer", "present": True, "instance": THERAPIST_PAGE}
    ]


def test_admit_or_decline_without_a_waiting_client_is_not_allowed():
    """There is nobody to admit or decline when nobody waits."""
    room = room_in_call()

    with pytest.raises(NotAllowed):
        room.admit("resume-2", T0 + 3)
    with pytest.raises(NotAllowed):
        room.decline(T0 + 3)
    assert room.actions == []


def test_decline_closes_the_waiting_connection_and_finishes():
    """Declining tells the client, closes it with 4410 and revokes the link."""
    room = room_with_waiting_client()

    actions = room.decline(T0 + 2)

    assert sent(actions, "c1") == [{"type": "ended", "reason": "declined"}]
    assert closes(actions) == [("c1", 4410, "declined")]
    assert finishes(actions) == ["declined"]
    assert recorded(actions) == [(EventKind.DECLINED, Role.CLIENT)]
    assert sent(actions, "t1") == [{"type": "lobby", "waiting": None}]
    assert room.ended and not room.client_waiting


def test_declined_room_refuses_everyone():
    """After a decline, neither a knock nor the therapist gets in."""
    room = room_with_waiting_client()
    room.decline(T0 + 2)

    with pytest.raises(Gone):
        room.client_knocks("c2", "client-page-2", "", resume=False, now=T0 + 3)
    with pytest.raises(Gone):
        room.therapist_joins("t2", "therapist-page-2", T0 + 3)


# -- a second person with the same link -----------------------------------


@pytest.mark.parametrize("make_room", [room_with_waiting_client, room_in_call])
def test_second_client_without_resume_is_refused_silently(make_room):
    """A second person with the link gets Conflict; nobody hears of it."""
    room = make_room()
    before = (room.therapist, room.client, room.waiting, room.waiting_name)

    with pytest.raises(Conflict):
        room.client_knocks("c9", "client-page-9", "Eve", resume=False, now=T0 + 5)

    assert room.actions == []
    assert (room.therapist, room.client, room.waiting, room.waiting_name) == before
    assert room.role_of("c9") is None


def test_resume_before_admission_goes_to_the_waiting_room_or_conflicts():
    """A resume claim is worth nothing before the client was ever admitted."""
    room = Room(session_id="s1", grace_ms=GRACE)
    actions = room.client_knocks("c1", CLIENT_PAGE, "", resume=True, now=T0)
    assert sent(actions, "c1") == [{"type": "joined", "state": "waiting"}]

    with pytest.raises(Conflict):
        room.client_knocks("c2", "client-page-2", "", resume=True, now=T0 + 1)


# -- resume and instances -------------------------------------------------


def test_resume_within_grace_skips_the_waiting_room():
    """A client back within the grace period takes its seat directly."""
    room = room_in_call()
    room.leaves("c1", T0 + 10)

    actions = room.client_knocks(
        "c2", CLIENT_PAGE, "", resume=True, now=T0 + 10 + GRACE
    )

    assert sent(actions, "c2") == [
        {"type": "joined", "state": "in_call"},
        {"type": "peer", "present": True, "instance": THERAPIST_PAGE},
    ]
    assert sent(actions, "t1") == [
        {"type": "peer", "present": True, "instance": CLIENT_PAGE}
    ]
    assert recorded(actions) == [(EventKind.JOINED, Role.CLIENT)]
    assert room.role_of("c2") is Role.CLIENT


def test_resume_after_grace_goes_to_the_waiting_room():
    """Too late for the grace period, the client must be admitted again."""
    room = room_in_call()
    room.leaves("c1", T0 + 10)

    actions = room.client_knocks(
        "c2", CLIENT_PAGE, "Alex", resume=True, now=T0 + 11 + GRACE
    )

    assert sent(actions, "c2") == [{"type": "joined", "state": "waiting"}]
    assert sent(actions, "t1") == [{"type": "lobby", "waiting": {"name": "Alex"}}]
    assert recorded(actions) == [(EventKind.CLIENT_WAITING, Role.CLIENT)]


def test_resume_replaces_an_older_tab_of_the_client():
    """A new tab with the resume credential takes the seat; the old one goes."""
    room = room_in_call()

    actions = room.client_knocks("c2", "client-page-2", "", resume=True, now=T0 + 5)

    assert sent(actions, "c1") == [{"type": "replaced"}]
    assert closes(actions) == [("c1", 4000, "replaced")]
    assert sent(actions, "t1") == [
        {"type": "peer", "present": True, "instance": "client-page-2"}
    ]
    assert room.role_of("c2") is Role.CLIENT and room.role_of("c1") is None


def test_replaced_tab_closing_later_leaves_the_new_seat_alone():
    """The old tab's close arrives after the takeover and changes nothing."""
    room = room_in_call()
    room.client_knocks("c2", "client-page-2", "", resume=True, now=T0 + 5)

    actions = room.leaves("c1", T0 + 6)

    assert actions == []
    assert room.role_of("c2") is Role.CLIENT


def test_resume_displaces_a_stale_knock_of_the_same_client():
    """A knock waiting without resume yields to a resumed seat."""
    room = room_in_call()
    room.leaves("c1", T0 + 10)
    room.client_knocks("c2", "client-page-2", "", resume=False, now=T0 + 11)

    actions = room.client_knocks("c3", "client-page-3", "", resume=True, now=T0 + 12)

    assert sent(actions, "c2") == [{"type": "replaced"}]
    assert ("c2", 4000, "replaced") in closes(actions)
    assert not room.client_waiting and room.role_of("c3") is Role.CLIENT


def test_second_therapist_tab_replaces_the_first():
    """A therapist's new tab closes the old one and is introduced anew."""
    room = room_in_call()

    actions = room.therapist_joins("t2", "therapist-page-2", T0 + 5)

    assert sent(actions, "t1") == [{"type": "replaced"}]
    assert closes(actions) == [("t1", 4000, "replaced")]
    assert sent(actions, "c1") == [
        {"type": "peer", "present": True, "instance": "therapist-page-2"}
    ]
    assert room.role_of("t2") is Role.THERAPIST


# -- leaving --------------------------------------------------------------


def test_leaving_participant_is_announced_to_the_other():
    """A closed seat is recorded, with media lost if it was connected."""
    room = room_in_call()
    room.media("c1", True, T0 + 3)

    actions = room.leaves("c1", T0 + 4)

    assert sent(actions, "t1") == [{"type": "peer", "present": False}]
    assert recorded(actions) == [
        (EventKind.MEDIA_LOST, Role.CLIENT),
        (EventKind.LEFT, Role.CLIENT),
    ]
    assert room.client_left_ms == T0 + 4


def test_waiting_client_leaving_empties_the_lobby():
    """A client who stops waiting disappears from the therapist's lobby."""
    room = room_with_waiting_client()

    actions = room.leaves("c1", T0 + 2)

    assert sent(actions, "t1") == [{"type": "lobby", "waiting": None}]
    assert recorded(actions) == [(EventKind.LEFT, Role.CLIENT)]
    assert not room.client_waiting and room.waiting_name == ""


def test_last_one_out_leaves_an_empty_room():
    """When both have left, the room is empty."""
    room = room_in_call()
    room.leaves("t1", T0 + 3)
    room.leaves("c1", T0 + 4)

    assert room.empty


# -- while connected ------------------------------------------------------


def test_relay_goes_to_the_other_seat_with_the_sender_instance():
    """A signal reaches only the other seat, marked with the sender's page."""
    room = room_in_call()
    offer = {"description": {"type": "offer", "sdp": "v=0"}}

    actions = room.relay("t1", offer)

    assert recipients(actions) == {"c1"}
    assert sent(actions, "c1") == [
        {"type": "signal", "sender": THERAPIST_PAGE, **offer}
    ]


def test_relay_ignores_a_forged_sender():
    """A sender field from the browser is replaced by the real instance."""
    room = room_in_call()

    actions = room.relay("c1", {"sender": THERAPIST_PAGE, "candidate": None})

    assert sent(actions, "t1")[0]["sender"] == CLIENT_PAGE


def test_waiting_client_cannot_signal():
    """A client in the waiting room reaches nobody with a signal."""
    room = room_with_waiting_client()

    with pytest.raises(NotAllowed):
        room.relay("c1", {"description": {"type": "offer", "sdp": "v=0"}})
    assert room.actions == []


def test_therapist_signal_never_reaches_a_waiting_client():
    """Before admission, the therapist's signals go nowhere."""
    room = room_with_waiting_client()

    actions = room.relay("t1", {"description": {"type": "offer", "sdp": "v=0"}})

    assert actions == []


def test_stranger_connection_cannot_signal_or_report():
    """A connection that holds no seat is refused every in-call action."""
    room = room_in_call()

    with pytest.raises(NotAllowed):
        room.relay("x1", {"candidate": None})
    with pytest.raises(NotAllowed):
        room.media("x1", True, T0)
    with pytest.raises(NotAllowed):
        room.heartbeat("x1", T0, 1000)


def test_repeated_media_reports_are_recorded_once():
    """Only a change of the reported media state is stored."""
    room = room_in_call()

    first = room.media("c1", True, T0 + 3)
    again = room.media("c1", True, T0 + 4)
    lost = room.media("c1", False, T0 + 5)
    lost_again = room.media("c1", False, T0 + 6)

    assert recorded(first) == [(EventKind.MEDIA_CONNECTED, Role.CLIENT)]
    assert again == []
    assert recorded(lost) == [(EventKind.MEDIA_LOST, Role.CLIENT)]
    assert lost_again == []


def test_heartbeats_are_stored_at_most_once_an_interval():
    """Heartbeats faster than the interval are dropped, not stored."""
    room = room_in_call()

    stored = [
        at
        for at in (T0, T0 + 1_000, T0 + 4_999, T0 + 5_000, T0 + 6_000, T0 + 10_000)
        if room.heartbeat("t1", at, 5_000)
    ]

    assert stored == [T0, T0 + 5_000, T0 + 10_000]


def test_heartbeats_are_counted_per_seat():
    """One participant's heartbeat does not silence the other's."""
    room = room_in_call()
    room.heartbeat("t1", T0, 5_000)

    actions = room.heartbeat("c1", T0 + 1, 5_000)

    assert recorded(actions) == [(EventKind.HEARTBEAT, Role.CLIENT)]


# -- the end --------------------------------------------------------------


def test_end_closes_everyone_and_finishes():
    """Ending tells both seats, closes them with 4410 and revokes the link."""
    room = room_in_call()

    actions = room.end(T0 + 9)

    for conn in ("t1", "c1"):
        assert sent(actions, conn) == [{"type": "ended", "reason": "ended"}]
    assert sorted(closes(actions)) == [("c1", 4410, "ended"), ("t1", 4410, "ended")]
    assert finishes(actions) == ["ended"]
    assert recorded(actions) == [(EventKind.SESSION_ENDED, None)]
    assert room.empty and room.ended


def test_end_reaches_a_waiting_client():
    """A client still in the waiting room learns that the session ended."""
    room = room_with_waiting_client()

    actions = room.end(T0 + 9)

    assert sent(actions, "c1") == [{"type": "ended", "reason": "ended"}]
    assert ("c1", 4410, "ended") in closes(actions)


def test_end_twice_does_nothing_the_second_time():
    """Ending an ended room is harmless and silent."""
    room = room_in_call()
    room.end(T0 + 9)

    assert room.end(T0 + 10) == []


def test_ended_room_refuses_newcomers():
    """After the end, neither side can join again, not even with resume."""
    room = room_in_call()
    room.end(T0 + 9)

    with pytest.raises(Gone):
        room.client_knocks("c2", CLIENT_PAGE, "", resume=True, now=T0 + 10)
    with pytest.raises(Gone):
        room.therapist_joins("t2", THERAPIST_PAGE, T0 + 10)
