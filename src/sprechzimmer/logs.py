"""Logging set-up: one format, and nothing private from uvicorn."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class DropClientAddresses(logging.Filter):
    """Drop uvicorn's per-connection lines: they carry the client address.

    Its debug lines are dropped whole: they print request headers (the
    login cookie) and WebSocket frames (names, session descriptions).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            return False
        message = str(record.msg)
        if "WebSocket" in message and "%s" in message:
            return False
        return message not in ("connection open", "connection closed")


_FILTER = DropClientAddresses()


def setup(level: str = "INFO") -> None:
    """Configure the root logger once, for the CLI and the server."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
    # Alembic narrates every plugin it loads; an operator needs none of it.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    quiet_uvicorn()


def quiet_uvicorn() -> None:
    """Keep client addresses out of uvicorn's logs."""
    for name in ("uvicorn.error", "uvicorn"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    # The access log prints client addresses and query strings; it is off.
    logging.getLogger("uvicorn.access").disabled = True
