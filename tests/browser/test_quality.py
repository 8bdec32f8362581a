"""A call under a real 250 kbit/s limit: audio goes on, video yields.

Topology, made for this test and removed after it: two network namespaces
joined by a veth pair, the therapist's Chromium and the server in one, the
client's Chromium in the other, so all media crosses the veth link. The
limit is ``tc qdisc ... tbf rate 250kbit`` on both ends of the link. The
page is served from a private address, so Chromium is told to treat that
origin as secure. Needs root, ``ip`` and ``tc``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from sprechzimmer.store import accounts
from sprechzimmer.store.db import Database
from sprechzimmer.store.models import QualitySample, Session
from tests.browser.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Person,
    join_as_client,
    log_in,
    open_session,
    wait_for_media,
)
from tests.conftest import IN_CI, seconds

SERVER_ADDRESS = "10.213.0.1"
CLIENT_ADDRESS = "10.213.0.2"
PORT = 8765
LIMIT = "250kbit"
RANK = {"audio-only": 0, "low": 1, "medium": 2, "high": 3}

# The longest silence of received audio: at each poll (every 50 ms) the
# time since the last audio packet arrived, from the stats' own clock, so a
# page whose timers stall on a busy machine does not count a false gap.
# reset() starts a new measurement; events lists silences over 300 ms.
AUDIO_WATCH = """() => {
  const watch = { max: 0, events: [], since: performance.timeOrigin };
  watch.reset = () => { watch.max = 0; watch.events = []; watch.since = Date.now(); };
  setInterval(async () => {
    const pc = window.sprechzimmer.peer?.pc;
    if (!pc) return;
    (await pc.getStats()).forEach((s) => {
      if (s.type !== "inbound-rtp" || s.kind !== "audio") return;
      const last = Math.max(s.lastPacketReceivedTimestamp ?? 0, watch.since);
      const silence = s.timestamp - last;
      if (silence > 300) {
        watch.events.push([Math.round(s.timestamp - watch.since), Math.round(silence)]);
      }
      watch.max = Math.max(watch.max, silence);
    });
  }, 50);
  window.audioWatch = watch;
}"""
AUDIO_GAP = (
    "() => [Math.round(window.audioWatch.max), window.audioWatch.events.slice(-12)]"
)


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)


def _need_root_tools() -> None:
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    problem = None
    if os.geteuid() != 0:
        problem = "network namespaces need root"
    elif missing:
        problem = f"missing {', '.join(missing)} (apt-get install iproute2)"
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)


@dataclass
class Link:
    """The two namespaces and the ends of the veth link between them."""

    server_ns: str
    client_ns: str
    server_dev: str
    client_dev: str

    def limit(self, rate: str) -> None:
        """Shape both directions of the link to ``rate``.

        The queue holds a second of traffic, like the buffer of a home
        router; a shallower one drops audio with the video it overflows
        with before any sender can react.
        """
        for ns, dev in self._ends():
            _run(
                "ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev,
                "root", "tbf", "rate", rate, "burst", "32kbit", "latency", "1s",
            )  # fmt: skip

    def unlimit(self) -> None:
        """Lift the limit; changed in place, as deleting drops the queue."""
        for ns, dev in self._ends():
            _run(
                "ip", "netns", "exec", ns, "tc", "qdisc", "change", "dev", dev,
                "root", "tbf", "rate", "1gbit", "burst", "1mbit", "latency", "300ms",
            )  # fmt: skip

    def _ends(self):
        return ((self.server_ns, self.server_dev), (self.client_ns, self.client_dev))


@pytest.fixture
def link() -> Iterator[Link]:
    """Two fresh namespaces joined by a veth pair; deleted afterwards."""
    _need_root_tools()
    tag = secrets.token_hex(3)
    made = Link(f"szq{tag}s", f"szq{tag}c", f"szq{tag}s0", f"szq{tag}c0")
    try:
        for ns in (made.server_ns, made.client_ns):
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run(
            "ip", "-n", made.server_ns, "link", "add", made.server_dev,
            "type", "veth", "peer", "name", made.client_dev, "netns", made.client_ns,
        )  # fmt: skip
        for ns, dev, address in (
            (made.server_ns, made.server_dev, SERVER_ADDRESS),
            (made.client_ns, made.client_dev, CLIENT_ADDRESS),
        ):
            _run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
        yield made
    finally:
        for ns in (made.server_ns, made.client_ns):
            # Deleting a namespace removes its veth end, and so the pair.
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


@dataclass
class NamespacedServer:
    """A Sprechzimmer server process in the server's namespace."""

    base_url: str
    database_url: str

    def add_therapist(self) -> tuple[str, str]:
        username = f"t{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(12)
        db = Database(self.database_url)
        try:
            with db.session() as session:
                accounts.add_therapist(session, username, password)
        finally:
            db.dispose()
        return username, password


@pytest.fixture
def ns_server(link, tmp_path) -> Iterator[NamespacedServer]:
    """The server on the private address, SQLite in the test's directory."""
    base_url = f"http://{SERVER_ADDRESS}:{PORT}"
    database_url = f"sqlite:///{tmp_path / 'quality.db'}"
    env = {
        **os.environ,
        "SPRECHZIMMER_DATA_DIR": str(tmp_path),
        "SPRECHZIMMER_DATABASE_URL": database_url,
        "SPRECHZIMMER_PUBLIC_BASE_URL": base_url,
        "SPRECHZIMMER_QUALITY_SAMPLE_SECONDS": "10",
    }
    command = [
        "ip", "netns", "exec", link.server_ns, sys.executable, "-c",
        "from sprechzimmer.cli import main; main()",
        "serve", "--host", SERVER_ADDRESS, "--port", str(PORT),
    ]  # fmt: skip
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(link.server_ns, base_url, process)
        yield NamespacedServer(base_url, database_url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_healthy(ns: str, base_url: str, process: subprocess.Popen) -> None:
    probe = (
        "import sys, urllib.request\n"
        "try:\n"
        f"    urllib.request.urlopen('{base_url}/healthz', timeout=1)\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    # Generous: on a busy machine importing the app alone takes a while.
    deadline = time.monotonic() + seconds(90)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server in the namespace exited")
        check = ["ip", "netns", "exec", ns, sys.executable, "-c", probe]
        if subprocess.run(check, capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError("the server in the namespace did not become healthy")


@contextlib.contextmanager
def chromium_in(browser, ns: str, origin: str, tmp_path: Path) -> Iterator[Person]:
    """A Chromium running in a namespace, with one page; closed afterwards."""
    wrapper = tmp_path / f"chromium-{ns}"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    launched = browser.browser_type.launch(
        executable_path=str(wrapper),
        headless=True,
        args=[*CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={origin}"],
    )
    try:
        context = launched.new_context()
        page = context.new_page()
        person = Person(context, page)
        page.on("console", lambda m: person.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: person.console.append(f"error: {e}"))
        yield person
        print(f"--- console in {ns}:", *person.console[-30:], sep="\n")
    finally:
        launched.close()


# The controller's state, with its last reading for failure messages.
QUALITY = """() => {
  const q = window.sprechzimmer.quality;
  const s = q?.readings?.at(-1)?.snapshot;
  const round = (x) => (x == null ? null : Math.round(x * 100) / 100);
  return { ...(q?.state ?? {}), estimate: round(s?.availableKbps),
           loss: round(s?.sendLoss), rtt: round(s?.rttMs),
           reason: q?.lastDecision?.reason ?? null };
}"""


def _quality(person: Person) -> dict:
    return person.page.evaluate(QUALITY)


def _watch(persons: list[Person], duration: float, step: float = 1.0) -> list:
    """Quality states of each person, every ``step`` seconds."""
    seen = []
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        seen.append([_quality(p) for p in persons])
        persons[0].page.wait_for_timeout(step * 1000)
    return seen


def _metrics(person: Person) -> dict:
    text = person.page.evaluate("() => fetch('/metrics').then((r) => r.text())")
    return {f.name: f for f in text_string_to_metric_families(text)}


def _total(families: dict, name: str, **labels) -> float:
    return sum(
        s.value
        for s in families[name].samples
        if s.name == name + "_total"
        and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_call_under_250_kbit_keeps_audio_and_recovers_video(
    browser, link, ns_server, tmp_path
):
    """At 250 kbit/s audio has no gap over 1 s, video yields and comes back."""
    origin = ns_server.base_url
    with (
        chromium_in(browser, link.server_ns, origin, tmp_path) as therapist,
        chromium_in(browser, link.client_ns, origin, tmp_path) as client,
    ):
        # the call, on an unshaped link
        username, password = ns_server.add_therapist()
        log_in(therapist.page, ns_server, username, password)
        invite, call_url = open_session(therapist.page, "K-250")
        therapist.page.goto(call_url)
        join_as_client(client.page, invite, "Robin")
        therapist.page.wait_for_selector("[data-testid=admit]", state="visible")
        therapist.page.click("[data-testid=admit]")
        for person in (therapist, client):
            wait_for_media(person.page, frames=60)
            person.page.evaluate(AUDIO_WATCH)
        people = [therapist, client]
        _watch(people, seconds(6))
        assert [_quality(p)["path"] for p in people] == ["direct", "direct"]

        # under the limit: video reduced or paused, audio keeps arriving
        link.limit(LIMIT)
        for person in people:
            person.page.evaluate("() => window.audioWatch.reset()")
        limited = _watch(people, seconds(30))
        gaps = [p.page.evaluate(AUDIO_GAP) for p in people]
        timeline = [
            [
                (s.get("profile"), s.get("estimate"), s.get("loss"), s.get("rtt"))
                for s in states
            ]
            for states in limited
        ]
        assert max(g[0] for g in gaps) <= 1000, (
            f"audio under the limit: {gaps} {timeline}"
        )
        settled = limited[len(limited) // 3 :]
        for index in range(2):
            # Probes up may fail and come back, but video stays reduced.
            profiles = [states[index]["profile"] for states in settled]
            down = [p for p in profiles if RANK[p] <= RANK["low"]]
            assert "high" not in profiles, f"{profiles}"
            assert len(down) >= 0.75 * len(profiles), f"{timeline}"
        assert therapist.page.get_attribute("[data-testid=quality]", "data-send")

        # lifted: video back within 20 s
        link.unlimit()
        for person in people:
            person.page.evaluate("() => window.audioWatch.reset()")
        worst = [min(RANK[s[i]["profile"]] for s in settled) for i in range(2)]
        recovery: list = []
        recovered = _watch_recovery(people, worst, seconds(20), recovery)
        assert recovered, f"video not back within 20 s: {recovery}"
        gaps = [p.page.evaluate(AUDIO_GAP) for p in people]
        assert max(g[0] for g in gaps) <= 1000, f"audio after the limit: {gaps}"

        # the call shows in /metrics and in the anonymous samples
        families = _metrics(therapist)
        assert _total(families, "sprechzimmer_calls", path="direct") >= 1
        assert _total(families, "sprechzimmer_quality_samples") >= 2
        rooms = families["sprechzimmer_rooms_active"].samples[0].value
        assert rooms >= 1
        rtt = families["sprechzimmer_quality_rtt_seconds"]
        assert any(s.name.endswith("_count") and s.value >= 1 for s in rtt.samples)
        _check_samples(ns_server)


def _watch_recovery(
    people: list[Person], worst: list[int], timeout: float, timeline: list
) -> bool:
    """Whether each sender climbs above its worst profile under the limit.

    Paused video (audio-only) must be on again; reduced video (low) must
    be at medium or better.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [_quality(p) for p in people]
        timeline.append([(s["profile"], s["estimate"], s["reason"]) for s in states])
        ranks = [RANK[s["profile"]] for s in states]
        if all(r > w for r, w in zip(ranks, worst, strict=True)):
            return True
        people[0].page.wait_for_timeout(500)
    return False


def _check_samples(server: NamespacedServer) -> None:
    db = Database(server.database_url)
    try:
        with db.session() as session:
            rows = session.scalars(select(QualitySample)).all()
            session_ids = set(session.scalars(select(Session.id)).all())
    finally:
        db.dispose()
    assert len(rows) >= 2
    assert {row.path for row in rows} == {"direct"}
    assert any(RANK.get(row.profile, 3) <= RANK["low"] for row in rows)
    assert len({row.call_tag for row in rows}) == 1
    assert not {row.call_tag for row in rows} & session_ids
    assert all(row.bucket_at.minute % 10 == 0 for row in rows)
