"""The ``/ws`` endpoint: one WebSocket per participant.

It authenticates the hello, seats the participant through the registry,
and dispatches each later message through a table of one handler per
type. The room decides; this module only reads, checks and delivers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..config import Settings
from ..rooms.errors import Gone, NotAllowed, NotAuthorised, ProtocolError
from ..rooms.events import Role
from ..store.accounts import LOGIN_COOKIE, therapist_for_login
from ..store.clock import now_ms
from ..store.db import Database
from ..store.sessions import resume_matches, session_for_invite, session_of
from . import errors
from .registry import Connection, Registry
from .schema import INBOUND, KNOWN_TYPES, PROTOCOL_VERSION, Hello

log = logging.getLogger(__name__)


@dataclass
class Seat:
    """What the endpoint knows about an authenticated connection."""

    connection: Connection
    session_id: str
    role: Role
    label: str
    relay_only: bool = False
    last_sample: float = 0.0


@dataclass
class Signaling:
    """The dependencies of the endpoint, set up once by the application."""

    settings: Settings
    db: Database
    registry: Registry
    #: ``relay_only -> RTCConfiguration-like dict`` with fresh credentials.
    ice_config: Callable[[bool], dict]
    #: Takes an anonymous quality sample: ``(session_id, raw sample)``.
    on_quality: Callable[[str, dict], Awaitable[None]] | None = None

    async def serve(self, websocket: WebSocket) -> None:
        """Run one participant's connection from hello to close."""
        if not self._same_origin(websocket):
            # A page of another site must not ride on the login cookie.
            log.info("refused a WebSocket from another origin")
            await websocket.close(code=1008)
            return
        await websocket.accept()
        connection = Connection(websocket, secrets.token_hex(8))
        writer = asyncio.create_task(connection.write())
        seat: Seat | None = None
        started = time.monotonic()
        try:
            seat = await self._welcome(connection)
            await self._loop(seat)
        except WebSocketDisconnect as disconnect:
            # uvicorn refuses an oversized message itself (ws_max_size) and
            # closes with 1009 before the application sees it.
            if disconnect.code == errors.MESSAGE_TOO_BIG:
                where = f"room {seat.label}" if seat else "hello"
                log.info("%s: closed with 1009 (message too big)", where)
        except Exception as error:  # noqa: BLE001 - every error closes cleanly
            self._fail(connection, error, seat)
        finally:
            if seat is not None:
                await self._leave(seat, started)
            connection.close(1000, "bye")
            connection.release()
            await _finish(writer)

    # -- the hello --------------------------------------------------------

    async def _welcome(self, connection: Connection) -> Seat:
        try:
            raw = await asyncio.wait_for(
                _receive_text(connection.websocket),
                self.settings.ws_hello_timeout_seconds,
            )
        except TimeoutError:
            raise ProtocolError("no hello in time", errors.HELLO_TIMEOUT) from None
        hello = self._parse(raw)
        if not isinstance(hello, Hello):
            raise ProtocolError("the first message must be hello", errors.BEFORE_HELLO)
        if hello.version != PROTOCOL_VERSION:
            raise ProtocolError(
                f"protocol version {PROTOCOL_VERSION} expected", errors.VERSION
            )
        if hello.role == "therapist":
            return await self._seat_therapist(connection, hello)
        return await self._seat_client(connection, hello)

    async def _seat_therapist(self, connection: Connection, hello: Hello) -> Seat:
        login = connection.websocket.cookies.get(LOGIN_COOKIE, "")

        def lookup():
            with self.db.session() as db:
                therapist = therapist_for_login(db, login) if login else None
                if therapist is None or not hello.session:
                    raise NotAuthorised("therapist hello without a valid login")
                session = session_of(db, therapist.id, hello.session)
                if session is None:
                    raise NotAuthorised("therapist hello for a foreign session")
                if session.ended_at is not None:
                    raise Gone("the session is over", session.end_reason or "ended")
                return session.id, session.relay_only

        session_id, relay_only = await asyncio.to_thread(lookup)
        seat = Seat(
            connection, session_id, Role.THERAPIST, _label(session_id), relay_only
        )
        await self._take_seat(
            seat,
            relay_only,
            lambda room: room.therapist_joins(connection.id, hello.instance, now_ms()),
        )
        log.info("room %s: therapist connected", seat.label)
        return seat

    async def _seat_client(self, connection: Connection, hello: Hello) -> Seat:
        def lookup():
            if not hello.token:
                raise NotAuthorised("client hello without a token")
            with self.db.session() as db:
                session, invite = session_for_invite(db, hello.token)
                return (
                    session.id,
                    session.relay_only,
                    resume_matches(invite, hello.resume),
                )

        session_id, relay_only, resume = await asyncio.to_thread(lookup)
        seat = Seat(connection, session_id, Role.CLIENT, _label(session_id), relay_only)
        await self._take_seat(
            seat,
            relay_only,
            lambda room: room.client_knocks(
                connection.id, hello.instance, hello.name, resume, now_ms()
            ),
        )
        log.info("room %s: client connected", seat.label)
        return seat

    async def _take_seat(self, seat: Seat, relay_only: bool, change) -> None:
        """Seat the participant in its room, then send the welcome."""
        self.registry.attach(seat.connection)
        try:
            await self.registry.apply(seat.session_id, change)
        except Exception:
            self.registry.detach(seat.connection)
            raise
        settings = self.settings
        seat.connection.release(
            {
                "type": "welcome",
                "protocol": PROTOCOL_VERSION,
                "role": str(seat.role),
                "polite": seat.role is Role.CLIENT,
                "ice": self.ice_config(relay_only),
                "keyRotationSeconds": settings.key_rotation_seconds,
                "heartbeatSeconds": settings.heartbeat_seconds,
                "qualitySampleSeconds": settings.quality_sample_seconds,
                "testHooks": settings.test_hooks,
            }
        )

    # -- later messages ---------------------------------------------------

    async def _loop(self, seat: Seat) -> None:
        handlers = self._handlers()
        websocket = seat.connection.websocket
        while True:
            message = self._parse(await _receive_text(websocket))
            handler = handlers.get(message.type)
            if handler is None:
                raise ProtocolError("hello was sent already", errors.INVALID)
            try:
                if await handler(seat, message) is False:
                    return
            except NotAllowed as error:
                # A user error, not a broken client: a double click on
                # admit, a client who left a moment before. Say so, stay.
                seat.connection.send(errors.close_for(error)[2])

    def _handlers(self) -> dict[str, Callable[[Seat, object], Awaitable[object]]]:
        return {
            "signal": self._on_signal,
            "media": self._on_media,
            "heartbeat": self._on_heartbeat,
            "quality": self._on_quality,
            "ice": self._on_ice,
            "admit": self._on_admit,
            "decline": self._on_decline,
            "end": self._on_end,
            "leave": self._on_leave,
        }

    async def _on_signal(self, seat: Seat, message) -> None:
        payload = message.model_dump(exclude={"type"}, exclude_unset=True)
        await self._apply(seat, lambda room: room.relay(seat.connection.id, payload))

    async def _on_media(self, seat: Seat, message) -> None:
        connected = message.state == "connected"
        conn = seat.connection.id
        await self._apply(seat, lambda room: room.media(conn, connected, now_ms()))

    async def _on_heartbeat(self, seat: Seat, message) -> None:
        # Browsers may beat faster than we store; half the period is enough.
        interval = int(self.settings.heartbeat_seconds * 500)
        conn = seat.connection.id
        await self._apply(seat, lambda room: room.heartbeat(conn, now_ms(), interval))

    async def _on_quality(self, seat: Seat, message) -> None:
        # Browsers sample every 30 s; more than one in 5 s is dropped.
        now = time.monotonic()
        if self.on_quality is None or now - seat.last_sample < 5:
            return
        seat.last_sample = now
        await self.on_quality(seat.session_id, message.sample)

    async def _on_ice(self, seat: Seat, message) -> None:
        ice = self.ice_config(seat.relay_only)
        seat.connection.send({"type": "ice", "ice": ice})

    async def _on_admit(self, seat: Seat, message) -> None:
        self._therapist_only(seat)
        await self.registry.admit(seat.session_id)

    async def _on_decline(self, seat: Seat, message) -> None:
        self._therapist_only(seat)
        await self._apply(seat, lambda room: room.decline(now_ms()))

    async def _on_end(self, seat: Seat, message) -> None:
        self._therapist_only(seat)
        await self._apply(seat, lambda room: room.end(now_ms()))

    async def _on_leave(self, seat: Seat, message) -> bool:
        return False

    async def _apply(self, seat: Seat, change) -> None:
        await self.registry.apply(seat.session_id, change)

    def _therapist_only(self, seat: Seat) -> None:
        if seat.role is not Role.THERAPIST:
            raise NotAuthorised("client sent a therapist's message")

    # -- helpers ----------------------------------------------------------

    def _same_origin(self, websocket: WebSocket) -> bool:
        origin = websocket.headers.get("origin")
        if origin is None:
            return True  # not a browser; it has no cookie to abuse
        host = websocket.headers.get("host", "")
        scheme = "https" if websocket.url.scheme == "wss" else "http"
        public = self.settings.public_base_url.rstrip("/")
        return origin in (f"{scheme}://{host}", public)

    def _parse(self, raw: str):
        if len(raw.encode()) > self.settings.ws_max_message_bytes:
            raise ProtocolError("message too big", errors.TOO_BIG)
        try:
            data = json.loads(raw)
        except ValueError:
            raise ProtocolError("malformed JSON", errors.MALFORMED) from None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise ProtocolError("a message is an object with a type", errors.INVALID)
        if data["type"] not in KNOWN_TYPES:
            raise ProtocolError("unknown message type", errors.UNKNOWN_TYPE)
        try:
            return INBOUND.validate_python(data)
        except ValidationError as error:
            fields = ", ".join(".".join(map(str, e["loc"][1:])) for e in error.errors())
            raise ProtocolError(f"invalid fields: {fields}", errors.INVALID) from None

    def _fail(
        self, connection: Connection, error: Exception, seat: Seat | None
    ) -> None:
        code, reason, message = errors.close_for(error)
        where = f"room {seat.label}" if seat else "hello"
        if code == errors.INTERNAL:
            log.exception("%s: internal error", where)
        else:
            log.info("%s: closed with %d (%s)", where, code, type(error).__name__)
        connection.send(message)
        connection.close(code, reason)
        connection.release()

    async def _leave(self, seat: Seat, started: float) -> None:
        conn = seat.connection.id
        try:
            await self.registry.apply(
                seat.session_id, lambda room: room.leaves(conn, now_ms())
            )
        finally:
            self.registry.detach(seat.connection)
        minutes = (time.monotonic() - started) / 60
        log.info("room %s: %s left after %.1f min", seat.label, seat.role, minutes)


async def _receive_text(websocket: WebSocket) -> str:
    """The next text message; a binary frame is a protocol error."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is None:
        raise ProtocolError("messages are JSON text frames", errors.MALFORMED)
    return text


def _label(session_id: str) -> str:
    """A short room label for logs; enough to follow one room, no more."""
    return session_id[:6]


async def _finish(writer: asyncio.Task) -> None:
    try:
        await asyncio.wait_for(writer, 2)
    except (TimeoutError, Exception):  # noqa: BLE001 - the socket is gone
        writer.cancel()
