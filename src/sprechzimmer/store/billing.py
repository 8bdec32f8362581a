"""Billing reports per therapist and month, computed in SQL.

The query applies the rule of :mod:`sprechzimmer.rooms.billing` with window
functions, in one statement whose text is the same on SQLite (3.25 or
newer) and PostgreSQL. A report for a month adds the aggregates that the
purge left in ``billing_months`` to what the raw events of the remaining
sessions give; purge works on whole sessions, so no session is counted in
both.

A session belongs to the month (UTC) in which its billable time began, and
its billable time is counted in whole seconds, rounded down per session,
so a report reads the same before and after its events are purged.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, insert, text

from ..rooms.events import EventKind as K
from .db import Database
from .models import SessionEvent

log = logging.getLogger(__name__)

_ROLES = "('therapist', 'client')"
_STATE_KINDS = f"('{K.MEDIA_CONNECTED}', '{K.MEDIA_LOST}', '{K.LEFT}')"
_LIFE_KINDS = f"('{K.HEARTBEAT}', '{K.MEDIA_CONNECTED}')"

# Per session: billable stretches (both roles' media up), their gaps, and
# from them the session's seconds and interruptions. __CANDIDATES__ is a
# SELECT of session ids; the steps mirror rooms/billing.py. Heartbeats,
# nearly all rows, are read only for sessions that have not ended (the
# last heartbeat closes their media); everything else is a few rows per
# session, found through the indexes of migration 0002. Lookups per
# session are correlated subqueries, because neither database can
# estimate the size of a CTE and PostgreSQL would scan the whole table.
_EVENTS = "session_events WHERE session_id IN (SELECT session_id FROM cand)"
_PER_SESSION = f"""
cand AS (__CANDIDATES__),
ends AS (
  SELECT session_id, MIN(at_ms) AS end_ms FROM {_EVENTS}
    AND kind = '{K.SESSION_ENDED}'
  GROUP BY session_id
),
roles AS (SELECT 'therapist' AS role UNION ALL SELECT 'client'),
open_ AS (
  SELECT session_id FROM cand
  WHERE session_id NOT IN (SELECT session_id FROM ends)
),
seen AS (
  SELECT open_.session_id, roles.role, (
    SELECT MAX(e.at_ms) FROM session_events e
    WHERE e.session_id = open_.session_id AND e.role = roles.role
      AND (e.kind IN {_STATE_KINDS} OR e.kind IN {_LIFE_KINDS})
  ) AS at_ms
  FROM open_ CROSS JOIN roles
),
changes AS (
  SELECT session_id, role, at_ms, kind FROM {_EVENTS}
    AND kind IN {_STATE_KINDS} AND role IN {_ROLES}
),
steps AS (
  SELECT c.session_id, c.role, c.at_ms,
    CASE c.kind WHEN '{K.MEDIA_CONNECTED}' THEN 0 ELSE 1 END AS rnk,
    CASE c.kind WHEN '{K.MEDIA_CONNECTED}' THEN 1 ELSE 0 END AS up
  FROM changes c LEFT JOIN ends ON ends.session_id = c.session_id
  WHERE ends.end_ms IS NULL OR c.at_ms <= ends.end_ms
  UNION ALL
  SELECT ends.session_id, roles.role, ends.end_ms, 2, 0
  FROM ends CROSS JOIN roles
  UNION ALL
  SELECT session_id, role, at_ms, 3, 0 FROM seen WHERE at_ms IS NOT NULL
),
deltas AS (
  SELECT session_id, at_ms,
    up - LAG(up, 1, 0) OVER (
      PARTITION BY session_id, role ORDER BY at_ms, rnk) AS delta
  FROM steps
),
points AS (
  SELECT session_id, at_ms, SUM(delta) AS delta FROM deltas
  GROUP BY session_id, at_ms HAVING SUM(delta) <> 0
),
levels AS (
  SELECT session_id, at_ms,
    SUM(delta) OVER (PARTITION BY session_id ORDER BY at_ms
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS up_count,
    LEAD(at_ms) OVER (PARTITION BY session_id ORDER BY at_ms) AS next_ms
  FROM points
),
both_up AS (
  SELECT session_id, at_ms AS start_ms, next_ms AS end_ms,
    at_ms - LAG(next_ms) OVER (
      PARTITION BY session_id ORDER BY at_ms) AS gap_ms
  FROM levels WHERE up_count = 2
),
per_session AS (
  SELECT session_id, MIN(start_ms) AS started_ms,
    CAST(SUM(end_ms - start_ms) AS BIGINT) / 1000 AS billable_seconds,
    SUM(CASE WHEN gap_ms >= :grace_ms THEN 1 ELSE 0 END) AS interruptions
  FROM both_up GROUP BY session_id
),
billed AS (
  SELECT p.started_ms, p.billable_seconds, p.interruptions, (
    SELECT s.therapist_id FROM sessions s WHERE s.id = p.session_id
  ) AS therapist_id
  FROM per_session p
),
raw AS (
  SELECT b.therapist_id, m.month, COUNT(*) AS sessions,
    SUM(b.billable_seconds) AS billable_seconds,
    SUM(b.interruptions) AS interruptions
  FROM billed b
  JOIN months m ON b.started_ms >= m.start_ms AND b.started_ms < m.end_ms
  GROUP BY b.therapist_id, m.month
)"""

_REPORT = f"""
WITH __MONTHS__, {_PER_SESSION},
rows_ AS (
  SELECT therapist_id, month, sessions, billable_seconds, interruptions
  FROM raw
  UNION ALL
  SELECT therapist_id, month, sessions, billable_seconds, interruptions
  FROM billing_months WHERE month IN (SELECT month FROM months)
)
SELECT r.month, t.username AS therapist, SUM(r.sessions) AS sessions,
  SUM(r.billable_seconds) AS billable_seconds,
  SUM(r.interruptions) AS interruptions
FROM rows_ r JOIN therapists t ON t.id = r.therapist_id
__WHERE__
GROUP BY r.month, t.username
ORDER BY r.month, t.username
"""

# Billable time always begins at a media_connected, so a session billed
# in a month has one in that month.
_MONTH_CANDIDATES = f"""
  SELECT DISTINCT session_id FROM session_events
  WHERE kind = '{K.MEDIA_CONNECTED}' AND at_ms >= :lo_ms AND at_ms < :hi_ms"""


@dataclass(frozen=True)
class ReportRow:
    """One therapist's billing in one month."""

    month: str
    therapist: str
    sessions: int
    billable_seconds: int
    interruptions: int

    @property
    def billable_minutes(self) -> float:
        return round(self.billable_seconds / 60, 2)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "billable_minutes": self.billable_minutes}


def billing_report(
    db: Database, month: str, grace_seconds: float, therapist: str | None = None
) -> list[ReportRow]:
    """The report for one month (``YYYY-MM``), per therapist, by username."""
    lo_ms, hi_ms = month_bounds(month)
    months, params = _months_cte([month])
    where = ""
    if therapist is not None:
        where = "WHERE t.username = :therapist"
        params["therapist"] = therapist
    sql = _fill(_REPORT, MONTHS=months, WHERE=where, CANDIDATES=_MONTH_CANDIDATES)
    params.update(lo_ms=lo_ms, hi_ms=hi_ms, grace_ms=grace_ms(grace_seconds))
    with db.engine.connect() as conn:
        result = conn.execute(text(sql), params)
        return [
            ReportRow(row.month, row.therapist, *map(int, row[2:])) for row in result
        ]


def aggregate_sessions(
    conn: Connection,
    candidates: str,
    params: dict,
    months: list[str],
    grace_seconds: float,
) -> list[tuple[int, str, int, int, int]]:
    """Billing of the given sessions, per therapist id and month."""
    months_sql, month_params = _months_cte(months)
    sql = (
        f"WITH {months_sql}, {_fill(_PER_SESSION, CANDIDATES=candidates)}\n"
        "SELECT therapist_id, month, sessions, billable_seconds, interruptions"
        " FROM raw ORDER BY month, therapist_id"
    )
    bound = {**params, **month_params, "grace_ms": grace_ms(grace_seconds)}
    return [tuple(row) for row in conn.execute(text(sql), bound)]


def close_open_intervals(db: Database, now_ms: int, idle_ms: int = 0) -> int:
    """Close media left up by a server that stopped; return how many.

    For each role whose media is still up in a session that has not ended,
    a ``media_lost`` is stored at that role's last heartbeat (or later
    ``media_connected``), the point where the billing rule already ends
    the interval, so the bill does not change; a browser that is still in
    the call reports ``media_connected`` again when it reconnects.

    With several server instances, pass ``idle_ms`` (a few heartbeats) so
    that calls that another instance still serves are left alone.
    """
    with db.session() as orm:
        conn = orm.connection()
        found = conn.execute(text(_OPEN_ROLES), {"before_ms": now_ms - idle_ms})
        rows = [
            {
                "session_id": row.session_id,
                "at_ms": int(row.seen_ms),
                "kind": str(K.MEDIA_LOST),
                "role": row.role,
            }
            for row in found
        ]
        if rows:
            conn.execute(insert(SessionEvent), rows)
    if rows:
        log.info("closed %d media intervals left open by a stop", len(rows))
    return len(rows)


_OPEN_ROLES = f"""
WITH ended AS (
  SELECT DISTINCT session_id FROM session_events
  WHERE kind = '{K.SESSION_ENDED}'
),
steps AS (
  SELECT session_id, role, at_ms,
    CASE kind WHEN '{K.MEDIA_CONNECTED}' THEN 1 ELSE 0 END AS up,
    ROW_NUMBER() OVER (
      PARTITION BY session_id, role
      ORDER BY at_ms DESC,
        CASE kind WHEN '{K.MEDIA_CONNECTED}' THEN 0 ELSE 1 END DESC
    ) AS newest
  FROM session_events
  WHERE kind IN {_STATE_KINDS} AND role IN {_ROLES}
    AND session_id NOT IN (SELECT session_id FROM ended)
),
still_up AS (
  SELECT steps.session_id, steps.role, (
    SELECT MAX(e.at_ms) FROM session_events e
    WHERE e.session_id = steps.session_id AND e.role = steps.role
      AND e.kind IN {_LIFE_KINDS}
  ) AS seen_ms
  FROM steps WHERE steps.newest = 1 AND steps.up = 1
)
SELECT session_id, role, seen_ms FROM still_up WHERE seen_ms <= :before_ms
"""


def grace_ms(grace_seconds: float) -> int:
    return round(grace_seconds * 1000)


def month_bounds(month: str) -> tuple[int, int]:
    """The first and one past the last millisecond of a UTC month."""
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    year, mon = (
        (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    )
    end = start.replace(year=year, month=mon)
    return _ms(start), _ms(end)


def month_of(at_ms: int) -> str:
    """The UTC month (``YYYY-MM``) a millisecond time stamp falls in."""
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m")


def months_between(lo_ms: int, hi_ms: int) -> list[str]:
    """Every UTC month from the one holding ``lo_ms`` to ``hi_ms``'s."""
    months = [month_of(lo_ms)]
    while months[-1] != month_of(hi_ms):
        months.append(month_of(month_bounds(months[-1])[1]))
    return months


def _months_cte(months: list[str]) -> tuple[str, dict[str, object]]:
    # Month boundaries come in as parameters, so that no date function,
    # which differs between SQLite and PostgreSQL, appears in the query.
    selects, params = [], {}
    for i, month in enumerate(months):
        params[f"m{i}"], (params[f"lo{i}"], params[f"hi{i}"]) = (
            month,
            month_bounds(month),
        )
        selects.append(
            f"SELECT CAST(:m{i} AS VARCHAR(7)) AS month,"
            f" CAST(:lo{i} AS BIGINT) AS start_ms, CAST(:hi{i} AS BIGINT) AS end_ms"
        )
    return "months AS (" + " UNION ALL ".join(selects) + ")", params


def _fill(template: str, **parts: str) -> str:
    for name, part in parts.items():
        template = template.replace(f"__{name}__", part)
    return template


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
