"""Tests for the mapper from errors to WebSocket close codes."""

from __future__ import annotations

import pytest

from sprechzimmer.rooms.errors import (
    Conflict,
    Gone,
    NotAllowed,
    NotAuthorised,
    NotFound,
    ProtocolError,
)
from sprechzimmer.signaling import errors
from sprechzimmer.signaling.errors import close_for


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (ProtocolError("malformed JSON", errors.MALFORMED), 4400, "protocol_error"),
        (ProtocolError("late", errors.HELLO_TIMEOUT), 4408, "protocol_error"),
        (NotAuthorised("detail for the log"), 4401, "not authorised"),
        (Gone("over", "expired"), 4410, "expired"),
        (Gone("over", "declined"), 4410, "declined"),
        (Conflict("in use"), 4409, "in_use"),
        (NotAllowed("not in the call"), 4422, "not_allowed"),
        (NotFound("no such session"), 4422, "not_found"),
        (RuntimeError("boom"), 1011, "internal error"),
    ],
)
def test_close_code_and_reason(error, code, reason):
    """Each kind of error closes with its own code and reason."""
    got_code, got_reason, message = close_for(error)

    assert (got_code, got_reason) == (code, reason)
    assert message["type"] == "error"


def test_not_authorised_hides_the_detail():
    """The other side reads a generic text; the detail stays on the server."""
    _, _, message = close_for(NotAuthorised("unknown invite token abc"))

    assert message == {
        "type": "error",
        "code": "not_authorised",
        "message": "not authorised",
    }


def test_internal_error_hides_the_exception():
    """An unexpected exception is reported only as "internal error"."""
    _, _, message = close_for(KeyError("secret-ish detail"))

    assert message == {"type": "error", "code": "internal", "message": "internal error"}


def test_gone_message_says_why():
    """An expired, declined or ended link says which in the last message."""
    _, _, message = close_for(Gone("the link has expired", "expired"))

    assert message["reason"] == "expired" and message["code"] == "gone"


def test_close_codes_are_distinct():
    """No two close codes of the protocol share a number."""
    codes = [
        value
        for name, value in vars(errors).items()
        if name.isupper() and isinstance(value, int)
    ]

    assert len(codes) == len(set(codes))
    standard = {errors.INTERNAL, errors.MESSAGE_TOO_BIG}
    assert all(4000 <= c <= 4999 for c in codes if c not in standard)
