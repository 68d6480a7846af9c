"""rollout action: the real ActionModule.run() with a stand-in task; the summary written for real."""
import json
from unittest import mock

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.action import rollout

SETTINGS = {"target": {"sglang_image": "reg/sglang:new", "sglang_env": {"WANDB_KEY": "x1"},
                       "sglang_server_extra_args": ["--api-key", "x2"]},
            "batches": [1, "100%"], "max_fail_percentage": 0, "smoke_tiers": ["smoke"]}


def run_action(args, task_vars, extra_vars=None, check_mode=False):
    task = mock.MagicMock()
    task.args = args
    task.async_val = 0
    task.check_mode = check_mode
    templar = mock.MagicMock()
    templar.template.side_effect = lambda value: value
    action = rollout.ActionModule(task, mock.MagicMock(), templar, loader=None, templar=templar,
                                  shared_loader_obj=None)
    with mock.patch.object(rollout, "load_extra_vars", return_value=extra_vars or {}):
        return action.run(task_vars=dict(task_vars, ansible_check_mode=check_mode))


def test_check_refuses_bad_settings_and_extra_vars_and_passes_good_ones():
    out = run_action({"step": "check", "settings": dict(SETTINGS, batches=[])}, {})
    assert out["failed"] and "sglang_upgrade_batches=[]" in out["msg"]
    out = run_action({"step": "check", "settings": SETTINGS}, {}, extra_vars={"sglang_tp_size": 8})
    assert out["failed"] and "sglang_tp_size is set as extra vars" in out["msg"]
    out = run_action({"step": "check", "settings": SETTINGS}, {}, extra_vars={"sglang_port": 1})
    assert not out.get("failed") and out["changed"] is False


def test_an_unknown_step_fails():
    out = run_action({"step": "explode"}, {})
    assert out["failed"] and "step must be one of" in out["msg"]


def test_a_rollout_end_to_end_through_the_steps(tmp_path):
    path = str(tmp_path / "run1" / "upgrade_summary.json")
    hostvars = {"gpu01": {}, "gpu02": {}}
    common = {"ansible_play_hosts_all": ["gpu01", "gpu02"], "hostvars": hostvars, "sglang_run_id": "run1"}

    # batch 1: the canary
    out = run_action({"step": "batch", "settings": SETTINGS, "path": path}, dict(common, ansible_play_batch=["gpu01"]))
    assert out["stop"] is False and out["batch"] == 1
    hostvars["gpu01"]["sglang_upgrade_host"] = out["ansible_facts"]["sglang_upgrade_host"]
    progress = json.loads(open(path).read())
    assert progress["hosts_by_status"]["in_progress"] == ["gpu01"]
    assert progress["hosts_by_status"]["not_reached"] == ["gpu02"]

    variables = {"sglang_image": "reg/sglang:old", "sglang_model_path": "/m", "sglang_tokenizer_path": "/m",
                 "sglang_tp_size": 4, "sglang_env": {}, "sglang_server_extra_args": [], "sglang_container_env": {}}
    mine = dict(common, **variables, sglang_upgrade_host=hostvars["gpu01"]["sglang_upgrade_host"])
    before = {"exists": True, "container": {"Id": "c1", "Config": {"Image": "reg/sglang:old"}, "State": {}}}
    out = run_action({"step": "plan", "settings": SETTINGS, "before": before}, mine)
    assert out["apply"]["sglang_image"] == "reg/sglang:new" and out["apply"]["sglang_container_image_digest"] == ""
    assert out["rollback"]["sglang_image"] == "reg/sglang:old" and out["gates"] == ["smoke"]
    mine["sglang_upgrade_host"] = out["ansible_facts"]["sglang_upgrade_host"]
    assert mine["sglang_upgrade_host"]["before"]["id"] == "c1"

    out = run_action({"step": "record", "outcome": "failed", "error": "died while starting", "failed_task": "Server"},
                     mine)
    assert out["status"] == "rolling_back"
    mine["sglang_upgrade_host"] = out["ansible_facts"]["sglang_upgrade_host"]
    container = {"changed": True, "container": {"Id": "c3", "Config": {"Image": "reg/sglang:old"}, "State": {}}}
    out = run_action({"step": "record", "outcome": "rolled_back", "container": container, "server": {}}, mine)
    assert out["status"] == "rolled_back"
    hostvars["gpu01"]["sglang_upgrade_host"] = out["ansible_facts"]["sglang_upgrade_host"]

    # batch 2 does not start after a failed canary
    out = run_action({"step": "batch", "settings": SETTINGS, "path": path}, dict(common, ansible_play_batch=["gpu02"]))
    assert out["stop"] is True and "canary" in out["msg"] and "ansible_facts" not in out

    out = run_action({"step": "summary", "settings": SETTINGS, "path": path}, common)
    written = open(path).read()
    assert json.loads(written) == out["summary"]
    assert "x1" not in written and "x2" not in written and "x1" not in repr(out) and "x2" not in repr(out)
    assert out["summary"]["hosts_by_status"]["rolled_back"] == ["gpu01"]
    assert out["summary"]["hosts_by_status"]["not_reached"] == ["gpu02"]
    assert out["failures"] == {"gpu01": "gpu01: rolled_back (died while starting). Summary: %s" % path}


def test_the_record_keeps_the_hosts_startup_phases():
    startup = {"server": "restarted", "phases": {"ready": {"seconds": 9.5, "at": "2026-01-05T10:31:02.417+00:00"}}}
    mine = {"sglang_upgrade_host": {"status": "in_progress", "batch": 1, "before": {"exists": True}},
            "sglang_server_startup": startup}
    out = run_action({"step": "record", "outcome": "done", "container": {"changed": True},
                      "server": {"changed": True, "action": "restarted"}}, mine)
    assert out["ansible_facts"]["sglang_upgrade_host"]["after"]["startup"] == startup
    del mine["sglang_server_startup"]
    out = run_action({"step": "record", "outcome": "done", "container": {}, "server": {}}, mine)
    assert out["ansible_facts"]["sglang_upgrade_host"]["after"]["startup"] is None


def test_check_mode_records_would_upgrade():
    mine = {"sglang_upgrade_host": {"status": "in_progress", "batch": 1, "before": {"exists": True}}}
    out = run_action({"step": "record", "outcome": "done", "container": {"changed": True}, "server": {}}, mine,
                     check_mode=True)
    assert out["status"] == "would_upgrade"


@pytest.mark.parametrize("step", ["batch", "summary"])
def test_an_unwritable_results_dir_names_the_variable(tmp_path, step):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = run_action({"step": step, "settings": SETTINGS, "path": str(blocker / "run" / "s.json")},
                     {"ansible_play_hosts_all": [], "hostvars": {}, "ansible_play_batch": []})
    assert out["failed"] and "sglang_results_dir" in out["msg"]


def test_images_fails_only_for_missing_references():
    out = run_action({"step": "images", "image": "r:1", "results": [{"reference": "r:1", "found": True}]}, {})
    assert not out.get("failed")
    out = run_action({"step": "images", "image": "r:2", "results": [
        {"reference": "r:2", "found": False, "status": 404, "message": "manifest unknown"}]},
        {"inventory_hostname": "gpu01", "sglang_docker_host": "unix:///d.sock"})
    assert out["failed"] and "The registry has no image r:2 (404: manifest unknown)" in out["msg"]


def test_a_full_disk_names_the_summary_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    """issue 15: upgrade_summary.json is replaced whole or not at all."""
    import os
    path = tmp_path / "run1" / "upgrade_summary.json"
    task_vars = {"ansible_play_hosts_all": [], "hostvars": {}, "ansible_play_batch": []}
    assert not run_action({"step": "summary", "settings": SETTINGS, "path": str(path)}, task_vars).get("failed")
    before = path.read_bytes()

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    out = run_action({"step": "summary", "settings": SETTINGS, "path": str(path)}, task_vars)
    monkeypatch.undo()
    assert out["failed"] and "could not write %s: No space left on device" % path in out["msg"]
    assert path.read_bytes() == before and os.listdir(path.parent) == ["upgrade_summary.json"]
