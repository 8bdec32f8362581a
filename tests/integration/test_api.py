"""The JSON API with httpx against a server on port 0.

Practice software relies on these paths, names and fields, so the tests
read them from the answers and from ``/openapi.json``.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import select

from sprechzimmer.store.accounts import LOGIN_COOKIE
from sprechzimmer.store.models import Base, Invite
from tests.integration.helpers import (
    Participant,
    api,
    invite_token,
    join_as_therapist,
    knock,
    log_in,
    logged,
    open_session,
    server_lines,
)


@pytest.fixture(autouse=True)
async def close_sockets(server):
    """Close the test's connections while their server still runs."""
    yield
    await Participant.close_all()


@pytest.fixture
def cookie(server) -> str:
    return log_in(server)


@pytest.fixture
def session(server, cookie) -> dict:
    return open_session(server, cookie, "K-2024-17")


def get_view(server, cookie: str, session_id: str) -> dict:
    with api(server, cookie) as http:
        response = http.get(f"/api/sessions/{session_id}")
    assert response.status_code == 200
    return response.json()


def post(server, cookie: str | None, path: str, **kwargs):
    with api(server, cookie) as http:
        return http.post(path, **kwargs)


# -- login ----------------------------------------------------------------


def test_login_sets_a_strict_http_only_cookie(server):
    """The right password sets an HttpOnly, SameSite=Strict login cookie."""
    username, password = server.add_therapist()

    response = post(
        server, None, "/api/login", json={"username": username, "password": password}
    )

    assert response.status_code == 200
    assert response.json() == {"username": username}
    header = response.headers["set-cookie"]
    attributes = {part.strip().lower() for part in header.split(";")}
    assert header.startswith(f"{LOGIN_COOKIE}=")
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    # Over plain http the cookie cannot be Secure, or the browser drops it.
    assert "secure" not in attributes
    with api(server, response.cookies[LOGIN_COOKIE]) as http:
        assert http.get("/api/sessions").status_code == 200


def test_wrong_password_and_unknown_user_get_the_same_401(server):
    """A failed login says 401 and nothing about which part was wrong."""
    username, _ = server.add_therapist()

    wrong_password = post(
        server, None, "/api/login", json={"username": username, "password": "nope"}
    )
    unknown_user = post(
        server, None, "/api/login", json={"username": "nobody-x", "password": "nope"}
    )

    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json()
    assert wrong_password.json()["error"]["message"] == "not authorised"
    assert "set-cookie" not in wrong_password.headers


def test_logout_ends_the_login(server):
    """After logout the cookie no longer opens the API."""
    username, password = server.add_therapist()
    body = {"username": username, "password": password}
    cookie = post(server, None, "/api/login", json=body).cookies[LOGIN_COOKIE]

    assert post(server, cookie, "/api/logout").status_code == 204

    with api(server, cookie) as http:
        assert http.get("/api/sessions").status_code == 401


def test_api_without_login_is_not_authorised(server, session):
    """Every session path needs the login cookie."""
    with api(server) as http:
        answers = [
            http.get("/api/sessions"),
            http.post("/api/sessions", json={"client_id": "K-1"}),
            http.get(f"/api/sessions/{session['id']}"),
            http.post(f"/api/sessions/{session['id']}/end"),
        ]

    assert [a.status_code for a in answers] == [401] * 4
    assert {a.json()["error"]["message"] for a in answers} == {"not authorised"}


# -- sessions -------------------------------------------------------------


def test_open_session_answers_links_without_query_strings(server, cookie):
    """The answer has id, invite_url (token in the fragment), therapist_url."""
    response = post(server, cookie, "/api/sessions", json={"client_id": "K-2024-17"})

    assert response.status_code == 201
    body = response.json()
    invite = urlsplit(body["invite_url"])
    assert body["invite_url"].startswith(f"{server.base_url}/join#")
    assert invite.query == "" and len(invite.fragment) >= 32
    assert body["therapist_url"] == f"{server.base_url}/sessions/{body['id']}"
    assert urlsplit(body["therapist_url"]).query == ""
    assert body["client_id"] == "K-2024-17"
    assert (body["state"], body["client_waiting"], body["ended_at"]) == (
        "open",
        False,
        None,
    )


@pytest.mark.parametrize("client_id", ["", "   ", "x" * 101, "K\n1"])
def test_open_session_refuses_a_bad_client_id(server, cookie, client_id):
    """Client IDs are 1 to 100 printable characters."""
    response = post(server, cookie, "/api/sessions", json={"client_id": client_id})

    assert response.status_code == 422
    assert response.json()["error"]["fields"] == ["client_id"]


def test_list_sessions_shows_them_newest_first_without_the_link(server, cookie):
    """The list has the sessions but never the invite link again."""
    first = open_session(server, cookie, "K-A")
    second = open_session(server, cookie, "K-B")

    with api(server, cookie) as http:
        listed = http.get("/api/sessions").json()["sessions"]

    ids = [s["id"] for s in listed]
    assert ids.index(second["id"]) < ids.index(first["id"])
    assert all("invite_url" not in s for s in listed)
    assert invite_token(first) not in str(listed)


async def test_session_shows_a_waiting_client_and_admits_it(server, cookie, session):
    """client_waiting is true while a client waits; admit lets it in."""
    assert get_view(server, cookie, session["id"])["client_waiting"] is False
    client = await knock(server, invite_token(session), "Robin")

    waiting = get_view(server, cookie, session["id"])
    admitted = post(server, cookie, f"/api/sessions/{session['id']}/admit")

    assert (waiting["client_waiting"], waiting["waiting_name"]) == (True, "Robin")
    assert admitted.status_code == 200
    assert (await client.expect("admitted"))["resume"]
    view = get_view(server, cookie, session["id"])
    assert (view["client_waiting"], view["client_in_call"]) == (False, True)
    assert view["waiting_name"] is None


async def test_decline_closes_the_waiting_client(server, cookie, session):
    """Decline closes the client with 4410 and the session is declined."""
    client = await knock(server, invite_token(session), "Robin")

    response = post(server, cookie, f"/api/sessions/{session['id']}/decline")

    assert response.status_code == 200
    assert response.json()["state"] == "declined"
    closed = await client.closed()
    assert (closed.code, closed.reason) == (4410, "declined")
    again = post(server, cookie, f"/api/sessions/{session['id']}/admit")
    assert again.status_code == 410
    assert again.json()["error"]["reason"] == "declined"


async def test_end_closes_both_and_kills_the_link(server, cookie, session):
    """End closes both participants with 4410 and the link is gone."""
    therapist = await join_as_therapist(server, cookie, session["id"])
    client = await knock(server, invite_token(session), "Robin")
    await therapist.expect("lobby")

    response = post(server, cookie, f"/api/sessions/{session['id']}/end")

    assert response.status_code == 200
    assert response.json()["state"] == "ended"
    assert response.json()["ended_at"] is not None
    for participant in (therapist, client):
        closed = await participant.closed()
        assert (closed.code, closed.reason) == (4410, "ended")
    with api(server) as http:
        check = http.post("/api/invite", json={"token": invite_token(session)})
    assert check.json() == {"state": "ended"}
    # Ending twice is harmless.
    assert post(server, cookie, f"/api/sessions/{session['id']}/end").is_success


def test_admit_or_decline_with_nobody_waiting_conflicts(server, cookie, session):
    """Admit and decline need a waiting client: 409 otherwise."""
    for action in ("admit", "decline"):
        response = post(server, cookie, f"/api/sessions/{session['id']}/{action}")

        assert response.status_code == 409
        assert response.json()["error"]["code"] == "not_allowed"


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("POST", "/admit"), ("POST", "/decline"), ("POST", "/end")],
)
def test_another_therapists_session_is_not_found(server, session, method, suffix):
    """Someone else's session is 404, exactly like one that does not exist."""
    stranger = log_in(server, "stranger")

    with api(server, stranger) as http:
        foreign = http.request(method, f"/api/sessions/{session['id']}{suffix}")
        missing = http.request(method, f"/api/sessions/{'0' * 32}{suffix}")

    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert get_view(server, log_in(server), session["id"])["state"] == "open"


def test_invite_check_tells_the_state_of_a_link(server, session):
    """The client's page learns whether its link is open, without a login."""
    with api(server) as http:
        good = http.post("/api/invite", json={"token": invite_token(session)})
        bad = http.post("/api/invite", json={"token": "b" * 43})

    assert good.json() == {"state": "open"}
    assert bad.json() == {"state": "invalid"}


# -- cross-site requests --------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
    ],
)
def test_cross_site_post_is_refused(server, cookie, headers):
    """A state-changing request from another site gets 403, whatever path."""
    login = post(
        server,
        None,
        "/api/login",
        json={"username": "a", "password": "b"},
        headers=headers,
    )
    opened = post(
        server, cookie, "/api/sessions", json={"client_id": "K-1"}, headers=headers
    )

    assert login.status_code == opened.status_code == 403
    assert opened.json()["error"]["code"] == "cross_origin"
    assert opened.headers["x-content-type-options"] == "nosniff"


def test_same_origin_post_is_allowed(server, cookie):
    """The app's own pages may post, by fetch metadata or by Origin."""
    by_fetch = post(
        server,
        cookie,
        "/api/sessions",
        json={"client_id": "K-1"},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    by_origin = post(
        server,
        cookie,
        "/api/sessions",
        json={"client_id": "K-1"},
        headers={"Origin": server.base_url},
    )

    assert by_fetch.status_code == by_origin.status_code == 201


# -- the schema -----------------------------------------------------------

API_PATHS = {
    "/api/login": {"post"},
    "/api/sessions": {"get", "post"},
    "/api/sessions/{session_id}": {"get"},
    "/api/sessions/{session_id}/admit": {"post"},
    "/api/sessions/{session_id}/decline": {"post"},
    "/api/sessions/{session_id}/end": {"post"},
}


def test_openapi_lists_every_path_with_its_names(server):
    """/openapi.json documents the paths, methods and fields others rely on."""
    with api(server) as http:
        schema = http.get("/openapi.json").json()

    paths = schema["paths"]
    for path, methods in API_PATHS.items():
        assert methods <= set(paths.get(path, {})), f"{path} lacks {methods}"
    models = schema["components"]["schemas"]
    assert {"username", "password"} <= set(models["Login"]["properties"])
    assert "client_id" in models["NewSession"]["properties"]
    opened = set(models["OpenedSession"]["properties"])
    assert {"id", "invite_url", "therapist_url", "client_waiting"} <= opened
    assert "client_waiting" in models["SessionView"]["properties"]
    assert not any(p.startswith(("/join", "/login", "/dashboard")) for p in paths)


# -- headers and secrets --------------------------------------------------


def page_paths(session: dict) -> list[str]:
    return [
        "/login",
        "/dashboard",
        "/join",
        f"/sessions/{session['id']}",
        "/api/sessions",
        "/openapi.json",
        "/healthz",
        "/static/css/app.css",
        "/i18n/de.json",
        "/no-such-page",
    ]


def test_every_response_carries_the_security_headers(server, cookie, session):
    """CSP without inline script, no-referrer, nosniff, no framing: everywhere."""
    with api(server, cookie) as http:
        responses = {path: http.get(path) for path in page_paths(session)}

    for path, response in responses.items():
        headers = response.headers
        csp = headers.get("content-security-policy", "")
        directives = dict((d.split(" ", 1) + [""])[:2] for d in csp.split("; ") if d)
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, path
        assert directives.get("default-src") == "'none'", path
        assert directives.get("script-src") == "'self'", path
        assert directives.get("frame-ancestors") == "'none'", path
        assert not re.search(r"https?://|\*", csp), f"{path}: foreign source"
        assert headers.get("referrer-policy") == "no-referrer", path
        assert headers.get("x-content-type-options") == "nosniff", path


def test_pages_have_no_inline_script(server, cookie, session):
    """Every script in the pages is a file of the app's own origin."""
    with api(server, cookie) as http:
        pages = [http.get(p).text for p in ("/login", "/dashboard", "/join")]
        pages.append(http.get(f"/sessions/{session['id']}").text)

    for html in pages:
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert re.search(r'src="/static/', tag), tag
        assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html)
        assert not re.search(r"<[^>]+\son[a-z]+=", html)


def test_invite_token_is_stored_only_as_its_sha256(server, cookie, session):
    """The invites table keeps the SHA-256 of the token, nowhere the token."""
    token = invite_token(session)

    with server.db.session() as db:
        invite = db.scalar(select(Invite).where(Invite.session_id == session["id"]))
        everything = [
            repr(db.execute(select(table)).all())
            for table in Base.metadata.sorted_tables
        ]

    assert invite.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert not any(token in rows for rows in everything)
    assert not any(cookie in rows for rows in everything)


async def test_resume_credential_is_stored_only_as_its_sha256(server, cookie, session):
    """The credential handed out on admission is kept hashed too."""
    client = await knock(server, invite_token(session), "Robin")
    post(server, cookie, f"/api/sessions/{session['id']}/admit")
    resume = (await client.expect("admitted"))["resume"]

    with server.db.session() as db:
        invite = db.scalar(select(Invite).where(Invite.session_id == session["id"]))

    assert invite.resume_hash == hashlib.sha256(resume.encode()).hexdigest()


def test_no_url_carries_a_token_in_its_query(server, cookie, session):
    """Neither answers nor pages put a token or a login in a query string."""
    token = invite_token(session)
    secrets = {token, cookie}
    with api(server, cookie) as http:
        texts = [http.get(path).text for path in page_paths(session)]
        texts.append(http.get("/api/sessions").text)
        redirect = http.get("/", follow_redirects=False)

    urls = [session["invite_url"], session["therapist_url"]]
    urls.append(redirect.headers["location"])
    for text in texts:
        urls += re.findall(r'(?:href|src|action)="([^"]*)"', text)
    for url in urls:
        values = {value for _, value in parse_qsl(urlsplit(url).query)}
        assert not values & secrets, url
        assert "token" not in urlsplit(url).query, url
    assert not any(token in text for text in texts)


async def test_nothing_private_reaches_the_logs(server, all_logs):
    """A failed login and a whole session leave no secret in any log line."""
    username, password = server.add_therapist()
    post(server, None, "/api/login", json={"username": username, "password": "x"})
    body = {"username": username, "password": password}
    cookie = post(server, None, "/api/login", json=body).cookies[LOGIN_COOKIE]
    session = open_session(server, cookie, "K-PRIVATE-4417")
    client = await knock(server, invite_token(session), "Quirinus Zeh")
    post(server, cookie, f"/api/sessions/{session['id']}/admit")
    resume = (await client.expect("admitted"))["resume"]
    post(server, cookie, f"/api/sessions/{session['id']}/end")
    await client.closed()

    assert await logged(all_logs.lines, "client left")
    lines = server_lines(all_logs.lines)
    assert any("/api/login: not authorised" in line for line in lines)
    secrets = [
        password,
        cookie,
        invite_token(session),
        resume,
        "K-PRIVATE-4417",
        "Quirinus Zeh",
    ]
    for secret in secrets:
        assert not [line for line in lines if secret in line], secret
