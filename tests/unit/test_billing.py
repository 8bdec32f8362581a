"""The billing rule on generated and hand-written event streams."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sprechzimmer.rooms.billing import Event, bill_session, media_intervals
from tests.billing_support import GRACE_MS, any_stream, behaviours, reference_bill

GRACES = (0, 1000, 2000, GRACE_MS)


def _overlap(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> int:
    return sum(
        max(0, min(a_end, b_end) - max(a_start, b_start))
        for a_start, a_end in a
        for b_start, b_end in b
    )


def _call(*events: tuple[int, str, str | None]) -> list[Event]:
    return [Event(at * 1000, kind, role) for at, kind, role in events]


@given(any_stream, st.sampled_from(GRACES))
def test_rule_matches_reference(events, grace_ms):
    """The rule bills what the plain reference computation bills."""
    bill = bill_session(events, grace_ms)
    ref = reference_bill(events, grace_ms)
    assert (bill.billable_ms, bill.interruptions) == (
        ref.billable_ms,
        ref.interruptions,
    )
    assert bill.started_ms == ref.started_ms


@given(behaviours(), st.sampled_from(GRACES))
def test_rule_matches_reference_on_behaviour(behaviour, grace_ms):
    """On realistic sessions too, the rule bills what the reference bills."""
    bill = bill_session(behaviour.events, grace_ms)
    ref = reference_bill(behaviour.events, grace_ms)
    assert (bill.billable_ms, bill.interruptions) == (
        ref.billable_ms,
        ref.interruptions,
    )


@given(behaviours())
def test_billable_within_presence_overlap(behaviour):
    """Billable time never exceeds the time both were in the room."""
    bill = bill_session(behaviour.events, GRACE_MS)
    presence = behaviour.presence
    assert bill.billable_ms <= _overlap(presence["therapist"], presence["client"])


@given(any_stream)
def test_billable_within_media_overlap(events):
    """Billable time never exceeds the overlap of both roles' media time."""
    media = media_intervals(events)
    bill = bill_session(events, GRACE_MS)
    assert bill.billable_ms <= _overlap(media["therapist"], media["client"])


@given(any_stream, st.data())
def test_duplicates_change_nothing(events, data):
    """Repeating any events, anywhere in the stream, changes no bill."""
    copies = data.draw(st.lists(st.sampled_from(events), max_size=10)) if events else []
    mixed = data.draw(st.permutations(events + copies))
    assert bill_session(mixed, GRACE_MS) == bill_session(events, GRACE_MS)


@given(any_stream, st.randoms(use_true_random=False))
def test_order_changes_nothing(events, rnd):
    """The order in which events arrive does not matter, only their times."""
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert bill_session(shuffled, GRACE_MS) == bill_session(events, GRACE_MS)


@st.composite
def calls_with_drop(draw, shortest: int, longest: int):
    """A clean call of both roles, and the same call with one media drop."""
    length = draw(st.integers(120, 600)) * 1000
    beat = 10_000
    events = [Event(0, "media_connected", "therapist")]
    events.append(Event(draw(st.integers(0, 5000)), "media_connected", "client"))
    events += [
        Event(at, "heartbeat", role)
        for at in range(beat, length + 1, beat)
        for role in ("therapist", "client")
    ]
    events.append(Event(length, "session_ended", None))
    gap = draw(st.integers(shortest, longest))
    start = draw(st.integers(6000, length - gap - 1))
    role = draw(st.sampled_from(("therapist", "client")))
    drop = [
        Event(start, "media_lost", role),
        Event(start + gap, "media_connected", role),
    ]
    return events, events + drop, gap


@given(calls_with_drop(1, GRACE_MS - 1))
def test_short_drop_does_not_split_the_call(streams):
    """A drop shorter than the grace is no interruption and bills nothing."""
    clean, dropped, gap = streams
    before, after = bill_session(clean, GRACE_MS), bill_session(dropped, GRACE_MS)
    assert before.interruptions == after.interruptions == 0
    assert after.billable_ms == before.billable_ms - gap


@given(calls_with_drop(GRACE_MS, 60_000))
def test_long_drop_is_an_interruption(streams):
    """A drop at least as long as the grace counts as one interruption."""
    clean, dropped, gap = streams
    before, after = bill_session(clean, GRACE_MS), bill_session(dropped, GRACE_MS)
    assert after.interruptions == before.interruptions + 1
    assert after.billable_ms == before.billable_ms - gap


def test_one_side_alone_bills_nothing():
    """Media that only the therapist reports is never billed."""
    events = _call((0, "media_connected", "therapist"), (60, "heartbeat", "therapist"))
    assert bill_session(events, GRACE_MS).billable_ms == 0


def test_open_interval_closes_at_last_heartbeat():
    """A stream that stops mid-call bills up to each role's last heartbeat."""
    events = _call(
        (0, "media_connected", "therapist"),
        (2, "media_connected", "client"),
        (10, "heartbeat", "therapist"),
        (10, "heartbeat", "client"),
        (20, "heartbeat", "therapist"),
        (20, "heartbeat", "client"),
        (25, "heartbeat", "therapist"),
    )
    bill = bill_session(events, GRACE_MS)
    assert bill.intervals == ((2000, 20000),)


def test_events_after_the_end_count_for_nothing():
    """Media reported after the session ended is not billed."""
    events = _call(
        (0, "media_connected", "therapist"),
        (0, "media_connected", "client"),
        (30, "session_ended", None),
        (40, "media_connected", "client"),
        (90, "heartbeat", "client"),
        (90, "heartbeat", "therapist"),
    )
    assert bill_session(events, GRACE_MS).billable_ms == 30_000


def test_reload_is_billed_once():
    """A client who reloads is billed for the call, never twice."""
    events = _call(
        (0, "media_connected", "therapist"),
        (1, "media_connected", "client"),
        (30, "left", "client"),
        (32, "joined", "client"),
        (34, "media_connected", "client"),
        (34, "media_connected", "therapist"),
        (60, "session_ended", None),
    )
    bill = bill_session(events, GRACE_MS)
    assert bill.billable_ms == 29_000 + 26_000
    assert bill.interruptions == 0


def test_same_millisecond_connect_and_loss_is_down():
    """A connect and a loss in one millisecond leave the media down."""
    events = _call(
        (0, "media_connected", "therapist"),
        (0, "media_connected", "client"),
        (10, "media_lost", "client"),
        (10, "media_connected", "client"),
        (50, "heartbeat", "client"),
        (50, "heartbeat", "therapist"),
    )
    assert bill_session(events, GRACE_MS).intervals == ((0, 10_000),)
