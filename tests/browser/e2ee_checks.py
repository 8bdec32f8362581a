"""Checks that E2EE key agreement values never leave the key channel.

A page started with ``testHooks`` exposes ``e2ee.test.channelMessages()``:
every message of the browser-to-browser key channel as JSON text. The
public keys and commitments in them must appear nowhere else, in particular
in no WebSocket frame to the server, in any usual text encoding.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable

#: Fields of key channel messages that carry key agreement values.
KEY_FIELDS = ("pub", "c")


def key_channel_values(messages: Iterable[str]) -> set[str]:
    """Public keys and commitments, as base64, base64url, unpadded and hex."""
    forms: set[str] = set()
    for text in messages:
        message = json.loads(text)
        for field in KEY_FIELDS:
            value = message.get(field)
            if not isinstance(value, str):
                continue
            raw = base64.b64decode(value)
            forms.update(
                {
                    value,
                    value.rstrip("="),
                    base64.urlsafe_b64encode(raw).decode().rstrip("="),
                    raw.hex(),
                    raw.hex().upper(),
                }
            )
    return forms


def leaked_values(frames: Iterable[str], messages: Iterable[str]) -> list[str]:
    """The key channel values found in any of ``frames``; empty when none."""
    values = key_channel_values(messages)
    frames = list(frames)
    return sorted(v for v in values if any(v in frame for frame in frames))
