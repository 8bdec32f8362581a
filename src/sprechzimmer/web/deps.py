"""What request handlers need: the app's services and the logged-in user."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from starlette.requests import HTTPConnection

from ..config import Settings
from ..rooms.errors import NotAuthorised
from ..signaling.registry import Registry
from ..store.accounts import LOGIN_COOKIE, therapist_for_login
from ..store.db import Database
from ..store.models import Therapist
from .throttle import LoginThrottle


@dataclass
class Services:
    """Everything the application built at start, kept on ``app.state``."""

    settings: Settings
    db: Database
    registry: Registry
    throttle: LoginThrottle = field(default_factory=LoginThrottle)


def services(connection: HTTPConnection) -> Services:
    return connection.app.state.services


def current_therapist(request: Request) -> Therapist:
    """The therapist logged in by cookie; NotAuthorised otherwise."""
    therapist = optional_therapist(request)
    if therapist is None:
        raise NotAuthorised("no valid login cookie")
    return therapist


def optional_therapist(request: Request) -> Therapist | None:
    token = request.cookies.get(LOGIN_COOKIE)
    if not token:
        return None
    with services(request).db.session() as db:
        return therapist_for_login(db, token)
