"""Where a request comes from, and whether that place may call.

The client's address is the TCP peer's, unless the peer is one of
``server.trusted_proxies``: then ``X-Forwarded-For`` is read from the right,
skipping trusted hops, and the first address that is not a trusted proxy is
the client.  Anyone can write that header, so it is believed only as far as
the chain of trusted proxies vouches for it; an entry that is not an address
ends the walk and the client counts as unknown, which no allowlist admits.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

from router.problems import Problem

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str | None) -> Address | None:
    try:
        return ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None


def _within(address: Address, networks: Sequence[Network]) -> bool:
    return any(address in network for network in networks)


def client_address(request: web.Request, trusted: Sequence[Network]) -> Address | None:
    """The calling client's address, or None when it cannot be known."""
    peer = _address(request.remote)
    if peer is None or not _within(peer, trusted):
        return peer
    hops = [h for v in request.headers.getall("X-Forwarded-For", []) for h in v.split(",")]
    nearest: Address = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return None
        if not _within(address, trusted):
            return address
        nearest = address
    return nearest  # every hop was a trusted proxy: the farthest one called


def require_allowed(
    request: web.Request, trusted: Sequence[Network], allowed: Sequence[Network] | None
) -> None:
    """403 unless the client is inside ``allowed`` (None: anywhere)."""
    if allowed is None:
        return
    address = client_address(request, trusted)
    if address is None or not _within(address, allowed):
        raise Problem(
            403, "address_not_allowed", "this key may not be used from this network address"
        )
