"""Server-rendered pages: login, dashboard, the call page, the client's link."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import text

from ..config import LANGUAGES
from ..rooms.errors import NotAuthorised
from .api import log_in, log_out, own_session, set_login_cookie
from .deps import Services, optional_therapist, services
from .i18n import (
    LANGUAGE_COOKIE,
    N_,
    browser_catalog,
    choose_language,
    translations,
)
from .throttle import TooManyAttempts

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

App = Annotated[Services, Depends(services)]


def render(request: Request, name: str, status: int = 200, **context) -> Response:
    language = choose_language(request)
    gettext = translations(language).gettext
    context.update(lang=language, _=gettext, here=request.url.path)
    return templates.TemplateResponse(request, name, context, status_code=status)


@router.get("/")
def home(request: Request) -> Response:
    target = "/dashboard" if optional_therapist(request) else "/login"
    return RedirectResponse(target, status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    if optional_therapist(request):
        return RedirectResponse("/dashboard", status_code=303)
    return render(request, "login.html")


@router.post("/login")
def login_form(
    request: Request,
    app: App,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
) -> Response:
    try:
        token = log_in(app, username, password)
    except NotAuthorised:
        error = N_("Wrong therapist code or password.")
        return render(request, "login.html", status=401, error=error)
    except TooManyAttempts:
        error = N_("Too many wrong passwords. Please wait a few minutes.")
        return render(request, "login.html", status=429, error=error)
    response = RedirectResponse("/dashboard", status_code=303)
    set_login_cookie(response, app, token)
    return response


@router.post("/logout")
def logout_form(request: Request, app: App) -> Response:
    response = RedirectResponse("/login", status_code=303)
    log_out(request, response, app)
    return response


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request) -> Response:
    therapist = optional_therapist(request)
    if therapist is None:
        return RedirectResponse("/login", status_code=303)
    return render(request, "dashboard.html", username=therapist.username)


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
def therapist_call(session_id: str, request: Request, app: App) -> Response:
    """The page where the therapist admits the client and holds the call."""
    therapist = optional_therapist(request)
    if therapist is None:
        return RedirectResponse("/login", status_code=303)
    session = own_session(app, therapist, session_id)
    return render(request, "call.html", role="therapist", session_id=session.id)


@router.get("/join", response_class=HTMLResponse)
def client_call(request: Request) -> Response:
    """The client's page; the invite token is in the fragment, unseen here."""
    return render(request, "call.html", role="client", session_id=None)


@router.get("/lang/{language}")
def switch_language(language: str, next: str = "/") -> Response:
    # Only local paths, so the switch cannot be used as an open redirect;
    # browsers read "/\evil.example" like "//evil.example".
    local = next.startswith("/") and next[1:2] not in ("/", "\\")
    target = next if local else "/"
    response = RedirectResponse(target, status_code=303)
    if language in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE, language, max_age=365 * 86400, samesite="lax"
        )
    return response


@router.get("/i18n/{language}.json")
def catalog(language: str) -> JSONResponse:
    """The browser's message catalog, from the same files as the pages'."""
    if language not in LANGUAGES:
        return JSONResponse({}, status_code=404)
    return JSONResponse(browser_catalog(language))


@router.get("/healthz")
def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(app: App) -> JSONResponse:
    """The process can serve: its database answers."""
    try:
        with app.db.session() as db:
            db.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means not ready
        return JSONResponse({"status": "database unavailable"}, status_code=503)
    return JSONResponse({"status": "ready"})
