"""A tiny static HTTP server for browser pages that exist before the app.

It serves the package's real static directory under ``/static/`` and the
test pages under ``/pages/``, from 127.0.0.1 on a free port (a secure
context for WebRTC and WebCrypto), with a strict Content-Security-Policy so
that a page cannot load anything from another origin.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MOUNTS = {
    "/static/": ROOT / "src" / "sprechzimmer" / "static",
    "/pages/": Path(__file__).resolve().parent / "pages",
}
CSP = "default-src 'self'; media-src 'self' blob: mediastream:; object-src 'none'"


class _Handler(SimpleHTTPRequestHandler):
    """Serves the mounts only, quietly, never caching."""

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0].split("#", 1)[0]
        for prefix, base in MOUNTS.items():
            if path.startswith(prefix):
                target = (base / path[len(prefix) :]).resolve()
                if target.is_relative_to(base.resolve()):
                    return str(target)
        return str(ROOT / "nonexistent")

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", CSP)
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""


@contextmanager
def serve() -> Iterator[str]:
    """Run the server in a thread; yield its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
