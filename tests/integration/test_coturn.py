"""coturn started with the generated configuration: auth, peers, logging."""

import asyncio

import pytest
from aioice import stun
from aioice.turn import TurnClientUdpProtocol, create_turn_endpoint

from sprechzimmer.relay.credentials import make_credentials
from sprechzimmer.relay.local_coturn import LocalCoturn
from tests.integration.conftest import COTURN_SECRET

pytestmark = pytest.mark.coturn

SECRET = COTURN_SECRET


async def turn_client(coturn: LocalCoturn, username: str, password: str):
    """An aioice TURN client connected to ``coturn`` over UDP."""
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(
            (coturn.host, coturn.port),
            username=username,
            password=password,
            lifetime=60,
            channel_refresh_time=500,
        ),
        remote_addr=(coturn.host, coturn.port),
    )
    return transport, client


async def allocate(coturn: LocalCoturn, username: str, password: str):
    """Allocate a relay address; return the client (call ``delete()`` later)."""
    transport, client = await turn_client(coturn, username, password)
    try:
        await client.connect()
    except BaseException:
        transport.close()
        raise
    return client


async def test_fresh_credentials_allocate_and_expired_ones_are_refused(
    start_coturn,
):
    """coturn accepts fresh credentials and answers expired ones with 401."""
    coturn = await start_coturn()

    fresh = make_credentials(SECRET, 3600)
    client = await allocate(coturn, fresh.username, fresh.password)
    assert client.relayed_address[0] == "127.0.0.1"
    await client.delete()

    expired = make_credentials(SECRET, 3600, now=0)
    with pytest.raises(stun.TransactionFailed) as refused:
        await allocate(coturn, expired.username, expired.password)
    assert refused.value.response.error_code == 401


async def test_credentials_for_another_secret_are_refused(start_coturn):
    """A password made with the wrong secret gets 401."""
    coturn = await start_coturn()

    wrong = make_credentials("not-the-secret", 3600)
    with pytest.raises(stun.TransactionFailed) as refused:
        await allocate(coturn, wrong.username, wrong.password)
    assert refused.value.response.error_code == 401


@pytest.mark.parametrize(
    "peer",
    ["10.0.0.1", "169.254.169.254", "192.168.1.1", "100.64.0.1", "224.0.0.251"],
)
async def test_relaying_to_a_denied_address_is_refused(start_coturn, peer):
    """Asking to relay to a private or special address gets 403 Forbidden."""
    coturn = await start_coturn()
    fresh = make_credentials(SECRET, 3600)
    client = await allocate(coturn, fresh.username, fresh.password)
    try:
        with pytest.raises(stun.TransactionFailed) as refused:
            await client.channel_bind(0x4000, (peer, 9))
        assert refused.value.response.error_code == 403
    finally:
        await client.delete()


async def test_loopback_is_refused_without_the_test_switch(start_coturn):
    """The production configuration refuses 127.0.0.1 as a peer."""
    coturn = await start_coturn(test_allow_loopback_peers=False)
    fresh = make_credentials(SECRET, 3600)
    client = await allocate(coturn, fresh.username, fresh.password)
    try:
        with pytest.raises(stun.TransactionFailed) as refused:
            await client.channel_bind(0x4000, ("127.0.0.1", 9))
        assert refused.value.response.error_code == 403

        # A public address is allowed (binding a channel sends nothing).
        await client.channel_bind(0x4001, ("8.8.8.8", 53))
    finally:
        await client.delete()
    assert "allow-loopback-peers" not in coturn.config_path.read_text()


class Echo(asyncio.DatagramProtocol):
    """A UDP peer that sends every datagram back."""

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


class Receiver(asyncio.DatagramProtocol):
    """Collects what arrives through the relay."""

    def __init__(self):
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.received.put_nowait(data)


async def test_data_flows_through_the_relay_and_the_allocation_is_logged(
    start_coturn,
):
    """In test mode data reaches a loopback peer and back; coturn logs it."""
    coturn = await start_coturn()
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    fresh = make_credentials(SECRET, 3600)

    relay, receiver = await create_turn_endpoint(
        Receiver,
        server_addr=(coturn.host, coturn.port),
        username=fresh.username,
        password=fresh.password,
        lifetime=60,
    )
    try:
        relay.sendto(b"encrypted frame", echo.get_extra_info("sockname"))
        async with asyncio.timeout(5):
            assert await receiver.received.get() == b"encrypted frame"
    finally:
        relay.close()
        echo.close()

    assert fresh.username in coturn.allocation_users()
