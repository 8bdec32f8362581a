"""Names of the connection events the server stores for billing."""

from enum import StrEnum


class EventKind(StrEnum):
    """What happened; each stored with a server time stamp and a role."""

    SESSION_OPENED = "session_opened"
    CLIENT_WAITING = "client_waiting"
    ADMITTED = "admitted"
    DECLINED = "declined"
    #: A participant's signaling connection opened / closed.
    JOINED = "joined"
    LEFT = "left"
    #: As each browser reports its peer connection.
    MEDIA_CONNECTED = "media_connected"
    MEDIA_LOST = "media_lost"
    HEARTBEAT = "heartbeat"
    SESSION_ENDED = "session_ended"


class Role(StrEnum):
    THERAPIST = "therapist"
    CLIENT = "client"
