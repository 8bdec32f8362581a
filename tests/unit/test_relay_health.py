"""Tests for TURN health checks and their state-change log."""

import asyncio
import logging

import pytest

from sprechzimmer.config import TurnServer
from sprechzimmer.relay.health import HealthMonitor, check_target
from sprechzimmer.relay.stun import BINDING_SUCCESS, HEADER, MAGIC_COOKIE, StunTarget


class Responder(asyncio.DatagramProtocol):
    """A minimal STUN server: answers every Binding request."""

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        _, _, _, transaction_id = HEADER.unpack_from(data)
        answer = HEADER.pack(BINDING_SUCCESS, 0, MAGIC_COOKIE, transaction_id)
        self.transport.sendto(answer, addr)


@pytest.fixture
async def stun_port():
    """The port of a running STUN responder on 127.0.0.1."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        Responder, local_addr=("127.0.0.1", 0)
    )
    yield transport.get_extra_info("sockname")[1]
    transport.close()


def closed_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def turn(url: str, check: str | None = None) -> TurnServer:
    return TurnServer(urls=[url], region="DE", check=check)


@pytest.mark.parametrize(
    ("urls", "check", "expected"),
    [
        (["turn:turn.example.de"], None, StunTarget("turn.example.de", 3478)),
        (["turn:10.1.2.3:3479?transport=udp"], None, StunTarget("10.1.2.3", 3479)),
        (
            ["turns:turn.example.de:443?transport=tcp", "turn:t.example.de:80"],
            None,
            StunTarget("t.example.de", 80),
        ),
        (["turns:turn.example.de"], None, StunTarget("turn.example.de", 5349, "tls")),
        (
            ["turn:turn.example.de:443?transport=tcp"],
            None,
            StunTarget("turn.example.de", 443, "tcp"),
        ),
        (["turn:[2001:db8::1]:3480"], None, StunTarget("2001:db8::1", 3480)),
        (["turns:turn.example.de:443"], "10.0.0.5:3478", StunTarget("10.0.0.5", 3478)),
    ],
)
def test_check_target_follows_the_urls(urls, check, expected):
    """The check goes to the `check` setting, else the first UDP URL, else TCP/TLS."""
    server = TurnServer(urls=urls, region="DE", check=check)

    assert check_target(server) == expected


async def test_first_check_marks_servers_before_start_returns(stun_port):
    """After start() each server is already healthy or unhealthy."""
    up = turn(f"turn:127.0.0.1:{stun_port}")
    down = turn(f"turn:127.0.0.1:{closed_port()}")
    monitor = HealthMonitor([down, up], interval=60, timeout=0.5)

    await monitor.start()
    try:
        assert monitor.healthy() == [up]
        assert [monitor.health(0), monitor.health(1)] == ["unhealthy", "healthy"]
    finally:
        await monitor.stop()


async def test_state_changes_are_logged_once(stun_port, caplog):
    """A change is logged as "old -> new" once; an unchanged state is not."""
    caplog.set_level(logging.INFO, logger="sprechzimmer.relay.health")
    server = turn(f"turn:127.0.0.1:{stun_port}")
    monitor = HealthMonitor([server], interval=60, timeout=0.5)

    await monitor.check_all()
    await monitor.check_all()
    monitor.targets[0] = StunTarget("127.0.0.1", closed_port())
    await monitor.check_all()
    await monitor.check_all()

    changes = [r.getMessage() for r in caplog.records]
    assert changes == [
        f"TURN server udp://127.0.0.1:{stun_port}: unknown -> healthy",
        f"TURN server udp://127.0.0.1:{monitor.targets[0].port}: healthy -> unhealthy",
    ]


async def test_background_loop_notices_a_server_going_down(stun_port):
    """The periodic checks mark a server unhealthy once it stops answering."""
    server = turn(f"turn:127.0.0.1:{stun_port}")
    monitor = HealthMonitor([server], interval=0.05, timeout=0.2)
    changes: asyncio.Queue[tuple] = asyncio.Queue()
    monitor.add_listener(lambda *change: changes.put_nowait(change))
    await monitor.start()
    try:
        assert changes.get_nowait() == (server, "unknown", "healthy")
        monitor.targets[0] = StunTarget("127.0.0.1", closed_port())
        async with asyncio.timeout(5):
            change = await changes.get()
    finally:
        await monitor.stop()

    assert change == (server, "healthy", "unhealthy")
    assert monitor.healthy() == []


async def test_stop_ends_the_background_task(stun_port):
    """stop() cancels the loop; a second stop() does nothing."""
    monitor = HealthMonitor([turn(f"turn:127.0.0.1:{stun_port}")], interval=60)
    await monitor.start()
    task = monitor._task

    await monitor.stop()
    await monitor.stop()

    assert task is not None and task.done()
