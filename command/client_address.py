"""Who is calling: the client address of a request, behind trusted reverse proxies or not,
and what an address is counted under (pure: no database, no web)."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

MAX_KEY_CHARS = 100  # login_throttle.key


@functools.lru_cache(maxsize=16)
def _networks(
    trusted: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in trusted)


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address in an X-Forwarded-For entry (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``)."""
    value = value.strip()
    if value.startswith("["):
        value = value[1 : value.find("]")]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def in_networks(value: str | None, networks: tuple[str, ...]) -> bool:
    """Whether ``value`` is an address in one of ``networks`` (CIDRs); an IPv4 client seen
    through a dual-stack socket (``::ffff:10.0.0.1``) counts as its IPv4 address."""
    ip = _ip(value) if value else None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip is not None and any(ip in net for net in _networks(networks))


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[str]) -> str:
    """The client's address: the direct peer, or, when the peer is a trusted proxy, the
    nearest address in X-Forwarded-For that is not a trusted proxy (read from the right:
    each proxy appends the address it saw, so only the right end cannot be forged).

    Same rule as uvicorn's proxy headers, which ``emergency serve`` configures with the
    same list: applied again to an address uvicorn has resolved, it changes nothing."""
    trusted_t = tuple(trusted)
    if not in_networks(peer, trusted_t):
        return peer or "unknown"
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        if not in_networks(hop, trusted_t):
            ip = _ip(hop)
            return str(ip) if ip is not None else hop[:MAX_KEY_CHARS]
    return str(_ip(hops[0])) if hops else (peer or "unknown")


def address_key(address: str) -> str:
    """What an address is counted under: IPv6 clients by their /64 (one subscriber's
    prefix, in which they may pick any address), IPv4 ones as they are."""
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address[:MAX_KEY_CHARS]
