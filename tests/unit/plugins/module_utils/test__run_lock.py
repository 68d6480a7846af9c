"""_run_lock: the run lock's rules, without a host."""

import json

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _run_lock as L

T0 = 1764730000  # 2025-12-03T02:46:40Z
OTHER = L.lock_text("20251203T024640Z-a1b2c3", "ctl01", T0, 3600,
                    "/var/cache/sglang/bench-results/20251203T024640Z-a1b2c3/summary.json")


def test_fresh_host_takes_the_lock():
    assert L.assess(None, "r2", T0) == {"state": "free", "holder": None, "reason": None}
    assert L.decide(L.assess(None, "r2", T0), "gpu01", "/c/run.lock") == ("take", None)
    lock = json.loads(L.lock_text("r2", "ctl01", T0, 3600, None))
    assert lock == {"run_id": "r2", "controller": "ctl01", "started": T0,
                    "started_utc": "2025-12-03T02:46:40Z", "ttl": 3600, "summary_path": None}


def test_the_same_run_keeps_its_lock():
    assessment = L.assess(OTHER, "20251203T024640Z-a1b2c3", T0 + 10)
    assert assessment["state"] == "ours"
    assert L.decide(assessment, "gpu01", "/c/run.lock") == ("keep", None)


def test_a_held_lock_fails_naming_the_holder():
    assessment = L.assess(OTHER, "r2", T0 + 60)
    assert assessment["state"] == "held"
    action, message = L.decide(assessment, "gpu01", "/c/run.lock")
    assert action == "fail"
    assert message == (
        "gpu01: the run lock /c/run.lock is held by run 20251203T024640Z-a1b2c3 (controller ctl01, "
        "started 2025-12-03T02:46:40Z, TTL 3600 s), until 2025-12-03T03:46:40Z at the latest "
        "(TTL): another converge is running on this host, or was killed before it released the "
        "lock; wait for that run to finish, or, when no run is active on this host, rerun with "
        "-e sglang_run_lock_break=true to break the lock")


def test_an_expired_lock_is_stale_and_broken_only_on_request():
    assessment = L.assess(OTHER, "r2", T0 + 3601)
    assert assessment["state"] == "stale"
    action, message = L.decide(assessment, "gpu01", "/c/run.lock")
    assert action == "fail"
    assert "is stale: held by run 20251203T024640Z-a1b2c3" in message
    assert "expired at 2025-12-03T03:46:40Z (TTL 3600 s)" in message
    assert message.endswith("rerun with -e sglang_run_lock_break=true to break it")
    action, message = L.decide(assessment, "gpu01", "/c/run.lock", break_lock=True)
    assert action == "break" and message.endswith("broken (sglang_run_lock_break=true)")


def test_the_lock_of_a_run_that_wrote_its_summary_is_stale():
    written = {"/var/cache/sglang/bench-results/20251203T024640Z-a1b2c3/summary.json"}
    assessment = L.assess(OTHER, "r2", T0 + 60, summary_exists=written.__contains__)
    assert assessment["state"] == "stale"
    assert assessment["reason"].startswith("that run finished (it wrote /var/cache/sglang/")
    assert L.decide(assessment, "gpu01", "/c/run.lock")[0] == "fail"
    assert L.assess(OTHER, "r2", T0 + 60, summary_exists=set().__contains__)["state"] == "held"


def test_a_corrupt_lock_file_is_reported_and_broken_only_on_request():
    for text in ("", "{", "[]", '{"run_id": "x"}', '{"run_id": "", "started": 1, "ttl": 1}',
                 '{"run_id": "x", "started": true, "ttl": 1}'):
        assessment = L.assess(text, "r2", T0)
        assert assessment["state"] == "corrupt", text
        action, message = L.decide(assessment, "gpu01", "/c/run.lock")
        assert action == "fail" and "the lock file is corrupt" in message
        assert L.decide(assessment, "gpu01", "/c/run.lock", break_lock=True)[0] == "break"


def test_the_break_variable_also_breaks_a_held_lock():
    action, message = L.decide(L.assess(OTHER, "r2", T0 + 60), "gpu01", "/c/run.lock", True)
    assert action == "break" and "held by run 20251203T024640Z-a1b2c3" in message


def test_release_removes_only_our_own_lock():
    assert L.release_decision(None, "r2") == (False, None)
    assert L.release_decision(OTHER, "20251203T024640Z-a1b2c3") == (True, None)
    remove, message = L.release_decision(OTHER, "r2")
    assert not remove and message.startswith("the run lock is held by run 20251203T024640Z-a1b2c3")
    assert L.release_decision("garbage", "r2")[0] is False
