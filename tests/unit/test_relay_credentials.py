"""Tests for coturn shared-secret credentials."""

import base64
import hashlib
import hmac
import re

import pytest

from sprechzimmer.relay.credentials import make_credentials, turn_password


def test_username_is_expiry_and_random_part():
    """The username is "<expiry>:<random>", expiring ttl seconds from now."""
    credentials = make_credentials("secret", 3600, now=1_000_000.5)

    expiry, random_part = credentials.username.split(":")
    assert int(expiry) == credentials.expires_at == 1_003_600
    assert re.fullmatch(r"[A-Za-z0-9_-]{16}", random_part)


def test_password_is_base64_hmac_sha1_of_username():
    """The password is base64(HMAC-SHA1(secret, username)), as coturn checks."""
    credentials = make_credentials("north", 60)

    digest = hmac.new(b"north", credentials.username.encode(), hashlib.sha1)
    assert credentials.password == base64.b64encode(digest.digest()).decode()
    assert turn_password("north", credentials.username) == credentials.password


def test_every_call_gives_new_credentials():
    """Two calls in the same second give different usernames and passwords."""
    first = make_credentials("secret", 60, now=5.0)
    second = make_credentials("secret", 60, now=5.0)

    assert first.username != second.username
    assert first.password != second.password


def test_default_lifetime_is_one_hour():
    """Without a TTL the credentials live for one hour."""
    credentials = make_credentials("secret", now=0.0)

    assert credentials.expires_at == 3600


def test_empty_secret_is_refused():
    """An empty secret would make every password guessable, so it is refused."""
    with pytest.raises(ValueError, match="secret"):
        make_credentials("", 60)
