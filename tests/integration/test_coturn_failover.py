"""The relay directory against real coturn: health, failover, region, TLS."""

import asyncio
import datetime
import ipaddress
import ssl
import warnings

import pytest
from aioice.turn import TurnClientTcpProtocol, TurnClientUdpProtocol
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sprechzimmer.config import Settings, TurnServer
from sprechzimmer.relay.credentials import make_credentials
from sprechzimmer.relay.directory import RelayDirectory
from sprechzimmer.relay.local_coturn import (
    LocalCoturn,
    free_port,
)
from sprechzimmer.relay.regions import RegionError
from sprechzimmer.relay.stun import StunTarget, binding
from tests.integration.conftest import COTURN_SECRET

pytestmark = pytest.mark.coturn

SECRET = COTURN_SECRET


def url(coturn: LocalCoturn) -> str:
    return f"turn:{coturn.host}:{coturn.port}?transport=udp"


def relay_settings(*servers: tuple[LocalCoturn, str], **overrides) -> Settings:
    values = {
        "region": "DE",
        "allowed_regions": ["DE"],
        "turn_servers": [
            TurnServer(urls=[url(coturn)], region=region) for coturn, region in servers
        ],
        "turn_secret": SECRET,
        "turn_health_interval_seconds": 60,
    }
    values.update(overrides)
    return Settings(**values)


async def allocate_with(ice_server: dict) -> tuple[str, int]:
    """Allocate on the first URL of an iceServers entry, as a browser would."""
    host, port = ice_server["urls"][0].removeprefix("turn:").split("?")[0].split(":")
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(
            (host, int(port)),
            username=ice_server["username"],
            password=ice_server["credential"],
            lifetime=60,
            channel_refresh_time=500,
        ),
        remote_addr=(host, int(port)),
    )
    try:
        relayed = await client.connect()
        await client.delete()
    finally:
        transport.close()
    return relayed


async def test_failover_hands_out_the_next_healthy_server(start_coturn):
    """With the first coturn stopped, only the second is handed out and works."""
    first, second = await start_coturn(), await start_coturn()
    relay = RelayDirectory(relay_settings((first, "DE"), (second, "DE")))
    await relay.start()
    try:
        before = relay.ice_config(relay_only=True)
        assert [s["urls"] for s in before["iceServers"]] == [
            [url(first)],
            [url(second)],
        ]

        await first.stop()
        await relay.monitor.check_all()
        after = relay.ice_config(relay_only=True)
    finally:
        await relay.stop()

    assert [s["urls"] for s in after["iceServers"]] == [[url(second)]]
    assert after["iceTransportPolicy"] == "relay"
    assert after["relayRegion"] == "DE"
    await allocate_with(after["iceServers"][0])
    assert after["iceServers"][0]["username"] in second.allocation_users()
    assert first.allocation_users() == []


async def test_all_relays_down_means_no_relay(start_coturn):
    """When every in-region coturn is stopped, no relay is offered at all."""
    only = await start_coturn()
    relay = RelayDirectory(relay_settings((only, "DE")))
    await relay.start()
    try:
        await only.stop()
        await relay.monitor.check_all()
        config = relay.ice_config(relay_only=True)
    finally:
        await relay.stop()

    assert config["iceServers"] == []
    assert config["relayAvailable"] is False
    # Relay-only stays relay-only: no direct fallback that shows addresses.
    assert config["iceTransportPolicy"] == "relay"


async def test_foreign_coturn_is_never_handed_out_or_contacted(start_coturn):
    """A running foreign coturn, skipped by the settings, gets no traffic."""
    home, foreign = await start_coturn(), await start_coturn()
    await home.stop()
    relay = RelayDirectory(
        relay_settings((home, "DE"), (foreign, "FR"), turn_skip_foreign_servers=True)
    )
    await relay.start()
    try:
        config = relay.ice_config(relay_only=True)
    finally:
        await relay.stop()

    assert config["iceServers"] == []
    assert config["relayAvailable"] is False
    assert str(foreign.port) not in str(config)
    assert foreign.allocation_users() == []
    assert "session " not in foreign.log_text()


async def test_foreign_coturn_in_the_settings_stops_the_start(start_coturn):
    """A configured out-of-region coturn fails the start with a clear message."""
    home, foreign = await start_coturn(), await start_coturn()

    with pytest.raises(RegionError) as raised:
        RelayDirectory(relay_settings((home, "DE"), (foreign, "FR")))

    assert str(raised.value) == (
        f"TURN server {url(foreign)} is in region FR, which is not in "
        "SPRECHZIMMER_ALLOWED_REGIONS (DE); remove it from "
        "SPRECHZIMMER_TURN_SERVERS or allow its region"
    )


async def test_health_check_over_tcp(start_coturn):
    """A turn: URL with transport=tcp is checked over TCP and found healthy."""
    coturn = await start_coturn()
    settings = relay_settings()
    settings.turn_servers = [
        TurnServer(
            urls=[f"turn:{coturn.host}:{coturn.port}?transport=tcp"], region="DE"
        )
    ]
    relay = RelayDirectory(settings)
    await relay.start()
    try:
        assert relay.ice_config(relay_only=False)["relayAvailable"] is True
    finally:
        await relay.stop()


def self_signed(directory) -> tuple:
    """Write a self-signed certificate for 127.0.0.1 and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "turn.pem", directory / "turn.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_turn_over_tls_allows_tls12_and_refuses_tls11(start_coturn, tmp_path):
    """The TLS listener relays for TLS 1.2+ clients and refuses TLS 1.1."""
    cert, key = self_signed(tmp_path)
    tls_port = free_port()
    coturn = await start_coturn(tls_listening_port=tls_port, cert=cert, pkey=key)
    target = StunTarget(coturn.host, tls_port, "tls")

    modern = ssl.create_default_context(cafile=str(cert))
    await binding(target, 5.0, context=modern)

    loop = asyncio.get_running_loop()
    fresh = make_credentials(SECRET, 3600)
    transport, client = await loop.create_connection(
        lambda: TurnClientTcpProtocol(
            (coturn.host, tls_port),
            username=fresh.username,
            password=fresh.password,
            lifetime=60,
            channel_refresh_time=500,
        ),
        host=coturn.host,
        port=tls_port,
        ssl=modern,
    )
    try:
        await client.connect()
        await client.delete()
    finally:
        transport.close()
    assert fresh.username in coturn.allocation_users()

    # coturn 4.6.1 leaves a TLS 1.1 handshake unanswered instead of alerting.
    with pytest.raises((ssl.SSLError, ConnectionError, TimeoutError)):
        await asyncio.wait_for(
            asyncio.open_connection(coturn.host, tls_port, ssl=tls11_context(cert)),
            2.0,
        )


def tls11_context(cafile) -> ssl.SSLContext:
    """A client context that speaks only TLS 1.1 (which works locally)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(cafile))
    with warnings.catch_warnings():
        # Deliberately outdated: the point is that coturn refuses it.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context
