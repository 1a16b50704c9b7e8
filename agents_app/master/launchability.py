"""Can a catalogue server be launched here, with credentials a user can get by themselves? Facts the analyzer
ranks candidates by (agents_app.master.offline), from the server's launch recipes and credential requirements,
never from its name.

- A package recipe (npm / PyPI) runs when its launcher (npx / uvx) is allowed and installed; an image (oci)
  only when a Docker daemon answers (`docker_available`, checked once per process with a short timeout).
- A remote can only be given HTTP headers: it is usable when one of its credentials is a header the user can
  fill in themselves (an API key, a personal token) and none of its required headers is an OAuth access token
  that the hosted service hands out after an interactive sign-in (the catalogue's importers write that into the
  credential's description). A remote whose credentials are environment variables, which it can never
  receive, is not usable either.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from agents_app import safety, sandbox
from agents_app.master.requirements import counts_as_required

DOCKER_PING_TIMEOUT_SECONDS = 0.5
DOCKER_CLI_TIMEOUT_SECONDS = 3.0
_LAUNCHERS = {"npm": "npx", "pypi": "uvx", "oci": "docker"}
# "OAuth 2.0 access token for the hosted server (it signs users in with OAuth)", "Asana OAuth access token.
# Docker's catalog obtains it by OAuth sign-in with asana.": a token a person cannot create by themselves.
_SIGN_IN = re.compile(r"\boauth\b.*?\b(?:sign[- ]?in|signs? (?:users )?in|log[- ]?in)\b", re.IGNORECASE | re.DOTALL)


# --- Docker --------------------------------------------------------------------------------------------

def _docker_endpoints() -> list[str]:
    """Where the docker CLI would look for its daemon: DOCKER_HOST, else the usual sockets (system, rootless,
    Docker Desktop)."""
    host = os.environ.get("DOCKER_HOST", "").strip()
    if host:
        return [host]
    candidates = ["/var/run/docker.sock", "/run/docker.sock"]
    if os.environ.get("XDG_RUNTIME_DIR"):
        candidates.append(os.path.join(os.environ["XDG_RUNTIME_DIR"], "docker.sock"))
    candidates.append(str(Path.home() / ".docker" / "run" / "docker.sock"))
    return [f"unix://{path}" for path in dict.fromkeys(candidates) if os.path.exists(path)]


def _ping(endpoint: str, timeout: float) -> bool:
    """GET /_ping on a Docker engine endpoint (unix:// or tcp://); True when it answers 200."""
    parts = urlsplit(endpoint)
    try:
        if parts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: object = parts.path
        elif parts.scheme in ("tcp", "http", "https"):
            if os.environ.get("DOCKER_TLS_VERIFY") or parts.scheme == "https":
                # A TLS engine: an accepted connection is as much as we can check without the client certificate.
                with socket.create_connection((parts.hostname or "localhost", parts.port or 2376), timeout=timeout):
                    return True
            sock = socket.socket(socket.AF_INET6 if ":" in (parts.hostname or "") else socket.AF_INET,
                                 socket.SOCK_STREAM)
            address = (parts.hostname or "localhost", parts.port or 2375)
        else:
            return _docker_cli_answers()
        with sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = sock.recv(256).split(b"\r\n", 1)[0]
    except OSError:
        return False
    return status_line.startswith(b"HTTP/") and status_line.split(b" ")[1:2] == [b"200"]


def _docker_cli_answers() -> bool:
    """For endpoints we cannot ping ourselves (ssh://, contexts): ask the CLI, briefly."""
    executable = safety.resolve_command("docker")
    try:
        done = subprocess.run([executable, "version", "--format", "{{.Server.Version}}"], capture_output=True,
                              timeout=DOCKER_CLI_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


@functools.lru_cache(maxsize=1)
def docker_available() -> bool:
    """Can this process start Docker images: docker allowed (AGENT_ALLOWED_COMMANDS), its CLI installed and a
    daemon answering? Checked once per process (at most about half a second when nothing answers);
    `docker_available.cache_clear()` checks again."""
    if "docker" not in safety.allowed_commands() or safety.resolve_command("docker") is None:
        return False
    if sandbox.enabled():
        return False  # servers run in the bubblewrap sandbox, which has no Docker engine in it
    return any(_ping(endpoint, DOCKER_PING_TIMEOUT_SECONDS) for endpoint in _docker_endpoints())


def launcher_available(kind: str) -> bool:
    """Can a recipe of this kind (npm, pypi, oci) be started on this machine?"""
    launcher = _LAUNCHERS.get(kind)
    if launcher is None:
        return False
    if launcher == "docker":
        return docker_available()
    return launcher in safety.allowed_commands() and safety.resolve_command(launcher) is not None


# --- credentials ---------------------------------------------------------------------------------------

def needs_sign_in(*, description: str, instructions: list | None = None) -> bool:
    """Is this credential an OAuth token that only an interactive sign-in with the hosted service yields?"""
    text = " ".join([description or "", *[str(step) for step in instructions or []]])
    return bool(_SIGN_IN.search(text))


@dataclass
class Launchability:
    """What a server's recipes and credentials say about building an agent with it here."""

    runnable_here: bool = False
    # Why it is not runnable here (shown to the user in the choice's reason), or "".
    blocker: str = ""


def _signed_in(credential: dict) -> bool:
    return needs_sign_in(description=credential.get("description", ""), instructions=credential.get("instructions"))


def _required(credential: dict) -> bool:
    return counts_as_required(required=credential.get("required"), secret=credential.get("secret"),
                              default=credential.get("default"), key=credential.get("key", ""))


def assess(recipe_kinds: set[str], credentials: list[dict]) -> Launchability:
    """`credentials`: the server's CredentialRequirements as dicts (location, description, instructions, required,
    secret, default)."""
    facts = Launchability()
    if any(launcher_available(kind) for kind in recipe_kinds & set(_LAUNCHERS)):
        facts.runnable_here = True
        return facts
    signed_in = [c for c in credentials if _signed_in(c)]
    if "remote" in recipe_kinds:
        headers = [c for c in credentials if c.get("location") == "header"]
        # A header the user fills in themselves, and no required one that only a sign-in yields.
        if any(not _signed_in(c) for c in headers) and not any(_required(c) for c in headers if _signed_in(c)):
            facts.runnable_here = True
            return facts
    blockers = []
    if "oci" in recipe_kinds:
        blockers.append("its Docker image needs a Docker daemon, and none answers here")
    if recipe_kinds & {"npm", "pypi"}:
        blockers.append("its launcher (npx/uvx) is not available here")
    if "remote" in recipe_kinds:
        blockers.append("its hosted endpoint needs an OAuth sign-in, not a key you can paste" if signed_in
                        else "its hosted endpoint takes no key you can paste")
    facts.blocker = "; ".join(blockers) or "no launch recipe"
    return facts
