"""Sessions, their invite links and their connection events."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session as OrmSession

from ..rooms.errors import Gone, NotAuthorised
from ..rooms.events import EventKind, Role
from .clock import now_ms, utcnow
from .models import Invite, Session, SessionEvent
from .tokens import hash_token, new_token


@dataclass(frozen=True)
class Opened:
    """A new session and the invite token, which exists only in this value."""

    session: Session
    invite_token: str


def open_session(
    db: OrmSession,
    therapist_id: int,
    client_id: str,
    relay_only: bool,
    invite_ttl: timedelta,
) -> Opened:
    """Open a session for a client and make its invite link."""
    now = utcnow()
    session = Session(
        id=secrets.token_hex(16),
        therapist_id=therapist_id,
        client_id=client_id,
        relay_only=relay_only,
        created_at=now,
    )
    token = new_token()
    db.add(session)
    db.flush()
    db.add(
        Invite(
            session_id=session.id,
            token_hash=hash_token(token),
            expires_at=now + invite_ttl,
        )
    )
    db.add(
        SessionEvent(
            session_id=session.id, at_ms=now_ms(), kind=EventKind.SESSION_OPENED
        )
    )
    return Opened(session, token)


def sessions_of(db: OrmSession, therapist_id: int, limit: int = 200) -> list[Session]:
    """A therapist's sessions, newest first."""
    query = (
        select(Session)
        .where(Session.therapist_id == therapist_id)
        .order_by(Session.created_at.desc())
        .limit(limit)
    )
    return list(db.scalars(query))


def session_of(db: OrmSession, therapist_id: int, session_id: str) -> Session | None:
    """One of the therapist's sessions, or None (also for someone else's)."""
    session = db.get(Session, session_id)
    if session is None or session.therapist_id != therapist_id:
        return None
    return session


def session_for_invite(db: OrmSession, token: str) -> tuple[Session, Invite]:
    """The session an invite token opens.

    Raises NotAuthorised for a token that never existed and Gone, with the
    reason, for one that was valid once.
    """
    invite = db.scalar(select(Invite).where(Invite.token_hash == hash_token(token)))
    if invite is None:
        raise NotAuthorised("unknown invite token")
    session = db.get(Session, invite.session_id)
    assert session is not None
    if session.ended_at is not None:
        raise Gone("the session is over", session.end_reason or "ended")
    if invite.revoked_at is not None:
        raise Gone("the link was withdrawn", "ended")
    if invite.expires_at <= utcnow():
        raise Gone("the link has expired", "expired")
    return session, invite


def finish_session(db: OrmSession, session_id: str, reason: str) -> None:
    """Mark a session over and make its link useless."""
    now = utcnow()
    db.execute(
        update(Session)
        .where(Session.id == session_id, Session.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason)
    )
    db.execute(
        update(Invite)
        .where(Invite.session_id == session_id, Invite.revoked_at.is_(None))
        .values(revoked_at=now, resume_hash=None)
    )


def keep_resume(db: OrmSession, session_id: str, resume_token: str) -> None:
    """Remember the admitted client's resume credential, hashed."""
    db.execute(
        update(Invite)
        .where(Invite.session_id == session_id)
        .values(resume_hash=hash_token(resume_token))
    )


def resume_matches(invite: Invite, resume_token: str | None) -> bool:
    return bool(
        resume_token
        and invite.resume_hash is not None
        and secrets.compare_digest(invite.resume_hash, hash_token(resume_token))
    )


def record_events(
    db: OrmSession,
    session_id: str,
    events: Iterable[tuple[EventKind, Role | None, int]],
) -> None:
    """Store connection events, in the order given."""
    for kind, role, at_ms in events:
        db.add(
            SessionEvent(
                session_id=session_id,
                at_ms=at_ms,
                kind=str(kind),
                role=str(role) if role else None,
            )
        )


def events_of(db: OrmSession, session_id: str) -> list[SessionEvent]:
    query = (
        select(SessionEvent)
        .where(SessionEvent.session_id == session_id)
        .order_by(SessionEvent.at_ms, SessionEvent.id)
    )
    return list(db.scalars(query))
