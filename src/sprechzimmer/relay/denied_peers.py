"""Address ranges that a relay must never forward to.

A TURN server relays to any address a client names, so without a deny
list an outsider with valid credentials could reach the operator's
internal network, the cloud metadata service (169.254.169.254) or
multicast groups through it. The list covers the IANA special-purpose
registries for IPv4 and IPv6 plus multicast, carrier-grade NAT, 6to4 and
NAT64 prefixes (which embed IPv4 addresses and could bypass the IPv4 list).

coturn 4.6 compares ranges in a way that shapes this list:

- a range whose last address is ``0.0.0.0`` or ``::`` has no upper bound,
  and an IPv6 range starting at ``::`` also matches every IPv4 address, so
  ``::/128`` and ``::/96`` are left out; coturn refuses the unspecified
  addresses itself (the fix for CVE-2020-26262);
- IPv6 addresses are compared byte by byte, which is exact only for
  ranges that are whole CIDR networks, so every entry is one.
"""

from __future__ import annotations

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DENIED_IPV4 = (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private
    "100.64.0.0/10",  # carrier-grade NAT
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local, cloud metadata
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation (TEST-NET-1)
    "192.88.99.0/24",  # 6to4 relay anycast
    "192.168.0.0/16",  # private
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation (TEST-NET-2)
    "203.0.113.0/24",  # documentation (TEST-NET-3)
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, broadcast
)

DENIED_IPV6 = (
    "::1/128",  # loopback
    "::ffff:0:0/96",  # IPv4-mapped
    "64:ff9b::/96",  # NAT64 well-known prefix
    "64:ff9b:1::/48",  # NAT64 local use
    "100::/64",  # discard-only
    "2001::/23",  # IETF protocol assignments (Teredo, benchmarking, ORCHID)
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4
    "3fff::/20",  # documentation
    "5f00::/16",  # segment routing SIDs
    "fc00::/7",  # unique local
    "fe80::/10",  # link-local
    "fec0::/10",  # site-local (deprecated)
    "ff00::/8",  # multicast
)

LOOPBACK = frozenset({"127.0.0.0/8", "::1/128"})


def denied_networks(allow_loopback: bool = False) -> list[Network]:
    """Return the denied networks, without loopback when it is allowed."""
    return [
        ipaddress.ip_network(network)
        for network in DENIED_IPV4 + DENIED_IPV6
        if not (allow_loopback and network in LOOPBACK)
    ]


def coturn_range(network: Network) -> str:
    """Write ``network`` as coturn's ``first-last`` range."""
    return f"{network.network_address}-{network.broadcast_address}"
