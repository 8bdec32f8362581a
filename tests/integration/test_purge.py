"""The retention purge, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select, text

from sprechzimmer.billing_cli import cmd_purge
from sprechzimmer.config import Settings
from sprechzimmer.rooms.billing import Event
from sprechzimmer.store import purge as purge_module
from sprechzimmer.store.billing import billing_report, month_bounds
from sprechzimmer.store.models import (
    AuthToken,
    BillingMonth,
    Invite,
    QualitySample,
    Session,
    Therapist,
)
from sprechzimmer.store.purge import purge, purge_loop
from tests.billing_support import (
    BACKENDS,
    GRACE_MS,
    any_stream,
    behaviours,
    clear,
    fresh_database,
    seed,
)

AUGUST = "2026-08"
SETTINGS = Settings(billing_grace_seconds=GRACE_MS / 1000)
DAY_MS = 24 * 3600 * 1000


@pytest.fixture(scope="module", params=BACKENDS)
def purge_db(request, tmp_path_factory):
    """An empty migrated database of this module's own, per backend."""
    with fresh_database(request.param, tmp_path_factory.mktemp("purge")) as db:
        yield db


def _report(db, month=AUGUST):
    rows = billing_report(db, month, GRACE_MS / 1000)
    return [
        (r.therapist, r.sessions, r.billable_seconds, r.interruptions) for r in rows
    ]


def _count(db, table: str) -> int:
    with db.engine.connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _call(length_s: int) -> list[Event]:
    return [
        Event(0, "media_connected", "therapist"),
        Event(1000, "media_connected", "client"),
        Event(length_s * 1000, "session_ended", None),
    ]


def test_events_91_days_old_become_monthly_totals(purge_db):
    """Events 91 days old are gone, their month's totals stay, report as before."""
    clear(purge_db)
    start = month_bounds(AUGUST)[0] + 3 * DAY_MS
    seed(purge_db, {"old-1": ("dr-a", _call(3000))}, start)
    seed(purge_db, {"old-2": ("dr-a", _call(1200))}, start + DAY_MS)
    before = _report(purge_db)

    purge(purge_db, SETTINGS, now=_at(start + DAY_MS + 91 * DAY_MS))

    assert _count(purge_db, "session_events") == 0
    assert _count(purge_db, "sessions") == 0
    assert _count(purge_db, "billing_months") == 1
    assert _report(purge_db) == before == [("dr-a", 2, 2999 + 1199, 0)]


def test_purge_keeps_what_is_younger(purge_db):
    """Sessions and events within the retention are left alone."""
    clear(purge_db)
    start = month_bounds(AUGUST)[0]
    seed(purge_db, {"young": ("dr-a", _call(600))}, start)
    events = _count(purge_db, "session_events")

    purge(purge_db, SETTINGS, now=_at(start + 89 * DAY_MS))

    assert _count(purge_db, "session_events") == events
    assert _count(purge_db, "sessions") == 1
    assert _count(purge_db, "billing_months") == 0


def test_purge_twice_is_purge_once(purge_db):
    """A second purge at the same time deletes and adds nothing."""
    clear(purge_db)
    start = month_bounds(AUGUST)[0]
    seed(purge_db, {"s": ("dr-a", _call(600))}, start)
    now = _at(start + 100 * DAY_MS)
    purge(purge_db, SETTINGS, now=now)
    after_first = _report(purge_db)

    second = purge(purge_db, SETTINGS, now=now)

    assert set(second.deleted.values()) == {0}
    assert _report(purge_db) == after_first == [("dr-a", 1, 599, 0)]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sessions=st.lists(
        st.tuples(
            st.sampled_from(("dr-a", "dr-b")),
            st.integers(0, 29 * DAY_MS),
            st.one_of(any_stream, behaviours().map(lambda b: b.events)),
        ),
        max_size=5,
    ),
    cutoff_at=st.integers(0, 31 * DAY_MS),
)
def test_report_survives_purge_at_any_cutoff(purge_db, sessions, cutoff_at):
    """Wherever the retention cuts a month, its report stays the same."""
    clear(purge_db)
    month_start = month_bounds(AUGUST)[0]
    for i, (therapist, offset, events) in enumerate(sessions):
        seed(purge_db, {f"s{i}": (therapist, events)}, month_start + offset)
    before = _report(purge_db)

    now = month_start + cutoff_at + 90 * DAY_MS
    purge(purge_db, SETTINGS, now=_at(now))

    assert _report(purge_db) == before
    with purge_db.engine.connect() as conn:
        oldest = conn.execute(text("SELECT MIN(at_ms) FROM session_events")).scalar()
    assert oldest is None or oldest >= now - 90 * DAY_MS


def test_purge_deletes_tokens_invites_and_quality_samples(purge_db):
    """Expired logins, used or expired invites and old samples are deleted."""
    clear(purge_db)
    now = datetime(2026, 11, 20, 12, 0)
    with purge_db.session() as orm:
        therapist = Therapist(
            username="dr-a", password_hash="-", created_at=now, active=True
        )
        orm.add(therapist)
        orm.flush()
        for sid, ended in (("live", None), ("done", now), ("stale", None)):
            orm.add(
                Session(
                    id=sid,
                    therapist_id=therapist.id,
                    client_id="C-1",
                    relay_only=False,
                    created_at=now - timedelta(days=1),
                    ended_at=ended,
                )
            )
        orm.flush()
        orm.execute(
            insert(Invite),
            [
                dict(session_id="live", token_hash="a" * 64, expires_at=now + _H),
                dict(session_id="done", token_hash="b" * 64, expires_at=now + _H),
                dict(session_id="stale", token_hash="c" * 64, expires_at=now - _H),
            ],
        )
        orm.execute(
            insert(AuthToken),
            [
                dict(
                    therapist_id=therapist.id,
                    token_hash=h * 64,
                    created_at=now - timedelta(hours=12),
                    expires_at=expires,
                )
                for h, expires in (("d", now + _H), ("e", now - _H))
            ],
        )
        orm.execute(
            insert(QualitySample),
            [
                dict(call_tag=tag, bucket_at=at, decrypt_failures=0, errors=0)
                for tag, at in (
                    ("new", now - timedelta(days=89)),
                    ("old", now - timedelta(days=91)),
                )
            ],
        )

    purge(purge_db, SETTINGS, now=now.replace(tzinfo=UTC))

    with purge_db.session() as orm:
        assert orm.scalars(select(Invite.session_id)).all() == ["live"]
        assert orm.scalars(select(AuthToken.token_hash)).all() == ["d" * 64]
        assert orm.scalars(select(QualitySample.call_tag)).all() == ["new"]
        assert len(orm.scalars(select(Session.id)).all()) == 3


_H = timedelta(hours=1)


def test_purge_drops_aggregates_past_their_years(purge_db):
    """Monthly totals older than the configured years are deleted."""
    clear(purge_db)
    with purge_db.session() as orm:
        therapist = Therapist(
            username="dr-a",
            password_hash="-",
            created_at=datetime(2010, 1, 1),
            active=True,
        )
        orm.add(therapist)
        orm.flush()
        orm.execute(
            insert(BillingMonth),
            [
                dict(
                    therapist_id=therapist.id,
                    month=month,
                    sessions=1,
                    billable_seconds=60,
                    interruptions=0,
                )
                for month in ("2016-10", "2016-11", "2026-01")
            ],
        )
    purge(purge_db, SETTINGS, now=datetime(2026, 11, 5, tzinfo=UTC))
    with purge_db.session() as orm:
        kept = orm.scalars(select(BillingMonth.month).order_by("month")).all()
    assert kept == ["2016-11", "2026-01"]


def test_purge_command_says_what_it_deleted(purge_db, capsys, tmp_path):
    """`sprechzimmer purge` prints one line per table."""
    clear(purge_db)
    settings_ = Settings(
        database_url=purge_db.engine.url.render_as_string(hide_password=False),
        data_dir=tmp_path,
    )
    assert cmd_purge(settings_, None) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "session_events\t0 deleted" in lines
    assert "quality_samples\t0 deleted" in lines


async def test_purge_loop_purges_at_start(purge_db, monkeypatch):
    """The server's daily purge task purges as soon as it starts."""
    clear(purge_db)
    start = month_bounds(AUGUST)[0]
    seed(purge_db, {"old": ("dr-a", _call(600))}, start)
    done = threading.Event()
    leads = []

    def purge_once(db, settings_, lead):
        purge(db, settings_, lead=lead)
        leads.append(lead)
        done.set()

    monkeypatch.setattr(purge_module, "purge", purge_once)
    task = asyncio.create_task(purge_loop(purge_db, SETTINGS))
    try:
        assert await asyncio.to_thread(done.wait, 30)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert _count(purge_db, "session_events") == 0
    assert _report(purge_db) == [("dr-a", 1, 599, 0)]
    assert leads == [timedelta(days=1)]


def test_purge_lead_deletes_a_day_early(purge_db):
    """With a day's lead, events 89.5 days old go; 88.5 days old stay."""
    clear(purge_db)
    start = month_bounds(AUGUST)[0]
    seed(purge_db, {"a": ("dr-a", _call(60))}, start)
    seed(purge_db, {"b": ("dr-a", _call(60))}, start + DAY_MS)
    now = _at(start + 89 * DAY_MS + DAY_MS // 2)
    purge(purge_db, SETTINGS, now=now, lead=timedelta(days=1))
    with purge_db.session() as orm:
        assert orm.scalars(select(Session.id)).all() == ["b"]
