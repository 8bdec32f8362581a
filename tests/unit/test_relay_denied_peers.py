"""Tests for the denied peer ranges, judged the way coturn 4.6 judges them."""

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from sprechzimmer.relay.denied_peers import coturn_range, denied_networks

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _less_eq(a: Address, b: Address) -> bool:
    # coturn's addr_less_eq: families compare by AF number (AF_INET=2 <
    # AF_INET6=10); IPv6 compares byte by byte, not as one number.
    if a.version != b.version:
        return a.version < b.version
    if a.version == 4:
        return int(a) <= int(b)
    return all(x <= y for x, y in zip(a.packed, b.packed, strict=True))


def coturn_denies(address: Address, ranges: list[str]) -> bool:
    """Model of coturn's ioa_addr_in_range over the configured ranges."""
    for text in ranges:
        low, high = (ipaddress.ip_address(part) for part in text.split("-"))
        if low.packed.strip(b"\0") and not _less_eq(low, address):
            continue
        if not high.packed.strip(b"\0") or _less_eq(address, high):
            return True
    return False


RANGES = [coturn_range(n) for n in denied_networks()]
TEST_RANGES = [coturn_range(n) for n in denied_networks(allow_loopback=True)]


def special(address: Address) -> bool:
    reserved = address.version == 4 and address.is_reserved
    return not address.is_global or address.is_multicast or reserved


def test_named_special_addresses_are_denied():
    """Private, loopback, metadata, CGNAT, multicast and documentation are denied."""
    for text in [
        "10.1.2.3", "172.20.0.1", "192.168.1.1", "127.0.0.1", "169.254.169.254",
        "100.64.0.1", "224.0.0.251", "239.255.255.250", "255.255.255.255",
        "192.0.2.1", "198.51.100.7", "203.0.113.9", "198.18.0.1", "0.1.2.3",
        "::1", "fe80::1", "fd00::1", "fc12::1", "ff02::1", "2001:db8::1",
        "::ffff:10.0.0.1", "::ffff:127.0.0.1", "64:ff9b::a00:1", "2002:a00:1::",
        "100::1", "3fff::1", "fec0::1",
    ]:  # fmt: skip
        assert coturn_denies(ipaddress.ip_address(text), RANGES), text


def test_public_addresses_are_allowed():
    """Ordinary public IPv4 and IPv6 addresses can be relayed to."""
    for text in ["8.8.8.8", "1.1.1.1", "85.13.1.1", "2a00:1450:4001::1", "2606::1"]:
        assert not coturn_denies(ipaddress.ip_address(text), RANGES), text


@given(st.ip_addresses())
def test_coturn_denies_special_addresses_and_only_listed_ones(address):
    """coturn denies every special address, and nothing outside the list."""
    listed = any(
        address.version == n.version and address in n for n in denied_networks()
    )

    assert coturn_denies(address, RANGES) == listed
    if address.version == 6 and address in ipaddress.ip_network("::/96"):
        return  # unspecified and IPv4-compatible: see the module docstring
    if special(address):
        assert listed


def test_test_mode_allows_only_loopback_in_addition():
    """The loopback switch removes the loopback ranges and nothing else."""
    assert not coturn_denies(ipaddress.ip_address("127.0.0.1"), TEST_RANGES)
    assert not coturn_denies(ipaddress.ip_address("::1"), TEST_RANGES)
    assert set(RANGES) - set(TEST_RANGES) == {
        "127.0.0.0-127.255.255.255",
        "::1-::1",
    }


def test_no_range_starts_or_ends_at_an_unspecified_address_in_ipv6():
    """No IPv6 range starts or ends at ::, which coturn treats as unbounded."""
    for network in denied_networks():
        if network.version == 6:
            assert network.network_address != ipaddress.ip_address("::")
        assert int(network.broadcast_address) != 0
