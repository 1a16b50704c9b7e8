"""The CI security scan (.ci/security_scan.py) with the real bandit: a finding fails unless allowlisted with a
reason, an entry without a reason is refused, and the project's own code passes with the shipped allowlist."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _scan_module():
    spec = importlib.util.spec_from_file_location("security_scan", ROOT / ".ci" / "security_scan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def scan(tmp_path):
    """The scan pointed at a small tree of its own (one module with a shell=True call)."""
    module = _scan_module()
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "jobs.py").write_text(
        "import subprocess\n\n\ndef run(name):\n    return subprocess.call('ls ' + name, shell=True)\n")
    module.ROOT, module.CODE = tmp_path, ["app"]
    module.BANDIT_ALLOWLIST = tmp_path / "allow.txt"
    return module


def test_unlisted_finding_fails(scan, capsys):
    scan.BANDIT_ALLOWLIST.write_text("# nothing accepted\n")
    assert scan.bandit_findings() == 1
    out = capsys.readouterr().out
    assert "B602" in out and "app/jobs.py:5" in out


def test_allowlisted_findings_pass_and_stale_entries_are_reported(scan, capsys):
    scan.BANDIT_ALLOWLIST.write_text(
        "app/jobs.py B404,B602 the name comes from our own fixed list, never from a request\n"
        "app/gone.py B105 an entry for a file that no longer exists\n")
    assert scan.bandit_findings() == 0
    assert "app/gone.py B105, which bandit no longer reports" in capsys.readouterr().out


def test_entry_without_reason_is_refused(scan):
    scan.BANDIT_ALLOWLIST.write_text("app/jobs.py B404,B602\n")
    with pytest.raises(scan.AllowlistError, match="needs a reason"):
        scan.bandit_findings()


def test_project_code_passes_with_the_shipped_allowlist():
    assert _scan_module().bandit_findings() == 0
