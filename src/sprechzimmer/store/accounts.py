"""Therapist accounts and their logins."""

from __future__ import annotations

from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session as OrmSession

from .clock import utcnow
from .models import AuthToken, Therapist
from .tokens import hash_token, new_token

#: The therapist's login cookie; its value is stored only as a hash.
LOGIN_COOKIE = "sz_login"

# argon2id with the library's defaults (RFC 9106 "second recommended").
_hasher = PasswordHasher()
# Verifying against this keeps a wrong username as slow as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password")


class AccountExists(Exception):
    """A therapist with this username exists already."""


def add_therapist(db: OrmSession, username: str, password: str) -> Therapist:
    """Create a therapist account; the username is the therapist code."""
    if db.scalar(select(Therapist).where(Therapist.username == username)):
        raise AccountExists(username)
    therapist = Therapist(
        username=username,
        password_hash=_hasher.hash(password),
        created_at=utcnow(),
        active=True,
    )
    db.add(therapist)
    db.flush()
    return therapist


def set_password(db: OrmSession, username: str, password: str) -> bool:
    therapist = db.scalar(select(Therapist).where(Therapist.username == username))
    if therapist is None:
        return False
    therapist.password_hash = _hasher.hash(password)
    db.execute(delete(AuthToken).where(AuthToken.therapist_id == therapist.id))
    return True


def list_therapists(db: OrmSession) -> list[Therapist]:
    return list(db.scalars(select(Therapist).order_by(Therapist.username)))


def check_password(db: OrmSession, username: str, password: str) -> Therapist | None:
    """The therapist if username and password match, else None."""
    therapist = db.scalar(select(Therapist).where(Therapist.username == username))
    stored = therapist.password_hash if therapist else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if therapist is None or not therapist.active:
        return None
    if _hasher.check_needs_rehash(stored):
        therapist.password_hash = _hasher.hash(password)
    return therapist


def open_login(db: OrmSession, therapist: Therapist, ttl: timedelta) -> str:
    """A new login cookie value for the therapist; only its hash is kept."""
    token = new_token()
    now = utcnow()
    db.add(
        AuthToken(
            therapist_id=therapist.id,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return token


def therapist_for_login(db: OrmSession, token: str) -> Therapist | None:
    """The therapist behind a login cookie that has not expired."""
    row = db.scalar(
        select(AuthToken).where(
            AuthToken.token_hash == hash_token(token),
            AuthToken.expires_at > utcnow(),
        )
    )
    if row is None:
        return None
    therapist = db.get(Therapist, row.therapist_id)
    return therapist if therapist is not None and therapist.active else None


def close_login(db: OrmSession, token: str) -> None:
    db.execute(delete(AuthToken).where(AuthToken.token_hash == hash_token(token)))
