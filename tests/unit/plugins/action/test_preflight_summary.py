"""preflight_summary action: the real ActionModule.run() with a stand-in task; files written for real."""
import json

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.action import preflight_summary


def report(host, status, failed=()):
    checks = [{"name": name, "status": "fail", "observed": "bad", "expected": "good", "fix": "fix it",
               "remediation": None} for name in failed]
    return {"host": host, "status": status, "failed": list(failed), "warnings": [], "skipped": [], "checks": checks,
            "remediation": [], "summary": {}, "message": ""}


HOSTVARS = {"gpu01": {"ansible_facts": {"sglang_preflight_report": report("gpu01", "pass")}},
            "gpu02": {"ansible_facts": {"sglang_preflight_report": report("gpu02", "fail", ["numa_balancing"])}}}


@pytest.fixture
def run_action(run_controller_action):
    def run(args, hostvars=None):
        return run_controller_action(preflight_summary.ActionModule, args,
                                     {"hostvars": HOSTVARS if hostvars is None else hostvars})
    return run


def test_writes_both_files_and_returns_the_summary(tmp_path, run_action):
    results = tmp_path / "results" / "run1"
    out = run_action({"hosts": ["gpu01", "gpu02", "gpu03"], "run_id": "run1", "results_dir": str(results)})
    assert not out.get("failed") and out["changed"] is False
    document = json.loads((results / "preflight.json").read_text())
    assert [h["status"] for h in document["hosts"]] == ["pass", "fail", "error"]
    assert out["failed_hosts"] == ["gpu02", "gpu03"] == document["failed_hosts"]
    assert (results / "preflight.md").read_text().startswith("# Preflight run1\n")
    assert out["summary"][1] == "report: %s" % (results / "preflight.md")
    assert oct((results / "preflight.json").stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in results.iterdir()) == ["preflight.json", "preflight.md"]  # no temp file left


def test_a_second_run_replaces_the_files(tmp_path, run_action):
    run_action({"hosts": ["gpu01", "gpu02"], "run_id": "run1", "results_dir": str(tmp_path)})
    run_action({"hosts": ["gpu01"], "run_id": "run1", "results_dir": str(tmp_path)})
    assert [h["host"] for h in json.loads((tmp_path / "preflight.json").read_text())["hosts"]] == ["gpu01"]


def test_bad_arguments_and_an_unwritable_directory_fail_with_the_variable_to_fix(tmp_path, run_action):
    out = run_action({"hosts": "gpu01", "run_id": "run1", "results_dir": str(tmp_path)})
    assert out["failed"] and "hosts must be a list" in out["msg"]
    out = run_action({"hosts": ["gpu01"], "run_id": "", "results_dir": str(tmp_path)})
    assert out["failed"] and "run_id" in out["msg"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = run_action({"hosts": ["gpu01"], "run_id": "run1", "results_dir": str(blocker / "sub")})
    assert out["failed"] and "sglang_results_dir" in out["msg"] and str(blocker / "sub") in out["msg"]


def test_hosts_without_a_report_fact_or_unknown_to_the_inventory_are_errors(tmp_path, run_action):
    hostvars = dict(HOSTVARS, gpu03={"inventory_hostname": "gpu03"})
    out = run_action({"hosts": ["gpu01", "gpu02", "gpu03", "gpu04"], "run_id": "run1", "results_dir": str(tmp_path)},
                     hostvars)
    assert [h["status"] for h in out["report"]["hosts"]] == ["pass", "fail", "error", "error"]
    assert out["failed_hosts"] == ["gpu02", "gpu03", "gpu04"]
    assert out["summary"][:3] == ["preflight run1: 4 hosts, 1 pass, 0 warn, 1 fail, 2 without a report",
                                  "report: %s" % (tmp_path / "preflight.md"), "FAIL numa_balancing on 1 host: gpu02"]


def test_drift_fail_must_be_a_list_naming_the_variable(tmp_path, run_action):
    out = run_action({"hosts": ["gpu01"], "run_id": "run1", "results_dir": str(tmp_path), "drift_fail": "driver"})
    assert out["failed"] and "sglang_preflight_drift_fail" in out["msg"]


def test_drift_fail_fails_the_odd_host_out(tmp_path, run_action):
    def versioned(host, mec):
        rep = report(host, "pass")
        rep["versions"] = {"device": "0x74a1", "facts": {"fw.mec": mec}}
        return {"ansible_facts": {"sglang_preflight_report": rep}}
    hostvars = {"gpu01": versioned("gpu01", "177"), "gpu02": versioned("gpu02", "166"), "gpu03": versioned("gpu03", "177")}
    out = run_action({"hosts": ["gpu01", "gpu02", "gpu03"], "run_id": "run1", "results_dir": str(tmp_path),
                      "drift_fail": ["fw.mec"]}, hostvars)
    assert out["drift_failed"] == ["gpu02"] == out["failed_hosts"]
    assert "fw.mec 166, majority 177 (2 of 3 hosts with device 0x74a1)" in out["drift_messages"]["gpu02"]
