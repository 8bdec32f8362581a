"""The login throttle: per-username failures and a cap on password checks."""

import pytest

from sprechzimmer.signaling.schema import INBOUND
from sprechzimmer.web.throttle import LoginThrottle, TooManyAttempts


def test_password_checks_beyond_the_cap_are_refused_not_queued():
    """A flood of logins cannot hold more cores than the cap allows."""
    throttle = LoginThrottle(concurrent=1)
    with throttle.hashing(), pytest.raises(TooManyAttempts), throttle.hashing():
        pass
    with throttle.hashing():
        pass  # the slot is free again


def test_hello_version_must_be_a_real_integer():
    """A boolean is no protocol version, though Python calls True 1."""
    hello = {"type": "hello", "role": "client", "instance": "abcdefgh12"}
    INBOUND.validate_python(hello | {"version": 1})
    with pytest.raises(ValueError):
        INBOUND.validate_python(hello | {"version": True})
