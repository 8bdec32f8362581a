"""Requests of the people concerned (GDPR articles 15 and 17).

A client is known to the system only by the pseudonymous client ID that
their therapist typed; so a request names the therapist and the client ID.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session as OrmSession

from .models import Invite, Session, SessionEvent, Therapist


def _sessions(db: OrmSession, therapist: str, client_id: str) -> list[Session]:
    query = (
        select(Session)
        .join(Therapist, Therapist.id == Session.therapist_id)
        .where(Therapist.username == therapist, Session.client_id == client_id)
        .order_by(Session.created_at)
    )
    return list(db.scalars(query))


def export_client(db: OrmSession, therapist: str, client_id: str) -> dict:
    """Everything stored about one client of one therapist, as plain data."""
    sessions = []
    for session in _sessions(db, therapist, client_id):
        events = db.scalars(
            select(SessionEvent)
            .where(SessionEvent.session_id == session.id)
            .order_by(SessionEvent.at_ms, SessionEvent.id)
        )
        sessions.append(
            {
                "session": session.id,
                "created_at": session.created_at.isoformat(),
                "ended_at": session.ended_at.isoformat() if session.ended_at else None,
                "end_reason": session.end_reason,
                "relay_only": session.relay_only,
                "events": [
                    {"at_ms": e.at_ms, "kind": e.kind, "role": e.role} for e in events
                ],
            }
        )
    return {"therapist": therapist, "client_id": client_id, "sessions": sessions}


def erase_client(db: OrmSession, therapist: str, client_id: str) -> int:
    """Delete one client's sessions with their links and events; count them.

    The monthly billing totals stay: they hold no client data.
    """
    ids = [session.id for session in _sessions(db, therapist, client_id)]
    if ids:
        # Explicit, so that it holds without foreign-key enforcement too.
        db.execute(delete(SessionEvent).where(SessionEvent.session_id.in_(ids)))
        db.execute(delete(Invite).where(Invite.session_id.in_(ids)))
        db.execute(delete(Session).where(Session.id.in_(ids)))
    return len(ids)
