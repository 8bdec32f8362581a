"""Tests for the generated turnserver.conf and the coturn-config command."""

import argparse
import io
from pathlib import Path

import pytest

from sprechzimmer.config import Settings
from sprechzimmer.relay.coturn_config import (
    CoturnOptions,
    add_arguments,
    coturn_config_command,
    render,
)


def lines(options: CoturnOptions) -> list[str]:
    return render(options).splitlines()


def test_hardening_options_are_present():
    """The config has shared-secret auth, quotas and every hardening switch."""
    conf = lines(CoturnOptions(secret="s3cret", realm="turn.example.de"))

    for expected in [
        "use-auth-secret",
        "static-auth-secret=s3cret",
        "realm=turn.example.de",
        "no-multicast-peers",
        "no-cli",
        "no-software-attribute",
        "fingerprint",
        "stale-nonce=600",
        "user-quota=12",
        "total-quota=1200",
        "no-tcp-relay",
        "no-rfc5780",
        "no-dynamic-ip-list",
        "no-tlsv1",
        "no-tlsv1_1",
        "listening-port=3478",
        "min-port=49152",
        "max-port=65535",
        "denied-peer-ip=169.254.0.0-169.254.255.255",
        "denied-peer-ip=127.0.0.0-127.255.255.255",
        "denied-peer-ip=::1-::1",
        "denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "denied-peer-ip=100.64.0.0-100.127.255.255",
    ]:
        assert expected in conf
    assert "allow-loopback-peers" not in conf
    assert "no-tls" in conf


def test_tls_on_443_needs_cert_and_refuses_old_tls():
    """TURN over TLS listens on the given port with TLS 1.2 or newer only."""
    conf = lines(
        CoturnOptions(
            secret="s",
            realm="r",
            tls_listening_port=443,
            cert=Path("/etc/ssl/turn.pem"),
            pkey=Path("/etc/ssl/turn.key"),
        )
    )

    assert "tls-listening-port=443" in conf
    assert "cert=/etc/ssl/turn.pem" in conf
    assert "pkey=/etc/ssl/turn.key" in conf
    assert "no-tlsv1" in conf and "no-tlsv1_1" in conf
    assert "no-tls" not in conf


def test_tls_without_certificate_is_refused():
    """Asking for TLS without certificate and key is an error."""
    with pytest.raises(ValueError, match="certificate"):
        CoturnOptions(secret="s", realm="r", tls_listening_port=443)


def test_empty_secret_is_refused():
    """A config without a shared secret is never generated."""
    with pytest.raises(ValueError, match="secret"):
        CoturnOptions(secret="", realm="r")


def test_loopback_only_behind_the_test_switch():
    """The test switch allows loopback peers and stops denying loopback."""
    conf = lines(CoturnOptions(secret="s", realm="r", test_allow_loopback_peers=True))

    assert "allow-loopback-peers" in conf
    assert "denied-peer-ip=127.0.0.0-127.255.255.255" not in conf
    assert "denied-peer-ip=::1-::1" not in conf
    assert "denied-peer-ip=10.0.0.0-10.255.255.255" in conf


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_command_prints_the_config_with_the_settings_secret():
    """coturn-config prints a config that uses SPRECHZIMMER_TURN_SECRET."""
    out = io.StringIO()
    args = parse("--realm", "turn.example.de", "--relay-ip", "192.0.2.10")

    status = coturn_config_command(Settings(turn_secret="topsecret"), args, out)

    assert status == 0
    conf = out.getvalue().splitlines()
    assert "static-auth-secret=topsecret" in conf
    assert "relay-ip=192.0.2.10" in conf


def test_command_fails_without_secret(capsys):
    """Without a TURN secret the command explains and exits with status 2."""
    status = coturn_config_command(Settings(turn_secret=""), parse("--realm", "r"))

    assert status == 2
    assert "SPRECHZIMMER_TURN_SECRET" in capsys.readouterr().err


def test_command_has_no_loopback_switch():
    """The command line offers no way to allow loopback peers."""
    with pytest.raises(SystemExit):
        parse("--realm", "r", "--test-allow-loopback-peers")


def test_sprechzimmer_coturn_config_prints_the_config(monkeypatch, capsys):
    """`sprechzimmer coturn-config` prints the config for the env's secret."""
    from sprechzimmer.cli import main

    monkeypatch.setenv("SPRECHZIMMER_TURN_SECRET", "from-env")

    status = main(["coturn-config", "--realm", "turn.example.de"])

    assert status == 0
    conf = capsys.readouterr().out.splitlines()
    assert "static-auth-secret=from-env" in conf
    assert "realm=turn.example.de" in conf
