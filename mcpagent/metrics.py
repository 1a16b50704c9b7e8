"""Prometheus metrics (prometheus-client) and the guarded GET /metrics that serves them.

/metrics is off (404) unless METRICS_TOKEN (then `Authorization: Bearer <token>` is required) and/or
METRICS_ALLOWED_IPS (addresses or networks the caller's address must be in) is set; with both, both apply.

Processes: every gunicorn worker and Celery process counts for itself. Set PROMETHEUS_MULTIPROC_DIR (read by
prometheus-client at import) to one empty folder shared by the web and worker processes of a host, and /metrics
sums them all; without it, a scrape sees the process that answered (plus tasks run in-process when eager).
"""

import hmac
import ipaddress
import os
import time

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess

_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

HTTP_REQUESTS = Counter("mcpagent_http_requests_total", "HTTP requests answered, by route and status.",
                        ["method", "route", "status"])
HTTP_REQUEST_DURATION = Histogram("mcpagent_http_request_duration_seconds", "Time to answer an HTTP request.",
                                  ["method", "route"], buckets=_SECONDS)
SEARCH_DURATION = Histogram("mcpagent_search_duration_seconds", "Catalogue search (server_search) latency.",
                            buckets=_SECONDS)
ANALYSIS_DURATION = Histogram("mcpagent_analysis_duration_seconds",
                              "Master-agent analysis of one request (LLM or offline).", buckets=_SECONDS)
AGENT_CREATIONS = Counter("mcpagent_agent_creations_total", "Agents whose validation ended, by outcome.",
                          ["outcome"])
AGENT_RUNS = Counter("mcpagent_agent_runs_total", "Agent runs that ended, by outcome.", ["outcome"])
CREDENTIAL_VALIDATION_FAILURES = Counter(
    "mcpagent_credential_validation_failures_total",
    "Credential batches refused: stage=format (values rejected before storing), provider (the provider's identity "
    "call rejected a token), server (a server did not start "
    "or list its tools with them).",
    ["stage"],
)
SANDBOX_LIMIT_HITS = Counter("mcpagent_sandbox_limit_hits_total", "Sandbox limits an MCP server process reached.",
                             ["limit"])


def _allowed_networks() -> list:
    try:
        return [ipaddress.ip_network(item, strict=False) for item in settings.METRICS_ALLOWED_IPS]
    except ValueError as exc:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {exc}") from None


def _caller_allowed(request) -> bool:
    networks = _allowed_networks()
    if networks:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            return False
        if not any(address in network for network in networks):
            return False
    return True


def _token_ok(request) -> bool:
    if not settings.METRICS_TOKEN:
        return True
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), settings.METRICS_TOKEN.encode())


def metrics_view(request):
    if not (settings.METRICS_TOKEN or settings.METRICS_ALLOWED_IPS):
        raise Http404
    if not _caller_allowed(request):
        return HttpResponse("Forbidden.\n", status=403, content_type="text/plain")
    if not _token_ok(request):
        response = HttpResponse("Authorization: Bearer <METRICS_TOKEN> required.\n", status=401,
                                content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class RequestMetricsMiddleware:
    """Counts and times every request by its URL pattern (never the raw path: ids would explode the series)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match else "<unmatched>"
        method = request.method if request.method in _METHODS else "other"
        HTTP_REQUEST_DURATION.labels(method, route).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
        return response
