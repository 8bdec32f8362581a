"""A network namespace with a veth link to this machine, for fault tests.

A browser started through :meth:`Namespace.wrapper` runs inside the
namespace and reaches the rest of the machine only over the veth pair, so
``ip link set ... down`` on its end cuts its network completely. The
addresses come from 10.231.0.0/16 and are used only inside the namespace
made here. Everything is removed afterwards, also when the test fails.
Needs root and ``ip`` (iproute2).
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI


def ip(*arguments: str) -> None:
    """Run ``ip`` with these arguments; fail loudly on error."""
    subprocess.run(["ip", *arguments], check=True, capture_output=True, timeout=30)


@dataclass
class Namespace:
    """A namespace, its veth end inside and the host's end outside."""

    name: str
    host_dev: str
    inner_dev: str
    host_address: str
    inner_address: str

    def link(self, up: bool) -> None:
        """Bring the namespace's end of the link up or down."""
        ip("-n", self.name, "link", "set", self.inner_dev, "up" if up else "down")

    def wrapper(self, directory: Path, program: str) -> Path:
        """An executable that runs ``program`` inside the namespace."""
        path = directory / f"in-{self.name}"
        path.write_text(f'#!/bin/sh\nexec ip netns exec {self.name} {program} "$@"\n')
        path.chmod(0o755)
        return path


def need_root_tools() -> None:
    """Skip (fail in CI) unless namespaces can be made here."""
    problem = None
    if os.geteuid() != 0:
        problem = "network namespaces need root"
    elif shutil.which("ip") is None:
        problem = "ip is missing (apt-get install iproute2)"
    if problem is None:
        return
    if IN_CI:
        pytest.fail(problem)
    pytest.skip(problem)


@contextlib.contextmanager
def namespace() -> Iterator[Namespace]:
    """A fresh namespace with a /30 veth link to the host; deleted after."""
    need_root_tools()
    tag = secrets.token_hex(3)
    base = f"10.231.{random.randrange(256)}.{4 * random.randrange(64)}"
    prefix, last = base.rsplit(".", 1)
    made = Namespace(
        name=f"szr{tag}",
        host_dev=f"szr{tag}h",
        inner_dev=f"szr{tag}n",
        host_address=f"{prefix}.{int(last) + 1}",
        inner_address=f"{prefix}.{int(last) + 2}",
    )
    try:
        ip("netns", "add", made.name)
        ip("-n", made.name, "link", "set", "lo", "up")
        ip(
            "link", "add", made.host_dev, "type", "veth",
            "peer", "name", made.inner_dev, "netns", made.name,
        )  # fmt: skip
        ip("addr", "add", f"{made.host_address}/30", "dev", made.host_dev)
        ip("link", "set", made.host_dev, "up")
        ip("-n", made.name, "addr", "add", f"{made.inner_address}/30",
           "dev", made.inner_dev)  # fmt: skip
        made.link(up=True)
        yield made
    finally:
        # Deleting the namespace deletes its veth end, and so the pair; the
        # host's end is deleted too in case the namespace was never made.
        for command in (
            ["ip", "netns", "del", made.name],
            ["ip", "link", "del", made.host_dev],
        ):
            subprocess.run(command, capture_output=True, check=False, timeout=30)
