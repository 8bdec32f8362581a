"""CPU time of the browser over a call, with and without end-to-end encryption.

Runs two loopback calls (tests/browser/pages/e2ee_loopback.html: two peer
connections in one page, fake camera and microphone) at the same time, each
in its own headless Chromium: one with the E2EE layer on both ends, one
without. Both run side by side so that other load on the machine falls on
both alike. Over the measured window it sums the user and system CPU time of
each browser's processes (from /proc, so Linux only) and prints both, the
frames each decoded, and the ratios.

    .venv/bin/python -m benchmarks.e2ee_cpu                 # 60 s
    .venv/bin/python -m benchmarks.e2ee_cpu --seconds 10    # a quick run

Video encoders adapt to CPU shortage, so on a loaded machine compare the CPU
time per decoded frame as well as the totals.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.static_site import serve

BROWSER_NAMES = {"chromium", "chrome", "chromium-browser"}
TICKS = os.sysconf("SC_CLK_TCK")
STATS = "() => window.loopback.stats()"


@dataclass
class Run:
    """One browser holding one loopback call."""

    name: str
    encrypt: bool
    browser: Browser
    root: int
    page: Page | None = None
    cpu_start: float = 0.0
    frames_start: int = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time")
    parser.add_argument("--warmup", type=float, default=5.0, help="before measuring")
    args = parser.parse_args()

    with serve() as base, sync_playwright() as playwright:
        runs = []
        for name, encrypt in (("plain", False), ("e2ee", True)):
            before = chromium_roots()
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            (root,) = chromium_roots() - before
            runs.append(Run(name, encrypt, browser, root))

        for run in runs:
            run.page = start_call(run, base)
        wait_for_media(runs)
        time.sleep(args.warmup)

        for run in runs:
            run.cpu_start = tree_cpu_seconds(run.root)
            run.frames_start = frames_decoded(run.page)
        time.sleep(args.seconds)
        results = {}
        for run in runs:
            cpu = tree_cpu_seconds(run.root) - run.cpu_start
            frames = frames_decoded(run.page) - run.frames_start
            results[run.name] = (cpu, frames, e2ee_summary(run.page))
        for run in runs:
            run.browser.close()

    report(results, args.seconds)


def start_call(run: Run, base: str) -> Page:
    page = run.browser.new_page()
    page.goto(base + "/pages/e2ee_loopback.html")
    page.wait_for_function("() => window.loopback !== undefined")
    page.evaluate("o => window.loopback.start(o)", {"encrypt": run.encrypt})
    return page


def wait_for_media(runs: list[Run], timeout: float = 60.0) -> None:
    """Until every call decodes video on both sides (and is encrypted)."""
    deadline = time.monotonic() + timeout
    for run in runs:
        while True:
            sides = run.page.evaluate(STATS)
            ready = all(s["framesDecoded"] > 0 for s in sides)
            if run.encrypt:
                ready = ready and all(s["e2ee"]["status"] == "encrypted" for s in sides)
            if ready:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{run.name}: no media after {timeout:.0f} s")
            time.sleep(0.25)


def frames_decoded(page: Page) -> int:
    return sum(s["framesDecoded"] for s in page.evaluate(STATS))


def e2ee_summary(page: Page) -> str:
    sides = page.evaluate(STATS)
    if sides[0]["e2ee"] is None:
        return "-"
    encrypted = sum(s["e2ee"]["framesEncrypted"] for s in sides)
    failures = sum(s["e2ee"]["decryptFailures"] for s in sides)
    return f"{encrypted} frames encrypted, {failures} failures"


# -- processes ----------------------------------------------------------------


def processes() -> dict[int, tuple[int, list[str]]]:
    """Every process: parent pid and command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        found[int(entry.name)] = (parent, [a.decode(errors="replace") for a in cmdline])
    return found


def descendants(root: int, table: dict[int, tuple[int, list[str]]]) -> set[int]:
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, (parent, _) in table.items() if parent == pid]
        tree.update(children)
        frontier.extend(children)
    return tree


def chromium_roots() -> set[int]:
    """Browser processes (not renderers or helpers) started by this process."""
    table = processes()
    return {
        pid
        for pid in descendants(os.getpid(), table)
        if table[pid][1]
        and Path(table[pid][1][0]).name in BROWSER_NAMES
        and not any(arg.startswith("--type=") for arg in table[pid][1])
    }


def tree_cpu_seconds(root: int) -> float:
    """User and system CPU time of a process tree, with reaped children."""
    table = processes()
    total = 0
    for pid in descendants(root, table):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime (fields 14 to 17 of proc(5))
        total += sum(int(v) for v in fields[11:15])
    return total / TICKS


def report(results: dict[str, tuple[float, int, str]], seconds: float) -> None:
    print(f"loopback call, {seconds:.0f} s measured, both calls side by side")
    print(f"{'':<8}{'CPU s':>9}{'frames':>9}{'CPU ms/frame':>14}  e2ee")
    for name, (cpu, frames, summary) in results.items():
        per_frame = 1000 * cpu / frames if frames else float("nan")
        print(f"{name:<8}{cpu:>9.1f}{frames:>9}{per_frame:>14.2f}  {summary}")
    (plain_cpu, plain_frames, _), (e2ee_cpu, e2ee_frames, _) = (
        results["plain"],
        results["e2ee"],
    )
    print(f"CPU ratio e2ee/plain: {e2ee_cpu / plain_cpu:.2f}")
    if plain_frames and e2ee_frames:
        ratio = (e2ee_cpu / e2ee_frames) / (plain_cpu / plain_frames)
        print(f"CPU per decoded frame ratio e2ee/plain: {ratio:.2f}")


if __name__ == "__main__":
    main()
