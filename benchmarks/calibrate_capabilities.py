"""Calibrates the capability thresholds of agents_app.master.needs (config.json `analysis`): for each clause of
benchmarks/data/capability_calibration.json (our own clauses), the best candidate's measured fit and whether that
candidate fits (one of the clause's `fits` words is in its slug, name or description); then, for each threshold, how often the planner would decide right: choose when the best fits,
ask or leave it to the model when it does not. Labels are
crude (a word of the clause's `fits` list in the server's slug, name or description: "car" is in "cart"),
so the figures are a guide, not a quality measure.

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
        text = f"{server.slug} {server.name} {server.description}".lower() if server else ""
        good = bool(item["fits"]) and any(word in text for word in item["fits"])
        rows.append((item["clause"], fit, good, server.slug if server else "-"))
        print(f"{fit:5.3f} {'fits ' if good else 'WRONG' if item['fits'] else 'none '} {item['clause']!r:60} {rows[-1][3]}")
    print("\nchoose at fit >= t (fixed floor 0.35: below it no need, between floor and t a question)")
    print("     t   right choice  wrong choice  question  rightly nothing  wrongly nothing")
    for step in range(35, 62, 2):
        threshold = step / 100
        chosen = [(fit, good) for _, fit, good, _ in rows if fit >= threshold]
        asked = [good for _, fit, good, _ in rows if 0.35 <= fit < threshold]
        nothing = [good for _, fit, good, _ in rows if fit < 0.35]
        print(f"  {threshold:.2f}  {sum(g for _, g in chosen):12d}  {sum(not g for _, g in chosen):12d}"
              f"  {len(asked):8d}  {sum(not g for g in nothing):15d}  {sum(nothing):15d}")

if __name__ == "__main__":
    main()
