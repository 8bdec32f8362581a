"""Run a coturn process on this machine, for tests and the demo mode.

It writes a configuration from :mod:`.coturn_config` into a directory,
starts ``turnserver`` on the given ports, waits until coturn answers a
STUN Binding request, and stops it again. Production coturn runs under
its own service manager, not through this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import re
import shutil
import socket
import sqlite3
from pathlib import Path
from types import TracebackType

from .coturn_config import CoturnOptions, render
from .stun import StunError, StunTarget, binding

TURNSERVER = "/usr/bin/turnserver"
#: The database schema that Debian's coturn package ships.
COTURN_SCHEMA = "/usr/share/coturn/schema.sql"

#: coturn's verbose log line for a new allocation.
_ALLOCATION = re.compile(r"session \S+: new, realm=<[^>]*>, username=<([^>]*)>")


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port that is free for both UDP and TCP on ``host`` now."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port


def loopback_options(secret: str, **overrides: object) -> CoturnOptions:
    """Options for a coturn on 127.0.0.1 that relays between local peers.

    It listens on a free port, relays from a random range of 100 ports,
    logs every allocation and allows loopback peers: for tests and the
    demo mode only, never for a reachable server.
    """
    relay_base = random.randrange(40000, 60000, 100)
    values: dict[str, object] = {
        "secret": secret,
        "realm": "sprechzimmer.test",
        "listening_port": free_port(),
        "listening_ips": ("127.0.0.1",),
        "relay_ips": ("127.0.0.1",),
        "min_port": relay_base,
        "max_port": relay_base + 99,
        "verbose": True,
        "test_allow_loopback_peers": True,
    }
    values.update(overrides)
    return CoturnOptions(**values)  # type: ignore[arg-type]


class LocalCoturn:
    """One coturn process with its configuration, log and database in
    ``directory``; use ``async with`` or :meth:`start` and :meth:`stop`."""

    def __init__(
        self,
        options: CoturnOptions,
        directory: Path,
        executable: str = TURNSERVER,
    ) -> None:
        self.directory = Path(directory)
        self.options = dataclasses.replace(
            options,
            log_file=str(self.directory / "turn.log"),
            pidfile=str(self.directory / "turn.pid"),
            userdb=str(self.directory / "turndb"),
        )
        self.executable = executable
        self.config_path = self.directory / "turnserver.conf"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def host(self) -> str:
        """The address coturn listens on."""
        return (self.options.listening_ips or ("127.0.0.1",))[0]

    @property
    def port(self) -> int:
        """The UDP/TCP port coturn listens on."""
        return self.options.listening_port

    @property
    def log_path(self) -> Path:
        """coturn's log file."""
        return Path(self.options.log_file or "")

    def log_text(self) -> str:
        """Return coturn's log so far (empty before it starts)."""
        with contextlib.suppress(FileNotFoundError):
            return self.log_path.read_text(errors="replace")
        return ""

    def allocation_users(self) -> list[str]:
        """Usernames of the allocations coturn logged (needs ``verbose``)."""
        return _ALLOCATION.findall(self.log_text())

    async def start(self, timeout: float = 10.0) -> None:
        """Start coturn and return once it answers STUN on its port."""
        if shutil.which(self.executable) is None:
            raise FileNotFoundError(f"coturn is not installed at {self.executable}")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(render(self.options))
        self._create_database()
        self.process = await asyncio.create_subprocess_exec(
            self.executable,
            "-c",
            str(self.config_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await self._wait_ready(timeout)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop coturn (SIGTERM, then SIGKILL) and wait for it to exit."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5.0)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        target = StunTarget(self.host, self.port, "udp")
        async with asyncio.timeout(timeout):
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(
                        f"coturn exited with {self.process.returncode}; "
                        f"see {self.log_path}"
                    )
                # Binding is the event: coturn answers once it listens.
                with contextlib.suppress(StunError):
                    await binding(target, 0.5)
                    return
                await asyncio.sleep(0.05)

    def _create_database(self) -> None:
        # coturn reads secrets from its SQLite database on every
        # authentication, even with a static secret, and answers 401 when
        # that fails. Left to itself, each auth thread creates the tables on
        # first use, and a thread that reads meanwhile gets "database is
        # locked". Tables that exist beforehand leave nothing to write.
        path = Path(self.options.userdb or "")
        if path.exists() or not Path(COTURN_SCHEMA).exists():
            return
        with contextlib.closing(sqlite3.connect(path)) as database:
            database.executescript(Path(COTURN_SCHEMA).read_text())

    async def __aenter__(self) -> LocalCoturn:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
