"""The browser's own texts follow the page's language and its switch."""

from __future__ import annotations

from sprechzimmer.web.i18n import browser_catalog


def test_link_page_in_german_then_english(people, server):
    """A German browser gets German script texts; the switch turns them English."""
    person = people(locale="de-DE")
    page = person.page
    link_state = "[data-testid=link-state]"

    page.goto(server.base_url + "/join")
    page.wait_for_selector(link_state, state="visible")
    assert page.get_attribute("html", "lang") == "de"
    title = page.text_content("#link-state-title")
    assert title == browser_catalog("de")["This link is not valid."]
    assert server.base_url + "/i18n/de.json" in person.requests

    page.click("nav.lang a[hreflang=en]")
    page.wait_for_selector("html[lang=en]")
    page.wait_for_selector(link_state, state="visible")
    assert page.text_content("#link-state-title") == "This link is not valid."
    assert page.url == server.base_url + "/join"
