"""How long the monthly billing report takes over a million events.

Fills a fresh SQLite file and a fresh PostgreSQL schema with the same
generated month of calls (heartbeats every 10 s from both browsers, as the
server stores them), then times the report beside a plain
``SELECT count(*)`` over the same table, best of a few runs, and prints
both with their ratio.

    .venv/bin/python benchmarks/billing_report.py              # 1,000,000
    .venv/bin/python benchmarks/billing_report.py --events 50000
    .venv/bin/python benchmarks/billing_report.py --backends sqlite

PostgreSQL is expected at 127.0.0.1:5432 (user postgres, database test);
the schema made for the run is dropped at the end.
"""

from __future__ import annotations

import argparse
import random
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import create_engine, insert, text

from sprechzimmer.store.billing import billing_report, month_bounds
from sprechzimmer.store.db import Database
from sprechzimmer.store.models import Session, Therapist

MONTH = "2026-11"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HEARTBEAT_MS = 10_000
THERAPISTS = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    sessions, events = generate(args.events, random.Random(1))
    print(f"{len(events):,} events in {len(sessions):,} sessions, month {MONTH}")
    print(f"{'backend':<12}{'count(*)':>12}{'report':>12}{'ratio':>8}  rows")
    for backend in args.backends.split(","):
        with database(backend) as db:
            fill(db, sessions, events)
            count_s = best(args.runs, lambda db=db: count(db))
            report_s = best(
                args.runs, lambda db=db: billing_report(db, MONTH, grace_seconds=10)
            )
            rows = billing_report(db, MONTH, grace_seconds=10)
            print(
                f"{backend:<12}{count_s * 1000:>10.1f}ms{report_s * 1000:>10.1f}ms"
                f"{report_s / count_s:>8.1f}  {len(rows)} therapists,"
                f" {sum(r.billable_seconds for r in rows) / 3600:,.0f} h billed"
            )


def generate(
    total: int, rnd: random.Random
) -> tuple[list[tuple[str, int]], list[tuple[str, int, str, str | None]]]:
    """Sessions of the month and their events, about ``total`` of them."""
    lo_ms, hi_ms = month_bounds(MONTH)
    sessions: list[tuple[str, int]] = []
    events: list[tuple[str, int, str, str | None]] = []
    while len(events) < total:
        sid = secrets.token_hex(16)
        sessions.append((sid, rnd.randrange(THERAPISTS) + 1))
        start = rnd.randrange(lo_ms, hi_ms - 4 * 3600 * 1000)
        events += list(_call(sid, start, rnd))
    return sessions, events[:total]


def _call(sid: str, t: int, rnd: random.Random) -> Iterator[tuple]:
    yield sid, t, "session_opened", None
    yield sid, t + 60_000, "client_waiting", None
    yield sid, t + 90_000, "admitted", None
    for role in ("therapist", "client"):
        yield sid, t + 91_000, "joined", role
        yield sid, t + 95_000, "media_connected", role
    end = t + 95_000 + rnd.randrange(20, 60) * 60_000
    for beat in range(t + 95_000 + HEARTBEAT_MS, end, HEARTBEAT_MS):
        yield sid, beat, "heartbeat", "therapist"
        yield sid, beat + 300, "heartbeat", "client"
        if rnd.random() < 0.002:
            # now and then a drop, some shorter than the grace
            yield sid, beat + 500, "media_lost", "client"
            yield (
                sid,
                beat + 500 + rnd.randrange(2, 30) * 1000,
                "media_connected",
                "client",
            )
    yield sid, end, "session_ended", None


@contextmanager
def database(backend: str) -> Iterator[Database]:
    """A fresh, migrated database, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite:///{tmp}/bench.db")
            db.migrate()
            yield db
            db.dispose()
        return
    schema = "bench_" + secrets.token_hex(4)
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    db = Database(f"{PG_URL}?options=-csearch_path%3D{schema}")
    try:
        db.migrate()
        yield db
    finally:
        db.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def fill(db: Database, sessions: list, events: list) -> None:
    """Store therapists, sessions and events, the events in bulk."""
    created = datetime.fromtimestamp(month_bounds(MONTH)[0] / 1000, UTC)
    created = created.replace(tzinfo=None)
    with db.session() as orm:
        orm.execute(
            insert(Therapist),
            [
                dict(
                    id=i + 1,
                    username=f"t{i + 1:03d}",
                    password_hash="-",
                    created_at=created,
                    active=True,
                )
                for i in range(THERAPISTS)
            ],
        )
        orm.execute(
            insert(Session),
            [
                dict(
                    id=sid,
                    therapist_id=tid,
                    client_id="C",
                    relay_only=False,
                    created_at=created,
                )
                for sid, tid in sessions
            ],
        )
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        columns = "session_events (session_id, at_ms, kind, role)"
        if db.engine.dialect.name == "postgresql":
            with cursor.copy(f"COPY {columns} FROM STDIN") as copy:
                for row in events:
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {columns} VALUES (?, ?, ?, ?)", events)
        raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def count(db: Database) -> int:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM session_events")).scalar_one()


def best(runs: int, work) -> float:
    """The shortest of ``runs`` timings, in seconds."""
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        timings.append(time.perf_counter() - start)
    return min(timings)


if __name__ == "__main__":
    main()
