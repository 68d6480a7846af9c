"""run_lock: the real main() on a lock file in a temporary directory."""

import json
import os
import time

import pytest
from unittest import mock

from ansible.module_utils.testing import patch_module_args

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _run_lock
from ansible_collections.sglang_rocm.fleet.plugins.modules import run_lock


def run_module(args, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args), mock.patch("sys.stdout.write") as out, \
            pytest.raises(SystemExit) as exc:
        run_lock.main()
    result = json.loads("".join(call.args[0] for call in out.call_args_list))
    result["_rc"] = exc.value.code
    return result


def take(tmp_path, run_id, **extra):
    return run_module(dict({"path": str(tmp_path / "run.lock"), "run_id": run_id,
                            "controller": "ctl01", "ttl": 3600, "host_name": "gpu07"}, **extra))


def test_take_keep_and_release(tmp_path):
    result = take(tmp_path, "r1", summary_path=str(tmp_path / "r1" / "summary.json"))
    assert result["_rc"] == 0 and result["changed"] and result["action"] == "take"
    lock = json.loads((tmp_path / "run.lock").read_text())
    assert (lock["run_id"], lock["controller"], lock["ttl"]) == ("r1", "ctl01", 3600)
    assert abs(lock["started"] - time.time()) < 60
    assert os.listdir(tmp_path) == ["run.lock"]  # no temporary file left
    assert take(tmp_path, "r1")["action"] == "keep"
    result = run_module({"path": str(tmp_path / "run.lock"), "run_id": "r1", "state": "absent"})
    assert result["_rc"] == 0 and result["changed"] and not (tmp_path / "run.lock").exists()


def test_a_second_run_fails_naming_the_holder_and_releases_nothing(tmp_path):
    take(tmp_path, "r1")
    result = take(tmp_path, "r2")
    assert result["_rc"] == 1 and result["holder"]["run_id"] == "r1"
    assert "is held by run r1 (controller ctl01, started " in result["msg"]
    assert result["msg"].startswith("gpu07: the run lock %s is held" % (tmp_path / "run.lock"))
    assert "sglang_run_lock_break=true" in result["msg"]
    result = run_module({"path": str(tmp_path / "run.lock"), "run_id": "r2", "state": "absent"})
    assert result["_rc"] == 0 and not result["changed"]
    assert json.loads((tmp_path / "run.lock").read_text())["run_id"] == "r1"


def test_break_lock_takes_a_held_lock(tmp_path):
    take(tmp_path, "r1")
    result = take(tmp_path, "r2", break_lock=True)
    assert result["_rc"] == 0 and result["action"] == "break" and result["changed"]
    assert result["msg"].endswith("broken (sglang_run_lock_break=true)")
    assert json.loads((tmp_path / "run.lock").read_text())["run_id"] == "r2"


def test_expired_and_finished_locks_are_stale(tmp_path):
    (tmp_path / "run.lock").write_text(_run_lock.lock_text("old", "ctl01", time.time() - 7200, 3600))
    result = take(tmp_path, "r2")
    assert result["_rc"] == 1 and "is stale: held by run old" in result["msg"]
    summary = tmp_path / "old" / "summary.json"
    (tmp_path / "run.lock").write_text(_run_lock.lock_text("old", "ctl01", time.time(), 3600,
                                                           str(summary)))
    assert "is held by run old" in take(tmp_path, "r2")["msg"]
    summary.parent.mkdir()
    summary.write_text("{}")
    result = take(tmp_path, "r2")
    assert result["_rc"] == 1 and "that run finished (it wrote %s)" % summary in result["msg"]
    assert take(tmp_path, "r2", break_lock=True)["action"] == "break"


def test_corrupt_lock_file(tmp_path):
    (tmp_path / "run.lock").write_text("{half a lo")
    result = take(tmp_path, "r2")
    assert result["_rc"] == 1 and "the lock file is corrupt: not JSON" in result["msg"]
    assert take(tmp_path, "r2", break_lock=True)["_rc"] == 0


def test_check_mode_creates_and_removes_nothing(tmp_path):
    result = run_module({"path": str(tmp_path / "run.lock"), "run_id": "r1"}, check_mode=True)
    assert result["_rc"] == 0 and result["changed"] and result["action"] == "take"
    assert os.listdir(tmp_path) == []
    take(tmp_path, "r1")
    result = run_module({"path": str(tmp_path / "run.lock"), "run_id": "r2"}, check_mode=True)
    assert result["_rc"] == 0 and not result["changed"]
    assert "is held by run r1" in result["msg"]
    run_module({"path": str(tmp_path / "run.lock"), "run_id": "r1", "state": "absent"},
               check_mode=True)
    assert (tmp_path / "run.lock").exists()


def test_losing_the_race_to_another_run_fails_naming_it(tmp_path, monkeypatch):
    """Another run creates the lock between this run's read and its exclusive create."""
    real_create = run_lock._create

    def racing_create(path, text):
        if not os.path.exists(path):
            real_create(path, _run_lock.lock_text("winner", "ctl02", time.time(), 3600))
        real_create(path, text)

    monkeypatch.setattr(run_lock, "_create", racing_create)
    result = take(tmp_path, "r2")
    assert result["_rc"] == 1 and "is held by run winner (controller ctl02" in result["msg"]
