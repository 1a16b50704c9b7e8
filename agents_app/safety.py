"""Safety checks for MCP server entries, run before anything is stored or started.

An MCP config is a request to run a program on our machines, so an entry must use a known launcher
(AGENT_ALLOWED_COMMANDS), pass its arguments as a list (we never use a shell), and keep to the
launcher's safe form: `python -m <allowed module>` (allowed_python_modules), `npx [-y] <package>`,
`uvx [--from <spec>] <package>`, `docker run -i --rm [--init] [-e KEY ...] <image>`,
`python|node <script in AGENT_ALLOWED_SCRIPT_DIRS>`. npx and uvx never launch an interpreter, a shell, a
package manager or a command runner (INTERPRETERS, COMMAND_RUNNERS). An absolute host path in the arguments must lie
inside AGENT_ALLOWED_PATH_DIRS (path_arguments lists them, for the sandbox to bind), and mcp-server-git must be
given its --repository. A literal argument that looks like a secret is refused: secrets travel as credentials
(env values or references). Remote servers must use https (http only for loopback when allowed). Every
violation is collected and reported together, naming the server and the field, never echoing a secret.
"""

import ipaddress
import math
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from agents_app.references import is_reference
from mcpagent.errors import ApplicationError
from mcpagent.redaction import SECRET_OPTION_RE, secret_shape
from registry_app.models import LaunchRecipe

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

# `python -m` runs only these, the modules AGENT_ALLOWED_PYTHON_MODULES adds, and those the catalogue's launch
# recipes name (see allowed_python_modules).
SHIPPED_PYTHON_MODULES = {"mcp_server_time", "mcp_server_git"}
PYTHON_LAUNCHERS = ("python", "python3")
# Programs that run whatever code or command their arguments give (interpreters, shells, package managers, command
# runners): what npx/uvx start must never be one. Matched on the normalised name (program_name).
INTERPRETERS = {
    "python", "pypy", "ipython", "bpython", "ptpython", "jupyter", "xonsh", "hy",
    "pip", "uv", "uvx", "pipx", "poetry", "pdm", "hatch", "conda", "mamba", "micromamba",
    "node", "nodejs", "deno", "bun", "bunx", "tsx", "ts-node", "esno", "zx",
    "npm", "npx", "yarn", "pnpm", "pnpx", "corepack", "cross-env", "env-cmd", "dotenv", "dotenv-cli", "concurrently",
    "npm-run-all", "nodemon",
    "sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "csh", "tcsh", "ash", "rbash", "busybox", "toybox",
    "perl", "ruby", "irb", "php", "lua", "luajit", "tclsh", "wish", "awk", "gawk", "mawk", "pwsh", "powershell",
}
# System programs that run another command. `uvx --from pkg NAME` runs NAME from PATH when pkg has no such
# executable, so uvx's executable must not be one; npx installs the npm package of that name (several are MCP
# servers: "ssh", "docker"), so its package may.
COMMAND_RUNNERS = {
    "env", "xargs", "nohup", "setsid", "timeout", "nice", "sudo", "su", "doas", "script", "screen", "tmux", "ssh",
    "strace", "gdb", "expect", "osascript", "cmd", "docker", "podman", "git",
}
GIT_SERVER = "mcp-server-git"
GIT_REPOSITORY_OPTIONS = ("--repository", "-r")
PATH_ARGUMENT_RE = re.compile(r"^(?:--?[A-Za-z0-9][A-Za-z0-9_.-]*=)?(?:file://)?(/.*)$")
REFERENCE_PLACEHOLDER_RE = re.compile(r"^\{[A-Za-z_][A-Za-z0-9_.-]*\}$")  # see mcp_config.arg_placeholder
# A long run of mixed letters and digits with near-maximal character entropy (random keys); no '/', so paths and
# owner/repo names are not candidates, and a long all-lowercase word run means a name, not a key.
SECRET_CANDIDATE_RE = re.compile(r"[A-Za-z0-9_+=-]{24,}")
SECRET_MIN_ENTROPY_RATIO = 0.84
SECRET_HINT = ("pass it as a credential (an `env` value, or a {\"$credential\": KEY} reference) instead of a literal "
               "argument")
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
    _check_literal_secrets(check, args)
    launcher_rules = {"python": _check_python, "python3": _check_python, "npx": _check_npx, "uvx": _check_uvx,
                      "docker": _check_docker, "node": _check_node}
    rule = launcher_rules.get(command)
    program = rule(check, args) if rule is not None else command
    if command != "docker":  # a docker server's arguments are paths in its container, not on our host
        _check_paths(check, args, script=command in ("node", *PYTHON_LAUNCHERS) and program is None)
    if program is not None and program_name(program) == GIT_SERVER:
        _check_git_repository(check, args)
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


def allowed_python_modules() -> set[str]:
    """Modules `python -m` may run: the servers we ship, AGENT_ALLOWED_PYTHON_MODULES, and the modules catalogue
    launch recipes run as `python -m X` (standard-library modules excepted: none of them is an MCP server, and
    several run code or read files given as arguments)."""
    catalogue = {args[1] for args in LaunchRecipe.objects.filter(command__in=PYTHON_LAUNCHERS)
                 .values_list("args", flat=True)
                 if isinstance(args, list) and len(args) >= 2 and args[0] == "-m" and isinstance(args[1], str)}
    catalogue = {m for m in catalogue if m.split(".")[0] not in sys.stdlib_module_names}
    return {*SHIPPED_PYTHON_MODULES, *settings.AGENT_ALLOWED_PYTHON_MODULES, *catalogue}


def _python_module_allowed(module: str) -> bool:
    if module in SHIPPED_PYTHON_MODULES or module in settings.AGENT_ALLOWED_PYTHON_MODULES:
        return True  # without a query
    return module in allowed_python_modules()


def _check_python(check: _Check, args: list[str]) -> str | None:
    if args[:1] == ["-m"] and len(args) >= 2:
        module = args[1]
        if not PYTHON_MODULE_RE.match(module):
            check.fail("args[1]", "must be a Python module name (dotted identifiers)")
        elif not _python_module_allowed(module):
            check.fail("args[1]", f"module `{module}` is not an allowed MCP server (allowed: the servers we ship, "
                                  "the catalogue's and AGENT_ALLOWED_PYTHON_MODULES)")
        else:
            return module
        return None
    if args and args[0].endswith(".py") and _script_allowed(args[0]):
        return None
    check.fail("args", "python runs only as `python -m <module> [args]` (or a script in AGENT_ALLOWED_SCRIPT_DIRS)")
    return None


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


def program_name(spec: str) -> str:
    """The bare, normalised name of a program or package spec: lower case, without an npm scope, version,
    extras or version suffix ("@scope/npm@10" -> "npm", "Python3.12" -> "python", "pip3" -> "pip")."""
    name = spec.strip().lower().rsplit("/", 1)[-1]
    name = re.split(r"[@\[=<>~!;]", name, maxsplit=1)[0].removesuffix(".exe")
    name = re.sub(r"[_.]+", "-", name)
    return re.sub(r"-?[0-9]+(?:-[0-9]+)*[a-z]?$", "", name) or name


def _check_launched(check: _Check, index: int, spec: str, launcher: str, *, executable: bool = False) -> bool:
    """False (and a violation) when `spec`, a package (or with `executable`, uvx's executable) is denied."""
    if program_name(spec) in (INTERPRETERS | COMMAND_RUNNERS if executable else INTERPRETERS):
        check.fail(f"args[{index}]", f"{launcher} may not start an interpreter, a shell, a package manager or a "
                                     "command runner; name the MCP server's own package")
        return False
    return True


def _check_npx(check: _Check, args: list[str]) -> str | None:
    index = 0
    while index < len(args) and args[index] in ("-y", "--yes", "-q", "--quiet"):
        index += 1
    if index >= len(args):
        check.fail("args", "npx needs a package: `npx -y <package>[@version] [args]`")
        return None
    package = args[index]
    if package.startswith("-"):
        # -c/--call run a shell command; -p lets a package name an arbitrary binary.
        check.fail(f"args[{index}]", f"npx option `{package}` is not allowed (only -y/--yes before the package)")
    elif not NPM_PACKAGE_RE.match(package):
        check.fail(f"args[{index}]", "must be an npm package name (no paths, URLs or git specs)")
    elif _check_launched(check, index, package, "npx"):
        return package
    return None


def _check_uvx(check: _Check, args: list[str]) -> str | None:
    index = 0
    while index < len(args) and args[index] in ("-q", "--quiet", "--from"):
        if args[index] == "--from":
            if index + 1 >= len(args) or not PYPI_PACKAGE_RE.match(args[index + 1]):
                check.fail(f"args[{index + 1}]", "--from needs a PyPI requirement (no paths, URLs or git specs)")
                return None
            if not _check_launched(check, index + 1, args[index + 1], "uvx"):
                return None
            index += 2
        else:
            index += 1
    if index >= len(args):
        check.fail("args", "uvx needs a package: `uvx <package>[==version] [args]`")
        return None
    package = args[index]
    if package.startswith("-"):
        check.fail(f"args[{index}]", f"uvx option `{package}` is not allowed (only --from before the package)")
    elif not PYPI_PACKAGE_RE.match(package):
        check.fail(f"args[{index}]", "must be a PyPI package name (no paths, URLs or git specs)")
    elif _check_launched(check, index, package, "uvx", executable=True):
        return package
    return None


def path_arguments(args: list[str]) -> list[str]:
    """The absolute host paths an (already checked) argument list names: `/x/y`, `--opt=/x/y` and `file:///x/y`
    arguments, normalised, in order, without repeats. A script run by python/node is one of them."""
    found = [os.path.normpath(m.group(1)) for arg in args if isinstance(arg, str)
             for m in [PATH_ARGUMENT_RE.match(arg)] if m]
    return list(dict.fromkeys(found))


def argument_path_problem(arg: str) -> str | None:
    """Why an argument's host path (see path_arguments) may not be given to a server, or None."""
    match = PATH_ARGUMENT_RE.match(arg)
    return path_problem(match.group(1)) if match else None


def path_problem(path: str) -> str | None:
    """Why an absolute host path may not be given to a server, or None: it must lie inside a folder of
    AGENT_ALLOWED_PATH_DIRS once symlinks are resolved, without '..'."""
    if ".." in Path(path).parts:
        return "a host path must not contain '..'"
    resolved = Path(path).resolve()
    if not any(resolved.is_relative_to(Path(d).resolve()) for d in settings.AGENT_ALLOWED_PATH_DIRS):
        return "a host path must lie inside one of the folders of AGENT_ALLOWED_PATH_DIRS"
    return None


def _check_paths(check: _Check, args: list[str], *, script: bool) -> None:
    for index, arg in enumerate(args):
        if index == 0 and script:
            continue  # the script: _script_allowed checked it against AGENT_ALLOWED_SCRIPT_DIRS
        problem = argument_path_problem(arg)
        if problem:
            check.fail(f"args[{index}]", problem)


def _check_git_repository(check: _Check, args: list[str]) -> None:
    """mcp-server-git without --repository serves any repository the process can read: it must be given one,
    as an absolute path (checked by _check_paths) or a credential reference."""
    for index, arg in enumerate(args):
        option, has_value, value = arg.partition("=")
        if option in GIT_REPOSITORY_OPTIONS and not has_value and index + 1 < len(args):
            option, has_value, value = option, True, args[index + 1]
        if option in GIT_REPOSITORY_OPTIONS and has_value:
            if value.startswith("/") or REFERENCE_PLACEHOLDER_RE.match(value):
                return
            check.fail(f"args[{index}]", "--repository must be an absolute path inside AGENT_ALLOWED_PATH_DIRS")
            return
    check.fail("args", f"{GIT_SERVER} needs `--repository PATH` (a folder inside AGENT_ALLOWED_PATH_DIRS); "
                       "without it, it works on any repository it can read")


def _check_literal_secrets(check: _Check, args: list[str]) -> None:
    """A literal argument that looks like a secret is refused without echoing it: a secret on a command line is
    visible to every process and stored in plain text with the agent."""
    for index, arg in enumerate(args):
        option, has_value, value = arg.partition("=")
        kind = secret_like(arg)
        if kind is not None:
            check.fail(f"args[{index}]", f"looks like {kind}: {SECRET_HINT}")
        elif has_value and SECRET_OPTION_RE.match(option) and _literal_value(value):
            check.fail(f"args[{index}]", f"has a literal value for {option}: {SECRET_HINT}")
        elif SECRET_OPTION_RE.match(arg) and index + 1 < len(args) and _literal_value(args[index + 1]) \
                and secret_like(args[index + 1]) is None:
            check.fail(f"args[{index + 1}]", f"is a literal value for {arg}: {SECRET_HINT}")


def _literal_value(value: str) -> bool:
    """Whether an option's value is given literally (not a credential reference, a host path or another option)."""
    return bool(value) and not value.startswith(("-", "/")) and not REFERENCE_PLACEHOLDER_RE.match(value)


def secret_like(text: str) -> str | None:
    """What kind of secret `text` contains ("a GitHub token", "a high-entropy key"), or None."""
    kind = secret_shape(text)
    if kind is not None:
        return kind
    for candidate in SECRET_CANDIDATE_RE.findall(text):
        if _random_looking(candidate):
            return "a high-entropy key"
    return None


def _random_looking(candidate: str) -> bool:
    if not (re.search(r"[A-Z]", candidate) and re.search(r"[a-z]", candidate) and re.search(r"[0-9]", candidate)):
        return False
    if re.search(r"[a-z]{8}", candidate):
        return False  # words: a name, not a key
    counts = [candidate.count(c) for c in set(candidate)]
    entropy = -sum(n / len(candidate) * math.log2(n / len(candidate)) for n in counts)
    return entropy / math.log2(len(candidate)) >= SECRET_MIN_ENTROPY_RATIO


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
