"""run_id action: the real ActionModule.run() (no connection) and its draw() with an injected
clock; directories created for real in a temporary directory."""
import os
import re

from ansible_collections.sglang_rocm.fleet.plugins.action import run_id

T0 = 1764733200.4  # 2025-12-03T03:40:00Z


def test_two_runs_in_the_same_second_get_distinct_ids_and_directories(tmp_path, run_controller_action):
    first = run_controller_action(run_id.ActionModule, {"results_dir": str(tmp_path)})
    second = run_controller_action(run_id.ActionModule, {"results_dir": str(tmp_path)})
    for result in (first, second):
        assert not result.get("failed") and result["changed"] is False
        assert re.match(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$", result["run_id"]), result["run_id"]
        assert os.path.isdir(result["path"]) and result["path"] == str(tmp_path / result["run_id"])
    assert first["run_id"] != second["run_id"]
    same = [run_id.draw(str(tmp_path), False, now=lambda: T0)["run_id"] for attempt in range(20)]
    assert {i.split("-")[0] for i in same} == {"20251203T034000Z"}
    assert len(set(same)) == 20
    assert sorted(os.listdir(tmp_path)) == sorted([first["run_id"], second["run_id"]] + same)


def test_an_existing_run_directory_fails_rather_than_merges(tmp_path):
    existing = tmp_path / "20251203T034000Z-abcdef"
    existing.mkdir()
    (existing / "fleet_report.json").write_text("{}")
    result = run_id.draw(str(tmp_path), False, now=lambda: T0, token=lambda: "abcdef")
    assert result["failed"] is True
    assert result["msg"].startswith("run_id: the results directory %s of the new run id already "
                                    "exists: another run made it; nothing was written to it" % existing)
    assert os.listdir(existing) == ["fleet_report.json"]


def test_check_mode_creates_nothing_and_an_unwritable_parent_names_it(tmp_path, run_controller_action):
    result = run_controller_action(run_id.ActionModule, {"results_dir": str(tmp_path / "r")},
                                   check_mode=True)
    assert not result.get("failed") and not (tmp_path / "r").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_id.draw(str(blocker / "results"), False, now=lambda: T0, token=lambda: "abcdef")
    assert result["failed"] and "could not create the results directory %s/results/" % blocker in result["msg"]
    assert "sglang_results_dir" in result["msg"]
