"""The SQL billing report, on SQLite and PostgreSQL, against the reference."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from sprechzimmer.billing_cli import cmd_billing
from sprechzimmer.config import Settings
from sprechzimmer.rooms.billing import Event, bill_session
from sprechzimmer.store.billing import (
    billing_report,
    close_open_intervals,
    month_bounds,
    month_of,
)
from tests.billing_support import (
    BACKENDS,
    GRACE_MS,
    any_stream,
    behaviours,
    clear,
    fresh_database,
    reference_report,
    seed,
)

NOVEMBER = "2026-11"
DECEMBER = "2026-12"
DB_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module", params=BACKENDS)
def billing_db(request, tmp_path_factory):
    """An empty migrated database of this module's own, per backend."""
    with fresh_database(request.param, tmp_path_factory.mktemp("billing")) as db:
        yield db


def _report(db, month, grace_ms=GRACE_MS, **kwargs):
    rows = billing_report(db, month, grace_ms / 1000, **kwargs)
    return {
        r.therapist: (r.sessions, r.billable_seconds, r.interruptions) for r in rows
    }


streams = st.one_of(any_stream, behaviours().map(lambda b: b.events))
session_sets = st.dictionaries(
    keys=st.text("abcdef0123456789", min_size=8, max_size=8),
    values=st.tuples(st.sampled_from(("dr-a", "dr-b", "dr-c")), streams),
    max_size=4,
)


@DB_SETTINGS
@given(
    sessions=session_sets,
    before_end=st.integers(0, 120_000),
    grace_ms=st.sampled_from((0, 2000, GRACE_MS)),
)
def test_report_matches_reference(billing_db, sessions, before_end, grace_ms):
    """Each month's SQL report equals the plain reference computation."""
    clear(billing_db)
    # sessions start shortly before the month ends, so some cross into the next
    base = month_bounds(NOVEMBER)[1] - before_end
    seed(billing_db, sessions, base)
    shifted = {
        sid: (name, [Event(base + e.at_ms, e.kind, e.role) for e in events])
        for sid, (name, events) in sessions.items()
    }
    for month in (NOVEMBER, DECEMBER):
        got = _report(billing_db, month, grace_ms=grace_ms)
        assert got == reference_report(shifted, month, grace_ms)


@DB_SETTINGS
@given(sessions=session_sets)
def test_report_for_one_therapist(billing_db, sessions):
    """Asking for one therapist gives that therapist's row and no other."""
    clear(billing_db)
    base = month_bounds(NOVEMBER)[0]
    seed(billing_db, sessions, base)
    everyone = _report(billing_db, NOVEMBER)
    for name in ("dr-a", "dr-b"):
        mine = _report(billing_db, NOVEMBER, therapist=name)
        assert mine == ({name: everyone[name]} if name in everyone else {})


@DB_SETTINGS
@given(sessions=session_sets)
def test_closing_open_intervals_keeps_the_bill(billing_db, sessions):
    """Closing media left open by a stop changes no bill, and is done once."""
    clear(billing_db)
    base = month_bounds(NOVEMBER)[0]
    seed(billing_db, sessions, base)
    before = _report(billing_db, NOVEMBER)
    now_ms = base + 10**7
    close_open_intervals(billing_db, now_ms)
    assert _report(billing_db, NOVEMBER) == before
    assert close_open_intervals(billing_db, now_ms) == 0


def test_restart_closes_call_at_last_heartbeat(billing_db):
    """After a stop mid-call, media is closed at each role's last heartbeat."""
    clear(billing_db)
    base = month_bounds(NOVEMBER)[0]
    events = [
        Event(0, "media_connected", "therapist"),
        Event(1000, "media_connected", "client"),
        Event(10_000, "heartbeat", "therapist"),
        Event(11_000, "heartbeat", "client"),
        Event(20_000, "heartbeat", "therapist"),
        Event(21_000, "heartbeat", "client"),
    ]
    seed(billing_db, {"s-crash": ("dr-a", events)}, base)
    assert close_open_intervals(billing_db, base + 60_000) == 2

    # the browsers come back after the restart and report media again
    back = [
        Event(90_000, "media_connected", "therapist"),
        Event(90_000, "media_connected", "client"),
        Event(100_000, "session_ended", None),
    ]
    with billing_db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO session_events (session_id, at_ms, kind, role)"
                " VALUES ('s-crash', :at, :kind, :role)"
            ),
            [dict(at=base + e.at_ms, kind=e.kind, role=e.role) for e in back],
        )
        stored = conn.execute(
            text(
                "SELECT at_ms - :base, role FROM session_events"
                " WHERE kind = 'media_lost'"
            ),
            {"base": base},
        ).all()
    assert sorted((role, at) for at, role in stored) == [
        ("client", 21_000),
        ("therapist", 20_000),
    ]
    assert _report(billing_db, NOVEMBER) == {"dr-a": (1, 19 + 10, 1)}


def test_close_leaves_fresh_calls_to_other_instances(billing_db):
    """With an idle limit, calls heard from recently are not closed."""
    clear(billing_db)
    base = month_bounds(NOVEMBER)[0]
    events = [
        Event(0, "media_connected", "therapist"),
        Event(0, "media_connected", "client"),
        Event(10_000, "heartbeat", "therapist"),
        Event(10_000, "heartbeat", "client"),
    ]
    seed(billing_db, {"s-live": ("dr-a", events)}, base)
    assert close_open_intervals(billing_db, base + 15_000, idle_ms=30_000) == 0
    assert close_open_intervals(billing_db, base + 45_000, idle_ms=30_000) == 2


def test_report_is_one_row_per_therapist(billing_db):
    """Sessions of a therapist add up into one row with whole seconds."""
    clear(billing_db)
    base = month_bounds(NOVEMBER)[0] + 3_600_000
    call = [
        Event(0, "media_connected", "therapist"),
        Event(0, "media_connected", "client"),
        Event(1_500_999, "session_ended", None),
    ]
    seed(billing_db, {"s1": ("dr-a", call), "s2": ("dr-a", call)}, base)
    assert month_of(base) == NOVEMBER
    assert _report(billing_db, NOVEMBER) == {"dr-a": (2, 3000, 0)}
    assert bill_session(call, GRACE_MS).billable_seconds == 1500


def test_billing_command_prints_csv_and_json(billing_db, capsys, tmp_path):
    """`sprechzimmer billing` prints the month's rows as CSV or JSON."""
    clear(billing_db)
    base = month_bounds(NOVEMBER)[0]
    call = [
        Event(0, "media_connected", "therapist"),
        Event(0, "media_connected", "client"),
        Event(3_000_000, "session_ended", None),
    ]
    seed(billing_db, {"s1": ("dr-a", call), "s2": ("dr-b", call)}, base)
    settings_ = Settings(
        database_url=billing_db.engine.url.render_as_string(hide_password=False),
        data_dir=tmp_path,
    )

    class Args:
        month, therapist, format = NOVEMBER, "dr-a", "csv"

    assert cmd_billing(settings_, Args) == 0
    assert capsys.readouterr().out.splitlines() == [
        "month,therapist,sessions,billable_seconds,billable_minutes,interruptions",
        "2026-11,dr-a,1,3000,50.0,0",
    ]
    Args.format, Args.therapist = "json", None
    assert cmd_billing(settings_, Args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["therapist"], r["billable_minutes"]) for r in rows] == [
        ("dr-a", 50.0),
        ("dr-b", 50.0),
    ]
