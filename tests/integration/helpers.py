"""Raw participants for integration tests: the API over httpx, /ws over websockets.

A :class:`Participant` is one WebSocket speaking the signaling protocol by
hand; a :class:`Call` is a therapist and an admitted client in one room,
with the events its room should have stored so far.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from sprechzimmer.rooms.events import EventKind, Role
from sprechzimmer.store.accounts import LOGIN_COOKIE
from sprechzimmer.store.sessions import events_of
from tests.conftest import RunningServer, seconds

# The test client's own wire trace would show tokens and names in the
# captured logs, and those checks are about the server.
QUIET = logging.getLogger("tests.ws")
QUIET.setLevel(logging.WARNING)

#: Loggers of the tests' own HTTP and WebSocket clients.
CLIENT_LOGGERS = ("httpx", "httpcore", "websockets.client", "tests.")


def server_lines(lines: list[str]) -> list[str]:
    """Captured log lines, without those of the tests' own clients."""
    return [line for line in lines if not line.startswith(CLIENT_LOGGERS)]


# -- the JSON API ---------------------------------------------------------


def api(server: RunningServer, cookie: str | None = None) -> httpx.Client:
    """An HTTP client for the server, logged in when ``cookie`` is given."""
    cookies = {LOGIN_COOKIE: cookie} if cookie else None
    return httpx.Client(base_url=server.base_url, cookies=cookies, timeout=10)


#: Login cookies by database and name: argon2 takes seconds per login here.
_LOGINS: dict[tuple[str, str], str] = {}


def log_in(server: RunningServer, who: str = "therapist") -> str:
    """The login cookie of a therapist called ``who`` in this database.

    Accounts and logins live in the database, which outlives each server,
    so each ``who`` is created and logged in once per database.
    """
    key = (server.settings.database_url, who)
    if key not in _LOGINS:
        username, password = server.add_therapist()
        with api(server) as http:
            response = http.post(
                "/api/login", json={"username": username, "password": password}
            )
        response.raise_for_status()
        _LOGINS[key] = response.cookies[LOGIN_COOKIE]
    return _LOGINS[key]


def open_session(server: RunningServer, cookie: str, client_id: str) -> dict:
    """Open a session through the API; its JSON answer."""
    with api(server, cookie) as http:
        response = http.post("/api/sessions", json={"client_id": client_id})
    response.raise_for_status()
    return response.json()


def invite_token(session: dict) -> str:
    """The invite token, from the fragment of the invite link."""
    return urlsplit(session["invite_url"]).fragment


def new_instance() -> str:
    return secrets.token_hex(8)


# -- raw WebSocket participants -------------------------------------------


def client_hello(token: str, name: str = "", **fields) -> dict:
    return {
        "type": "hello",
        "version": 1,
        "role": "client",
        "instance": new_instance(),
        "token": token,
        "name": name,
    } | fields


def therapist_hello(session_id: str, **fields) -> dict:
    return {
        "type": "hello",
        "version": 1,
        "role": "therapist",
        "instance": new_instance(),
        "session": session_id,
    } | fields


@dataclass
class Closed:
    """How the server closed a connection, and what it said before."""

    code: int | None
    reason: str
    messages: list[dict]


class Participant:
    """One raw signaling connection."""

    #: Every connection opened, so that a test can close what it left open.
    opened: list[Participant] = []

    def __init__(self, ws: ClientConnection, instance: str = "") -> None:
        self.ws = ws
        self.instance = instance
        Participant.opened.append(self)

    @classmethod
    async def open(
        cls, server: RunningServer, cookie: str | None = None
    ) -> Participant:
        headers = {"Cookie": f"{LOGIN_COOKIE}={cookie}"} if cookie else None
        ws = await connect(
            server.ws_url, additional_headers=headers, logger=QUIET, max_size=None
        )
        return cls(ws)

    async def send(self, message: dict | str) -> None:
        if isinstance(message, dict):
            self.instance = message.get("instance", self.instance)
            message = json.dumps(message)
        await self.ws.send(message)

    async def next(self, timeout: float = 5) -> dict:
        """The next message from the server."""
        raw = await asyncio.wait_for(self.ws.recv(), seconds(timeout))
        return json.loads(raw)

    async def expect(self, kind: str, timeout: float = 5) -> dict:
        """The next message, which must be of type ``kind``."""
        message = await self.next(timeout)
        assert message["type"] == kind, f"got {message}, expected {kind}"
        return message

    async def closed(self, timeout: float = 5) -> Closed:
        """Read until the server closes; its close code and reason."""
        messages = []
        try:
            while True:
                messages.append(await self.next(timeout))
        except ConnectionClosed as closed:
            frame = closed.rcvd
            if frame is None:
                return Closed(None, "", messages)
            return Closed(frame.code, frame.reason, messages)

    async def close(self) -> None:
        await self.ws.close()

    @classmethod
    async def close_all(cls) -> None:
        """Close every connection still open, before its server stops."""
        opened, cls.opened = cls.opened, []
        await asyncio.gather(*(p.ws.close() for p in opened))


async def logged(lines: list[str], text: str, timeout: float = 5) -> bool:
    """Whether a server log line with ``text`` appears within ``timeout``.

    The server logs a close after the client saw it, in another thread;
    there is no event to await, so the captured lines are polled.
    """
    deadline = asyncio.get_running_loop().time() + seconds(timeout)
    while not any(text in line for line in server_lines(lines)):
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def join_as_therapist(
    server: RunningServer, cookie: str, session_id: str
) -> Participant:
    """A therapist page connected to its session's room."""
    therapist = await Participant.open(server, cookie)
    await therapist.send(therapist_hello(session_id))
    welcome = await therapist.expect("welcome")
    assert (welcome["role"], welcome["polite"]) == ("therapist", False)
    assert await therapist.expect("joined") == {"type": "joined", "state": "in_call"}
    return therapist


async def knock(server: RunningServer, token: str, name: str = "") -> Participant:
    """A client page in the waiting room."""
    client = await Participant.open(server)
    await client.send(client_hello(token, name))
    welcome = await client.expect("welcome")
    assert (welcome["role"], welcome["polite"]) == ("client", True)
    assert await client.expect("joined") == {"type": "joined", "state": "waiting"}
    return client


# -- a call in progress ---------------------------------------------------


def stored_events(server: RunningServer, session_id: str) -> list[tuple]:
    """(kind, role) of a session's stored events, in order."""
    with server.db.session() as db:
        return [(e.kind, e.role) for e in events_of(db, session_id)]


@dataclass
class Call:
    """A therapist and an admitted client in one room."""

    server: RunningServer
    cookie: str
    session_id: str
    token: str
    therapist: Participant
    client: Participant
    #: (kind, role) of every event the room should have stored, in order.
    expected: list[tuple[str, str | None]] = field(default_factory=list)
    media_connected: bool = False

    async def check(self) -> None:
        """Signals still flow both ways and every event was stored."""
        await self._report_media()
        offer = {"type": "offer", "sdp": f"v=0 {secrets.token_hex(4)}"}
        answer = {"type": "answer", "sdp": f"v=0 {secrets.token_hex(4)}"}
        await self._signal(self.therapist, self.client, offer)
        await self._signal(self.client, self.therapist, answer)
        assert self.stored() == self.expected

    def stored(self) -> list[tuple[str, str | None]]:
        return stored_events(self.server, self.session_id)

    async def _report_media(self) -> None:
        # Alternating reports give a new event each round; the signal that
        # follows is handled after it, so the event is stored by then.
        self.media_connected = not self.media_connected
        state = "connected" if self.media_connected else "lost"
        await self.client.send({"type": "media", "state": state})
        kind = (
            EventKind.MEDIA_CONNECTED if self.media_connected else EventKind.MEDIA_LOST
        )
        self.expected.append((kind, Role.CLIENT))

    async def _signal(
        self, sender: Participant, receiver: Participant, description: dict
    ) -> None:
        await sender.send({"type": "signal", "description": description})
        got = await receiver.expect("signal")
        assert got == {
            "type": "signal",
            "sender": sender.instance,
            "description": description,
        }


async def start_call(server: RunningServer, client_id: str = "K-7") -> Call:
    """Log in, open a session, connect both, admit: a call over raw sockets."""
    cookie = log_in(server)
    session = open_session(server, cookie, client_id)
    token = invite_token(session)
    therapist = await join_as_therapist(server, cookie, session["id"])
    client = await knock(server, token, "Robin")
    assert await therapist.expect("lobby") == {
        "type": "lobby",
        "waiting": {"name": "Robin"},
    }

    await therapist.send({"type": "admit"})
    admitted = await client.expect("admitted")
    assert len(admitted["resume"]) >= 16
    peer = await client.expect("peer")
    assert peer == {"type": "peer", "present": True, "instance": therapist.instance}
    assert await therapist.expect("lobby") == {"type": "lobby", "waiting": None}
    peer = await therapist.expect("peer")
    assert peer == {"type": "peer", "present": True, "instance": client.instance}

    expected = [
        (EventKind.SESSION_OPENED, None),
        (EventKind.JOINED, Role.THERAPIST),
        (EventKind.CLIENT_WAITING, Role.CLIENT),
        (EventKind.ADMITTED, Role.CLIENT),
        (EventKind.JOINED, Role.CLIENT),
    ]
    return Call(server, cookie, session["id"], token, therapist, client, expected)
