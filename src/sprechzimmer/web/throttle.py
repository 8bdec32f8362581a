"""A limit on wrong passwords per therapist code, against guessing.

Counted per username, not per address: the server keeps no addresses, and
guessing one account from many addresses is stopped all the same.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from ..rooms.errors import UserError


class TooManyAttempts(UserError):
    code = "too_many_attempts"


class LoginThrottle:
    """At most ``limit`` failed logins per username within ``window`` s.

    Password checks are also capped in number at once: each costs a core
    for a third of a second, and a flood of them with made-up usernames
    would otherwise starve the calls.
    """

    def __init__(
        self, limit: int = 5, window: float = 900.0, concurrent: int = 1
    ) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(concurrent)

    def hashing(self) -> _Slot:
        """A slot for one password check; TooManyAttempts if none is free."""
        return _Slot(self._checks)

    def check(self, username: str) -> None:
        """Raise TooManyAttempts while the username is locked."""
        with self._lock:
            recent = self._recent(username, time.monotonic())
            if len(recent) >= self.limit:
                raise TooManyAttempts(
                    "too many wrong passwords; try again in a few minutes"
                )

    def failed(self, username: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent(username, now).append(now)
            # Forget usernames nobody tried lately, so the map stays small.
            if len(self._failures) > 10_000:
                for name in list(self._failures):
                    if not self._recent(name, now):
                        del self._failures[name]

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username, None)

    def _recent(self, username: str, now: float) -> deque[float]:
        recent = self._failures.setdefault(username, deque())
        while recent and now - recent[0] > self.window:
            recent.popleft()
        return recent


class _Slot:
    def __init__(self, semaphore: threading.BoundedSemaphore) -> None:
        self._semaphore = semaphore

    def __enter__(self) -> None:
        # Wait a little for a slot, then refuse rather than queue forever.
        if not self._semaphore.acquire(timeout=2.0):
            raise TooManyAttempts("the server is busy; try again in a moment")

    def __exit__(self, *exc: object) -> None:
        self._semaphore.release()
