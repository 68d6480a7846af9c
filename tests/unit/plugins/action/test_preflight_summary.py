"""preflight_summary action: the real ActionModule.run() with a stand-in task; files written for real."""
import json
from unittest import mock

from ansible_collections.sglang_rocm.fleet.plugins.action import preflight_summary


def report(host, status, failed=()):
    checks = [{"name": name, "status": "fail", "observed": "bad", "expected": "good", "fix": "fix it",
               "remediation": None} for name in failed]
    return {"host": host, "status": status, "failed": list(failed), "warnings": [], "skipped": [], "checks": checks,
            "remediation": [], "summary": {}, "message": ""}


HOSTVARS = {"gpu01": {"ansible_facts": {"sglang_preflight_report": report("gpu01", "pass")}},
            "gpu02": {"ansible_facts": {"sglang_preflight_report": report("gpu02", "fail", ["numa_balancing"])}}}


def run_action(args, hostvars=None):
    task = mock.MagicMock()
    task.args = args
    task.async_val = 0
    task.check_mode = False
    action = preflight_summary.ActionModule(task, mock.MagicMock(), mock.MagicMock(), loader=None, templar=None,
                                            shared_loader_obj=None)
    return action.run(task_vars={"hostvars": HOSTVARS if hostvars is None else hostvars})


def test_writes_both_files_and_returns_the_summary(tmp_path):
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


def test_a_second_run_replaces_the_files(tmp_path):
    run_action({"hosts": ["gpu01", "gpu02"], "run_id": "run1", "results_dir": str(tmp_path)})
    run_action({"hosts": ["gpu01"], "run_id": "run1", "results_dir": str(tmp_path)})
    assert [h["host"] for h in json.loads((tmp_path / "preflight.json").read_text())["hosts"]] == ["gpu01"]


def test_bad_arguments_and_an_unwritable_directory_fail_with_the_variable_to_fix(tmp_path):
    out = run_action({"hosts": "gpu01", "run_id": "run1", "results_dir": str(tmp_path)})
    assert out["failed"] and "hosts must be a list" in out["msg"]
    out = run_action({"hosts": ["gpu01"], "run_id": "", "results_dir": str(tmp_path)})
    assert out["failed"] and "run_id" in out["msg"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = run_action({"hosts": ["gpu01"], "run_id": "run1", "results_dir": str(blocker / "sub")})
    assert out["failed"] and "sglang_results_dir" in out["msg"] and str(blocker / "sub") in out["msg"]
