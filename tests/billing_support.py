"""Shared by the billing tests: event streams, a reference, databases.

The reference computation here is deliberately plain and slow: it cuts
time at every event, asks of each piece whether both roles were up in it
by replaying the stream from the start, and adds the pieces up. It shares
no code with ``rooms/billing.py`` or the SQL in ``store/billing.py``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import strategies as st
from sqlalchemy import create_engine, insert, select, text

from sprechzimmer.rooms.billing import Event
from sprechzimmer.store.billing import month_of
from sprechzimmer.store.db import Database
from sprechzimmer.store.models import Session, SessionEvent, Therapist

ROLES = ("therapist", "client")
KINDS = (
    "session_opened",
    "client_waiting",
    "admitted",
    "joined",
    "left",
    "media_connected",
    "media_lost",
    "heartbeat",
    "session_ended",
)
GRACE_MS = 10_000
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# -- event streams ------------------------------------------------------------

# Weighted towards the events that billing reads, so that most generated
# sessions bill something.
_WEIGHTED_KINDS = (
    *KINDS,
    *("media_connected",) * 5,
    *("heartbeat",) * 5,
    *("media_lost",) * 2,
)

#: Anything at all, crowded into a few seconds so that times collide.
any_event = st.builds(
    Event,
    at_ms=st.integers(0, 40).map(lambda n: n * 500),
    kind=st.sampled_from(_WEIGHTED_KINDS),
    role=st.sampled_from((*ROLES, *ROLES, None)),
)


@st.composite
def _any_stream(draw: st.DrawFn) -> list[Event]:
    events = draw(st.lists(any_event, max_size=40))
    if draw(st.booleans()):
        # half of the streams start with both browsers connected, for 20 s
        events += [
            Event(draw(st.integers(0, 10)) * 500, "media_connected", r) for r in ROLES
        ]
        events += [Event(20_000, "heartbeat", role) for role in ROLES]
        drops = st.tuples(
            st.integers(0, 40), st.integers(0, 12), st.sampled_from(ROLES)
        )
        for start, length, role in draw(st.lists(drops, max_size=3)):
            events.append(Event(start * 500, "media_lost", role))
            events.append(Event((start + length) * 500, "media_connected", role))
    return draw(st.permutations(events))


#: Any events, in any order, half of them after both browsers connected.
any_stream = _any_stream()

_ACTIONS = ("join", "leave", "up", "up", "down", "down", *("heartbeat",) * 4)


@dataclass
class Behaviour:
    """A generated session in which browsers act as browsers would."""

    events: list[Event]
    #: Per role, the stretches between its signaling connect and disconnect.
    presence: dict[str, list[tuple[int, int]]]


@st.composite
def behaviours(draw: st.DrawFn, max_steps: int = 40) -> Behaviour:
    """A session: each role joins, has media, beats, leaves, maybe again."""
    openers = [(0, role, "join") for role in ROLES] + [(0, r, "up") for r in ROLES]
    steps = openers + draw(
        st.lists(
            st.tuples(
                st.integers(0, 15_000),
                st.sampled_from(ROLES),
                st.sampled_from(_ACTIONS),
            ),
            max_size=max_steps,
        )
    )
    now = 0
    events: list[Event] = []
    joined: dict[str, int | None] = dict.fromkeys(ROLES)
    up = dict.fromkeys(ROLES, False)
    presence: dict[str, list[tuple[int, int]]] = {role: [] for role in ROLES}
    for delay, role, action in steps:
        now += delay
        if action == "join" and joined[role] is None:
            joined[role] = now
            events.append(Event(now, "joined", role))
        elif joined[role] is None:
            continue
        elif action == "leave":
            presence[role].append((joined[role], now))
            joined[role], up[role] = None, False
            events.append(Event(now, "left", role))
        elif action == "up" and not up[role]:
            up[role] = True
            events.append(Event(now, "media_connected", role))
        elif action == "down" and up[role]:
            up[role] = False
            events.append(Event(now, "media_lost", role))
        elif action == "heartbeat":
            events.append(Event(now, "heartbeat", role))

    ended = draw(st.booleans())
    for role in ROLES:
        if joined[role] is not None:
            # without a disconnect, the server saw the role until its last word
            last = now if ended else max(e.at_ms for e in events if e.role == role)
            presence[role].append((joined[role], last))
    if ended:
        events.append(Event(now, "session_ended"))
    return Behaviour(events, presence)


# -- the reference --------------------------------------------------------------


@dataclass(frozen=True)
class RefBill:
    billable_ms: int
    interruptions: int
    started_ms: int | None


def reference_bill(events: list[Event], grace_ms: int = GRACE_MS) -> RefBill:
    """The billing rule, computed the slow and obvious way."""
    ends = [e.at_ms for e in events if e.kind == "session_ended"]
    if ends:
        events = [e for e in events if e.at_ms <= min(ends)]
    times = sorted({e.at_ms for e in events})

    pieces: list[list[int]] = []
    for start, end in zip(times, times[1:], strict=False):
        if all(_up_during(events, times, role, start, end) for role in ROLES):
            if pieces and pieces[-1][1] == start:
                pieces[-1][1] = end
            else:
                pieces.append([start, end])

    gaps = [b[0] - a[1] for a, b in zip(pieces, pieces[1:], strict=False)]
    return RefBill(
        billable_ms=sum(end - start for start, end in pieces),
        interruptions=sum(gap >= grace_ms for gap in gaps),
        started_ms=pieces[0][0] if pieces else None,
    )


def _up_during(
    events: list[Event], times: list[int], role: str, start: int, end: int
) -> bool:
    """Whether the role's media was up from ``start`` to ``end``."""
    up = False
    for ms in times:
        if ms > start:
            break
        here = [e for e in events if e.at_ms == ms]
        if any(e.kind == "media_connected" and e.role == role for e in here):
            up = True
        if any(_closes(e, role) for e in here):
            up = False
    if not up:
        return False
    # up, and something said about the role later covers the piece
    return any(
        e.at_ms >= end
        and (_closes(e, role) or e.role == role and e.kind in _SIGNS_OF_LIFE)
        for e in events
    )


_SIGNS_OF_LIFE = ("heartbeat", "media_connected")


def _closes(event: Event, role: str) -> bool:
    return event.kind == "session_ended" or (
        event.role == role and event.kind in ("media_lost", "left")
    )


def reference_report(
    sessions: dict[str, tuple[str, list[Event]]], month: str, grace_ms: int = GRACE_MS
) -> dict[str, tuple[int, int, int]]:
    """Per therapist: sessions, billable seconds, interruptions in a month."""
    report: dict[str, list[int]] = {}
    for therapist, events in sessions.values():
        bill = reference_bill(events, grace_ms)
        if bill.started_ms is None or month_of(bill.started_ms) != month:
            continue
        row = report.setdefault(therapist, [0, 0, 0])
        row[0] += 1
        row[1] += bill.billable_ms // 1000
        row[2] += bill.interruptions
    return {name: tuple(row) for name, row in report.items()}


# -- databases ------------------------------------------------------------------

BACKENDS = ("sqlite", pytest.param("postgresql", marks=pytest.mark.postgres))


@contextmanager
def fresh_database(backend: str, tmp_dir) -> Iterator[Database]:
    """A migrated, empty database of its own: a file, or a PostgreSQL schema."""
    if backend == "sqlite":
        db = Database(f"sqlite:///{tmp_dir}/billing.db")
        db.migrate()
        try:
            yield db
        finally:
            db.dispose()
        return

    schema = "t_" + secrets.token_hex(6)
    admin = create_engine(PG_ADMIN_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as error:  # noqa: BLE001 - any failure means no PostgreSQL
        admin.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is needed in CI: {error}")
        pytest.skip("no PostgreSQL at 127.0.0.1:5432")
    db = Database(f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}")
    try:
        db.migrate()
        yield db
    finally:
        db.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


_TABLES = (
    "session_events",
    "invites",
    "sessions",
    "billing_months",
    "auth_tokens",
    "quality_samples",
    "therapists",
)


def clear(db: Database) -> None:
    """Empty the tables the billing and purge tests fill."""
    with db.engine.begin() as conn:
        for table in _TABLES:
            conn.execute(text(f"DELETE FROM {table}"))


def seed(
    db: Database,
    sessions: dict[str, tuple[str, list[Event]]],
    base_ms: int,
    created_at: datetime | None = None,
) -> None:
    """Store therapists, sessions and their events, times shifted by base."""
    names = sorted({therapist for therapist, _ in sessions.values()})
    created = created_at or datetime.fromtimestamp(base_ms / 1000, UTC).replace(
        tzinfo=None
    )
    with db.session() as orm:
        ids = dict(orm.execute(select(Therapist.username, Therapist.id)).all())
        for name in names:
            if name not in ids:
                therapist = Therapist(
                    username=name, password_hash="-", created_at=created, active=True
                )
                orm.add(therapist)
                orm.flush()
                ids[name] = therapist.id
        for session_id, (therapist, _) in sessions.items():
            orm.add(
                Session(
                    id=session_id,
                    therapist_id=ids[therapist],
                    client_id="C-1",
                    relay_only=False,
                    created_at=created,
                )
            )
        orm.flush()
        rows = [
            dict(session_id=sid, at_ms=base_ms + e.at_ms, kind=e.kind, role=e.role)
            for sid, (_, events) in sessions.items()
            for e in events
        ]
        if rows:
            orm.execute(insert(SessionEvent), rows)
