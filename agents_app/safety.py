"""Safety checks for MCP server entries, run before anything is stored or started.

An MCP config is a request to run a program on our machines, so an entry must use a known launcher
(AGENT_ALLOWED_COMMANDS), pass its arguments as a list (we never use a shell), and keep to the
launcher's safe form: `python -m <module>`, `npx [-y] <package>`, `uvx [--from <spec>] <package>`,
`docker run -i --rm [--init] [-e KEY ...] <image>`, `node <script in AGENT_ALLOWED_SCRIPT_DIRS>`.
Remote servers must use https (http only for loopback when allowed). Every violation is collected and
reported together, naming the server and the field.
"""

import ipaddress
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from agents_app.mcp_config import is_reference
from mcpagent.errors import ApplicationError

MAX_SERVERS = 10
MAX_ARGS = 64
MAX_ARG_CHARS = 1024
MAX_ENV = 64
MAX_VALUE_CHARS = 16 * 1024
MAX_HEADERS = 32
MAX_URL_CHARS = 2048

SERVER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
ENV_KEY_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,127}$")
# Never through a shell, but a metacharacter in an argument is a sign of an injection attempt.
SHELL_METACHARACTERS = (";", "|", "&", "$", "`", ">", "<", "\n", "\r", "\x00")
PYTHON_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
NPM_PACKAGE_RE = re.compile(r"^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*(@[A-Za-z0-9._^~*+-]+)?$")
PYPI_PACKAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,.-]+\])?((==|~=|>=|<=|@)[A-Za-z0-9._*+!-]+)?$")
DOCKER_IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(@sha256:[a-f0-9]{64})?$")

# Modules that would change our installation or give an interactive/eval surface.
PYTHON_MODULE_DENYLIST = {
    "pip", "ensurepip", "venv", "virtualenv", "site", "code", "pdb", "idlelib", "pydoc", "http", "runpy",
    "compileall", "zipapp", "webbrowser", "timeit", "cProfile", "profile", "trace", "pydoc_data", "uv",
    "django", "celery", "manage", "mcpagent", "agents_app", "sessions_app", "registry_app", "gunicorn",
}
# Env keys that change how programs load code or where packages come from.
ENV_KEY_DENYLIST = {
    "PATH", "HOME", "SHELL", "USER", "LOGNAME", "IFS", "ENV", "BASH_ENV", "PROMPT_COMMAND", "CDPATH",
    "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONEXECUTABLE", "PYTHONBREAKPOINT",
    "PYTHONINSPECT", "PYTHONPLATLIBDIR", "PYTHONSAFEPATH", "NODE_OPTIONS", "NODE_PATH", "NODE_EXTRA_CA_CERTS",
    "PERL5OPT", "PERL5LIB", "RUBYOPT", "RUBYLIB", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "GIT_SSH",
    "GIT_SSH_COMMAND", "GIT_EXEC_PATH", "GIT_PROXY_COMMAND", "GIT_ASKPASS", "SSH_ASKPASS", "GIT_EXTERNAL_DIFF",
    "GIT_EDITOR", "GIT_PAGER", "EDITOR", "VISUAL", "PAGER", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
}
ENV_KEY_DENIED_PREFIXES = ("LD_", "DYLD_", "NPM_CONFIG_", "UV_", "PIP_", "DOCKER_", "GIT_CONFIG", "MCPAGENT_")
DOCKER_FORBIDDEN_HINT = "docker runs only as `docker run -i --rm [--init] [-e KEY ...] IMAGE [ARGS]`"
TRANSPORTS = {"stdio": "stdio", "http": "http", "streamable-http": "http", "streamable_http": "http", "sse": "sse"}


@dataclass
class Violation:
    server: str
    field: str
    problem: str

    def as_dict(self) -> dict:
        return {"server": self.server, "field": self.field, "problem": self.problem}


@dataclass
class _Check:
    server: str
    violations: list[Violation] = field(default_factory=list)

    def fail(self, field_name: str, problem: str) -> None:
        self.violations.append(Violation(self.server, field_name, problem))


def allowed_commands() -> list[str]:
    return list(settings.AGENT_ALLOWED_COMMANDS)


def resolve_command(command: str) -> str | None:
    """The executable for an allowed launcher: `python` is always this interpreter; others come from the
    venv's bin directory (console scripts installed with us) or PATH. None when it is not installed."""
    if command in ("python", "python3"):
        return sys.executable
    return shutil.which(command, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def check_servers(servers: Any) -> dict[str, dict]:
    """Validate a `mcpServers` mapping and return it normalised ({name: entry}); raise a 400 naming every
    violation otherwise. Values of env/headers are kept as given (the caller turns them into references)."""
    if not isinstance(servers, dict) or not servers:
        raise ApplicationError(
            "mcp_config.mcpServers must be an object with at least one server.",
            code="invalid_mcp_config", details={"field": "mcp_config.mcpServers"},
        )
    if len(servers) > settings.AGENT_MAX_SERVERS:
        raise ApplicationError(
            f"Too many MCP servers ({len(servers)}); at most {settings.AGENT_MAX_SERVERS} per agent.",
            code="invalid_mcp_config", details={"field": "mcp_config.mcpServers", "max": settings.AGENT_MAX_SERVERS},
        )
    normalised: dict[str, dict] = {}
    violations: list[Violation] = []
    for name, entry in servers.items():
        check = _Check(server=str(name)[:80])
        result = check_server(check, name, entry)
        violations.extend(check.violations)
        if result is not None:
            normalised[name] = result
    if violations:
        first = violations[0]
        raise ApplicationError(
            f"MCP server '{first.server}' is not allowed: {first.field}: {first.problem}",
            code="unsafe_mcp_config",
            details={"violations": [v.as_dict() for v in violations], "allowed_commands": allowed_commands()},
        )
    return normalised


def check_server(check: _Check, name: Any, entry: Any) -> dict | None:
    if not isinstance(name, str) or not SERVER_NAME_RE.match(name) or "__" in name:
        check.fail("name", "use 1-63 letters, digits, '-' or '_' (no '__'), starting with a letter or digit")
    if not isinstance(entry, dict):
        check.fail("entry", "must be an object with `command`/`args`/`env` or `url`/`transport`/`headers`")
        return None
    known = {"command", "args", "env", "url", "transport", "type", "headers", "description"}
    for unknown in sorted(set(entry) - known):
        check.fail(str(unknown)[:40], "unknown field (allowed: command, args, env, url, transport, headers)")
    transport = entry.get("transport") or entry.get("type") or ("stdio" if "command" in entry else "http")
    if transport not in TRANSPORTS:
        check.fail("transport", "must be stdio, http (streamable-http) or sse")
        return None
    transport = TRANSPORTS[transport]
    if transport == "stdio":
        if "url" in entry or "headers" in entry:
            check.fail("url", "a stdio server has a command, not a url/headers")
        return _check_stdio(check, entry)
    if "command" in entry or "args" in entry or "env" in entry:
        check.fail("command", "a remote server has a url (and headers), not a command/args/env")
    return _check_remote(check, entry, transport)


def _check_stdio(check: _Check, entry: dict) -> dict | None:
    command = entry.get("command")
    args = entry.get("args", [])
    env = entry.get("env", {}) or {}
    if not isinstance(command, str) or not command.strip():
        check.fail("command", "a program name is required")
        return None
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        check.fail("args", "must be a list of strings (arguments are never passed through a shell)")
        return None
    if not isinstance(env, dict):
        check.fail("env", "must be an object of NAME: value strings")
        return None
    if any(c.isspace() for c in command):
        check.fail("command", "must be a single program name; put its arguments in `args`")
        return None
    if "/" in command or "\\" in command or ".." in command:
        check.fail("command", "must be a launcher name, not a path")
        return None
    if _has_metacharacter(command):
        check.fail("command", "contains a shell metacharacter")
        return None
    if command not in allowed_commands():
        check.fail("command", f"`{command}` is not an allowed launcher (allowed: {', '.join(allowed_commands())})")
        return None
    if len(args) > MAX_ARGS:
        check.fail("args", f"at most {MAX_ARGS} arguments")
        return None
    for index, arg in enumerate(args):
        if len(arg) > MAX_ARG_CHARS:
            check.fail(f"args[{index}]", f"longer than {MAX_ARG_CHARS} characters")
        elif _has_metacharacter(arg):
            check.fail(f"args[{index}]", "contains a shell metacharacter (; | & $ ` > < or a newline)")
    if check.violations:
        return None
    launcher_rules = {"python": _check_python, "python3": _check_python, "npx": _check_npx, "uvx": _check_uvx,
                      "docker": _check_docker, "node": _check_node}
    rule = launcher_rules.get(command)
    if rule is not None:
        rule(check, args)
    _check_env(check, env)
    return {"transport": "stdio", "command": command, "args": list(args), "env": dict(env)}


def _check_env(check: _Check, env: dict) -> None:
    if len(env) > MAX_ENV:
        check.fail("env", f"at most {MAX_ENV} variables")
        return
    for key, value in env.items():
        if not isinstance(key, str) or not ENV_KEY_RE.match(key):
            check.fail(f"env.{str(key)[:40]}", "names must match ^[A-Z_][A-Z0-9_]*$")
        elif key in ENV_KEY_DENYLIST or key.startswith(ENV_KEY_DENIED_PREFIXES):
            check.fail(f"env.{key}", "may not be overridden (it changes how programs or packages are loaded)")
        elif is_reference(value):
            continue  # a credential already stored (catalogue servers, collected in the session)
        elif not isinstance(value, str):
            check.fail(f"env.{key}", "must be a string")
        elif len(value) > MAX_VALUE_CHARS or "\x00" in value:
            check.fail(f"env.{key}", f"must be at most {MAX_VALUE_CHARS} characters without NUL bytes")


def _check_python(check: _Check, args: list[str]) -> None:
    if args[:1] == ["-m"] and len(args) >= 2:
        module = args[1]
        if not PYTHON_MODULE_RE.match(module):
            check.fail("args[1]", "must be a Python module name (dotted identifiers)")
        elif module.split(".")[0] in PYTHON_MODULE_DENYLIST:
            check.fail("args[1]", f"module `{module}` may not be run as a server")
        return
    if args and args[0].endswith(".py") and _script_allowed(args[0]):
        return
    check.fail("args", "python runs only as `python -m <module> [args]` (or a script in AGENT_ALLOWED_SCRIPT_DIRS)")


def _check_node(check: _Check, args: list[str]) -> None:
    if not args or args[0].startswith("-") or not _script_allowed(args[0]):
        check.fail("args[0]", "node runs only a script inside AGENT_ALLOWED_SCRIPT_DIRS, without node options")


def _script_allowed(path: str) -> bool:
    if not path.startswith("/") or "/../" in path or path.endswith("/.."):
        return False
    resolved = Path(path).resolve()
    for directory in settings.AGENT_ALLOWED_SCRIPT_DIRS:
        root = Path(directory).resolve()
        if resolved.is_relative_to(root) and resolved.is_file():
            return True
    return False


def _check_npx(check: _Check, args: list[str]) -> None:
    index = 0
    while index < len(args) and args[index] in ("-y", "--yes", "-q", "--quiet"):
        index += 1
    if index >= len(args):
        check.fail("args", "npx needs a package: `npx -y <package>[@version] [args]`")
        return
    package = args[index]
    if package.startswith("-"):
        # -c/--call run a shell command; -p lets a package name an arbitrary binary.
        check.fail(f"args[{index}]", f"npx option `{package}` is not allowed (only -y/--yes before the package)")
    elif not NPM_PACKAGE_RE.match(package):
        check.fail(f"args[{index}]", "must be an npm package name (no paths, URLs or git specs)")


def _check_uvx(check: _Check, args: list[str]) -> None:
    index = 0
    while index < len(args) and args[index] in ("-q", "--quiet", "--from"):
        if args[index] == "--from":
            if index + 1 >= len(args) or not PYPI_PACKAGE_RE.match(args[index + 1]):
                check.fail(f"args[{index + 1}]", "--from needs a PyPI requirement (no paths, URLs or git specs)")
                return
            index += 2
        else:
            index += 1
    if index >= len(args):
        check.fail("args", "uvx needs a package: `uvx <package>[==version] [args]`")
        return
    package = args[index]
    if package.startswith("-"):
        check.fail(f"args[{index}]", f"uvx option `{package}` is not allowed (only --from before the package)")
    elif not PYPI_PACKAGE_RE.match(package):
        check.fail(f"args[{index}]", "must be a PyPI package name (no paths, URLs or git specs)")


def _check_docker(check: _Check, args: list[str]) -> None:
    if args[:1] != ["run"]:
        check.fail("args[0]", DOCKER_FORBIDDEN_HINT)
        return
    seen: set[str] = set()
    index = 1
    while index < len(args) and args[index].startswith("-"):
        flag = args[index]
        if flag in ("-i", "--interactive", "--rm", "--init"):
            seen.add({"--interactive": "-i"}.get(flag, flag))
            index += 1
        elif flag in ("-e", "--env"):
            if index + 1 >= len(args) or not ENV_KEY_RE.match(args[index + 1]):
                check.fail(f"args[{index + 1}]", "docker -e takes a variable NAME only; its value comes from env")
                return
            index += 2
        else:
            check.fail(f"args[{index}]", f"docker option `{flag}` is not allowed; {DOCKER_FORBIDDEN_HINT}")
            return
    if not {"-i", "--rm"} <= seen:
        check.fail("args", f"docker needs -i and --rm; {DOCKER_FORBIDDEN_HINT}")
    if index >= len(args) or not DOCKER_IMAGE_RE.match(args[index]):
        check.fail("args", "docker needs an image name after its options")


def _check_remote(check: _Check, entry: dict, transport: str) -> dict | None:
    url = entry.get("url")
    headers = entry.get("headers", {}) or {}
    if not isinstance(url, str) or not url:
        check.fail("url", "a remote server needs a url")
        return None
    if len(url) > MAX_URL_CHARS or any(c in url for c in "\r\n\x00 "):
        check.fail("url", f"must be a single URL of at most {MAX_URL_CHARS} characters")
        return None
    problem = url_problem(url)
    if problem:
        check.fail("url", problem)
    if not isinstance(headers, dict) or len(headers) > MAX_HEADERS:
        check.fail("headers", f"must be an object with at most {MAX_HEADERS} headers")
        return None
    for name, value in headers.items():
        if not isinstance(name, str) or not HEADER_NAME_RE.match(name):
            check.fail(f"headers.{str(name)[:40]}", "header names are letters, digits and '-'")
        elif name.lower() in ("host", "content-length", "transfer-encoding", "connection"):
            check.fail(f"headers.{name}", "may not be set")
        elif is_reference(value):
            continue
        elif not isinstance(value, str) or len(value) > MAX_VALUE_CHARS or any(c in value for c in "\r\n\x00"):
            check.fail(f"headers.{name}", "must be a single-line string")
    if check.violations:
        return None
    return {"transport": transport, "url": url, "headers": dict(headers)}


def filled_url_problem(url: str) -> str | None:
    """Why a remote URL filled from a template with the user's settings (mcp_config.fill_url) may not be used,
    or None: the rules of a URL given whole (_check_remote), checked again on the URL as it will be used."""
    if len(url) > MAX_URL_CHARS or any(c in url for c in "\r\n\x00 "):
        return f"must be a single URL of at most {MAX_URL_CHARS} characters"
    return url_problem(url)


def url_problem(url: str) -> str | None:
    """Why a remote server URL is not allowed, or None. https only; http only to loopback in development."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 -- raises on a malformed port
    except ValueError:
        return "is not a valid URL"
    if parts.username or parts.password:
        return "must not contain credentials; put them in headers"
    if not host:
        return "has no host"
    loopback = _is_loopback(host)
    if parts.scheme == "http":
        if loopback and (settings.DEBUG or settings.AGENT_ALLOW_HTTP_LOOPBACK):
            return None
        return "must use https (http is allowed only for loopback in development)"
    if parts.scheme != "https":
        return "must use https"
    if _is_internal_literal(host) and not (loopback and (settings.DEBUG or settings.AGENT_ALLOW_HTTP_LOOPBACK)):
        return "must not point at a private, loopback or link-local address"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_internal_literal(host: str) -> bool:
    if _is_loopback(host):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_link_local or address.is_reserved or address.is_multicast


def _has_metacharacter(value: str) -> bool:
    return any(c in value for c in SHELL_METACHARACTERS)


def path_arguments(args: list[str]) -> list[str]:
    """The absolute host paths an argument list names (`/x/y` or `--opt=/x/y`)."""
    found = []
    for arg in args:
        value = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
        if value.startswith("/") and os.path.exists(value):
            found.append(value)
    return found
