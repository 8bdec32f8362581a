"""Export and erasure of one client's data, on SQLite and PostgreSQL."""

from datetime import timedelta

from sqlalchemy import func, select

from sprechzimmer.rooms.events import EventKind, Role
from sprechzimmer.store import accounts
from sprechzimmer.store.models import Invite, Session, SessionEvent
from sprechzimmer.store.sessions import open_session, record_events
from sprechzimmer.store.subjects import erase_client, export_client


def _setup(db, username):
    with db.session() as orm:
        therapist = accounts.add_therapist(orm, username, "a-long-password")
        mine = open_session(orm, therapist.id, "K-9", False, timedelta(hours=1))
        other = open_session(orm, therapist.id, "K-10", False, timedelta(hours=1))
        record_events(orm, mine.session.id, [(EventKind.JOINED, Role.CLIENT, 5)])
    return mine.session.id, other.session.id


def test_export_lists_the_clients_sessions_and_events_only(db):
    """The export holds the client's sessions with events, nobody else's."""
    mine, other = _setup(db, "export-t")
    with db.session() as orm:
        data = export_client(orm, "export-t", "K-9")
    assert [s["session"] for s in data["sessions"]] == [mine]
    kinds = [e["kind"] for e in data["sessions"][0]["events"]]
    assert kinds == [EventKind.JOINED, EventKind.SESSION_OPENED]
    assert other not in str(data)


def test_erase_removes_sessions_links_and_events_of_one_client(db):
    """Erasure deletes the client's rows and leaves other clients alone."""
    mine, other = _setup(db, "erase-t")
    with db.session() as orm:
        assert erase_client(orm, "erase-t", "K-9") == 1
    with db.session() as orm:
        assert orm.get(Session, mine) is None
        assert orm.get(Session, other) is not None
        for table in (Invite, SessionEvent):
            left = orm.scalar(
                select(func.count()).select_from(table).where(table.session_id == mine)
            )
            assert left == 0
