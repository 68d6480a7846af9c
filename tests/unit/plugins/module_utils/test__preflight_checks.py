"""module_utils/_preflight_checks.py: REGISTRY is the one list of checks, and its doc rows tell the truth."""
import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _preflight, _preflight_checks
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._preflight_checks import CHECKS, NO_FIX, REGISTRY


def test_names_are_unique_and_in_report_order():
    assert len(set(CHECKS)) == len(CHECKS) == len(REGISTRY)
    assert CHECKS == tuple(check.name for check in REGISTRY)


@pytest.mark.parametrize("check", REGISTRY, ids=CHECKS)
def test_each_entry_names_its_own_function_and_has_one_line_doc_cells(check):
    assert check.evaluate is getattr(_preflight_checks, "check_" + check.name)
    for cell in (check.fails_when, check.safe_fix):
        assert cell.strip() and "\n" not in cell and "|" not in cell


def remediated(status, tmp_path):
    """The checks plan_remediation fixes when every check has `status` and every fix is possible."""
    report = {"checks": [{"name": name, "status": status} for name in CHECKS]}
    facts = {"roots": {"proc_root": str(tmp_path / "proc")}, "amdgpu_loaded": False, "numa_balancing": 1}
    settings = {"sysctl_file": str(tmp_path / "sysctl.conf"), "cache_dir": str(tmp_path / "cache")}
    return {action["check"] for action in _preflight.plan_remediation(report, facts, settings)}


def test_the_safe_fix_column_names_exactly_the_checks_remediation_fixes(tmp_path):
    documented = {c.name for c in REGISTRY if c.safe_fix != NO_FIX and not c.safe_fix.startswith("never")}
    assert documented == {"amdgpu_loaded", "numa_balancing", "cache_dir"}
    assert remediated("fail", tmp_path) | remediated("warn", tmp_path) == documented
