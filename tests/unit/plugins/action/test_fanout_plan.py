"""fanout_plan action: the real ActionModule.run() on hostvars holding each host's check."""
import pytest

from ansible_collections.sglang_rocm.fleet.plugins.action import fanout_plan


def check(name="model", holds=False, address="10.0.0.1", port=30080):
    return {"changed": False, "name": name, "holds": holds, "missing": [] if holds else ["w.bin"], "bad": [],
            "address": address, "port": port}


def hostvars(**checks):
    return {host: {"__sglang_fanout_check": value} for host, value in checks.items()}


@pytest.fixture(name="run_plan")
def fixture_run_plan(run_controller_action):
    def run(args, hv, check_mode=False):
        return run_controller_action(fanout_plan.ActionModule, args, {"hostvars": hv}, check_mode=check_mode)
    return run


def test_the_plan_roots_the_tree_at_the_holders_and_marks_its_result_no_log(run_plan):
    hv = hostvars(gpu01=check(holds=True, address="10.0.0.11"), gpu02=check(address="10.0.0.12"),
                  gpu03=check(address="10.0.0.13"), gpu04=check(address="10.0.0.14", port=31000))
    out = run_plan({"name": "model", "hosts": ["gpu01", "gpu02", "gpu03", "gpu04"], "sources": ["gpu01"],
                    "degree": "2"}, hv)
    assert not out.get("failed") and out["_ansible_no_log"] is True and out["changed"] is False
    assert out["holders"] == ["gpu01"] and out["receivers"] == ["gpu02", "gpu03", "gpu04"]
    assert out["servers"] == ["gpu01", "gpu02", "gpu03", "gpu04"] and out["depth"] == 2
    assert out["hosts"]["gpu04"]["parent"] == "gpu02" and out["hosts"]["gpu01"]["role"] == "holder"
    assert out["hosts"]["gpu04"]["sources"][:2] == [{"host": "gpu02", "address": "10.0.0.12", "port": 30080},
                                                    {"host": "gpu01", "address": "10.0.0.11", "port": 30080}]
    assert out["hosts"]["gpu02"]["sources"][-1] == {"host": "gpu04", "address": "10.0.0.14", "port": 31000}
    assert len(out["token"]) >= 43 and out["warnings"] == []


def test_every_transfer_gets_a_fresh_token(run_plan):
    hv = hostvars(gpu01=check(holds=True), gpu02=check())
    tokens = {run_plan({"name": "model", "hosts": ["gpu01", "gpu02"], "sources": ["gpu01"]}, hv)["token"]
              for _attempt in range(5)}
    assert len(tokens) == 5


def test_only_hosts_that_checked_this_transfer_take_part(run_plan):
    hv = hostvars(gpu01=check(holds=True), gpu02=check(), gpu03=check(name="image"), gpu04=None,
                  gpu05=dict(check(), failed=True))
    hv["gpu06"] = {}
    out = run_plan({"name": "model", "hosts": ["gpu01", "gpu02", "gpu03", "gpu04", "gpu05", "gpu06", "gpu07"],
                    "sources": ["gpu01"]}, hv)
    assert out["members"] == ["gpu01", "gpu02"] and out["receivers"] == ["gpu02"]


def test_a_named_source_without_a_copy_receives_and_another_holder_is_used(run_plan):
    hv = hostvars(gpu01=check(), gpu02=check(holds=True), gpu03=check())
    out = run_plan({"name": "model", "hosts": ["gpu01", "gpu02", "gpu03"], "sources": ["gpu01", "gpu09"]}, hv)
    assert out["holders"] == ["gpu02"] and out["receivers"] == ["gpu01", "gpu03"]
    assert out["warnings"] == [
        "model: gpu01 is named in sglang_fanout_sources but does not hold a verified copy (1 files missing, 0 bad); "
        "it receives like the others",
        "model: gpu09 is named in sglang_fanout_sources but does not take part in this transfer (not in the "
        "play, failed, or skipped it)"]


def test_nobody_holding_a_copy_is_a_warning_and_nobody_serves(run_plan):
    out = run_plan({"name": "model", "hosts": ["gpu01", "gpu02"], "sources": []},
                   hostvars(gpu01=check(), gpu02=check()))
    assert out["servers"] == [] and out["hosts"]["gpu01"]["sources"] == []
    assert out["warnings"] == ["model: no host holds a verified copy, so gpu01, gpu02 cannot receive it"]


def test_everyone_holding_a_copy_starts_no_server(run_plan):
    out = run_plan({"name": "model", "hosts": ["gpu01", "gpu02"], "sources": ["gpu01"]},
                   hostvars(gpu01=check(holds=True), gpu02=check(holds=True)))
    assert out["receivers"] == [] and out["servers"] == [] and out["depth"] == 0


@pytest.mark.parametrize("args,message", [
    ({"degree": 0}, "fanout_plan model: sglang_fanout_degree must be a whole number of at least 1 (children per source), got 0"),
    ({"degree": "two"}, "got 'two'"),
    ({"sources": "gpu01"}, "fanout_plan model: sources (sglang_fanout_sources) must be a list of inventory names, got 'gpu01'"),
    ({"hosts": None}, "hosts must be a list of inventory names"),
])
def test_bad_input_fails_readably_and_carries_no_token(run_plan, args, message):
    base = {"name": "model", "hosts": ["gpu01"], "sources": ["gpu01"], "degree": 2}
    out = run_plan(dict(base, **args), hostvars(gpu01=check(holds=True)))
    assert out["failed"] and message in out["msg"]
    assert "token" not in out and not out.get("_ansible_no_log")
