"""Server time, in the two forms the tables use."""

import time
from datetime import UTC, datetime


def now_ms() -> int:
    """Milliseconds since the Unix epoch, UTC."""
    return time.time_ns() // 1_000_000


def utcnow() -> datetime:
    """The current UTC time as a naive datetime, as stored in the tables."""
    return datetime.now(UTC).replace(tzinfo=None)
