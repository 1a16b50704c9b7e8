"""`make bench`: every benchmark in turn, each printing its own figures (quality, speed, memory)."""

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    ("catalogue import", ["bench_import.py"]),
    ("search quality", ["bench_search_quality.py"]),
    ("search speed", ["bench_search_speed.py"]),
    ("master agent", ["bench_chat.py"]),
    ("planner quality", ["bench_planner_quality.py"]),
    ("planner on LiveMCPBench", ["bench_planner_livemcpbench.py"]),
    ("agents", ["bench_agents.py"]),
    ("sandbox", ["bench_sandbox.py"]),
    ("staff pages", ["bench_admin.py"]),
    ("agent runs, warm vs cold servers", ["bench_runs.py"]),
    ("schedules", ["bench_schedules.py"]),
    ("load", ["bench_load.py"]),
]


def main() -> int:
    failed = []
    print(f"# make bench — {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    for title, argv in SCRIPTS:
        print(f"\n## {title}: benchmarks/{argv[0]}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(HERE / argv[0]), *argv[1:]], cwd=HERE.parent)
        print(f"({argv[0]} took {time.monotonic() - started:.0f} s{'' if code == 0 else f', exit {code}'})", flush=True)
        if code:
            failed.append(argv[0])
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
