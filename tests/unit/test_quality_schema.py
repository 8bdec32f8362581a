"""The quality table cannot be linked to sessions, people or events.

Decided precisely: ``quality_samples`` has no foreign key and none points
at it; the only column name it shares with the tables of people, sessions,
tokens and events is the generic surrogate key ``id``; and neither of its
two non-measurement values (``call_tag``, ``bucket_at``) occurs in any
other table, so joining a stored sample back to its session fails.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import String, Text, cast, func, inspect, select, update

from sprechzimmer.quality.samples import Sample, new_call_tag, store_sample
from sprechzimmer.rooms.events import EventKind, Role
from sprechzimmer.store import accounts
from sprechzimmer.store.models import Base, QualitySample, Session, SessionEvent
from sprechzimmer.store.sessions import open_session, record_events

QUALITY = "quality_samples"
LINKED = (
    "sessions",
    "therapists",
    "invites",
    "auth_tokens",
    "session_events",
    "billing_months",
)
#: Fragments of column names that would name a person, session or address.
IDENTIFYING = (
    "session",
    "therapist",
    "client",
    "user",
    "name",
    "token",
    "invite",
    "event",
    "ip",
    "addr",
    "host",
)


def test_quality_samples_has_no_foreign_key_either_way():
    """No foreign key leaves quality_samples and none points at it."""
    table = Base.metadata.tables[QUALITY]
    assert table.foreign_keys == set()
    for other in Base.metadata.tables.values():
        for key in other.foreign_keys:
            assert key.column.table.name != QUALITY, other.name


def test_only_the_generic_id_name_is_shared():
    """Column names in common with the linked tables are exactly {"id"}."""
    ours = set(Base.metadata.tables[QUALITY].columns.keys())
    for name in LINKED:
        theirs = set(Base.metadata.tables[name].columns.keys())
        assert ours & theirs == {"id"}, name


def test_no_column_name_suggests_an_identifier():
    """No quality column is named after a person, session, token or address."""
    for column in Base.metadata.tables[QUALITY].columns:
        for fragment in IDENTIFYING:
            assert fragment not in column.name.split("_"), column.name


def test_the_migrated_database_has_the_same_shape(db):
    """The real schema (both backends) has no foreign key on the table."""
    inspector = inspect(db.engine)
    assert inspector.get_foreign_keys(QUALITY) == []
    for name in inspector.get_table_names():
        for key in inspector.get_foreign_keys(name):
            assert key["referred_table"] != QUALITY, name
    columns = {c["name"] for c in inspector.get_columns(QUALITY)}
    assert columns == set(Base.metadata.tables[QUALITY].columns.keys())


def _two_calls(db, start: datetime) -> list[str]:
    """Two sessions in one ten-minute bucket, with events; their ids."""
    with db.session() as session:
        therapist = accounts.add_therapist(
            session, f"q{new_call_tag()[:8]}", "a long password 1"
        )
        ids = []
        for offset, client in (
            (timedelta(minutes=1), "K-1"),
            (timedelta(minutes=4), "K-2"),
        ):
            opened = open_session(
                session, therapist.id, client, False, timedelta(hours=1)
            )
            session.execute(
                update(Session)
                .where(Session.id == opened.session.id)
                .values(created_at=start + offset)
            )
            ids.append(opened.session.id)
        session.flush()
    with db.session() as session:
        for session_id in ids:
            at = int(start.timestamp() * 1000)
            record_events(
                session,
                session_id,
                [
                    (EventKind.JOINED, Role.THERAPIST, at + 61_000),
                    (EventKind.JOINED, Role.CLIENT, at + 62_000),
                ],
            )
    return ids


def _text_columns(table):
    return [c for c in table.columns if isinstance(c.type, String | Text)]


def test_samples_of_two_calls_cannot_be_joined_to_their_sessions(db):
    """No join from stored samples back to their two sessions succeeds."""
    start = datetime(2026, 12, 3, 9, 10)
    session_ids = _two_calls(db, start)
    tags = [new_call_tag(), new_call_tag()]
    for minute, tag in ((2, tags[0]), (3, tags[1]), (5, tags[0]), (7, tags[1])):
        sample = Sample.parse({"rtt_ms": 30.0 + minute, "path": "direct"})
        store_sample(db, sample, call_tag=tag, now=start + timedelta(minutes=minute))

    quality = Base.metadata.tables[QUALITY]
    with db.session() as session:
        mine = quality.c.call_tag.in_(tags)
        # equality joins of the tag and the bucket with every other column
        for table in Base.metadata.tables.values():
            if table.name == QUALITY:
                continue
            for column in table.columns:
                for ours in (quality.c.call_tag, quality.c.bucket_at):
                    joined = session.scalar(
                        select(func.count())
                        .select_from(
                            quality.join(table, cast(ours, Text) == cast(column, Text))
                        )
                        .where(mine)
                    )
                    assert joined == 0, f"{ours.name} = {table.name}.{column.name}"

        # the tags occur as a substring of no stored text anywhere else
        for table in Base.metadata.tables.values():
            if table.name == QUALITY:
                continue
            for column in _text_columns(table):
                for tag in tags:
                    hits = session.scalar(
                        select(func.count())
                        .select_from(table)
                        .where(column.contains(tag))
                    )
                    assert hits == 0, f"{tag} in {table.name}.{column.name}"

        # time is the only remaining handle, and it fits both sessions
        buckets = session.scalars(
            select(QualitySample.bucket_at).where(QualitySample.call_tag.in_(tags))
        ).all()
        assert set(buckets) == {start}
        for bucket_at in buckets:
            assert bucket_at.minute % 10 == 0 and bucket_at.second == 0
            candidates = session.scalars(
                select(Session.id).where(
                    Session.created_at >= bucket_at,
                    Session.created_at < bucket_at + timedelta(minutes=10),
                    Session.id.in_(session_ids),
                )
            ).all()
            assert set(candidates) == set(session_ids), "both calls fit each sample"
        events = session.scalar(
            select(func.count()).where(SessionEvent.session_id.in_(session_ids))
        )
        assert events >= 4, "the sessions do have events to join against"
