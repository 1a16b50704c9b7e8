"""Sandbox benchmarks (bubblewrap, agents_app.sandbox). Prints figures only.

1. What the sandbox adds to each server start (goal <= 50 ms): a trivial program (/bin/true, our interpreter's
   `python -c pass`) started directly and through `sandboxed(...)` (set-up, run, teardown), interleaved; then a
   real server's validation (runtime.validate_servers on `python -m mcp_server_time`) with SANDBOX=bwrap vs none.
2. Agent creation with a catalogue server (PyPI recipe, mcp-server-time) whose package was prefetched into an
   empty private cache: agent_create_for_catalogue_servers + agent_validate, timed together (goal p95 <= 2 s).

    .venv/bin/python benchmarks/bench_sandbox.py [--runs N]

--runs sets every count; by default 50 trivial starts, 15 validations and 10 agent creations.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, percentile, setup_django  # noqa: E402

DATABASE = "bench_sandbox"
TIME_PACKAGE = "mcp-server-time"
TIME_VERSION = "2026.10.19"


def _ms(values: list[float]) -> str:
    return f"p50 {percentile(values, 50) * 1000:6.1f} ms   p95 {percentile(values, 95) * 1000:6.1f} ms"


def _line(label: str, figures: str) -> str:
    return f"    {label + ':':<31}{figures}"


def _overhead(direct: list[float], boxed: list[float]) -> str:
    p50 = (percentile(boxed, 50) - percentile(direct, 50)) * 1000
    p95 = (percentile(boxed, 95) - percentile(direct, 95)) * 1000
    return _line("overhead", f"p50 {p50:+6.1f} ms   p95 {p95:+6.1f} ms   (goal <= 50 ms)")


def trivial_starts(runs: int) -> None:
    from agents_app.sandbox import sandboxed

    def direct(argv: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
        return time.perf_counter() - started

    def boxed(argv: list[str]) -> tuple[float, float]:
        """(whole start: set-up, run, teardown; the run alone)."""
        started = time.perf_counter()
        with sandboxed(server="bench", executable=argv[0], args=argv[1:], env={}, cwd=None) as launch:
            run_started = time.perf_counter()
            subprocess.run([launch.command, *launch.args], env=launch.env, cwd=launch.cwd, check=True,
                           stdin=subprocess.DEVNULL)
            ran = time.perf_counter() - run_started
        return time.perf_counter() - started, ran

    print(f"trivial program started directly vs in the sandbox ({runs} runs each, interleaved):")
    for label, argv in (("/bin/true", ["/bin/true"]), ("python -c pass", [sys.executable, "-c", "pass"])):
        direct(argv), boxed(argv)  # warm-up: page cache, the egress proxy, the sandbox's /etc skeleton
        plain, whole, run_only = [], [], []
        for _ in range(runs):
            plain.append(direct(argv))
            total, ran = boxed(argv)
            whole.append(total)
            run_only.append(ran)
        print(f"  {label}:")
        print(_line("direct", _ms(plain)))
        print(_line("sandboxed", _ms(whole)))
        print(_line("  of which the bwrap run", _ms(run_only)))
        print(_overhead(plain, whole))


def validation_starts(runs: int) -> None:
    from django.test import override_settings

    from agents_app import mcp_config, runtime

    spec = mcp_config.launch_spec(name="time", values={},
                                  entry={"transport": "stdio", "command": "python", "args": ["-m", "mcp_server_time"]})

    def validate(backend: str) -> tuple[float, float]:
        """(validate_servers wall time, the server's own start+list seconds)."""
        with override_settings(SANDBOX=backend, ALLOW_UNSANDBOXED_SERVERS=True):
            started = time.perf_counter()
            check = runtime.validate_servers([spec], timeout=60)["time"]
            took = time.perf_counter() - started
        assert check.ok, check.error
        return took, check.seconds

    validate("none"), validate("bwrap")  # warm-up
    took: dict[str, list[float]] = {"none": [], "bwrap": []}
    for _ in range(runs):
        for backend in took:
            took[backend].append(validate(backend)[0])
    print(f"validation of `python -m mcp_server_time` (runtime.validate_servers, {runs} runs each, interleaved):")
    print(_line("SANDBOX=none", _ms(took["none"])))
    print(_line("SANDBOX=bwrap", _ms(took["bwrap"])))
    print(_overhead(took["none"], took["bwrap"]))


def catalogue_agent_creation(runs: int) -> None:
    from django.test import override_settings

    from agents_app.models import Agent
    from agents_app.sandbox import prefetch
    from agents_app.services import agent_create_for_catalogue_servers, agent_validate
    from mcpagent.services import api_client_create
    from registry_app.models import LaunchRecipe, McpServer

    server = McpServer.objects.create(slug=TIME_PACKAGE, name="Time", description="Current time and time zones")
    spec = f"{TIME_PACKAGE}=={TIME_VERSION}"
    LaunchRecipe.objects.create(server=server, kind="pypi", identifier=TIME_PACKAGE, version=TIME_VERSION,
                                command="uvx", args=[spec])
    client, _ = api_client_create(name=f"bench-sandbox-{time.time_ns()}")
    # An empty cache of our own: the first fetch is a real one, and the service's cache is left alone.
    cache = tempfile.mkdtemp(prefix="mcpagent-bench-sandbox-cache-")
    try:
        with override_settings(SANDBOX="bwrap", SANDBOX_CACHE_DIR=Path(cache)):
            started = time.perf_counter()
            outcome = prefetch.prefetch("uvx", [spec])
            fetched = time.perf_counter() - started
            print(f"catalogue agent with a prefetched PyPI server ({spec} via uvx, SANDBOX=bwrap):")
            print(_line("first prefetch (empty cache)", f"{fetched:.1f} s ({outcome})"))
            if outcome != "fetched":
                print("    skipped: the package could not be fetched")
                return
            took, validation = [], []
            for n in range(runs + 1):  # the first one is a warm-up
                started = time.perf_counter()
                agent = agent_create_for_catalogue_servers(client=client, session=None, server_slugs=[TIME_PACKAGE],
                                                           user_prompt=f"What time is it? ({n})",
                                                           workflow="Get the current time")
                agent = agent_validate(agent_id=agent.id)
                elapsed = time.perf_counter() - started
                assert agent.status == Agent.Status.READY, agent.error
                if n:
                    took.append(elapsed)
                    validation.append(agent.metadata["validation"]["servers"][TIME_PACKAGE]["seconds"])
        print(_line(f"create + validate ({runs} runs)", f"p50 {percentile(took, 50):.2f} s   p95 "
                    f"{percentile(took, 95):.2f} s   max {max(took):.2f} s   (goal p95 <= 2 s)"))
        print(_line("server start+list in it", f"p50 {percentile(validation, 50):.2f} s   p95 "
                    f"{percentile(validation, 95):.2f} s"))
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help="runs of every measurement")
    options = parser.parse_args()
    setup_django(DATABASE, load_catalogue=False, fresh=True)
    print(f"# bench_sandbox — {time.strftime('%Y-%m-%d')} — {machine()}")
    trivial_starts(options.runs or 50)
    validation_starts(options.runs or 15)
    catalogue_agent_creation(options.runs or 10)
