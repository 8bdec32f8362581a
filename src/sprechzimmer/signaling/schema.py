"""The signaling messages a browser may send, validated strictly.

``docs/protocol.md`` describes the protocol in words. Unknown fields are
refused rather than ignored, so that a typo in a client shows at once.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
)

PROTOCOL_VERSION = 1

Instance = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
Token = Annotated[str, Field(min_length=16, max_length=128)]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hello(Message):
    """The first message: protocol version, role and credential."""

    type: Literal["hello"]
    version: StrictInt
    role: Literal["therapist", "client"]
    #: A random name of this page load; see ``rooms.room``.
    instance: Instance
    #: Therapist: the session to join (the login is the cookie).
    session: Annotated[str, Field(max_length=64)] | None = None
    #: Client: the invite token from the link's fragment.
    token: Token | None = None
    #: Client: the credential handed out on admission.
    resume: Token | None = None
    #: Client: the name the therapist should see; never stored or logged.
    name: Annotated[str, Field(max_length=60)] = ""


class Description(Message):
    type: Literal["offer", "answer", "pranswer", "rollback"]
    sdp: Annotated[str, Field(max_length=60_000)] = ""


class Candidate(Message):
    candidate: Annotated[str, Field(max_length=1000)]
    sdpMid: Annotated[str, Field(max_length=64)] | None = None  # noqa: N815
    sdpMLineIndex: Annotated[int, Field(ge=0, le=64)] | None = None  # noqa: N815
    usernameFragment: Annotated[str, Field(max_length=256)] | None = None  # noqa: N815


class Signal(Message):
    """A session description or ICE candidate for the other participant."""

    type: Literal["signal"]
    description: Description | None = None
    candidate: Candidate | None = None


class Media(Message):
    """The browser's peer connection became connected or was lost."""

    type: Literal["media"]
    state: Literal["connected", "lost"]


class Heartbeat(Message):
    type: Literal["heartbeat"]


class Quality(Message):
    """An anonymous quality sample; its fields are checked by ``quality``."""

    type: Literal["quality"]
    sample: dict


class IceRequest(Message):
    """Ask for fresh relay credentials, before an ICE restart."""

    type: Literal["ice"]


class Admit(Message):
    type: Literal["admit"]


class Decline(Message):
    type: Literal["decline"]


class End(Message):
    type: Literal["end"]


class Leave(Message):
    """The participant hung up on purpose."""

    type: Literal["leave"]


Inbound = Annotated[
    Hello
    | Signal
    | Media
    | Heartbeat
    | Quality
    | IceRequest
    | Admit
    | Decline
    | End
    | Leave,
    Field(discriminator="type"),
]
INBOUND = TypeAdapter(Inbound)
KNOWN_TYPES = frozenset(
    ["hello", "signal", "media", "heartbeat", "quality", "ice"]
    + ["admit", "decline", "end", "leave"]
)
