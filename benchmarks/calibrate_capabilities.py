"""Calibrates the capability thresholds of agents_app.master.needs (config.json `analysis`): for each clause of
benchmarks/data/capability_calibration.json (our own clauses), the best candidate's measured fit and whether that
candidate fits; then, for each threshold, how often the planner would decide right: choose when the best fits,
ask or leave it to the model when it does not.

    .venv/bin/python benchmarks/calibrate_capabilities.py
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, setup_django  # noqa: E402

setup_django("bench_capabilities")

from agents_app.master.needs import capability_candidates  # noqa: E402
from registry_app.selectors import server_search  # noqa: E402


def main() -> None:
    data = json.loads((ROOT / "benchmarks" / "data" / "capability_calibration.json").read_text())["clauses"]
    rows = []
    for item in data:
        ranked = capability_candidates(item["clause"], lambda q, n: server_search(query=q, limit=n), set())
        server, fit, _ = ranked[0] if ranked else (None, 0.0, "")
        text = f"{server.slug} {server.name}".lower() if server else ""
        good = bool(item["fits"]) and any(word in text for word in item["fits"])
        rows.append((item["clause"], fit, good, server.slug if server else "-"))
        print(f"{fit:5.3f} {'fits ' if good else 'WRONG' if item['fits'] else 'none '} {item['clause']!r:60} {rows[-1][3]}")
    print("\nthreshold  right decisions (choose iff the best fits)")
    for step in range(25, 66, 3):
        threshold = step / 100
        right = sum((fit >= threshold) == good for _, fit, good, _ in rows)
        print(f"  {threshold:.2f}    {right}/{len(rows)}")


if __name__ == "__main__":
    main()
