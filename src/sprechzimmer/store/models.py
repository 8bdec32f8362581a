"""The database tables: only what billing and operation need.

``docs/privacy.md`` says for each table what it holds, why, and for how
long. No table has a column for an IP address or a client's name.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so that migrations read the same on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Therapist(Base):
    """A therapist account; the username is the therapist code."""

    __tablename__ = "therapists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class AuthToken(Base):
    """A therapist's login; only the SHA-256 of the cookie value is kept."""

    __tablename__ = "auth_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    therapist_id: Mapped[int] = mapped_column(
        ForeignKey("therapists.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class Session(Base):
    """A session (room) for one client, opened by a therapist."""

    __tablename__ = "sessions"

    #: Random, so that URLs reveal neither order nor count of sessions.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    therapist_id: Mapped[int] = mapped_column(
        ForeignKey("therapists.id", ondelete="CASCADE"), index=True
    )
    #: The pseudonymous client ID exactly as the therapist typed it.
    client_id: Mapped[str] = mapped_column(String(100))
    relay_only: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: ``ended`` or ``declined`` once the session is over.
    end_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)


class Invite(Base):
    """The client's link to a session: a token hash and an expiry."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), unique=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: SHA-256 of the resume credential handed out on admission, so that a
    #: client who reloads, or whose server restarted, skips the waiting room.
    resume_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class SessionEvent(Base):
    """A connection event, time-stamped by the server, used for billing."""

    __tablename__ = "session_events"
    __table_args__ = (
        Index("ix_session_events_session_at", "session_id", "at_ms"),
        # for the billing report (migration 0002)
        Index("ix_session_events_session_kind", "session_id", "kind", "at_ms"),
        Index("ix_session_events_kind_at", "kind", "at_ms", "session_id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True
    )
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE")
    )
    #: Server time in milliseconds since the Unix epoch (UTC). Integers keep
    #: the billing arithmetic in SQL the same on SQLite and PostgreSQL.
    at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    #: ``therapist`` or ``client``; empty for events of the session itself.
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)


class BillingMonth(Base):
    """Billing totals of one therapist and month, kept after events go."""

    __tablename__ = "billing_months"
    __table_args__ = (UniqueConstraint("therapist_id", "month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    therapist_id: Mapped[int] = mapped_column(
        ForeignKey("therapists.id", ondelete="CASCADE")
    )
    #: ``YYYY-MM``
    month: Mapped[str] = mapped_column(String(7))
    sessions: Mapped[int] = mapped_column(Integer, default=0)
    billable_seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    interruptions: Mapped[int] = mapped_column(Integer, default=0)


class QualitySample(Base):
    """Anonymous call-quality metadata.

    Deliberately without a foreign key: ``call_tag`` is a random value made
    for one call that appears in no other table, and ``bucket_at`` is
    coarsened to ten minutes, so a sample cannot be joined to a session.
    """

    __tablename__ = "quality_samples"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True
    )
    call_tag: Mapped[str] = mapped_column(String(32))
    bucket_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    path: Mapped[str | None] = mapped_column(String(8), nullable=True)
    send_kbps: Mapped[float | None] = mapped_column(Float, nullable=True)
    recv_kbps: Mapped[float | None] = mapped_column(Float, nullable=True)
    loss_pct: Mapped[float | None] = mapped_column(Float, nullable=True)
    rtt_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    jitter_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    fps: Mapped[float | None] = mapped_column(Float, nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    profile: Mapped[str | None] = mapped_column(String(16), nullable=True)
    decrypt_failures: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
