"""Who may read /metrics: clients from the allowed networks, or holders of the token.

The metrics name routes, roles, queue depths and error counts: a map of the system for
whoever reads them, so they are not public. The client address is the one uvicorn
reports: behind a reverse proxy, the proxy's X-Forwarded-For when uvicorn trusts the
proxy (EMERGENCY_TRUSTED_PROXIES), else the proxy's own address, which is often loopback.
So a request that came through a proxy (it carries a forwarding header) is never let in by
address: it needs the token. Prometheus on the host itself asks directly, with none.
"""

from __future__ import annotations

import hmac

from command.client_address import in_networks
from core.config import Settings
from core.errors import Forbidden, Unauthenticated


def _token_matches(authorization: str, token: str | None) -> bool:
    scheme, _, sent = authorization.partition(" ")
    if token is None or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(sent.strip().encode(), token.encode())


FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


def check_metrics_access(
    settings: Settings, *, host: str | None, authorization: str, forwarded: bool
) -> None:
    """Pass, or raise Unauthenticated (a token is configured) or Forbidden (none is).
    ``forwarded``: the request carries a forwarding header (came through a proxy)."""
    if _token_matches(authorization, settings.metrics_token):
        return
    if not forwarded and in_networks(host, settings.metrics_allow):
        return
    if settings.metrics_token is not None:
        raise Unauthenticated("send Authorization: Bearer <EMERGENCY_METRICS_TOKEN>")
    raise Forbidden("metrics are served only to EMERGENCY_METRICS_ALLOW networks")
