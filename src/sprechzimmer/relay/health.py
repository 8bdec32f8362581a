"""Periodic health checks of the TURN servers.

Each server gets a real STUN Binding request (see :mod:`.stun`) every
``interval`` seconds; the answer marks it healthy, silence or a refusal
marks it unhealthy. A change is logged once, as ``"old -> new"``, naming
only the operator's server, never a participant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Literal
from urllib.parse import urlsplit

from sprechzimmer.config import TurnServer

from .stun import StunError, StunTarget, binding

logger = logging.getLogger(__name__)

Health = Literal["unknown", "healthy", "unhealthy"]
#: Called with the server, its old and its new health.
Listener = Callable[[TurnServer, Health, Health], None]

#: Default ports of RFC 7064/7065 URLs by scheme.
_DEFAULT_PORTS = {"turn": 3478, "stun": 3478, "turns": 5349}


def check_target(server: TurnServer) -> StunTarget:
    """Return where to check ``server``: its ``check`` setting, else the
    first UDP ``turn:``/``stun:`` URL, else its first URL over TCP or TLS."""
    if server.check:
        host, port = _split_host_port(server.check, 3478)
        return StunTarget(host, port, "udp")

    parsed = [_parse_url(url) for url in server.urls]
    for target in parsed:
        if target.transport == "udp":
            return target
    return parsed[0]


def _parse_url(url: str) -> StunTarget:
    scheme, _, rest = url.partition(":")
    address, _, query = rest.partition("?")
    host, port = _split_host_port(address, _DEFAULT_PORTS.get(scheme, 3478))
    if scheme == "turns":
        return StunTarget(host, port, "tls")
    transport = "tcp" if "transport=tcp" in query.lower() else "udp"
    return StunTarget(host, port, transport)


def _split_host_port(address: str, default_port: int) -> tuple[str, int]:
    # urlsplit handles "[v6]:port" and "host:port" alike.
    parts = urlsplit(f"//{address.strip()}")
    if not parts.hostname:
        raise ValueError(f"no host in {address!r}")
    return parts.hostname, parts.port or default_port


class HealthMonitor:
    """Checks servers in the background and knows which ones answer."""

    def __init__(
        self,
        servers: Sequence[TurnServer],
        interval: float,
        timeout: float = 2.0,
    ) -> None:
        self.servers = list(servers)
        self.targets = [check_target(server) for server in self.servers]
        self.interval = interval
        self.timeout = min(timeout, interval)
        self._health: list[Health] = ["unknown"] * len(self.servers)
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` on every change of a server's health."""
        self._listeners.append(listener)

    def health(self, index: int) -> Health:
        """Return the last known health of server number ``index``."""
        return self._health[index]

    def healthy(self) -> list[TurnServer]:
        """Return the servers that answered the last check, in order."""
        return [
            server
            for server, health in zip(self.servers, self._health, strict=True)
            if health == "healthy"
        ]

    async def check_all(self) -> None:
        """Check every server once, concurrently, and record the results."""
        results = await asyncio.gather(
            *(self._check(target) for target in self.targets)
        )
        for index, result in enumerate(results):
            self._set_health(index, result)

    async def start(self) -> None:
        """Run a first check, then keep checking in a background task."""
        if self._task is not None:
            return
        await self.check_all()
        self._task = asyncio.create_task(self._run(), name="turn-health")

    async def stop(self) -> None:
        """Stop the background checks."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check_all()
            except Exception:
                # A bug in one round must not end the checks for good.
                logger.exception("TURN health check round failed")

    async def _check(self, target: StunTarget) -> Health:
        try:
            await binding(target, self.timeout)
        except (StunError, ValueError) as exc:
            logger.debug("TURN server %s did not answer: %s", target, exc)
            return "unhealthy"
        return "healthy"

    def _set_health(self, index: int, health: Health) -> None:
        old = self._health[index]
        if old == health:
            return
        self._health[index] = health
        level = logging.WARNING if health == "unhealthy" else logging.INFO
        logger.log(level, "TURN server %s: %s -> %s", self.targets[index], old, health)
        for listener in self._listeners:
            listener(self.servers[index], old, health)
