"""Short-lived TURN credentials under coturn's shared-secret scheme.

coturn (``use-auth-secret``) accepts a username ``"<expiry>:<anything>"``
whose password is ``base64(HMAC-SHA1(secret, username))`` and refuses it
once the Unix time ``<expiry>`` has passed. The server and coturn share
only the secret, so no per-user state is kept on either side.

The part after the colon is random: it carries no session, client or
therapist identifier, so coturn's log cannot link a relay allocation to a
person.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

#: coturn's default ``rest-api-separator``.
SEPARATOR = ":"
DEFAULT_TTL_SECONDS = 3600


@dataclass(frozen=True)
class TurnCredentials:
    """A username and password that coturn accepts until ``expires_at``."""

    username: str
    password: str
    expires_at: int


def turn_password(secret: str, username: str) -> str:
    """Return the password coturn expects for ``username`` and ``secret``."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def make_credentials(
    secret: str,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    now: float | None = None,
) -> TurnCredentials:
    """Create fresh credentials that expire ``ttl_seconds`` from ``now``."""
    if not secret:
        raise ValueError("the TURN secret is empty")
    issued = time.time() if now is None else now
    expires_at = int(issued + ttl_seconds)

    # 96 random bits: unguessable, and nothing that names a person.
    username = f"{expires_at}{SEPARATOR}{secrets.token_urlsafe(12)}"
    return TurnCredentials(username, turn_password(secret, username), expires_at)
