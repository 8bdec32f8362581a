"""Region policy: which TURN servers a call may ever use.

Promise 5 of the design: every server a call touches is in one of the
operator's allowed regions. A TURN server configured outside them is a
mistake that must not go unnoticed, so it stops the start with a message
that names the server and the fix. Only a deployment that deliberately
shares one server list between several regions skips foreign servers
instead (``turn_skip_foreign_servers``); they are still never handed out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from sprechzimmer.config import Settings, TurnServer

logger = logging.getLogger(__name__)

_REGION = re.compile(r"[A-Z]{2}")
_SCHEMES = ("turn:", "turns:", "stun:")


class RelayConfigError(ValueError):
    """The relay settings are unusable; the server must not start."""


class RegionError(RelayConfigError):
    """A region setting breaks the region policy."""


def server_label(server: TurnServer) -> str:
    """Name a server in messages by its first URL (operator data only)."""
    return server.urls[0] if server.urls else "<no urls>"


def allowed_regions(settings: Settings) -> frozenset[str]:
    """Return the allowed regions, checking this server's own region."""
    allowed = frozenset(region.strip().upper() for region in settings.allowed_regions)
    if not allowed:
        raise RegionError("SPRECHZIMMER_ALLOWED_REGIONS is empty; name at least one")
    for region in sorted(allowed | {settings.region}):
        _check_code(region)
    if settings.region not in allowed:
        raise RegionError(
            f"this server's region {settings.region} is not in "
            f"SPRECHZIMMER_ALLOWED_REGIONS ({', '.join(sorted(allowed))})"
        )
    return allowed


def select_servers(settings: Settings) -> list[TurnServer]:
    """Return the configured TURN servers in allowed regions, in order.

    Raises :class:`RegionError` for a server outside the allowed regions
    (unless the settings say to skip those) and :class:`RelayConfigError`
    for a server without usable URLs.
    """
    allowed = allowed_regions(settings)
    selected = []
    for server in settings.turn_servers:
        _check_urls(server.urls)
        _check_code(server.region)
        if server.region in allowed:
            selected.append(server)
            continue

        message = (
            f"TURN server {server_label(server)} is in region {server.region}, "
            f"which is not in SPRECHZIMMER_ALLOWED_REGIONS "
            f"({', '.join(sorted(allowed))}); remove it from "
            f"SPRECHZIMMER_TURN_SERVERS or allow its region"
        )
        if not settings.turn_skip_foreign_servers:
            raise RegionError(message)
        logger.warning("%s; skipped, it is never handed out", message)
    return selected


def _check_code(region: str) -> None:
    if not _REGION.fullmatch(region):
        raise RegionError(
            f"region {region!r} is not a two-letter ISO 3166 code such as DE"
        )


def _check_urls(urls: Sequence[str]) -> None:
    if not urls:
        raise RelayConfigError("a TURN server in SPRECHZIMMER_TURN_SERVERS has no urls")
    for url in urls:
        if not url.startswith(_SCHEMES):
            raise RelayConfigError(
                f"{url!r} is not a turn:, turns: or stun: URL "
                "(SPRECHZIMMER_TURN_SERVERS)"
            )
