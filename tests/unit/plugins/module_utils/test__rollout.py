"""The rollout model: settings, plan, gates, batch gate, records and the scrubbed summary."""
import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _rollout

CURRENT = {"sglang_image": "reg/sglang:old", "sglang_model_path": "/m/a", "sglang_tokenizer_path": "/m/a",
           "sglang_tp_size": 4, "sglang_env": {}, "sglang_server_extra_args": [], "sglang_container_env": {},
           "sglang_container_registry_mirror": "mirror:5000", "sglang_container_image_digest": "sha256:" + "a" * 64}
SEEN = {"exists": True, "image": "reg/sglang:running", "id": "c1", "started_at": "t0", "config_hash": "h"}


def test_valid_settings_have_no_problems():
    assert _rollout.settings_problems({"sglang_image": "x"}, [1, "25%", "100%"], 0, ["smoke"]) == []
    assert _rollout.settings_problems({}, [3], "100", []) == []


@pytest.mark.parametrize("target, batches, max_fail, smoke, expected", [
    ({"sglang_port": 1}, [1], 0, [], "unknown here: sglang_port"),
    ("sglang_image", [1], 0, [], "not a dict"),
    ({}, [1, "0%"], 0, [], 'sglang_upgrade_batches=[1, "0%"]'),
    ({}, [], 0, [], "sglang_upgrade_batches=[]"),
    ({}, "100%", 0, [], 'sglang_upgrade_batches="100%"'),
    ({}, [0], 0, [], "sglang_upgrade_batches=[0]"),
    ({}, ["101%"], 0, [], "sglang_upgrade_batches"),
    ({}, [1], 101, [], "sglang_upgrade_max_fail_percentage=101 (an integer 0..100)"),
    ({}, [1], "-1", [], "sglang_upgrade_max_fail_percentage"),
    ({}, [1], True, [], "sglang_upgrade_max_fail_percentage"),
    ({}, [1], 0, "smoke", "sglang_upgrade_smoke_tiers"),
])
def test_each_bad_setting_is_named_with_what_it_takes(target, batches, max_fail, smoke, expected):
    problems = _rollout.settings_problems(target, batches, max_fail, smoke)
    assert len(problems) == 1 and expected in problems[0], problems
    assert _rollout.settings_message(problems).startswith("Nothing was changed. Invalid upgrade settings: ")


def test_an_unknown_key_message_does_not_print_a_secret_it_was_given():
    problems = _rollout.settings_problems({"sglang_api_key": "s3cret", "sglang_env": {"HF_TOKEN": "t0k"}}, [1], 0, [])
    assert "s3cret" not in problems[0] and "t0k" not in problems[0] and "unknown here: sglang_api_key" in problems[0]


def test_target_variables_given_as_extra_vars_are_named_in_target_order():
    assert _rollout.target_extra_vars({"sglang_env": {}, "sglang_image": "x", "sglang_port": 1}) == [
        "sglang_image", "sglang_env"]
    assert _rollout.target_extra_vars(None) == []
    message = _rollout.extra_vars_message(["sglang_image"])
    assert "sglang_image is set as extra vars (-e), which no rollback can override" in message
    assert "are set" in _rollout.extra_vars_message(["sglang_image", "sglang_env"])


def test_a_new_image_drops_the_pins_and_the_rollback_restores_the_recorded_image():
    apply, rollback = _rollout.plan_host(CURRENT, {"sglang_image": "reg/sglang:new"}, SEEN)
    assert apply == dict(CURRENT, sglang_image="reg/sglang:new", sglang_container_registry_mirror="",
                         sglang_container_image_digest="")
    assert rollback == dict(CURRENT, sglang_image="reg/sglang:running", sglang_container_registry_mirror="",
                            sglang_container_image_digest="")


def test_a_spec_change_keeps_the_pins_and_a_host_without_container_rolls_back_to_the_inventory():
    apply, rollback = _rollout.plan_host(CURRENT, {"sglang_tp_size": 8}, dict(SEEN, exists=False))
    assert apply == dict(CURRENT, sglang_tp_size=8)
    assert rollback == CURRENT


def test_a_tokenizer_that_followed_the_model_follows_it_to_the_target():
    apply = _rollout.plan_host(CURRENT, {"sglang_model_path": "/m/b"}, SEEN)[0]
    assert apply["sglang_tokenizer_path"] == "/m/b"
    apply = _rollout.plan_host(dict(CURRENT, sglang_tokenizer_path="/t"), {"sglang_model_path": "/m/b"}, SEEN)[0]
    assert apply["sglang_tokenizer_path"] == "/t"
    apply = _rollout.plan_host(CURRENT, {"sglang_model_path": "/m/b", "sglang_tokenizer_path": "/t2"}, SEEN)[0]
    assert apply["sglang_tokenizer_path"] == "/t2"


def test_seen_container_reads_docker_container_info():
    info = {"exists": True, "container": {"Id": "c1", "Config": {"Image": "i", "Labels": {
        "io.sglang-rocm.fleet.config-hash": "h"}}, "State": {"StartedAt": "t0"}}}
    assert _rollout.seen_container(info) == {"exists": True, "image": "i", "id": "c1", "started_at": "t0",
                                             "config_hash": "h"}
    assert _rollout.seen_container({"exists": False, "container": None})["exists"] is False


def test_gates_follow_the_gate_list():
    assert _rollout.host_gates([]) == []
    assert _rollout.host_gates(["smoke"]) == ["smoke"]
    assert set(_rollout.host_gates(["smoke"])) <= set(_rollout.GATES)


@pytest.mark.parametrize("records, max_fail, stop", [
    ({}, 0, False),
    ({"a": {"status": "upgraded", "batch": 1}, "b": {"status": "not_reached"}}, 0, False),
    ({"a": {"status": "rolled_back", "batch": 1}, "b": {"status": "not_reached"}}, 100, True),
    ({"a": {"status": "upgraded", "batch": 1}, "b": {"status": "failed", "batch": 2}}, 0, True),
    ({"a": {"status": "upgraded", "batch": 1}, "b": {"status": "failed", "batch": 2}}, 50, False),
    ({"a": {"status": "upgraded", "batch": 1}, "b": {"status": "unreachable", "batch": 2},
      "c": {"status": "skipped", "batch": 2}}, 33, True),
    ({"a": {"status": "skipped", "batch": 1}, "b": {"status": "in_progress", "batch": 2}}, 49, True),
])
def test_the_batch_gate(records, max_fail, stop):
    assert _rollout.batch_gate(records, max_fail)[0] is stop


def test_batches_are_numbered_from_the_records():
    assert _rollout.next_batch({}) == 1
    assert _rollout.next_batch({"a": {"batch": 2}, "b": {"status": "not_reached"}}) == 3


def test_records_after_each_outcome():
    started = {"status": "in_progress", "batch": 1, "before": SEEN}
    container = {"changed": True, "container": {"Id": "c2", "Config": {"Image": "new"}, "State": {"StartedAt": "t1"}}}
    server = {"changed": True, "action": "started", "pid": 7, "spec_hash": "s"}
    after = _rollout.after_change(container, server)
    assert after == {"image": "new", "id": "c2", "started_at": "t1", "server_action": "started", "server_pid": 7,
                     "spec_hash": "s", "startup": None}
    startup = {"server": "started", "phases": {"ready": {"seconds": 9.5, "at": "2026-01-05T10:31:02.417+00:00"}}}
    assert _rollout.after_change(container, server, startup)["startup"] == startup
    assert _rollout.host_changed(container, {}) and _rollout.host_changed({}, server)
    assert not _rollout.host_changed({"changed": False}, {"changed": False})
    done = _rollout.finished(started, "done", "t2", changed=True, after=after)
    assert done["status"] == "upgraded" and done["finished"] == "t2" and done["after"] == after
    assert _rollout.finished(started, "done", "t2", check_mode=True, changed=True)["status"] == "would_upgrade"
    assert _rollout.finished(started, "done", "t2", changed=False)["status"] == "skipped"
    failed = _rollout.finished(started, "failed", "t2", error="died", failed_task="Server")
    assert failed["status"] == "rolling_back" and failed["error"] == "died" and "finished" not in failed
    assert _rollout.finished(dict(started, before=dict(SEEN, exists=False)), "failed", "t2")["status"] == "failed"
    assert _rollout.finished(failed, "rolled_back", "t3", after=after)["status"] == "rolled_back"
    broken = _rollout.finished(failed, "rollback_failed", "t3", error="again")
    assert broken["status"] == "rollback_failed" and broken["rollback_error"] == "again" and broken["error"] == "died"
    assert _rollout.finished({}, "unreachable", "t3", error="ssh")["error"] == "ssh"
    with pytest.raises(ValueError):
        _rollout.finished({}, "exploded", "t3")


def test_the_summary_masks_secrets_of_the_target_and_of_the_errors():
    target = {"sglang_env": {"WANDB_KEY": "x1", "HF_AUTH": "x3", "OPENAI_KEY": "x4", "MODE": "fast"},
              "sglang_server_extra_args": ["--api-key", "x2", "--tp", "4"]}
    records = {"a": {"status": "upgraded", "batch": 1}, "b": {"status": "failed", "error": "boom", "batch": 2},
               "c": {"status": "not_reached"},
               "d": {"status": "rolled_back", "error": "died: unrecognized arguments: --api-key x2", "batch": 2}}
    data = _rollout.summary(records, target, [1, "100%"], "run1", False, "t")
    text = repr(data)
    for secret in ("x1", "x2", "x3", "x4"):
        assert "'%s'" % secret not in text
    assert data["target"]["sglang_env"]["MODE"] == "fast"
    assert data["target"]["sglang_server_extra_args"] == ["--api-key", "********", "--tp", "4"]
    assert data["counts"]["upgraded"] == 1 and data["hosts_by_status"]["not_reached"] == ["c"]
    assert set(data["counts"]) == set(_rollout.STATUSES)
    lines = _rollout.summary_lines(data, "/r/upgrade_summary.json")
    assert lines[0].startswith("Rollout of ") and "x2" not in lines[0] and "WANDB_KEY" in lines[0]
    assert "failed: b" in lines and "rolled_back: d" in lines and lines[-1] == "summary: /r/upgrade_summary.json"
    assert data["hosts"]["d"]["error"] == "died: unrecognized arguments: --api-key ********"
    assert _rollout.failures(records, "/r/s.json", target) == {
        "b": "b: failed (boom). Summary: /r/s.json",
        "d": "d: rolled_back (died: unrecognized arguments: --api-key ********). Summary: /r/s.json"}


def test_missing_images_and_their_message():
    results = [{"reference": "r:1", "found": True, "status": 200}, {"reference": "r:2", "found": False,
                                                                    "status": 404, "message": "manifest unknown"}]
    missing = _rollout.missing_images(results)
    assert [m["reference"] for m in missing] == ["r:2"]
    message = _rollout.missing_images_message(missing, "gpu01", "unix:///d.sock", "r:2")
    assert message.startswith("Nothing was changed. The registry has no image r:2 (404: manifest unknown)")
    assert "gpu01" in message and "sglang_upgrade_check_image=false" in message
    assert "could not be asked" not in message and "is it up" not in message


def test_a_registry_that_is_down_is_not_reported_as_a_missing_image():
    down = {"reference": "10.0.0.1:1/r:2", "found": False, "status": 500,
            "message": 'Get "http://10.0.0.1:1/v2/": dial tcp 10.0.0.1:1: connect: connection refused'}
    message = _rollout.missing_images_message([down], "gpu01", "unix:///d.sock", down["reference"])
    assert message.startswith("Nothing was changed. The registry could not be asked for image 10.0.0.1:1/r:2 "
                              "(500: Get ")
    assert "connection refused" in message and "is it up" in message
    assert "has no image" not in message
