"""German and English: Babel catalogs for pages and for the browser.

The catalogs are the ``.po`` files under ``locale/``; they are compiled in
memory on first use, so there is no build step and no binary in the tree.
English is the source language.
"""

from __future__ import annotations

from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from starlette.requests import HTTPConnection

from ..config import LANGUAGES

LOCALE_DIR = Path(__file__).parent.parent / "locale"
LANGUAGE_COOKIE = "sz_lang"
DEFAULT_LANGUAGE = "de"


def N_(message: str) -> str:
    """Mark text for ``pybabel extract``; it is translated where it is shown."""
    return message


def _po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"


@lru_cache
def translations(language: str) -> NullTranslations:
    """Gettext translations for a language; English is the identity."""
    path = _po_path(language)
    if language == "en" or not path.exists():
        return NullTranslations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=language)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


@lru_cache
def browser_catalog(language: str) -> dict[str, str]:
    """The same catalog as a mapping, for the browser's ``i18n.js``."""
    path = _po_path(language)
    if language == "en" or not path.exists():
        return {}
    with path.open("rb") as po:
        catalog = read_po(po, locale=language)
    return {
        str(message.id): str(message.string)
        for message in catalog
        if message.id and message.string and not message.fuzzy
    }


def choose_language(connection: HTTPConnection) -> str:
    """The language switch's cookie, else Accept-Language, else German."""
    chosen = connection.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    preferred = _accepted(connection.headers.get("accept-language", ""))
    match = Locale.negotiate(preferred, list(LANGUAGES), sep="_")
    return str(match) if match else DEFAULT_LANGUAGE


def _accepted(header: str) -> list[str]:
    """Accept-Language tags as ``de_DE``, most wanted first, refused ones out."""
    ranked: list[tuple[float, str]] = []
    for part in header.split(",")[:32]:
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            ranked.append((quality, tag.strip().replace("-", "_")))
    # sorted() is stable: equal weights keep the order the browser sent.
    return [tag for _, tag in sorted(ranked, key=lambda item: -item[0])]
