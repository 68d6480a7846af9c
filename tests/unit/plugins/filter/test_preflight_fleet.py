"""preflight_fleet filter: reads each host's report fact, tolerates hosts without one."""
import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.sglang_rocm.fleet.plugins.filter.preflight_fleet import FilterModule


def report(host, status, failed=()):
    checks = [{"name": name, "status": "fail", "observed": "bad", "expected": "good", "fix": "fix it",
               "remediation": None} for name in failed]
    return {"host": host, "status": status, "failed": list(failed), "warnings": [], "skipped": [], "checks": checks,
            "remediation": [], "summary": {}, "message": ""}


def test_fleet_from_hostvars():
    hostvars = {"gpu01": {"ansible_facts": {"sglang_preflight_report": report("gpu01", "pass")}},
                "gpu02": {"ansible_facts": {"sglang_preflight_report": report("gpu02", "fail", ["numa_balancing"])}},
                "gpu03": {"inventory_hostname": "gpu03"}}
    out = FilterModule().filters()["preflight_fleet"](hostvars, ["gpu01", "gpu02", "gpu03", "gpu04"], "run1", "/r/p.md")
    assert [h["status"] for h in out["report"]["hosts"]] == ["pass", "fail", "error", "error"]
    assert out["report"]["failed_hosts"] == ["gpu02", "gpu03", "gpu04"]
    assert out["summary"][:3] == ["preflight run1: 4 hosts, 1 pass, 0 warn, 1 fail, 2 without a report",
                                  "report: /r/p.md", "FAIL numa_balancing on 1 host: gpu02"]
    assert out["markdown"].startswith("# Preflight run1\n")


def test_hosts_must_be_a_list():
    with pytest.raises(AnsibleFilterError):
        FilterModule().filters()["preflight_fleet"]({}, "gpu01", "run1")
