"""MCP authorization, the discovery half, with the `mcp` SDK's helpers (mcp.client.auth.utils): ask a remote MCP
server whether it wants a token (a 401 with `WWW-Authenticate: Bearer resource_metadata=...`), read its protected
resource metadata (RFC 9728) and its authorization server's metadata (RFC 8414), and register our client there: by
a client ID metadata document when the server supports them and MCP_OAUTH_CLIENT_METADATA_URL is set, else by
dynamic registration (RFC 7591).

Every URL a server's answers point at is checked before it is fetched (https, or http to loopback where remote
servers may be on loopback): a server must not make us fetch our own network. Redirects are not followed.
"""

import ipaddress
import logging
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import httpx2
from django.conf import settings
from mcp.client.auth.exceptions import OAuthFlowError, OAuthRegistrationError
from mcp.client.auth.oauth2 import check_registration_usable
from mcp.client.auth.utils import (build_oauth_authorization_server_metadata_discovery_urls,
                                   build_protected_resource_metadata_discovery_urls,
                                   create_client_info_from_metadata_url, create_client_registration_request,
                                   create_oauth_metadata_request, extract_resource_metadata_from_www_auth,
                                   extract_scope_from_www_auth, get_client_metadata_scopes,
                                   handle_auth_metadata_response, handle_protected_resource_response,
                                   handle_registration_response, is_valid_client_metadata_url,
                                   should_use_client_metadata_url, validate_metadata_issuer)
from mcp.shared.auth import OAuthClientMetadata, OAuthMetadata
from mcp.shared.auth_utils import check_resource_allowed, resource_url_from_server_url
from mcp_types import LATEST_PROTOCOL_VERSION

logger = logging.getLogger("mcpagent.vault")
GRANT_TYPES = ["authorization_code", "refresh_token"]


class DiscoveryFailure(Exception):
    """The server or its authorization server did not give what MCP authorization needs; `message` says what."""


@dataclass(frozen=True)
class Discovered:
    """What a protected MCP server told us: where to authorize, for which resource, with which scope."""

    server_url: str
    resource: str
    issuer: str
    metadata: OAuthMetadata
    scope: str

    def endpoints(self) -> dict:
        """The public part kept with a connection (no secret in it)."""
        meta = self.metadata
        return {"issuer": self.issuer, "resource": self.resource, "scope": self.scope,
                "authorization_endpoint": str(meta.authorization_endpoint),
                "token_endpoint": str(meta.token_endpoint),
                "revocation_endpoint": str(meta.revocation_endpoint or ""),
                "token_endpoint_auth_methods": list(meta.token_endpoint_auth_methods_supported or [])}


def url_problem(url: str) -> str | None:
    """Why we will not fetch `url` for discovery, or None. https to a public host; http and loopback only where
    remote MCP servers may be on loopback (DEBUG or AGENT_ALLOW_HTTP_LOOPBACK)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    loopback_ok = settings.DEBUG or settings.AGENT_ALLOW_HTTP_LOOPBACK
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
        return "not an http(s) URL"
    try:
        addresses = {ipaddress.ip_address(info[4][0].split("%")[0])
                     for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except (OSError, ValueError):
        return f"the host {host} could not be resolved"
    for address in addresses:
        if address.is_loopback and loopback_ok:
            continue
        if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved \
                or address.is_multicast or address.is_unspecified:
            return f"{host} resolves to an internal address"
    if parts.scheme == "http" and not (loopback_ok and all(a.is_loopback for a in addresses)):
        return "only https is allowed"
    return None


async def _get(http: httpx2.AsyncClient, url: str) -> httpx2.Response | None:
    problem = await anyio.to_thread.run_sync(url_problem, url)
    if problem:
        logger.info("MCP authorization discovery skipped %s: %s", urlsplit(url).netloc, problem)
        return None
    try:
        return await http.send(create_oauth_metadata_request(url))
    except httpx2.HTTPError as exc:  # a candidate that cannot be fetched: the next one may answer
        logger.info("MCP authorization discovery could not fetch %s: %s", urlsplit(url).netloc, type(exc).__name__)
        return None


def _client(timeout: float) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(timeout=timeout, follow_redirects=False)


async def discover(server_url: str, *, timeout: float) -> Discovered | None:
    """The server's authorization requirements, or None when it lets us in without a token (it is not protected).
    Raises DiscoveryFailure when it wants one but its metadata is missing, malformed or points elsewhere."""
    problem = await anyio.to_thread.run_sync(url_problem, server_url)
    if problem:
        raise DiscoveryFailure(f"the server URL cannot be used ({problem})")
    initialize = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                  "params": {"protocolVersion": LATEST_PROTOCOL_VERSION, "capabilities": {},
                             "clientInfo": {"name": "mcpagent", "version": "1"}}}
    async with _client(timeout) as http:
        probe = await http.post(server_url, json=initialize, headers={
            "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": LATEST_PROTOCOL_VERSION})
        if probe.status_code != 401:
            return None
        prm = None
        for url in build_protected_resource_metadata_discovery_urls(extract_resource_metadata_from_www_auth(probe),
                                                                    server_url):
            response = await _get(http, url)
            prm = await handle_protected_resource_response(response) if response is not None else None
            if prm is not None and prm.authorization_servers:
                break
        if prm is None or not prm.authorization_servers:
            raise DiscoveryFailure("the server answered 401 but publishes no protected resource metadata")
        resource = resource_url_from_server_url(server_url)
        if prm.resource and not check_resource_allowed(requested_resource=resource,
                                                       configured_resource=str(prm.resource)):
            raise DiscoveryFailure(f"its metadata describes another resource ({prm.resource})")
        resource = str(prm.resource) if prm.resource else resource
        issuer = str(prm.authorization_servers[0])
        metadata = None
        for url in build_oauth_authorization_server_metadata_discovery_urls(issuer, server_url):
            response = await _get(http, url)
            if response is None:
                continue
            ok, found = await handle_auth_metadata_response(response)
            if found is not None:
                try:
                    validate_metadata_issuer(found, issuer)
                except OAuthFlowError:
                    raise DiscoveryFailure(f"the authorization server's metadata names another issuer "
                                           f"({found.issuer})") from None
                metadata = found
                break
            if not ok:
                break
    if metadata is None:
        raise DiscoveryFailure(f"the authorization server {issuer} publishes no metadata")
    if "S256" not in (metadata.code_challenge_methods_supported or []):
        raise DiscoveryFailure("the authorization server does not support PKCE with S256")
    for url in (str(metadata.authorization_endpoint), str(metadata.token_endpoint)):
        problem = await anyio.to_thread.run_sync(url_problem, url)
        if problem:
            raise DiscoveryFailure(f"the authorization server's endpoint cannot be used ({problem})")
    scope = get_client_metadata_scopes(extract_scope_from_www_auth(probe), prm, metadata, GRANT_TYPES) or ""
    return Discovered(server_url=server_url, resource=resource, issuer=issuer, metadata=metadata, scope=scope)


def client_metadata(*, redirect_uri: str, scope: str) -> OAuthClientMetadata:
    """What we register as: a confidential web client using the authorization code grant with refresh."""
    return OAuthClientMetadata(redirect_uris=[redirect_uri], client_name=settings.MCP_OAUTH_CLIENT_NAME,
                               grant_types=GRANT_TYPES, response_types=["code"],
                               token_endpoint_auth_method="client_secret_post", scope=scope or None)


async def register(discovered: Discovered, *, redirect_uri: str, timeout: float) -> dict:
    """Our client's registration with the server's authorization server, as stored (client_id, client_secret when
    issued, token_endpoint_auth_method, redirect_uri, issuer): a client ID metadata document's URL when the
    server takes those and one is configured, else a dynamic registration."""
    wanted = client_metadata(redirect_uri=redirect_uri, scope=discovered.scope)
    document_url = settings.MCP_OAUTH_CLIENT_METADATA_URL or None
    if document_url and is_valid_client_metadata_url(document_url) \
            and should_use_client_metadata_url(discovered.metadata, document_url):
        info = create_client_info_from_metadata_url(document_url, redirect_uris=wanted.redirect_uris)
    else:
        if not discovered.metadata.registration_endpoint:
            raise DiscoveryFailure("the authorization server takes neither dynamic registration nor client ID "
                                   "metadata documents")
        request = create_client_registration_request(discovered.metadata, wanted, discovered.issuer)
        problem = await anyio.to_thread.run_sync(url_problem, str(request.url))
        if problem:
            raise DiscoveryFailure(f"the registration endpoint cannot be used ({problem})")
        async with _client(timeout) as http:
            response = await http.send(request)
            try:
                info = await handle_registration_response(response)
                check_registration_usable(info)
            except OAuthRegistrationError as exc:
                logger.info("dynamic registration at %s failed: HTTP %s", discovered.issuer, response.status_code)
                raise DiscoveryFailure(f"the authorization server refused our registration "
                                       f"(HTTP {response.status_code})") from exc
    return {"client_id": info.client_id, "client_secret": info.client_secret or "",
            "token_endpoint_auth_method": info.token_endpoint_auth_method or "none",
            "redirect_uri": redirect_uri, "issuer": discovered.issuer}
