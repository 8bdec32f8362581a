"""The one error taxonomy; it decides what the other side sees.

::

    SprechzimmerError
    ├── UserError          shown to the person, with its message
    │   ├── NotAllowed     an action that does not fit the room's state
    │   ├── NotFound       no such session (also someone else's)
    │   ├── Conflict       the link is in use by someone else
    │   └── Gone           the session ended, was declined, or the link expired
    ├── ProtocolError      a broken message; the socket closes with its code
    └── NotAuthorised      generic text outside; the detail stays in the log

Anything else is an internal error: the other side reads "internal error"
and the server logs the exception. ``signaling.errors`` maps these to
WebSocket close codes, ``web.errors`` to HTTP statuses.
"""

from __future__ import annotations


class SprechzimmerError(Exception):
    """Root of every error the server means to raise."""

    #: A stable machine-readable name, sent to browsers and API clients.
    code = "error"


class UserError(SprechzimmerError):
    """Something the person can understand and act on."""

    code = "user_error"


class NotAllowed(UserError):
    code = "not_allowed"


class NotFound(UserError):
    code = "not_found"


class Conflict(UserError):
    code = "in_use"


class Gone(UserError):
    """The session or link is over; ``reason`` says why."""

    code = "gone"

    def __init__(self, message: str, reason: str = "ended") -> None:
        super().__init__(message)
        self.reason = reason


class ProtocolError(SprechzimmerError):
    """A message that breaks the signaling protocol."""

    code = "protocol_error"

    def __init__(self, message: str, close_code: int) -> None:
        super().__init__(message)
        self.close_code = close_code


class NotAuthorised(SprechzimmerError):
    """Missing or wrong credentials; never say which part was wrong."""

    code = "not_authorised"
