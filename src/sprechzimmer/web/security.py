"""Headers that every response carries, and the same-origin check."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Nothing from another origin, no inline script or style, no framing.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob: mediastream:",
        "font-src 'self'",
        "connect-src 'self'",
        "worker-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

# Camera and microphone for this origin only; nothing that records.
PERMISSIONS_POLICY = ", ".join(
    [
        "camera=(self)",
        "microphone=(self)",
        "display-capture=()",
        "geolocation=()",
        "payment=()",
        "usb=()",
        "interest-cohort=()",
    ]
)

HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": PERMISSIONS_POLICY,
}

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class SecurityHeaders:
    """ASGI middleware: security headers on every HTTP response.

    A state-changing request whose ``Origin`` is another site is refused:
    together with ``SameSite=Strict`` cookies this closes cross-site request
    forgery for forms as well as for the JSON API.
    """

    def __init__(self, app: ASGIApp, origin: str) -> None:
        self.app = app
        self.origin = origin.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] in UNSAFE_METHODS and not self._same_origin(scope):
            response = JSONResponse(
                {"error": {"code": "cross_origin", "message": "cross-origin request"}},
                status_code=403,
            )
            await response(scope, receive, self._with_headers(scope, send))
            return
        await self.app(scope, receive, self._with_headers(scope, send))

    def _same_origin(self, scope: Scope) -> bool:
        headers = dict(scope["headers"])
        # Fetch metadata first: with no-referrer, browsers send the Origin of
        # a form post as "null", but Sec-Fetch-Site still tells the truth.
        site = headers.get(b"sec-fetch-site")
        if site is not None:
            return site in (b"same-origin", b"none")
        origin = headers.get(b"origin")
        if origin is None:
            return True
        host = headers.get(b"host", b"").decode("latin-1")
        scheme = "https" if scope.get("scheme") == "https" else "http"
        allowed = {self.origin, f"{scheme}://{host}"}
        return origin.decode("latin-1") in allowed

    def _with_headers(self, scope: Scope, send: Send) -> Send:
        path = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if not path.startswith("/static/"):
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        return send_with_headers
