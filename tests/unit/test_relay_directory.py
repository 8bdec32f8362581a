"""Tests for the relay directory that hands ICE servers to pages."""

import asyncio
import socket

import pytest

from sprechzimmer.config import Settings, TurnServer
from sprechzimmer.relay.credentials import turn_password
from sprechzimmer.relay.directory import RelayDirectory
from sprechzimmer.relay.regions import RegionError, RelayConfigError
from sprechzimmer.relay.stun import BINDING_SUCCESS, HEADER, MAGIC_COOKIE


class Responder(asyncio.DatagramProtocol):
    """A minimal STUN server: answers every Binding request."""

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        _, _, _, transaction_id = HEADER.unpack_from(data)
        answer = HEADER.pack(BINDING_SUCCESS, 0, MAGIC_COOKIE, transaction_id)
        self.transport.sendto(answer, addr)


@pytest.fixture
async def stun_ports():
    """Ports of two running STUN responders on 127.0.0.1."""
    loop = asyncio.get_running_loop()
    transports = [
        (await loop.create_datagram_endpoint(Responder, local_addr=("127.0.0.1", 0)))[0]
        for _ in range(2)
    ]
    yield [t.get_extra_info("sockname")[1] for t in transports]
    for transport in transports:
        transport.close()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings(*servers: tuple[int, str], **overrides: object) -> Settings:
    values: dict[str, object] = {
        "region": "DE",
        "allowed_regions": ["DE"],
        "turn_servers": [
            TurnServer(urls=[f"turn:127.0.0.1:{port}"], region=region)
            for port, region in servers
        ],
        "turn_secret": "secret",
        "turn_health_interval_seconds": 60,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def started(relay_settings: Settings) -> RelayDirectory:
    relay = RelayDirectory(relay_settings)
    await relay.start()
    return relay


async def test_healthy_servers_are_handed_out_first_first(stun_ports):
    """Both healthy servers come back, in order, with valid credentials."""
    first, second = stun_ports
    relay = await started(settings((first, "DE"), (second, "DE")))
    try:
        config = relay.ice_config(relay_only=False)
    finally:
        await relay.stop()

    urls = [server["urls"] for server in config["iceServers"]]
    assert urls == [[f"turn:127.0.0.1:{first}"], [f"turn:127.0.0.1:{second}"]]
    for server in config["iceServers"]:
        assert server["credential"] == turn_password("secret", server["username"])
    assert config["iceTransportPolicy"] == "all"
    assert config["relayAvailable"] is True
    assert config["relayRegion"] == "DE"


async def test_relay_only_asks_for_the_relay_policy(stun_ports):
    """A relay-only session gets iceTransportPolicy "relay"."""
    relay = await started(settings((stun_ports[0], "DE")))
    try:
        assert relay.ice_config(relay_only=True)["iceTransportPolicy"] == "relay"
    finally:
        await relay.stop()


async def test_unhealthy_server_is_skipped(stun_ports):
    """A server that does not answer is left out; the next one is first."""
    relay = await started(settings((closed_port(), "DE"), (stun_ports[1], "DE")))
    try:
        config = relay.ice_config(relay_only=True)
    finally:
        await relay.stop()

    assert [s["urls"] for s in config["iceServers"]] == [
        [f"turn:127.0.0.1:{stun_ports[1]}"]
    ]


async def test_no_healthy_server_means_no_ice_servers_at_all():
    """Without a healthy relay the list is empty (no public STUN either)."""
    relay = await started(settings((closed_port(), "DE")))
    try:
        config = relay.ice_config(relay_only=False)
    finally:
        await relay.stop()

    assert config == {
        "iceServers": [],
        "iceTransportPolicy": "all",
        "relayAvailable": False,
        "relayRegion": None,
        "relayOnly": False,
    }


async def test_relay_only_without_relay_never_falls_back_to_direct():
    """A relay-only session without a healthy relay keeps the relay policy."""
    relay = await started(settings((closed_port(), "DE")))
    try:
        config = relay.ice_config(relay_only=True)
    finally:
        await relay.stop()

    assert config["iceServers"] == []
    assert config["iceTransportPolicy"] == "relay"
    assert config["relayOnly"] is True


async def test_no_configured_server_means_no_relay():
    """With no TURN servers configured the directory starts and offers none."""
    relay = await started(settings(turn_secret=""))
    try:
        assert relay.ice_config(relay_only=False)["iceServers"] == []
    finally:
        await relay.stop()


async def test_every_call_gives_fresh_credentials(stun_ports):
    """Each ice_config() call carries a new username and password."""
    relay = await started(settings((stun_ports[0], "DE")))
    try:
        first = relay.ice_config(relay_only=False)["iceServers"][0]
        second = relay.ice_config(relay_only=False)["iceServers"][0]
    finally:
        await relay.stop()

    assert first["username"] != second["username"]
    assert first["credential"] != second["credential"]


async def test_skipped_foreign_server_is_never_handed_out(stun_ports):
    """A healthy foreign server skipped by the settings never appears."""
    home, foreign = stun_ports
    relay = await started(
        settings((foreign, "FR"), (home, "DE"), turn_skip_foreign_servers=True)
    )
    try:
        config = relay.ice_config(relay_only=True)
    finally:
        await relay.stop()

    assert [s["urls"] for s in config["iceServers"]] == [[f"turn:127.0.0.1:{home}"]]


def test_foreign_server_fails_construction():
    """A configured server outside the allowed regions stops the start."""
    with pytest.raises(RegionError, match="region US"):
        RelayDirectory(settings((3478, "DE"), (3479, "US")))


def test_servers_without_secret_fail_construction():
    """TURN servers without a shared secret stop the start."""
    with pytest.raises(RelayConfigError, match="SPRECHZIMMER_TURN_SECRET"):
        RelayDirectory(settings((3478, "DE"), turn_secret=""))


def test_malformed_url_fails_construction():
    """A TURN URL without a host stops the start with a configuration error."""
    relay_settings = settings()
    relay_settings.turn_servers = [TurnServer(urls=["turn:"], region="DE")]

    with pytest.raises(RelayConfigError, match="no host"):
        RelayDirectory(relay_settings)


async def test_status_names_each_server_and_its_health(stun_ports):
    """status() lists each in-region server with its last known health."""
    down = closed_port()
    relay = await started(settings((stun_ports[0], "DE"), (down, "DE")))
    try:
        status = relay.status()
    finally:
        await relay.stop()

    assert status == [
        {"url": f"turn:127.0.0.1:{stun_ports[0]}", "region": "DE", "health": "healthy"},
        {"url": f"turn:127.0.0.1:{down}", "region": "DE", "health": "unhealthy"},
    ]
