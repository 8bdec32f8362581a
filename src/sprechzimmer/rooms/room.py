"""The room and waiting-room state machine of one session.

A room has two seats, therapist and client, and a waiting room in front of
the client's seat. It takes events (a connection arrives, a message, a
connection closes, the therapist admits) and returns the actions that
follow: messages to send, connections to close, events to store. It does
no I/O and reads no clock; the caller passes the time in milliseconds.

Connections are opaque strings chosen by the caller. Each browser page also
names itself with a random ``instance``: when a page's signaling connection
comes back with the same instance, its peer connection is still alive and
the other side keeps its own; a new instance (a reload, a new tab) tells
the other side to start a new peer connection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .errors import Conflict, Gone, NotAllowed
from .events import EventKind, Role

log = logging.getLogger(__name__)

#: Close codes the room asks for; the signaling layer maps the rest.
CLOSE_REPLACED = 4000
CLOSE_IN_USE = 4409
CLOSE_GONE = 4410


@dataclass(frozen=True)
class Send:
    """Send ``message`` to the connection ``conn``."""

    conn: str
    message: dict


@dataclass(frozen=True)
class Close:
    """Close the connection ``conn`` with a WebSocket close code."""

    conn: str
    code: int
    reason: str


@dataclass(frozen=True)
class Record:
    """Store a connection event for billing and support."""

    kind: EventKind
    role: Role | None
    at_ms: int


@dataclass(frozen=True)
class Finish:
    """Mark the session over (``ended`` or ``declined``); revoke its link."""

    reason: str


Action = Send | Close | Record | Finish


@dataclass
class Seat:
    """A participant present in the room with one signaling connection."""

    conn: str
    instance: str
    role: Role
    media_connected: bool = False
    last_heartbeat_ms: int = 0


@dataclass
class Room:
    """The state of one session's room. See the module docstring."""

    session_id: str
    grace_ms: int
    therapist: Seat | None = None
    client: Seat | None = None
    waiting: Seat | None = None
    #: The name the client typed for the therapist; in memory only.
    waiting_name: str = ""
    client_admitted: bool = False
    client_left_ms: int | None = None
    ended: bool = False
    actions: list[Action] = field(default_factory=list)

    # -- arrivals ---------------------------------------------------------

    def therapist_joins(self, conn: str, instance: str, now: int) -> list[Action]:
        """The therapist's page connected; a second tab replaces the first."""
        self._check_open()
        old = self.therapist
        if old is not None:
            self._replace(old)
        self.therapist = Seat(conn, instance, Role.THERAPIST)
        self._record(EventKind.JOINED, Role.THERAPIST, now)
        self._send(conn, {"type": "joined", "state": "in_call"})
        if self.waiting is not None:
            self._send(conn, self._lobby())
        if self.client is not None:
            self._introduce()
        return self._flush()

    def client_knocks(
        self, conn: str, instance: str, name: str, resume: bool, now: int
    ) -> list[Action]:
        """The client's page connected with a valid link.

        ``resume`` says that the page also showed the resume credential it
        was given on admission; within the grace period it takes its seat
        again without the waiting room, replacing an older tab.
        """
        self._check_open()
        if resume and self._may_resume(now):
            return self._client_returns(conn, instance, now)
        if self.client is not None or self.waiting is not None:
            # A second person with the same link never reaches anyone.
            raise Conflict("this link is in use by someone in the session")
        self.waiting = Seat(conn, instance, Role.CLIENT)
        self.waiting_name = name
        self._record(EventKind.CLIENT_WAITING, Role.CLIENT, now)
        self._send(conn, {"type": "joined", "state": "waiting"})
        if self.therapist is not None:
            self._send(self.therapist.conn, self._lobby())
        return self._flush()

    def admit(self, resume_token: str, now: int) -> list[Action]:
        """The therapist lets the waiting client in."""
        self._check_open()
        if self.waiting is None:
            raise NotAllowed("no client is waiting")
        seat, self.waiting, self.waiting_name = self.waiting, None, ""
        self.client = seat
        self.client_admitted = True
        self.client_left_ms = None
        self._record(EventKind.ADMITTED, Role.CLIENT, now)
        self._record(EventKind.JOINED, Role.CLIENT, now)
        self._send(seat.conn, {"type": "admitted", "resume": resume_token})
        if self.therapist is not None:
            self._send(self.therapist.conn, self._lobby())
            self._introduce()
        return self._flush()

    def decline(self, now: int) -> list[Action]:
        """The therapist turns the waiting client away; the link dies."""
        self._check_open()
        if self.waiting is None:
            raise NotAllowed("no client is waiting")
        seat, self.waiting, self.waiting_name = self.waiting, None, ""
        self._record(EventKind.DECLINED, Role.CLIENT, now)
        self._send(seat.conn, {"type": "ended", "reason": "declined"})
        self.actions.append(Close(seat.conn, CLOSE_GONE, "declined"))
        self.actions.append(Finish("declined"))
        self.ended = True
        if self.therapist is not None:
            self._send(self.therapist.conn, self._lobby())
        return self._flush()

    def end(self, now: int) -> list[Action]:
        """The therapist ends the session for everyone; the link dies."""
        if self.ended:
            return []
        self.ended = True
        self._record(EventKind.SESSION_ENDED, None, now)
        for seat in (self.therapist, self.client, self.waiting):
            if seat is not None:
                self._send(seat.conn, {"type": "ended", "reason": "ended"})
                self.actions.append(Close(seat.conn, CLOSE_GONE, "ended"))
        self.therapist = self.client = self.waiting = None
        self.actions.append(Finish("ended"))
        return self._flush()

    # -- while connected --------------------------------------------------

    def relay(self, conn: str, payload: dict) -> list[Action]:
        """Pass a session description or candidate to the other seat."""
        seat, other = self._seat_and_other(conn)
        if other is not None:
            message = dict(payload, type="signal", sender=seat.instance)
            self._send(other.conn, message)
        return self._flush()

    def media(self, conn: str, connected: bool, now: int) -> list[Action]:
        """A browser reports its peer connection; repeats are stored once."""
        seat, _ = self._seat_and_other(conn)
        if seat.media_connected != connected:
            seat.media_connected = connected
            kind = EventKind.MEDIA_CONNECTED if connected else EventKind.MEDIA_LOST
            self._record(kind, seat.role, now)
        return self._flush()

    def heartbeat(self, conn: str, now: int, min_interval_ms: int) -> list[Action]:
        """A browser in the call is alive; stored at most once an interval."""
        seat, _ = self._seat_and_other(conn)
        if now - seat.last_heartbeat_ms >= min_interval_ms:
            seat.last_heartbeat_ms = now
            self._record(EventKind.HEARTBEAT, seat.role, now)
        return self._flush()

    def leaves(self, conn: str, now: int) -> list[Action]:
        """A connection closed, for whatever reason."""
        if self.waiting is not None and self.waiting.conn == conn:
            self.waiting, self.waiting_name = None, ""
            self._record(EventKind.LEFT, Role.CLIENT, now)
            if self.therapist is not None:
                self._send(self.therapist.conn, self._lobby())
            return self._flush()
        for role in (Role.THERAPIST, Role.CLIENT):
            seat = self._seat(role)
            if seat is not None and seat.conn == conn:
                self._vacate(seat, now)
        return self._flush()

    # -- queries ----------------------------------------------------------

    @property
    def client_waiting(self) -> bool:
        return self.waiting is not None

    @property
    def empty(self) -> bool:
        return self.therapist is None and self.client is None and self.waiting is None

    def role_of(self, conn: str) -> Role | None:
        """The role of a connection in this room, or None if it has none."""
        for seat in (self.therapist, self.client, self.waiting):
            if seat is not None and seat.conn == conn:
                return seat.role
        return None

    # -- helpers ----------------------------------------------------------

    def _may_resume(self, now: int) -> bool:
        if not self.client_admitted:
            return False
        if self.client is not None:
            return True
        left = self.client_left_ms
        return left is None or now - left <= self.grace_ms

    def _client_returns(self, conn: str, instance: str, now: int) -> list[Action]:
        if self.client is not None:
            self._replace(self.client)
        if self.waiting is not None:
            # A stale knock from the same person: the seat wins.
            self._send(self.waiting.conn, {"type": "replaced"})
            self.actions.append(Close(self.waiting.conn, CLOSE_REPLACED, "replaced"))
            self.waiting = None
        self.client = Seat(conn, instance, Role.CLIENT)
        self.client_left_ms = None
        self._record(EventKind.JOINED, Role.CLIENT, now)
        self._send(conn, {"type": "joined", "state": "in_call"})
        if self.therapist is not None:
            self._introduce()
        return self._flush()

    def _replace(self, seat: Seat) -> None:
        # The newer tab takes over; the older is told in words and closed.
        self._send(seat.conn, {"type": "replaced"})
        self.actions.append(Close(seat.conn, CLOSE_REPLACED, "replaced"))

    def _vacate(self, seat: Seat, now: int) -> None:
        if seat.media_connected:
            self._record(EventKind.MEDIA_LOST, seat.role, now)
        self._record(EventKind.LEFT, seat.role, now)
        if seat.role is Role.THERAPIST:
            self.therapist = None
            other = self.client
        else:
            self.client = None
            self.client_left_ms = now
            other = self.therapist
        if other is not None:
            self._send(other.conn, {"type": "peer", "present": False})

    def _introduce(self) -> None:
        """Tell both seats that the other is there, and which page it is."""
        assert self.therapist is not None and self.client is not None
        for seat, other in (
            (self.therapist, self.client),
            (self.client, self.therapist),
        ):
            message = {"type": "peer", "present": True, "instance": other.instance}
            self._send(seat.conn, message)

    def _lobby(self) -> dict:
        waiting = None
        if self.waiting is not None:
            waiting = {"name": self.waiting_name}
        return {"type": "lobby", "waiting": waiting}

    def _seat(self, role: Role) -> Seat | None:
        return self.therapist if role is Role.THERAPIST else self.client

    def _seat_and_other(self, conn: str) -> tuple[Seat, Seat | None]:
        if self.therapist is not None and self.therapist.conn == conn:
            return self.therapist, self.client
        if self.client is not None and self.client.conn == conn:
            return self.client, self.therapist
        raise NotAllowed("not in the call")

    def _check_open(self) -> None:
        if self.ended:
            raise Gone("the session has ended")

    def _send(self, conn: str, message: dict) -> None:
        self.actions.append(Send(conn, message))

    def _record(self, kind: EventKind, role: Role | None, now: int) -> None:
        self.actions.append(Record(kind, role, now))

    def _flush(self) -> list[Action]:
        actions, self.actions = self.actions, []
        return actions
