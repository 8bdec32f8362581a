"""Wrong passwords are limited per therapist code."""

import httpx


def test_sixth_wrong_password_is_refused_even_when_right(server):
    """After five wrong passwords the account is locked for a while."""
    username, password = server.add_therapist()
    other, other_password = server.add_therapist()
    with httpx.Client(base_url=server.base_url) as http:
        for _ in range(5):
            answer = http.post(
                "/api/login", json={"username": username, "password": "wrong-pass"}
            )
            assert answer.status_code == 401
        locked = http.post(
            "/api/login", json={"username": username, "password": password}
        )
        assert locked.status_code == 429
        assert locked.json()["error"]["code"] == "too_many_attempts"
        # Other accounts are untouched.
        fine = http.post(
            "/api/login", json={"username": other, "password": other_password}
        )
        assert fine.status_code == 200


def test_login_form_says_too_many_attempts(server):
    """The login page tells the therapist to wait, in words."""
    username, _ = server.add_therapist()
    with httpx.Client(base_url=server.base_url) as http:
        for _ in range(5):
            http.post("/login", data={"username": username, "password": "nope-nope"})
        page = http.post("/login", data={"username": username, "password": "nope"})
    assert page.status_code == 429
    assert "wait" in page.text or "warten" in page.text
