"""Tests for the STUN Binding request used by health checks."""

import asyncio
import struct

import pytest

from sprechzimmer.relay.stun import (
    BINDING_SUCCESS,
    HEADER,
    MAGIC_COOKIE,
    StunError,
    StunTarget,
    binding,
    binding_request,
    is_binding_success,
)


class Responder(asyncio.DatagramProtocol):
    """Answers Binding requests over UDP, optionally with a wrong ID."""

    def __init__(self, wrong_id: bool = False) -> None:
        self.wrong_id = wrong_id
        self.requests = 0

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.requests += 1
        _, _, _, transaction_id = HEADER.unpack_from(data)
        if self.wrong_id:
            transaction_id = bytes(12)
        answer = HEADER.pack(BINDING_SUCCESS, 0, MAGIC_COOKIE, transaction_id)
        self.transport.sendto(answer, addr)


async def udp_responder(**kwargs):
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: Responder(**kwargs), local_addr=("127.0.0.1", 0)
    )
    return transport, protocol, transport.get_extra_info("sockname")[1]


def test_request_is_a_bare_binding_request():
    """The request is a 20-byte Binding header with the magic cookie."""
    request, transaction_id = binding_request()

    assert len(request) == 20
    assert struct.unpack("!HHI", request[:8]) == (0x0001, 0, MAGIC_COOKIE)
    assert request[8:] == transaction_id


def test_success_must_match_the_transaction():
    """Only a Binding success with our transaction ID counts."""
    _, transaction_id = binding_request()
    good = HEADER.pack(BINDING_SUCCESS, 0, MAGIC_COOKIE, transaction_id)

    assert is_binding_success(good, transaction_id)
    assert not is_binding_success(good, bytes(12))
    assert not is_binding_success(good[:19], transaction_id)
    error = HEADER.pack(0x0111, 0, MAGIC_COOKIE, transaction_id)
    assert not is_binding_success(error, transaction_id)


async def test_udp_binding_succeeds_against_a_responder():
    """A server that answers the Binding request passes."""
    transport, protocol, port = await udp_responder()
    try:
        await binding(StunTarget("127.0.0.1", port), timeout=1.0)
    finally:
        transport.close()

    assert protocol.requests == 1


async def test_wrong_transaction_id_times_out():
    """Answers to someone else's transaction are ignored until the timeout."""
    transport, protocol, port = await udp_responder(wrong_id=True)
    try:
        with pytest.raises(StunError, match="no answer"):
            await binding(StunTarget("127.0.0.1", port), timeout=0.6)
    finally:
        transport.close()

    assert protocol.requests >= 2  # retransmitted


async def test_closed_udp_port_fails():
    """Nothing listening means failure (ICMP refusal or timeout)."""
    transport, _, port = await udp_responder()
    transport.close()

    with pytest.raises(StunError):
        await binding(StunTarget("127.0.0.1", port), timeout=0.5)


async def test_tcp_binding_succeeds_against_a_responder():
    """Binding over TCP reads one framed answer."""

    async def answer(reader, writer):
        request = await reader.readexactly(20)
        _, _, _, transaction_id = HEADER.unpack(request)
        writer.write(HEADER.pack(BINDING_SUCCESS, 0, MAGIC_COOKIE, transaction_id))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await binding(StunTarget("127.0.0.1", port, "tcp"), timeout=1.0)


async def test_tcp_connection_closed_early_fails():
    """A TCP server that hangs up without answering fails the check."""

    async def hang_up(reader, writer):
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(StunError):
            await binding(StunTarget("127.0.0.1", port, "tcp"), timeout=1.0)
