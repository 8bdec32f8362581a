"""The relay directory: what the signaling server asks about TURN.

It combines the region policy (which servers may ever be used), the
health monitor (which of those answer now) and the credential scheme
(fresh short-lived credentials per request) into the ``RTCConfiguration``
fragment that a page hands to ``RTCPeerConnection``.

It never adds a public STUN server: a third party would learn both
participants' addresses. With no healthy relay the list is empty and the
call goes peer to peer only.
"""

from __future__ import annotations

from typing import Any

from sprechzimmer.config import Settings, TurnServer

from .credentials import make_credentials
from .health import HealthMonitor
from .regions import RelayConfigError, allowed_regions, select_servers


class RelayDirectory:
    """Hands out healthy in-region TURN servers with fresh credentials.

    Raises :class:`~.regions.RegionError` (a :class:`RelayConfigError`)
    when the settings break the region policy, so that the server does
    not start.
    """

    def __init__(self, settings: Settings) -> None:
        self._allowed = allowed_regions(settings)
        self._servers = select_servers(settings)
        if self._servers and not settings.turn_secret:
            raise RelayConfigError(
                "SPRECHZIMMER_TURN_SECRET is empty but TURN servers are configured"
            )
        self._secret = settings.turn_secret
        self._ttl = settings.turn_credential_ttl_seconds
        try:
            self._monitor = HealthMonitor(
                self._servers, settings.turn_health_interval_seconds
            )
        except ValueError as exc:
            raise RelayConfigError(f"SPRECHZIMMER_TURN_SERVERS: {exc}") from exc

    @property
    def monitor(self) -> HealthMonitor:
        """The health monitor (for readiness probes and metrics)."""
        return self._monitor

    async def start(self) -> None:
        """Check every server once, then keep checking in the background."""
        await self._monitor.start()

    async def stop(self) -> None:
        """Stop the background health checks."""
        await self._monitor.stop()

    def status(self) -> list[dict[str, str]]:
        """Each in-region server's first URL, region and health (for probes
        and metrics; operator data only)."""
        monitor = self._monitor
        return [
            {
                "url": server.urls[0],
                "region": server.region,
                "health": monitor.health(index),
            }
            for index, server in enumerate(monitor.servers)
        ]

    def healthy_servers(self) -> list[TurnServer]:
        """Healthy servers in allowed regions, first choice first."""
        # Checked again here so that nothing foreign slips through a later
        # change to how servers are selected.
        return [s for s in self._monitor.healthy() if s.region in self._allowed]

    def ice_config(self, relay_only: bool) -> dict[str, Any]:
        """Return ICE servers, transport policy and relay status for a page.

        Every call creates new credentials, so a participant who waited
        long or restarts ICE asks again rather than reusing old ones.
        """
        servers = self.healthy_servers()
        # A relay-only session stays relay-only without a relay: it cannot
        # connect then, rather than show each side the other's address.
        policy = "relay" if relay_only else "all"
        if not servers:
            return {
                "iceServers": [],
                "iceTransportPolicy": policy,
                "relayAvailable": False,
                "relayRegion": None,
                "relayOnly": relay_only,
            }

        credentials = make_credentials(self._secret, self._ttl)
        ice_servers = [
            {
                "urls": list(server.urls),
                "username": credentials.username,
                "credential": credentials.password,
            }
            for server in servers
        ]
        return {
            "iceServers": ice_servers,
            "iceTransportPolicy": policy,
            "relayAvailable": True,
            "relayRegion": servers[0].region,
            "relayOnly": relay_only,
        }
