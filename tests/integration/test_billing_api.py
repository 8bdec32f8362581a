"""GET /api/billing: a therapist's own monthly billing."""

from __future__ import annotations

from sqlalchemy import insert

from sprechzimmer.store.billing import month_bounds
from sprechzimmer.store.models import SessionEvent
from tests.integration.helpers import api, log_in, open_session

MONTH = "2031-03"


def _bill_call(server, session_id: str, seconds: int) -> None:
    start = month_bounds(MONTH)[0] + 3_600_000
    rows = [
        (0, "media_connected", "therapist"),
        (0, "media_connected", "client"),
        (seconds * 1000, "session_ended", None),
    ]
    with server.db.session() as orm:
        orm.execute(
            insert(SessionEvent),
            [
                dict(session_id=session_id, at_ms=start + at, kind=kind, role=role)
                for at, kind, role in rows
            ],
        )


def test_billing_shows_only_my_month(server):
    """A therapist gets their own row for the month, no one else's."""
    mine, theirs = log_in(server, "billing-me"), log_in(server, "billing-other")
    _bill_call(server, open_session(server, mine, "K-1")["id"], 1500)
    _bill_call(server, open_session(server, mine, "K-2")["id"], 1500)
    _bill_call(server, open_session(server, theirs, "K-3")["id"], 600)

    with api(server, mine) as http:
        response = http.get("/api/billing", params={"month": MONTH})

    assert response.status_code == 200
    [row] = response.json()
    assert row["month"] == MONTH
    assert (row["sessions"], row["billable_seconds"], row["interruptions"]) == (
        2,
        3000,
        0,
    )
    assert row["billable_minutes"] == 50.0


def test_billing_needs_login_and_a_month(server):
    """Without a login the answer is 401; a malformed month is refused."""
    with api(server) as http:
        assert http.get("/api/billing", params={"month": MONTH}).status_code == 401
    with api(server, log_in(server, "billing-me")) as http:
        assert http.get("/api/billing", params={"month": "2031-13"}).status_code == 422
        assert http.get("/api/billing").status_code == 422
