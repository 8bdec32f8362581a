"""Tests for the security headers and the same-origin check."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sprechzimmer.web.security import (
    CONTENT_SECURITY_POLICY,
    HEADERS,
    SecurityHeaders,
)

ORIGIN = "https://praxis.example"


def ok(request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.fixture
async def client():
    """An in-process client of a tiny app behind the middleware."""
    routes = [
        Route("/thing", ok, methods=["GET", "POST", "DELETE"]),
        Route("/static/app.css", ok),
    ]
    app = SecurityHeaders(Starlette(routes=routes), origin=ORIGIN + "/")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
        yield client


def directives() -> dict[str, str]:
    pairs = (d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    return {name: value for name, value in pairs}


def test_policy_allows_only_the_own_origin():
    """The CSP loads nothing from elsewhere and runs no inline script."""
    policy = directives()

    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert "http" not in CONTENT_SECURITY_POLICY
    assert "*" not in CONTENT_SECURITY_POLICY


async def test_every_response_gets_the_headers(client):
    """Pages and static files carry every security header."""
    for path in ("/thing", "/static/app.css", "/missing"):
        response = await client.get(path)

        for name, value in HEADERS.items():
            assert response.headers[name] == value, (path, name)


async def test_pages_are_not_cached_but_static_files_may_be(client):
    """Dynamic answers say no-store; static files keep their caching."""
    page = await client.get("/thing")
    static = await client.get("/static/app.css")

    assert page.headers["cache-control"] == "no-store"
    assert "cache-control" not in static.headers


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({}, True),
        ({"Sec-Fetch-Site": "same-origin"}, True),
        ({"Sec-Fetch-Site": "none"}, True),
        ({"Sec-Fetch-Site": "same-site"}, False),
        ({"Sec-Fetch-Site": "cross-site"}, False),
        ({"Origin": ORIGIN}, True),
        ({"Origin": "https://evil.example"}, False),
        ({"Origin": "null"}, False),
        # Fetch metadata wins over an Origin that no-referrer made "null".
        ({"Origin": "null", "Sec-Fetch-Site": "same-origin"}, True),
        ({"Origin": ORIGIN, "Sec-Fetch-Site": "cross-site"}, False),
    ],
)
async def test_same_origin_check_on_state_changing_requests(client, headers, allowed):
    """POST and DELETE from another site are refused with 403."""
    for method in ("POST", "DELETE"):
        response = await client.request(method, "/thing", headers=headers)

        assert response.status_code == (200 if allowed else 403), method
        if not allowed:
            assert response.json()["error"]["code"] == "cross_origin"
            assert response.headers["x-frame-options"] == "DENY"


async def test_reading_is_allowed_from_anywhere(client):
    """A cross-site GET (a link click) is not refused."""
    response = await client.get("/thing", headers={"Sec-Fetch-Site": "cross-site"})

    assert response.status_code == 200
