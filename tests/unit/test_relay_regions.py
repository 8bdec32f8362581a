"""Tests for the region policy of TURN servers."""

import logging

import pytest

from sprechzimmer.config import Settings, TurnServer
from sprechzimmer.relay.regions import (
    RegionError,
    RelayConfigError,
    allowed_regions,
    select_servers,
)


def settings(*servers: TurnServer, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "region": "DE",
        "allowed_regions": ["DE", "AT"],
        "turn_servers": list(servers),
        "turn_secret": "secret",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def server(url: str, region: str) -> TurnServer:
    return TurnServer(urls=[url], region=region)


def test_servers_in_allowed_regions_are_kept_in_order():
    """Servers in allowed regions are selected in configuration order."""
    first = server("turn:a.example.de", "DE")
    second = server("turn:b.example.at", "at")

    assert select_servers(settings(first, second)) == [first, second]


def test_foreign_server_stops_the_start_with_a_clear_message():
    """A server outside the allowed regions raises an error naming it and the fix."""
    foreign = server("turn:turn.example.fr:3478", "FR")

    with pytest.raises(RegionError) as raised:
        select_servers(settings(server("turn:a.example.de", "DE"), foreign))

    message = str(raised.value)
    assert "turn:turn.example.fr:3478" in message
    assert "region FR" in message
    assert "SPRECHZIMMER_ALLOWED_REGIONS (AT, DE)" in message


def test_foreign_server_is_skipped_only_when_asked(caplog):
    """With turn_skip_foreign_servers a foreign server is left out and logged."""
    home = server("turn:a.example.de", "DE")
    foreign = server("turn:turn.example.us", "US")
    caplog.set_level(logging.WARNING, logger="sprechzimmer.relay.regions")

    selected = select_servers(settings(home, foreign, turn_skip_foreign_servers=True))

    assert selected == [home]
    assert "turn:turn.example.us" in caplog.text
    assert "never handed out" in caplog.text


def test_own_region_must_be_allowed():
    """This server's own region outside the allowed list stops the start."""
    with pytest.raises(RegionError, match="this server's region CH"):
        allowed_regions(settings(region="CH"))


def test_allowed_regions_may_not_be_empty():
    """An empty allowed list is an error, not "anything goes"."""
    with pytest.raises(RegionError, match="empty"):
        allowed_regions(settings(allowed_regions=[]))


def test_region_codes_are_two_letters():
    """A region that is not a two-letter code is refused."""
    with pytest.raises(RegionError, match="GERMANY"):
        select_servers(settings(server("turn:a.example.de", "Germany")))


def test_allowed_regions_parse_from_comma_separated_text():
    """SPRECHZIMMER_ALLOWED_REGIONS="de, at" means DE and AT."""
    assert allowed_regions(settings(allowed_regions="de, at")) == {"DE", "AT"}


def test_urls_must_be_turn_or_stun():
    """A URL with another scheme is a configuration error."""
    with pytest.raises(RelayConfigError, match="https://"):
        select_servers(settings(server("https://turn.example.de", "DE")))


def test_serve_refuses_to_start_with_a_foreign_server(monkeypatch, tmp_path, capsys):
    """`sprechzimmer serve` with a foreign TURN server exits 2 with the message."""
    from sprechzimmer.cli import main

    monkeypatch.setenv("SPRECHZIMMER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SPRECHZIMMER_TURN_SECRET", "secret")
    monkeypatch.setenv(
        "SPRECHZIMMER_TURN_SERVERS",
        '[{"urls": ["turn:turn.example.fr:3478"], "region": "FR"}]',
    )

    status = main(["serve", "--port", "0"])

    assert status == 2
    error = capsys.readouterr().err
    assert "TURN server turn:turn.example.fr:3478 is in region FR" in error
    assert "Traceback" not in error
