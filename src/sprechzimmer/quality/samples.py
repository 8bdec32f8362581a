"""Anonymous quality samples from the browsers, checked and stored.

A sample says how a call went (bitrates, loss, delay, frame rate, the kind
of path) and nothing about who was in it. It is stored under a call tag:
a random value the server makes when a call starts and keeps only in the
memory of the live room, never in another table, so a stored sample
cannot be joined back to its session. Its time is coarsened to ten
minutes for the same reason.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..store.db import Database
from ..store.models import QualitySample

#: The JSON of a sample is small; anything bigger is not one.
MAX_SAMPLE_BYTES = 1024
#: Samples are stored in buckets of this length.
BUCKET = timedelta(minutes=10)

# Base64url, 24 characters: a different shape from the 32 hex digits of a
# session id, so a session id passed by mistake is refused.
_CALL_TAG = re.compile(r"[A-Za-z0-9_-]{24}")

Kbps = Annotated[float, Field(ge=0, le=100_000)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]


class SampleError(ValueError):
    """The browser sent something that is not a valid sample."""


class Sample(BaseModel):
    """One browser's sample of a call, as sent over signaling."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    send_kbps: Kbps | None = None
    recv_kbps: Kbps | None = None
    loss_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    rtt_ms: Annotated[float, Field(ge=0, le=60_000)] | None = None
    jitter_ms: Annotated[float, Field(ge=0, le=10_000)] | None = None
    fps: Annotated[float, Field(ge=0, le=240)] | None = None
    width: Annotated[int, Field(ge=0, le=8192)] | None = None
    height: Annotated[int, Field(ge=0, le=8192)] | None = None
    #: ICE candidate type of this browser's end of the pair in use.
    candidate: Literal["host", "srflx", "prflx", "relay"] | None = None
    path: Literal["direct", "relay"] | None = None
    profile: Literal["audio-only", "low", "medium", "high"] | None = None
    decrypt_failures: Count = 0
    errors: Count = 0

    @classmethod
    def parse(cls, raw: object) -> Sample:
        """Check a sample from the wire; raise :class:`SampleError`."""
        if not isinstance(raw, dict):
            raise SampleError("a sample is an object")
        try:
            size = len(json.dumps(raw, separators=(",", ":")))
        except (TypeError, ValueError) as error:
            raise SampleError("a sample is plain JSON") from error
        if size > MAX_SAMPLE_BYTES:
            raise SampleError("sample too large")
        try:
            return cls.model_validate(raw)
        except ValueError as error:
            # The pydantic message may quote the input; keep it out.
            raise SampleError("invalid sample") from error


def new_call_tag() -> str:
    """A random tag for one call; keep it only in the live room."""
    return secrets.token_urlsafe(18)


def bucket(moment: datetime) -> datetime:
    """The start of the ten-minute bucket of a naive UTC time."""
    minutes = moment.minute - moment.minute % 10
    return moment.replace(minute=minutes, second=0, microsecond=0)


def store_sample(db: Database, sample: Sample, *, call_tag: str, now: datetime) -> None:
    """Store one sample under its call tag, in the bucket of ``now``.

    ``now`` is a naive UTC time (``store.clock.utcnow()``). Blocking: call
    it from a thread in async code.
    """
    if not _CALL_TAG.fullmatch(call_tag):
        raise ValueError("not a call tag from new_call_tag()")
    values = sample.model_dump(exclude={"candidate"})
    with db.session() as session:
        session.add(QualitySample(call_tag=call_tag, bucket_at=bucket(now), **values))
