"""The retention purge: what is no longer needed is deleted.

Sessions that are older than the retention, or have any event older than
it, are first reduced to monthly billing aggregates and then deleted with
their events and invite, in one transaction, so a purge that fails leaves
everything as it was and a purge run twice deletes nothing more. Whole
sessions go at once, which keeps every report the same before and after.
``docs/privacy.md`` lists what each table keeps and for how long.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text

from ..config import Settings
from .billing import aggregate_sessions, months_between
from .db import Database

log = logging.getLogger(__name__)

PURGE_INTERVAL_SECONDS = 24 * 3600

# Sessions past the retention: created before it, or with an event before it.
_EXPIRED_SESSIONS = """
  SELECT id AS session_id FROM sessions WHERE created_at < :cutoff
  UNION
  SELECT session_id FROM session_events WHERE at_ms < :cutoff_ms"""

_ADD_MONTH = """
INSERT INTO billing_months
  (therapist_id, month, sessions, billable_seconds, interruptions)
VALUES (:therapist_id, :month, :sessions, :billable_seconds, :interruptions)
ON CONFLICT (therapist_id, month) DO UPDATE SET
  sessions = billing_months.sessions + excluded.sessions,
  billable_seconds = billing_months.billable_seconds + excluded.billable_seconds,
  interruptions = billing_months.interruptions + excluded.interruptions
"""

# Deleting a session takes its events and invite with it (ON DELETE
# CASCADE); the statement after it catches events that a database without
# enforced foreign keys would leave behind.
_DELETIONS = {
    "invites": """
      DELETE FROM invites WHERE expires_at < :now OR revoked_at IS NOT NULL
        OR session_id IN (SELECT id FROM sessions WHERE ended_at IS NOT NULL)""",
    "sessions": f"DELETE FROM sessions WHERE id IN ({_EXPIRED_SESSIONS})",
    "session_events": """
      DELETE FROM session_events
      WHERE session_id NOT IN (SELECT id FROM sessions)""",
    "auth_tokens": "DELETE FROM auth_tokens WHERE expires_at < :now",
    "quality_samples": "DELETE FROM quality_samples WHERE bucket_at < :cutoff",
    "billing_months": "DELETE FROM billing_months WHERE month < :oldest_month",
}

# An arbitrary constant that names the purge among PostgreSQL advisory locks.
_PG_LOCK_KEY = 0x5A5052


@dataclass(frozen=True)
class PurgeResult:
    """How many rows of each table one purge deleted."""

    #: Events of expired sessions count under ``session_events``, though
    #: the database deletes them along with their session.
    deleted: dict[str, int]


def purge(
    db: Database,
    settings: Settings,
    now: datetime | None = None,
    lead: timedelta = timedelta(0),
) -> PurgeResult:
    """Reduce and delete everything past its retention; safe to repeat.

    ``lead`` deletes that much earlier than the retention says, so that a
    job that runs once per ``lead`` never keeps anything longer than the
    retention.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    cutoff = now - timedelta(days=settings.retention_days) + lead
    params = {
        # DateTime columns hold naive UTC
        "now": now.replace(tzinfo=None),
        "cutoff": cutoff.replace(tzinfo=None),
        "cutoff_ms": int(cutoff.timestamp() * 1000),
        "oldest_month": _months_back(now, 12 * settings.aggregate_retention_years),
    }
    with db.session() as orm:
        conn = orm.connection()
        _lock(conn)
        events = _aggregate(conn, params, settings.billing_grace_seconds)
        deleted = _delete(conn, params)
    deleted["session_events"] += events
    result = PurgeResult(deleted)
    log.info(
        "purge deleted %s",
        ", ".join(f"{count} {table}" for table, count in deleted.items()),
    )
    return result


async def purge_loop(db: Database, settings: Settings) -> None:
    """Purge now and then once a day, until cancelled.

    Each run deletes a day ahead of the retention, so that nothing waits
    for the next run past its last allowed day.
    """
    retention = timedelta(days=settings.retention_days)
    lead = min(timedelta(seconds=PURGE_INTERVAL_SECONDS), retention / 2)
    while True:
        try:
            await asyncio.to_thread(purge, db, settings, lead=lead)
        except Exception:
            # a failed purge is retried the next day; the server keeps going
            log.exception("purge failed")
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)


def _aggregate(conn: Connection, params: dict, grace_seconds: float) -> int:
    """Add the expired sessions' billing to ``billing_months``.

    Returns how many events those sessions had.
    """
    span = conn.execute(
        text(
            "SELECT MIN(at_ms), MAX(at_ms), COUNT(*) FROM session_events"
            f" WHERE session_id IN ({_EXPIRED_SESSIONS})"
        ),
        params,
    ).one()
    if span[0] is None:
        return 0
    months = months_between(int(span[0]), int(span[1]))
    rows = aggregate_sessions(conn, _EXPIRED_SESSIONS, params, months, grace_seconds)
    for therapist_id, month, sessions, seconds, interruptions in rows:
        conn.execute(
            text(_ADD_MONTH),
            {
                "therapist_id": therapist_id,
                "month": month,
                "sessions": sessions,
                "billable_seconds": seconds,
                "interruptions": interruptions,
            },
        )
    return int(span[2])


def _delete(conn: Connection, params: dict) -> dict[str, int]:
    return {
        table: conn.execute(text(sql), params).rowcount
        for table, sql in _DELETIONS.items()
    }


def _lock(conn: Connection) -> None:
    # Two server instances purging at once would add the same sessions to
    # the monthly totals twice; SQLite lets only one writer in anyway.
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def _months_back(now: datetime, months: int) -> str:
    index = now.year * 12 + now.month - 1 - months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


__all__ = ["PurgeResult", "purge", "purge_loop"]
