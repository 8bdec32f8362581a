"""The JSON API: everything the dashboard does, for practice software too.

The invite token exists only in the answer to ``POST /api/sessions``; the
server keeps its hash, so the link cannot be shown again later.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field, StringConstraints

from ..rooms.errors import Gone, NotAllowed, NotAuthorised, NotFound
from ..store import accounts
from ..store.accounts import LOGIN_COOKIE
from ..store.billing import billing_report
from ..store.clock import now_ms
from ..store.models import Session, Therapist
from ..store.sessions import open_session, session_for_invite, session_of, sessions_of
from .deps import Services, current_therapist, services

router = APIRouter(prefix="/api", tags=["api"])

ClientId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$"
    ),
]


class Login(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class LoginAnswer(BaseModel):
    username: str


class NewSession(BaseModel):
    client_id: ClientId
    relay_only: bool = False


class SessionView(BaseModel):
    id: str
    client_id: str
    relay_only: bool
    created_at: datetime
    ended_at: datetime | None
    state: Literal["open", "ended", "declined"]
    client_waiting: bool
    #: The name the waiting client typed; held in memory only.
    waiting_name: str | None
    client_in_call: bool
    therapist_url: str


class OpenedSession(SessionView):
    #: The client's link. Shown once: the server keeps only a hash.
    invite_url: str


class SessionList(BaseModel):
    sessions: list[SessionView]


class InviteCheck(BaseModel):
    token: Annotated[str, Field(min_length=16, max_length=128)]


class InviteState(BaseModel):
    state: Literal["open", "ended", "declined", "expired", "invalid"]


Me = Annotated[Therapist, Depends(current_therapist)]
App = Annotated[Services, Depends(services)]


@router.post("/login", response_model=LoginAnswer)
def login(body: Login, response: Response, app: App) -> LoginAnswer:
    """Log in with username and password; sets the session cookie."""
    token = log_in(app, body.username, body.password)
    set_login_cookie(response, app, token)
    return LoginAnswer(username=body.username)


@router.post("/logout", status_code=204)
def logout(request: Request, response: Response, app: App) -> None:
    """End this login."""
    log_out(request, response, app)


@router.get("/sessions", response_model=SessionList)
def list_sessions(me: Me, app: App) -> SessionList:
    """The therapist's sessions, newest first."""
    with app.db.session() as db:
        rows = sessions_of(db, me.id)
    return SessionList(sessions=[view(app, row) for row in rows])


@router.post("/sessions", response_model=OpenedSession, status_code=201)
def create_session(body: NewSession, me: Me, app: App) -> OpenedSession:
    """Open a session for a client ID and make the client's invite link."""
    ttl = timedelta(hours=app.settings.invite_ttl_hours)
    with app.db.session() as db:
        opened = open_session(db, me.id, body.client_id, body.relay_only, ttl)
    base = app.settings.public_base_url.rstrip("/")
    return OpenedSession(
        **view(app, opened.session).model_dump(),
        invite_url=f"{base}/join#{opened.invite_token}",
    )


@router.get("/sessions/{session_id}", response_model=SessionView)
def get_session(session_id: str, me: Me, app: App) -> SessionView:
    """One session, with whether a client is waiting."""
    return view(app, own_session(app, me, session_id))


@router.post("/sessions/{session_id}/admit", response_model=SessionView)
async def admit(session_id: str, me: Me, app: App) -> SessionView:
    """Let the waiting client into the call."""
    session = own_session(app, me, session_id, must_be_open=True)
    room = app.registry.peek(session_id)
    if room is None or not room.client_waiting:
        raise NotAllowed("no client is waiting")
    await app.registry.admit(session_id)
    return view(app, session)


@router.post("/sessions/{session_id}/decline", response_model=SessionView)
async def decline(session_id: str, me: Me, app: App) -> SessionView:
    """Turn the waiting client away; the link stops working."""
    own_session(app, me, session_id, must_be_open=True)
    room = app.registry.peek(session_id)
    if room is None or not room.client_waiting:
        raise NotAllowed("no client is waiting")
    await app.registry.apply(session_id, lambda room: room.decline(now_ms()))
    return view(app, own_session(app, me, session_id))


@router.post("/sessions/{session_id}/end", response_model=SessionView)
async def end(session_id: str, me: Me, app: App) -> SessionView:
    """End the session for both sides; the link stops working."""
    if own_session(app, me, session_id).ended_at is None:
        await end_session(app, session_id)
    return view(app, own_session(app, me, session_id))


@router.post("/invite", response_model=InviteState)
def check_invite(body: InviteCheck, app: App) -> InviteState:
    """What an invite link leads to, for the client's page (no login)."""
    try:
        with app.db.session() as db:
            session_for_invite(db, body.token)
    except NotAuthorised:
        return InviteState(state="invalid")
    except Gone as gone:
        return InviteState(state=gone.reason)  # type: ignore[arg-type]
    return InviteState(state="open")


class BillingRow(BaseModel):
    month: str
    therapist: str
    sessions: int
    billable_seconds: int
    billable_minutes: float
    interruptions: int


Month = Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]


@router.get("/billing", response_model=list[BillingRow])
def billing(month: Month, me: Me, app: App) -> list[BillingRow]:
    """The therapist's billing for one month (UTC): see docs/billing.md."""
    grace = app.settings.billing_grace_seconds
    rows = billing_report(app.db, month, grace, therapist=me.username)
    return [BillingRow(**row.as_dict()) for row in rows]


# -- shared with the pages ------------------------------------------------


def log_in(app: Services, username: str, password: str) -> str:
    """A new login token, or NotAuthorised for a wrong name or password."""
    ttl = timedelta(hours=app.settings.login_ttl_hours)
    app.throttle.check(username)
    with app.throttle.hashing(), app.db.session() as db:
        therapist = accounts.check_password(db, username, password)
        if therapist is None:
            app.throttle.failed(username)
            raise NotAuthorised("wrong username or password")
        app.throttle.succeeded(username)
        return accounts.open_login(db, therapist, ttl)


def log_out(request: Request, response: Response, app: Services) -> None:
    token = request.cookies.get(LOGIN_COOKIE)
    if token:
        with app.db.session() as db:
            accounts.close_login(db, token)
    response.delete_cookie(LOGIN_COOKIE, path="/")


def set_login_cookie(response: Response, app: Services, token: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=int(app.settings.login_ttl_hours * 3600),
        path="/",
        httponly=True,
        samesite="strict",
        secure=app.settings.secure_cookies,
    )


async def end_session(app: Services, session_id: str) -> None:
    """End a session whether or not anyone is connected to it."""
    await app.registry.apply(session_id, lambda room: room.end(now_ms()))


def own_session(
    app: Services, me: Therapist, session_id: str, must_be_open: bool = False
) -> Session:
    with app.db.session() as db:
        session = session_of(db, me.id, session_id)
    if session is None:
        raise NotFound("no such session")
    if must_be_open and session.ended_at is not None:
        raise Gone("the session is over", session.end_reason or "ended")
    return session


def view(app: Services, session: Session) -> SessionView:
    room = app.registry.peek(session.id)
    base = app.settings.public_base_url.rstrip("/")
    state = "open" if session.ended_at is None else (session.end_reason or "ended")
    return SessionView(
        id=session.id,
        client_id=session.client_id,
        relay_only=session.relay_only,
        created_at=session.created_at,
        ended_at=session.ended_at,
        state=state,  # type: ignore[arg-type]
        client_waiting=bool(room and room.client_waiting),
        waiting_name=room.waiting_name if room and room.client_waiting else None,
        client_in_call=bool(room and room.client is not None),
        therapist_url=f"{base}/sessions/{session.id}",
    )
