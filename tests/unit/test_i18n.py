"""German and English: the catalog covers every string; pages pick a language."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from sprechzimmer.web.i18n import LANGUAGE_COOKIE, _accepted, browser_catalog
from tests.conftest import seconds

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "sprechzimmer"
STATIC = PACKAGE / "static"
PO_FILE = PACKAGE / "locale" / "de" / "LC_MESSAGES" / "messages.po"

#: What `pybabel extract -k t` looks for: gettext's words, N_ and t().
KEYWORDS = {**DEFAULT_KEYWORDS, "t": None}
#: A t("...") or t('...') or t(`...`) call with a literal first argument.
JS_T_CALL = re.compile(r"""(?<![\w.$])t\(\s*(["'`])((?:\\.|(?!\1).)*)\1""", re.S)
PLACEHOLDER = re.compile(r"\{(\w+)\}")
#: Per request; generous, as browser tests may share the two CPU cores.
TIMEOUT = seconds(30)


def german() -> dict[str, str]:
    """The German catalog as the server reads it, fuzzy entries included."""
    with PO_FILE.open("rb") as po:
        catalog = read_po(po, locale="de")
    return {str(m.id): "" if m.fuzzy else str(m.string) for m in catalog if m.id}


def extracted() -> dict[str, str]:
    """Every message that `pybabel extract` finds, with the file it is in."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    found: dict[str, str] = {}
    for path, _, message, _, _ in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        if message:
            text = message if isinstance(message, str) else message[0]
            found.setdefault(text, path)
    return found


def js_unescape(literal: str) -> str:
    """A JS string literal's value, for the escapes our sources use."""
    return re.sub(r"\\(.)", r"\1", literal)


def js_literals(pattern: re.Pattern[str], source: str) -> list[str]:
    return [js_unescape(match.group(2)) for match in pattern.finditer(source)]


def link_texts() -> list[str]:
    """The strings of call.js's LINK_TEXTS table, read from its source."""
    source = (STATIC / "ui" / "call.js").read_text(encoding="utf-8")
    table = re.search(r"const LINK_TEXTS = \{(.*?)\n\};", source, re.S)
    assert table, "LINK_TEXTS not found in static/ui/call.js"
    strings = re.findall(r'"((?:\\.|[^"\\])*)"', table.group(1))
    return [js_unescape(text) for text in strings]


def untranslated(messages, catalog: dict[str, str]) -> list[str]:
    return sorted(m for m in messages if not catalog.get(m, "").strip())


# -- the catalog --------------------------------------------------------------


def test_babel_finds_page_texts_and_browser_texts():
    """The extraction config reaches templates, JS t() calls, N_ and Python."""
    found = extracted()
    assert found["Log in"].endswith(".html")
    assert found["Direct connection"].endswith(".js")
    assert found["The session has ended."].endswith("call.js")
    assert found["Wrong therapist code or password."].endswith(".py")


def test_every_extracted_text_has_german():
    """Every string `pybabel extract` finds has a non-empty German msgstr."""
    missing = untranslated(extracted(), german())
    assert not missing, f"add German for these to {PO_FILE.name}: {missing}"


def test_every_template_text_has_german():
    """Every literal _('...') in a template is translated."""
    pattern = re.compile(r"""_\(\s*(['"])((?:\\.|(?!\1).)*)\1\s*\)""")
    messages = set()
    for template in (PACKAGE / "web" / "templates").glob("*.html"):
        for match in pattern.finditer(template.read_text(encoding="utf-8")):
            messages.add(js_unescape(match.group(2)))
    assert "Therapist code" in messages
    assert not untranslated(messages, german())


def test_templates_have_no_bare_text():
    """Visible template text goes through _(), or a page is half English."""
    markup = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}|<[^>]*>|[\w-]+=\"[^\"]*\"")
    for template in (PACKAGE / "web" / "templates").glob("*.html"):
        text = markup.sub(" ", template.read_text(encoding="utf-8"))
        words = set(re.findall(r"[^\W\d_]{2,}", text)) - {"Sprechzimmer"}
        assert not words, f"{template.name}: wrap in _(): {sorted(words)}"


def test_every_javascript_t_literal_has_german():
    """Every t("...") literal under static/, ui/ and call/ alike, is translated."""
    messages = set()
    for script in STATIC.rglob("*.js"):
        messages.update(js_literals(JS_T_CALL, script.read_text(encoding="utf-8")))
    assert "{name} is waiting" in messages
    assert not untranslated(messages, german())


def test_javascript_t_literals_are_plain_strings():
    """No t(`...${x}`): an interpolated key can never match the catalog."""
    for script in STATIC.rglob("*.js"):
        source = script.read_text(encoding="utf-8")
        for text in js_literals(JS_T_CALL, source):
            assert "${" not in text, f"{script.name}: use t(text, {{name}}): {text}"


def test_link_texts_have_german():
    """The titles and texts of the link and call-ended states are translated."""
    texts = link_texts()
    assert "This link has expired." in texts
    assert len(texts) >= 16
    assert not untranslated(texts, german())


def test_placeholders_survive_translation():
    """A {name} or {region} in the English is kept, and none is invented."""
    for english, translation in german().items():
        if not translation:
            continue
        expected = sorted(PLACEHOLDER.findall(english))
        assert sorted(PLACEHOLDER.findall(translation)) == expected, english


def test_german_is_formal():
    """The German addresses people as "Sie", never as "du"."""
    informal = re.compile(r"\b(du|dich|dir|dein\w*|euch|euer|eure\w*)\b", re.I)
    for english, translation in german().items():
        assert not informal.search(translation), f"{english!r}: {translation!r}"


def test_browser_catalog_is_the_po_file():
    """The browser gets the same German as the pages; English needs none."""
    assert browser_catalog("de")["Admit"] == german()["Admit"]
    assert browser_catalog("en") == {}


@pytest.mark.parametrize(
    ("header", "tags"),
    [
        ("de-DE,de;q=0.9", ["de_DE", "de"]),
        ("en;q=0.2, de", ["de", "en"]),
        ("fr, en;q=0.5, *;q=0.1", ["fr", "en"]),
        ("de;q=0, en", ["en"]),
        ("de;q=x", []),
        ("", []),
    ],
)
def test_accept_language_is_ranked_by_weight(header, tags):
    """Accept-Language tags are ordered by q, and q=0 or '*' are left out."""
    assert _accepted(header) == tags


# -- pages ----------------------------------------------------------------------


def get(server, path: str, **kwargs) -> httpx.Response:
    return httpx.get(server.base_url + path, timeout=TIMEOUT, **kwargs)


def page_language(response: httpx.Response) -> str:
    match = re.search(r'<html lang="(\w+)">', response.text)
    assert match, response.text[:200]
    return match.group(1)


def test_accept_language_chooses_the_page_language(server):
    """de-DE gives German, en-US English, anything else the German default."""
    cases = {
        "de-DE,de;q=0.9": "de",
        "en-US": "en",
        "en-GB,en;q=0.9,de;q=0.8": "en",
        "fr-FR,fr;q=0.9": "de",
        "": "de",
    }
    for header, language in cases.items():
        response = get(server, "/login", headers={"accept-language": header})
        assert page_language(response) == language, header
        assert f'data-lang="{language}"' in response.text
    german_page = get(server, "/login", headers={"accept-language": "de-DE"})
    assert "Kennung" in german_page.text
    assert "Therapist code" not in german_page.text
    english_page = get(server, "/login", headers={"accept-language": "en-US"})
    assert "Therapist code" in english_page.text


def test_language_switch_overrides_accept_language(server):
    """The switch sets a cookie that wins over the browser's Accept-Language."""
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT) as browser:
        browser.headers["accept-language"] = "de-DE,de;q=0.9"
        switched = browser.get("/lang/en", params={"next": "/login"})
        assert switched.status_code == 303
        assert switched.headers["location"] == "/login"
        assert browser.cookies.get(LANGUAGE_COOKIE) == "en"
        assert page_language(browser.get("/login")) == "en"

        browser.get("/lang/de", params={"next": "/login"})
        assert page_language(browser.get("/login")) == "de"

        browser.get("/lang/xx", params={"next": "/login"})
        assert browser.cookies.get(LANGUAGE_COOKIE) == "de"


def test_german_login_error(server):
    """A failed login says so in German on a German page."""
    response = httpx.post(
        server.base_url + "/login",
        data={"username": "nobody", "password": "wrong"},
        headers={"accept-language": "de"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    assert "Kennung oder Passwort ist nicht richtig." in response.text


def test_browser_catalog_is_served(server):
    """/i18n/de.json serves the German catalog; unknown languages are 404."""
    response = get(server, "/i18n/de.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    served = response.json()
    assert served == browser_catalog("de")
    assert served["{name} is waiting"] == german()["{name} is waiting"]
    assert get(server, "/i18n/en.json").json() == {}
    assert get(server, "/i18n/fr.json").status_code == 404


def every_page(server) -> dict[str, httpx.Client]:
    """Each page path, with a client that may see it (logged in where needed)."""
    username, password = server.add_therapist()
    therapist = httpx.Client(base_url=server.base_url, timeout=TIMEOUT)
    therapist.post("/api/login", json={"username": username, "password": password})
    opened = therapist.post("/api/sessions", json={"client_id": "K-0001"})
    opened.raise_for_status()
    call_page = urlsplit(opened.json()["therapist_url"]).path
    anonymous = httpx.Client(base_url=server.base_url, timeout=TIMEOUT)
    return {
        "/login": anonymous,
        "/join": anonymous,
        "/dashboard": therapist,
        call_page: therapist,
    }


def test_every_page_has_a_language_switch(server):
    """Each page links to the other language and back to the same page."""
    pages = every_page(server)
    try:
        for path, client in pages.items():
            client.headers["accept-language"] = "de"
            page = client.get(path)
            assert page.status_code == 200, path
            links = re.findall(r'href="(/lang/\w+\?next=[^"]*)"', page.text)
            assert links == [f"/lang/en?next={path}"], path

            switched = client.get(links[0])
            assert switched.headers["location"] == path
            assert page_language(client.get(path)) == "en", path
            client.cookies.delete(LANGUAGE_COOKIE)
    finally:
        for client in set(pages.values()):
            client.close()


#: `next` values that would lead a browser away from this server.
FOREIGN_TARGETS = [
    "//evil.example",
    "//evil.example/login",
    "https://evil.example/",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "/%2F/evil.example",
    "evil.example",
    "javascript:alert(1)",
]


def test_language_switch_is_no_open_redirect(server):
    """The switch's `next` only ever leads to a path on this server."""
    for target in FOREIGN_TARGETS:
        response = get(server, "/lang/en", params={"next": target})
        assert response.status_code == 303
        location = response.headers["location"]
        if target.startswith("//"):
            assert location == "/", target
        # A browser reads a backslash as a slash: neither may follow the first.
        assert location.startswith("/") and location[1:2] not in ("/", "\\"), target
        assert not re.search(r"[\x00-\x20\\]", location), location
        landed = urlsplit(urljoin(server.base_url + "/login", location))
        assert landed.netloc == urlsplit(server.base_url).netloc, target
