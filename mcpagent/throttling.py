"""Request rate limits (DRF throttles on the Django cache): per API client, per IP, and failed authentications per IP.

Rates are read from settings at each request (DRF's own SimpleRateThrottle reads them once, at import), and a rate
of "" or "off" turns a limit off.
"""

from rest_framework import exceptions
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class _ConfiguredRateThrottle(SimpleRateThrottle):
    def get_rate(self) -> str | None:
        rate = (api_settings.DEFAULT_THROTTLE_RATES or {}).get(self.scope) or ""
        return None if rate.strip().lower() in ("", "off") else rate


class ClientRateThrottle(_ConfiguredRateThrottle):
    """API_RATE_LIMIT_PER_CLIENT: requests of one API client, from wherever they come."""

    scope = "client"

    def get_cache_key(self, request, view) -> str | None:
        client = getattr(request, "auth", None)
        if client is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": client.pk}


class IpRateThrottle(_ConfiguredRateThrottle):
    """API_RATE_LIMIT_PER_IP: requests from one address, all clients together."""

    scope = "ip"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class AuthFailureRateThrottle(IpRateThrottle):
    """API_AUTH_FAILURE_RATE_LIMIT: requests from one address refused for a missing, invalid or revoked key."""

    scope = "auth_failure"


def throttle_auth_failure(request, exc: exceptions.APIException) -> exceptions.APIException:
    """Counts a refused authentication; past the limit the answer is a 429 instead of the 401.

    Counted where the 401 is rendered because DRF authenticates before it checks throttles. A valid key from the
    same address still passes: clients behind one NAT are not locked out by someone else's guessing.
    """
    throttle = AuthFailureRateThrottle()
    if request is None or throttle.allow_request(request, None):
        return exc
    return exceptions.Throttled(wait=throttle.wait())
