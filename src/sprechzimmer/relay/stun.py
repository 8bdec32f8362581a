"""A STUN Binding request (RFC 8489), the smallest real question to coturn.

A Binding request needs no credentials and creates no allocation, so a
health check leaves nothing in coturn's allocation log. A correct Binding
success response proves that coturn's listener is up and answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import struct
from dataclasses import dataclass
from typing import Literal

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
HEADER = struct.Struct("!HHI12s")

Transport = Literal["udp", "tcp", "tls"]


class StunError(Exception):
    """The server did not give a valid Binding success response."""


@dataclass(frozen=True)
class StunTarget:
    """Where and how to send a Binding request."""

    host: str
    port: int
    transport: Transport = "udp"

    def __str__(self) -> str:
        return f"{self.transport}://{self.host}:{self.port}"


def binding_request() -> tuple[bytes, bytes]:
    """Return a Binding request without attributes and its transaction ID."""
    transaction_id = os.urandom(12)
    return HEADER.pack(BINDING_REQUEST, 0, MAGIC_COOKIE, transaction_id), transaction_id


def is_binding_success(data: bytes, transaction_id: bytes) -> bool:
    """Tell whether ``data`` answers our request with a Binding success."""
    if len(data) < HEADER.size:
        return False
    kind, length, cookie, received_id = HEADER.unpack_from(data)
    return (
        kind == BINDING_SUCCESS
        and cookie == MAGIC_COOKIE
        and received_id == transaction_id
        and len(data) >= HEADER.size + length
    )


async def binding(
    target: StunTarget,
    timeout: float,
    context: ssl.SSLContext | None = None,
) -> None:
    """Send one Binding request to ``target``; raise :class:`StunError` if
    no valid success response arrives within ``timeout`` seconds.

    ``context`` verifies TLS servers (default: the system's CA store).
    """
    try:
        async with asyncio.timeout(timeout):
            if target.transport == "udp":
                await _binding_udp(target)
            else:
                await _binding_stream(target, context)
    except TimeoutError as exc:
        raise StunError(f"no answer within {timeout:g} s") from exc
    except OSError as exc:
        raise StunError(exc.strerror or type(exc).__name__) from exc


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self, transaction_id: bytes) -> None:
        self.transaction_id = transaction_id
        self.answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if is_binding_success(data, self.transaction_id) and not self.answer.done():
            self.answer.set_result(None)

    def error_received(self, exc: Exception) -> None:
        # An ICMP "port unreachable" means nothing listens: fail at once.
        if not self.answer.done():
            self.answer.set_exception(exc)


async def _binding_udp(target: StunTarget) -> None:
    request, transaction_id = binding_request()
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        lambda: _UdpClient(transaction_id), remote_addr=(target.host, target.port)
    )
    try:
        # Retransmit as RFC 8489 does (doubling from 250 ms): UDP may drop.
        wait = 0.25
        while True:
            transport.sendto(request)
            done, _ = await asyncio.wait({client.answer}, timeout=wait)
            if done:
                client.answer.result()
                return
            wait *= 2
    finally:
        transport.close()


async def _binding_stream(target: StunTarget, context: ssl.SSLContext | None) -> None:
    request, transaction_id = binding_request()
    if target.transport == "tls":
        context = context or ssl.create_default_context()
    else:
        context = None
    reader, writer = await asyncio.open_connection(
        target.host, target.port, ssl=context
    )
    try:
        writer.write(request)
        await writer.drain()
        header = await reader.readexactly(HEADER.size)
        _, length, _, _ = HEADER.unpack(header)
        body = await reader.readexactly(length)
        if not is_binding_success(header + body, transaction_id):
            raise StunError("not a Binding success response")
    except asyncio.IncompleteReadError as exc:
        raise StunError("connection closed before the answer") from exc
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
