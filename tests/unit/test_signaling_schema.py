"""Tests for the signaling message schema: strict fields and size bounds."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from sprechzimmer.signaling import schema
from sprechzimmer.signaling.schema import INBOUND, KNOWN_TYPES, Hello, Signal

TOKEN = "t" * 43


def hello(**fields) -> dict:
    message = {
        "type": "hello",
        "version": 1,
        "role": "client",
        "instance": "page-0001",
        "token": TOKEN,
    }
    return message | fields


def parse(message: dict):
    return INBOUND.validate_python(message)


def refused(message: dict) -> bool:
    try:
        parse(message)
    except ValidationError:
        return True
    return False


MINIMAL = {
    "hello": hello(),
    "signal": {"type": "signal"},
    "media": {"type": "media", "state": "connected"},
    "heartbeat": {"type": "heartbeat"},
    "quality": {"type": "quality", "sample": {}},
    "ice": {"type": "ice"},
    "admit": {"type": "admit"},
    "decline": {"type": "decline"},
    "end": {"type": "end"},
    "leave": {"type": "leave"},
}


def test_known_types_are_exactly_the_schema_union():
    """KNOWN_TYPES lists every message the union accepts, and no other."""
    union = typing.get_args(typing.get_args(schema.Inbound)[0])
    literals = {typing.get_args(m.model_fields["type"].annotation)[0] for m in union}

    assert literals == KNOWN_TYPES == set(MINIMAL)


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_minimal_message_of_each_type_is_accepted(kind):
    """Each type's smallest valid form parses to its own model."""
    assert parse(MINIMAL[kind]).type == kind


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_extra_top_level_field_is_refused(kind):
    """An unknown field is an error, not silently dropped."""
    assert refused(MINIMAL[kind] | {"sender": "someone-else"})


def test_extra_field_inside_a_signal_is_refused():
    """Descriptions and candidates are as strict as the messages."""
    description = {"type": "offer", "sdp": "v=0", "extra": 1}
    candidate = {"candidate": "candidate:1", "extra": 1}

    assert refused({"type": "signal", "description": description})
    assert refused({"type": "signal", "candidate": candidate})


def test_unknown_type_is_refused():
    """A type outside the protocol does not validate."""
    assert refused({"type": "chat", "text": "hi"})


def test_hello_carries_its_fields():
    """A client hello keeps token, resume and name; a therapist its session."""
    client = parse(hello(resume="r" * 43, name="Alex"))
    therapist = parse(
        {
            "type": "hello",
            "version": 1,
            "role": "therapist",
            "instance": "page-0002",
            "session": "a" * 32,
        }
    )

    assert isinstance(client, Hello)
    assert (client.token, client.resume, client.name) == (TOKEN, "r" * 43, "Alex")
    assert therapist.session == "a" * 32 and therapist.token is None


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({"instance": "a" * 8}, True),
        ({"instance": "a" * 64}, True),
        ({"instance": "A-z_09ab"}, True),
        ({"instance": "a" * 7}, False),
        ({"instance": "a" * 65}, False),
        ({"instance": "page 0001"}, False),
        ({"instance": "page/0001"}, False),
        ({"token": "t" * 16}, True),
        ({"token": "t" * 128}, True),
        ({"token": "t" * 15}, False),
        ({"token": "t" * 129}, False),
        ({"resume": "r" * 15}, False),
        ({"resume": "r" * 129}, False),
        ({"name": "n" * 60}, True),
        ({"name": "n" * 61}, False),
        ({"session": "s" * 64, "role": "therapist"}, True),
        ({"session": "s" * 65, "role": "therapist"}, False),
        ({"role": "observer"}, False),
        ({"version": "one"}, False),
    ],
)
def test_hello_bounds(fields, ok):
    """Instance, token, resume, name and session are bounded."""
    assert refused(hello(**fields)) is not ok


def test_hello_without_instance_is_refused():
    """Every page names itself; a hello without an instance is invalid."""
    message = hello()
    del message["instance"]

    assert refused(message)


@pytest.mark.parametrize(
    ("signal", "ok"),
    [
        ({"description": {"type": "offer", "sdp": "x" * 60_000}}, True),
        ({"description": {"type": "offer", "sdp": "x" * 60_001}}, False),
        ({"description": {"type": "answer", "sdp": "v=0"}}, True),
        ({"description": {"type": "rollback"}}, True),
        ({"description": {"type": "bogus", "sdp": "v=0"}}, False),
        ({"candidate": {"candidate": "c" * 1000}}, True),
        ({"candidate": {"candidate": "c" * 1001}}, False),
        ({"candidate": {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}}, True),
        ({"candidate": {"candidate": "", "sdpMid": "m" * 65}}, False),
        ({"candidate": {"candidate": "", "sdpMLineIndex": -1}}, False),
        ({"candidate": {"candidate": "", "sdpMLineIndex": 65}}, False),
        ({"candidate": {"candidate": "", "usernameFragment": "u" * 257}}, False),
        ({"candidate": None}, True),
    ],
)
def test_signal_bounds(signal, ok):
    """Session descriptions and candidates are bounded and typed."""
    assert refused({"type": "signal"} | signal) is not ok


def test_browser_candidate_json_is_accepted():
    """RTCIceCandidate.toJSON() output passes as the browser sends it."""
    candidate = {
        "candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
        "usernameFragment": "abcd",
    }

    message = parse({"type": "signal", "candidate": candidate})

    assert isinstance(message, Signal)
    assert message.model_dump(exclude={"type"}, exclude_none=True) == {
        "candidate": candidate
    }


@pytest.mark.parametrize("state", ["connected", "lost"])
def test_media_states(state):
    """A media report is either connected or lost."""
    assert parse({"type": "media", "state": state}).state == state


def test_media_with_another_state_is_refused():
    """No third media state exists."""
    assert refused({"type": "media", "state": "checking"})


def test_quality_sample_must_be_an_object():
    """The quality sample is a JSON object (checked further elsewhere)."""
    assert refused({"type": "quality", "sample": [1, 2]})
