"""Package prefetch: a server's npm or PyPI package is fetched once into the shared cache, then every sandbox
starts it from there (the cache is a read-only layer in each sandbox; writes stay private to that sandbox).

The fetch is the trusted step: it runs our launchers only, in a sandbox of its own with the cache writable and
no credentials, and never runs package code (uv installs wheels only, `--no-build`; npm runs no install scripts,
`--ignore-scripts`). The program it runs after installing is `true`. A package that needs a build or an install
script still starts, but then builds inside each sandbox, from scratch.
"""

import hashlib
import logging
import subprocess
import time
from pathlib import Path

from django.conf import settings

from agents_app import safety
from agents_app.sandbox import bwrap, enabled, sandboxed

logger = logging.getLogger(__name__)

PREFETCH_TIMEOUT_SECONDS = 600
_UVX_OPTIONS_WITH_VALUE = {"--from"}


def package_of(command: str, args: list) -> tuple[str, str] | None:
    """("uv" | "npm", package spec) of a uvx/npx launch, None for other launchers."""
    plain = [a for a in args if isinstance(a, str)]
    if command == "uvx":
        index, spec = 0, None
        while index < len(plain) and plain[index].startswith("-"):
            if plain[index] in _UVX_OPTIONS_WITH_VALUE and index + 1 < len(plain):
                spec = plain[index + 1]
                index += 2
            else:
                index += 1
        spec = spec or (plain[index] if index < len(plain) else None)
        return ("uv", spec) if spec else None
    if command == "npx":
        package = next((a for a in plain if not a.startswith("-")), None)
        return ("npm", package) if package else None
    return None


def _marker(family: str, spec: str) -> Path:
    digest = hashlib.sha256(f"{family}\0{spec}".encode()).hexdigest()[:32]
    return Path(settings.SANDBOX_CACHE_DIR) / "prefetched" / digest


def _failure_marker(marker: Path) -> Path:
    return marker.with_name(f"{marker.name}.failed")


def _age_seconds(path: Path) -> float | None:
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except FileNotFoundError:
        return None


def _failed(failure_marker: Path, why: str) -> str:
    failure_marker.parent.mkdir(parents=True, exist_ok=True)
    failure_marker.write_text(f"{why}\n")
    return f"failed: {why}"


def is_prefetched(command: str, args: list) -> bool:
    package = package_of(command, args)
    return package is None or _marker(*package).exists()


def prefetch(command: str, args: list) -> str:
    """Fetch the launch's package into the shared cache unless it is there: "cached", "fetched", "not a package",
    or "failed: <why>" (a failure is not fatal: the server then fetches inside its own sandbox)."""
    package = package_of(command, args)
    if package is None:
        return "not a package"
    family, spec = package
    marker = _marker(family, spec)
    if marker.exists():
        return "cached"
    failed = _failure_marker(marker)
    since = _age_seconds(failed)
    if since is not None and since < settings.PACKAGE_PREFETCH_RETRY_AFTER_SECONDS:
        # Every session that picks a popular server asks for its package: a fetch that just failed (no network,
        # a broken package) is not run again for each of them.
        return f"failed {since:.0f} s ago: {failed.read_text(errors='replace').strip()}"
    if family == "uv":
        executable, fetch_args = safety.resolve_command("uvx"), ["--no-build", "--from", spec, "true"]
    else:
        executable, fetch_args = safety.resolve_command("npm"), ["exec", "--yes", "--ignore-scripts",
                                                                 f"--package={spec}", "--", "true"]
    if executable is None:
        return f"failed: the {family} launcher is not installed"
    started = time.monotonic()
    caches = [str(path) for path in bwrap.cache_dirs().values()]
    for path in caches:
        Path(path).mkdir(parents=True, exist_ok=True)
    try:
        # Bytecode compiled once here: each server's sandbox sees the cache read-only and would otherwise
        # compile every module it imports at each start.
        with sandboxed(server=f"prefetch {spec}", executable=executable, args=fetch_args,
                       env={"UV_COMPILE_BYTECODE": "1"}, cwd=None, writable_caches=True) as launch:
            done = subprocess.run([launch.command, *launch.args], env=launch.env, cwd=launch.cwd,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                                  timeout=PREFETCH_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return _failed(failed, f"still fetching after {PREFETCH_TIMEOUT_SECONDS} s")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [""])[-1][:300]
        logger.info("prefetch of %s %s failed (%s): %s", family, spec, done.returncode, last)
        return _failed(failed, last)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{family} {spec}\n")
    failed.unlink(missing_ok=True)
    logger.info("prefetched %s %s in %.1f s", family, spec, time.monotonic() - started)
    return "fetched"


def prefetch_all(launches: list[tuple[str, list]]) -> dict[str, str]:
    """prefetch for each (command, args); {package spec: outcome}. Nothing to do when servers run unsandboxed:
    the launchers then use the host's own caches."""
    if not enabled():
        return {}
    outcomes = {}
    for command, args in launches:
        package = package_of(command, args)
        if package is not None:
            outcomes[package[1]] = prefetch(command, args)
    return outcomes
