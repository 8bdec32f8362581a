"""The live rooms of this server process and their connections.

The registry feeds events into a room's state machine under the room's
lock, stores what the room asks to store, and only then delivers the
messages, so that the event log never lags behind what the browsers saw.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from starlette.websockets import WebSocket, WebSocketState

from ..quality.samples import new_call_tag
from ..rooms.events import EventKind, Role
from ..rooms.room import Action, Close, Finish, Record, Room, Send
from ..store.clock import now_ms
from ..store.db import Database
from ..store.models import Invite, SessionEvent
from ..store.sessions import finish_session, keep_resume, record_events
from ..store.tokens import new_token

log = logging.getLogger(__name__)


class Connection:
    """One participant's WebSocket, with an outbox drained by one writer.

    Messages are held until :meth:`release`, so that the welcome, which
    carries relay credentials, is sent only once the room took the
    participant, and before anything the room said to it.
    """

    def __init__(self, websocket: WebSocket, conn_id: str) -> None:
        self.id = conn_id
        self.websocket = websocket
        self._outbox: asyncio.Queue[dict | tuple[int, str]] = asyncio.Queue()
        self._held: list[dict | tuple[int, str]] | None = []
        self.closing = False

    def send(self, message: dict) -> None:
        if not self.closing:
            self._put(message)

    def close(self, code: int, reason: str) -> None:
        if not self.closing:
            self.closing = True
            self._put((code, reason))

    def release(self, first: dict | None = None) -> None:
        """Send ``first``, then everything held, then as it comes."""
        held, self._held = self._held or [], None
        if first is not None:
            self._outbox.put_nowait(first)
        for item in held:
            self._outbox.put_nowait(item)

    def _put(self, item: dict | tuple[int, str]) -> None:
        if self._held is not None:
            self._held.append(item)
        else:
            self._outbox.put_nowait(item)

    async def write(self) -> None:
        """Send queued messages in order until a close is queued."""
        while True:
            item = await self._outbox.get()
            if self.websocket.application_state != WebSocketState.CONNECTED:
                return
            if isinstance(item, tuple):
                await self.websocket.close(item[0], item[1])
                return
            await self.websocket.send_text(json.dumps(item, separators=(",", ":")))


class Registry:
    """Live rooms by session id, and connections by id."""

    def __init__(self, db: Database, grace_seconds: float) -> None:
        self.db = db
        self.grace_ms = int(grace_seconds * 1000)
        self._rooms: dict[str, Room] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._connections: dict[str, Connection] = {}
        # A random tag per live call for quality samples; never stored with
        # the session, and forgotten with the room.
        self._call_tags: dict[str, str] = {}
        self._paths_counted: set[str] = set()
        #: Called with the room after every change (metrics hook).
        self.on_change: Callable[[], None] = lambda: None

    def attach(self, connection: Connection) -> None:
        self._connections[connection.id] = connection

    def detach(self, connection: Connection) -> None:
        self._connections.pop(connection.id, None)

    def peek(self, session_id: str) -> Room | None:
        """The live room of a session, if this process has one."""
        return self._rooms.get(session_id)

    def rooms(self) -> list[Room]:
        return list(self._rooms.values())

    def call_tag(self, session_id: str) -> str:
        """The live call's random tag for its quality samples."""
        if session_id not in self._call_tags:
            self._call_tags[session_id] = new_call_tag()
        return self._call_tags[session_id]

    def first_path_report(self, session_id: str) -> bool:
        """True once per live call: count its path in the metrics then."""
        if session_id in self._paths_counted:
            return False
        self._paths_counted.add(session_id)
        return True

    async def apply(
        self,
        session_id: str,
        change: Callable[[Room], list[Action]],
        resume: str | None = None,
    ) -> None:
        """Run ``change`` on the session's room; store, then deliver.

        ``resume`` is a credential handed out by this change, kept hashed.
        """
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            room = self._rooms.get(session_id)
            if room is None:
                room = await asyncio.to_thread(self._restore, session_id)
                self._rooms[session_id] = room
            try:
                actions = change(room)
            finally:
                self._forget_if_idle(room, now_ms())
            await asyncio.to_thread(self._store, session_id, actions, resume)
            self._deliver(actions)
        self.on_change()

    async def admit(self, session_id: str) -> None:
        """Let the waiting client in, handing it a resume credential."""
        resume = new_token()
        await self.apply(session_id, lambda room: room.admit(resume, now_ms()), resume)

    def sweep(self, now: int) -> None:
        """Forget empty rooms whose grace period is over."""
        for room in list(self._rooms.values()):
            self._forget_if_idle(room, now)

    # -- helpers ----------------------------------------------------------

    def _forget_if_idle(self, room: Room, now: int) -> None:
        if not room.empty:
            return
        within_grace = (
            room.client_admitted
            and not room.ended
            and (
                room.client_left_ms is None
                or now - room.client_left_ms <= self.grace_ms
            )
        )
        if not within_grace:
            self._rooms.pop(room.session_id, None)
            self._locks.pop(room.session_id, None)
            self._call_tags.pop(room.session_id, None)
            self._paths_counted.discard(room.session_id)

    def _restore(self, session_id: str) -> Room:
        """A room for a session, with what the database says about it.

        After a restart, a client that was admitted comes back with its
        resume credential; the grace period counts from its last departure,
        or from now if the server stopped before recording one.
        """
        room = Room(session_id=session_id, grace_ms=self.grace_ms)
        with self.db.session() as db:
            invite = db.query(Invite).filter_by(session_id=session_id).one_or_none()
            if invite is None or invite.resume_hash is None:
                return room
            last = (
                db.query(SessionEvent)
                .filter_by(session_id=session_id, role=str(Role.CLIENT))
                .filter(SessionEvent.kind.in_([EventKind.JOINED, EventKind.LEFT]))
                .order_by(SessionEvent.at_ms.desc(), SessionEvent.id.desc())
                .first()
            )
        room.client_admitted = True
        if last is not None and last.kind == EventKind.LEFT:
            room.client_left_ms = last.at_ms
        else:
            room.client_left_ms = now_ms()
        return room

    def _store(
        self, session_id: str, actions: list[Action], resume: str | None
    ) -> None:
        events = [(a.kind, a.role, a.at_ms) for a in actions if isinstance(a, Record)]
        finish = [a.reason for a in actions if isinstance(a, Finish)]
        if not (events or finish or resume):
            return
        with self.db.session() as db:
            record_events(db, session_id, events)
            if resume is not None:
                keep_resume(db, session_id, resume)
            for reason in finish:
                finish_session(db, session_id, reason)

    def _deliver(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send | Close):
                connection = self._connections.get(action.conn)
                if connection is None:
                    continue
                if isinstance(action, Send):
                    connection.send(action.message)
                else:
                    connection.close(action.code, action.reason)
