"""The sandbox's only way out: an HTTP(S) proxy on the host that each sandbox reaches through its own unix socket.

A sandboxed server has a network namespace with nothing but its own loopback. Its HTTP_PROXY/HTTPS_PROXY point
at a relay inside the sandbox (see inner.py) that forwards to the unix socket opened here for that server, so
every connection it makes is one of ours to judge:
- `CONNECT host:port` (HTTPS and any TLS) and absolute-form `GET http://host/...` (plain HTTP) are served;
- the host name is resolved here and every address it resolves to must be public: loopback, private, link-local,
  carrier-grade NAT, multicast, reserved ranges and this host's own addresses are refused, so neither
  PostgreSQL, Redis, our own HTTP port nor a cloud metadata service (169.254.169.254) can be reached;
- SANDBOX_NETWORK_ALLOW_HOSTS names hosts (or CIDRs) allowed although internal (package registry mirrors);
- a server the catalogue narrows to its own domains (McpServer.egress_hosts) may reach only those;
- SANDBOX_NETWORK_CONNECT_TO sends a host's connections to another address ("slack.com=gateway.corp:8443", as
  curl's --connect-to): the server still asks for, and checks the certificate of, the host it named; the address
  used passes the same checks (an internal one only when the host is in SANDBOX_NETWORK_ALLOW_HOSTS).
We connect to the address we checked, so a DNS answer that changes between check and use changes nothing.

Written here rather than taken from a library: the security-relevant part is the resolve-check-connect step on
the address actually used, which general-purpose proxies do not offer as a hook; the rest is ~100 lines of
asyncio.
"""

import asyncio
import fnmatch
import ipaddress
import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import psutil

logger = logging.getLogger(__name__)

HEAD_LIMIT = 64 * 1024
# Starts the status text of a refusal, which a server's error message carries back to validation.
REFUSED_REASON = "Refused by the mcpagent sandbox"
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


@dataclass
class EgressPolicy:
    """Which destinations one sandboxed server may reach."""

    server: str
    # Hosts or patterns ("*.slack.com") this server is narrowed to; empty: any public host.
    only_hosts: list[str] = field(default_factory=list)
    # Hosts, patterns or CIDRs allowed although they resolve to internal addresses.
    allow_internal: list[str] = field(default_factory=list)
    # "host=address[:port]" entries: connections to the host (or its subdomains) go to that address instead.
    connect_to: list[str] = field(default_factory=list)

    def destination(self, host: str, port: int) -> tuple[str, int]:
        """Where a connection to host:port really goes: itself, or its SANDBOX_NETWORK_CONNECT_TO target."""
        for entry in self.connect_to:
            pattern, _, target = entry.partition("=")
            if pattern and target and _matches(host, [pattern]):
                return _split_host_port(target, port)
        return host, port

    def host_problem(self, host: str) -> str | None:
        if self.only_hosts and not _matches(host, self.only_hosts):
            return f"{self.server} may reach only {', '.join(self.only_hosts)}"
        return None

    def address_problem(self, host: str, address: str) -> str | None:
        ip = ipaddress.ip_address(address.split("%")[0])
        if _matches(host, self.allow_internal) or _in_networks(ip, self.allow_internal):
            return None
        if internal_address(ip):
            return f"{host} resolves to an internal address"
        return None


def _matches(host: str, patterns: Iterable[str]) -> bool:
    """"example.com" stands for the host and its subdomains; "*.example.com" for its subdomains only."""
    host = host.lower().rstrip(".")
    return any(fnmatch.fnmatchcase(host, p) or host.endswith("." + p)
               for p in (p.lower() for p in patterns if "/" not in p))


def _in_networks(ip: ipaddress._BaseAddress, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        try:
            if ip in ipaddress.ip_network(pattern, strict=False):
                return True
        except ValueError:
            continue
    return False


def internal_address(ip: ipaddress._BaseAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or ip in _CGNAT or str(ip) in _host_addresses())


_HOST_ADDRESSES: set[str] | None = None


def _host_addresses() -> set[str]:
    """This machine's own interface addresses: a server must not reach our ports through a public address."""
    global _HOST_ADDRESSES
    if _HOST_ADDRESSES is None:
        _HOST_ADDRESSES = {a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs
                           if a.family in (socket.AF_INET, socket.AF_INET6)}
    return _HOST_ADDRESSES


class _Refused(Exception):
    pass


class EgressProxy:
    """One asyncio loop in a daemon thread, serving a unix socket per running sandbox."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._servers: dict[str, asyncio.AbstractServer] = {}
        # The connections being served, per socket: closed with it, so none outlives its sandbox.
        self._connections: dict[str, set[asyncio.Task]] = {}
        self._started = threading.Event()
        threading.Thread(target=self._run, name="mcpagent-egress", daemon=True).start()
        self._started.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._started.set)
        self._loop.run_forever()

    def open(self, policy: EgressPolicy) -> str:
        """A new unix socket for one sandbox (in a private folder); returns its path."""
        folder = tempfile.mkdtemp(prefix="mcpagent-egress-")
        path = os.path.join(folder, "egress.sock")

        connections: set[asyncio.Task] = set()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            connections.add(task)
            try:
                await self._serve(policy, reader, writer)
            finally:
                connections.discard(task)

        async def start() -> asyncio.AbstractServer:
            return await asyncio.start_unix_server(serve, path=path)

        self._servers[path] = asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout=5)
        self._connections[path] = connections
        os.chmod(path, 0o600)  # outside its user namespace the sandbox's user is ours
        return path

    def close(self, path: str) -> None:
        server = self._servers.pop(path, None)
        connections = self._connections.pop(path, set())

        async def stop() -> None:
            if server is not None:
                server.close()
            for task in list(connections):
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=5)
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)

    async def _serve(self, policy: EgressPolicy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
            if len(head) > HEAD_LIMIT:
                raise _Refused("request head too large")
            method, target, version, headers = _parse_head(head)
            if method == "CONNECT":
                host, port = _split_host_port(target, 443)
                up_reader, upstream = await self._connect(policy, host, port)
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                url = urlsplit(target)
                if url.scheme != "http" or not url.hostname:
                    raise _Refused("only CONNECT and absolute http:// requests are proxied")
                host, port = url.hostname, url.port or 80
                up_reader, upstream = await self._connect(policy, host, port)
                path = url.path or "/"
                if url.query:
                    path += "?" + url.query
                kept = [(k, v) for k, v in headers if not k.lower().startswith("proxy-") and k.lower() != "connection"]
                lines = [f"{method} {path} {version}", *(f"{k}: {v}" for k, v in kept), "Connection: close", "", ""]
                upstream.write("\r\n".join(lines).encode("latin-1"))
                await upstream.drain()
            await _pipe_both(reader, writer, up_reader, upstream)
        except _Refused as refused:
            logger.warning("sandbox egress refused for %s: %s", policy.server, refused)
            body = f"mcpagent sandbox: {refused}\n".encode()
            # The reason in the status line too: most clients report a failed CONNECT by its status text alone.
            reason = "".join(c for c in f"{REFUSED_REASON}: {refused}" if c.isprintable())[:200]
            writer.write(f"HTTP/1.1 403 {reason}\r\n".encode("latin-1", "replace")
                         + b"Content-Type: text/plain\r\nConnection: close\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            if upstream is None:
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        finally:
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()

    async def _connect(self, policy: EgressPolicy, host: str, port: int):
        problem = policy.host_problem(host)
        if problem:
            raise _Refused(problem)
        target, port = policy.destination(host, port)
        try:
            infos = await self._loop.getaddrinfo(target, port, type=socket.SOCK_STREAM)
        except OSError:
            raise _Refused(f"{target} could not be resolved") from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        for address in addresses:  # every answer must pass, not just the first
            problem = policy.address_problem(host, address)
            if problem:
                raise _Refused(problem)
        last: OSError | None = None
        for address in addresses:
            try:
                return await asyncio.wait_for(asyncio.open_connection(address, port), timeout=15)
            except (OSError, TimeoutError) as exc:
                last = exc if isinstance(exc, OSError) else OSError(str(exc))
        raise last or OSError("no address")


def _parse_head(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return method.upper(), target, version, headers


def _split_host_port(target: str, default: int) -> tuple[str, int]:
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        return host, int(rest.lstrip(":") or default)
    host, _, port = target.rpartition(":")
    return (host, int(port)) if host else (target, default)


async def _pipe_both(reader, writer, up_reader, up_writer) -> None:
    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            if sink.can_write_eof():
                try:
                    sink.write_eof()
                except OSError:
                    pass

    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


_PROXY: tuple[int, EgressProxy] | None = None
_PROXY_LOCK = threading.Lock()


def egress_proxy() -> EgressProxy:
    """The process's proxy, started on first use. A forked child (a Celery prefork worker) starts its own: the
    parent's thread does not exist in it."""
    global _PROXY
    with _PROXY_LOCK:
        if _PROXY is None or _PROXY[0] != os.getpid():
            _PROXY = (os.getpid(), EgressProxy())
        return _PROXY[1]
