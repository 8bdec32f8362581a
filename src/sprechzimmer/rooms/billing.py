"""The billing rule: billable time of one session from its event stream.

Pure logic, no I/O. ``docs/billing.md`` states the rule with examples;
``store/billing.py`` computes the same rule in SQL for reports, and the
tests hold the two against each other.

The rule, in short:

- A role's media is up from its ``media_connected`` until its
  ``media_lost``, its ``left`` (a browser without signaling cannot report),
  or the ``session_ended``. Events after ``session_ended`` count for nothing.
- A role whose media is still up at the end of the stream is taken to be up
  until its last heartbeat (or a later repeated ``media_connected``), the
  last moment its browser said so, and no longer.
- Billable time is the time in which both roles' media is up.
- Two billable stretches separated by less than the grace belong to one
  call: the gap is not an interruption, and it is not billed either,
  because nobody vouched for that time.
- Events at the same millisecond are applied openings first, closings
  after, so a stream means the same however its events are ordered and
  however often an event is repeated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from .events import EventKind, Role

ROLES: tuple[Role, ...] = (Role.THERAPIST, Role.CLIENT)

#: Order of events within one millisecond: openings, closings, the end.
_RANK = {
    EventKind.MEDIA_CONNECTED: 0,
    EventKind.MEDIA_LOST: 1,
    EventKind.LEFT: 1,
    EventKind.SESSION_ENDED: 2,
}

_CLOSINGS = (EventKind.MEDIA_LOST, EventKind.LEFT)
_SIGNS_OF_LIFE = (EventKind.HEARTBEAT, EventKind.MEDIA_CONNECTED)

Interval = tuple[int, int]


class EventLike(Protocol):
    """What the rule reads of a stored event."""

    at_ms: int
    kind: str
    role: str | None


@dataclass(frozen=True)
class Event:
    """A connection event as the rule sees it."""

    at_ms: int
    kind: str
    role: str | None = None


@dataclass(frozen=True)
class SessionBilling:
    """What one session bills."""

    #: Stretches in which both roles had media up, in order, disjoint.
    intervals: tuple[Interval, ...]
    #: Gaps between stretches at least as long as the grace.
    interruptions: int

    @property
    def billable_ms(self) -> int:
        return sum(end - start for start, end in self.intervals)

    @property
    def billable_seconds(self) -> int:
        """Whole seconds, rounded down per session (what reports add up)."""
        return self.billable_ms // 1000

    @property
    def started_ms(self) -> int | None:
        """When billable time began; the session belongs to that month."""
        return self.intervals[0][0] if self.intervals else None


def bill_session(events: Iterable[EventLike], grace_ms: int) -> SessionBilling:
    """Apply the billing rule to the events of one session."""
    media = media_intervals(events)
    both = _intersect(media[Role.THERAPIST], media[Role.CLIENT])
    gaps = (nxt[0] - prev[1] for prev, nxt in zip(both, both[1:], strict=False))
    return SessionBilling(
        intervals=tuple(both),
        interruptions=sum(1 for gap in gaps if gap >= grace_ms),
    )


def media_intervals(events: Iterable[EventLike]) -> dict[Role, list[Interval]]:
    """Each role's stretches of media up, disjoint and in order."""
    ordered = sorted(events, key=lambda e: (e.at_ms, _RANK.get(e.kind, -1)))
    ended_at = min(
        (e.at_ms for e in ordered if e.kind == EventKind.SESSION_ENDED),
        default=None,
    )
    if ended_at is not None:
        ordered = [e for e in ordered if e.at_ms <= ended_at]
    return {role: _role_intervals(ordered, role) for role in ROLES}


def _role_intervals(ordered: list[EventLike], role: Role) -> list[Interval]:
    intervals: list[Interval] = []
    opened: int | None = None
    last_seen: int | None = None
    for event in ordered:
        closes = event.kind == EventKind.SESSION_ENDED or (
            event.role == role and event.kind in _CLOSINGS
        )
        if closes:
            if opened is not None:
                intervals.append((opened, event.at_ms))
            opened = None
        elif event.role != role:
            continue
        elif event.kind in _SIGNS_OF_LIFE:
            last_seen = event.at_ms
            if event.kind == EventKind.MEDIA_CONNECTED and opened is None:
                opened = event.at_ms

    # still up at the end: trust it until its browser last said so
    if opened is not None and last_seen is not None and last_seen > opened:
        intervals.append((opened, last_seen))
    return [(start, end) for start, end in intervals if end > start]


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    """Where two sorted lists of disjoint intervals overlap, merged."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start = max(a[i][0], b[j][0])
        end = min(a[i][1], b[j][1])
        if start < end:
            if out and out[-1][1] == start:
                out[-1] = (out[-1][0], end)
            else:
                out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out
