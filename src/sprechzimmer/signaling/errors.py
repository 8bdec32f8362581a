"""The one mapper from errors to WebSocket close codes and messages."""

from __future__ import annotations

from ..rooms.errors import (
    Conflict,
    Gone,
    NotAuthorised,
    ProtocolError,
    SprechzimmerError,
    UserError,
)

# Close codes in the private range 4000-4999, echoing HTTP where one fits.
REPLACED = 4000
MALFORMED = 4400
UNAUTHORISED = 4401
UNKNOWN_TYPE = 4404
HELLO_TIMEOUT = 4408
IN_USE = 4409
GONE = 4410
BEFORE_HELLO = 4412
TOO_BIG = 4413
INVALID = 4422
VERSION = 4426
INTERNAL = 1011
#: Sent by uvicorn itself for a message over ``ws_max_message_bytes``.
MESSAGE_TOO_BIG = 1009


def close_for(error: Exception) -> tuple[int, str, dict]:
    """Close code, close reason and a last error message for ``error``."""
    if isinstance(error, ProtocolError):
        return error.close_code, error.code, _message(error.code, str(error))
    if isinstance(error, NotAuthorised):
        return UNAUTHORISED, "not authorised", _message(error.code, "not authorised")
    if isinstance(error, Gone):
        message = _message(error.code, str(error)) | {"reason": error.reason}
        return GONE, error.reason, message
    if isinstance(error, Conflict):
        return IN_USE, error.code, _message(error.code, str(error))
    if isinstance(error, UserError | SprechzimmerError):
        return INVALID, error.code, _message(error.code, str(error))
    return INTERNAL, "internal error", _message("internal", "internal error")


def _message(code: str, text: str) -> dict:
    return {"type": "error", "code": code, "message": text}
