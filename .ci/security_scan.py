"""Security scans for CI (`make security`): bandit on our code, pip-audit on our installed dependencies.

- bandit: every finding fails the scan unless `.ci/bandit-allowlist.txt` lists its file and check with a reason.
  Allowlist lines that no longer match anything are reported, so the list does not go stale unnoticed.
- pip-audit: audits the environment `make venv` installed from requirements.txt (every transitive dependency at
  the version actually installed, no second resolution). A known vulnerability fails the scan unless
  `.ci/pip-audit-ignore.txt` lists its id with a reason. pip-audit needs an advisory service on the internet (the
  PyPI JSON API or OSV). When it cannot reach one (no dependency could be looked up), the dependency scan is
  reported as NOT DONE in a banner, and does not fail the build unless SECURITY_SCAN_STRICT=1 (set it where CI
  has internet access).

Exit status: 0 clean (or dependency scan not possible, non-strict), 1 a finding, 2 a malformed allowlist.
"""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404 - runs bandit and pip-audit from our venv with argument lists
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CODE = ["mcpagent", "registry_app", "sessions_app", "agents_app"]
BANDIT_ALLOWLIST = ROOT / ".ci" / "bandit-allowlist.txt"
AUDIT_IGNORE = ROOT / ".ci" / "pip-audit-ignore.txt"
STRICT = os.environ.get("SECURITY_SCAN_STRICT", "") == "1"


class AllowlistError(Exception):
    pass


def _entries(path: Path, fields: int) -> list[list[str]]:
    """Non-comment lines split into `fields` parts, the last being a required reason."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(None, fields - 1)
        if len(parts) < fields or not parts[-1].strip():
            raise AllowlistError(f"{path.name}:{number}: every entry needs a reason: {line!r}")
        entries.append(parts)
    return entries


def bandit_findings() -> int:
    allowed = {(file, check): reason for file, checks, reason in _entries(BANDIT_ALLOWLIST, 3)
               for check in checks.split(",")}
    result = subprocess.run(  # nosec B603 - fixed program and arguments
        [str(BIN / "bandit"), "-r", *CODE, "-f", "json", "-q"], cwd=ROOT, capture_output=True, text=True,
        check=False)
    report = json.loads(result.stdout)
    if report.get("errors"):
        for error in report["errors"]:
            print(f"bandit could not scan {error.get('filename')}: {error.get('reason')}")
        return 1
    used, new = set(), []
    for finding in report["results"]:
        key = (finding["filename"], finding["test_id"])
        if key in allowed:
            used.add(key)
        else:
            new.append(finding)
    for finding in new:
        print(f"bandit {finding['test_id']} ({finding['issue_severity']}) {finding['filename']}:"
              f"{finding['line_number']}: {finding['issue_text']}")
    for file, check in sorted(set(allowed) - used):
        print(f"note: .ci/bandit-allowlist.txt lists {file} {check}, which bandit no longer reports: remove it")
    print(f"bandit: {len(report['results'])} finding(s), {len(report['results']) - len(new)} allowlisted with a "
          f"reason, {len(new)} not")
    return 1 if new else 0


def dependency_findings() -> int:
    ignored = {advisory: reason for advisory, reason in _entries(AUDIT_IGNORE, 2)}
    args = [str(BIN / "pip-audit"), "--format", "json", "--progress-spinner", "off"]
    for advisory in ignored:
        args += ["--ignore-vuln", advisory]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)  # nosec B603
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        return _not_done(f"pip-audit failed: {(result.stderr or result.stdout).strip()[-400:]}")
    dependencies = report.get("dependencies", [])
    audited = [d for d in dependencies if "skip_reason" not in d]
    if dependencies and not audited:
        return _not_done(f"none of {len(dependencies)} dependencies could be looked up "
                         f"({dependencies[0]['skip_reason']})")
    vulnerable = [(d, v) for d in audited for v in d.get("vulns", [])]
    for dependency, vuln in vulnerable:
        fixed = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
        print(f"pip-audit {vuln['id']} in {dependency['name']} {dependency['version']} (fixed in: {fixed}): "
              f"{(vuln.get('description') or '').strip()[:200]}")
    skipped = [d for d in dependencies if "skip_reason" in d]
    for dependency in skipped:
        print(f"note: not audited: {dependency['skip_reason']}")
    print(f"pip-audit: {len(audited)} dependencies audited, {len(vulnerable)} known vulnerabilit"
          f"{'y' if len(vulnerable) == 1 else 'ies'} not in .ci/pip-audit-ignore.txt, {len(ignored)} ignored with a reason")
    return 1 if vulnerable else 0


def _not_done(why: str) -> int:
    line = "!" * 100
    print(f"{line}\n!! DEPENDENCY SCAN NOT DONE: the advisory service (PyPI JSON API / OSV) is unreachable here.\n"
          f"!! {why}\n!! Dependencies were NOT checked for known vulnerabilities. "
          f"{'Failing (SECURITY_SCAN_STRICT=1).' if STRICT else 'Not failing the build (set SECURITY_SCAN_STRICT=1 to fail).'}"
          f"\n{line}")
    return 1 if STRICT else 0


def main() -> int:
    try:
        code = bandit_findings()
        return max(code, dependency_findings())
    except AllowlistError as exc:
        print(exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
