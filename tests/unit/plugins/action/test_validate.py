"""validate action: the real ActionModule.run() with a real DataLoader and Templar, the
collection's real role defaults, and a connection that must stay unused."""

import json
from unittest import mock

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from ansible_collections.sglang_rocm.fleet.plugins.action import validate

SENTINEL = "-sk-sentinel-9c1e"


def run(task_vars, stages=None):
    task = mock.MagicMock()
    task.args = {} if stages is None else {"stages": stages}
    task.async_val = 0
    task.check_mode = False
    connection = mock.NonCallableMagicMock(name="connection")
    loader = DataLoader()
    variables = dict({"inventory_hostname": "gpu01"}, **task_vars)
    action = validate.ActionModule(task, connection, mock.MagicMock(), loader=loader,
                                   templar=Templar(loader=loader, variables=variables), shared_loader_obj=None)
    with mock.patch.object(action, "_execute_module", side_effect=AssertionError("the action transferred a module")):
        result = action.run(task_vars=variables)
    assert connection.mock_calls == [], "the action used the connection"
    return result


def test_the_role_defaults_pass_for_every_stage():
    # the baseline default is "{{ role_path }}/files/...": resolved against the benchmark role
    result = run({})
    assert result.get("failed") is not True, result.get("msg")
    assert result["stages"] == ["preflight", "container", "model", "packages", "server", "benchmark"]
    assert {"sglang_server_host", "sglang_benchmark_baseline", "sglang_benchmark_poll",
            "sglang_model_source", "sglang_model_dir", "sglang_model_timeout"} <= set(result["checked"])


def test_a_network_bind_without_a_key_fails_the_host_before_anything():
    result = run({"sglang_server_host": "0.0.0.0"}, ["container", "server"])
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("invalid input, nothing was changed on gpu01:\n- gpu01: sglang_server_host: "
                                    "got '0.0.0.0', a non-loopback address, with sglang_api_key empty;")
    assert result["problems"] == result["msg"].split("\n- ")[1:]


def test_the_host_value_beats_the_role_default_and_defaults_are_templated_with_host_vars():
    # sglang_benchmark_tokenizer defaults to "{{ sglang_tokenizer_path }}" -> "{{ sglang_model_path }}"
    result = run({"sglang_benchmark_offline": True, "sglang_benchmark_dataset_path": "/d.json",
                  "sglang_model_path": ""}, ["benchmark"])
    assert result["failed"] is True and "offline mode needs a tokenizer" in result["msg"]
    assert run({"sglang_benchmark_offline": True, "sglang_benchmark_dataset_path": "/d.json",
                "sglang_model_path": "/models/kimi"}, ["benchmark"]).get("failed") is not True


def test_zero_polls_and_timeouts_are_named():
    result = run({"sglang_benchmark_poll": 0, "sglang_server_stop_timeout": -5, "sglang_packages_timeout": 0,
                  "sglang_preflight_docker_timeout": 0})
    assert [line.split(":")[1].strip() for line in result["problems"]] == [
        "sglang_preflight_docker_timeout", "sglang_packages_timeout", "sglang_server_stop_timeout",
        "sglang_benchmark_poll"]


def test_the_key_is_never_in_the_result():
    result = run({"sglang_api_key": SENTINEL, "sglang_server_host": "0.0.0.0"}, ["server", "benchmark"])
    assert result["failed"] is True and "sglang_api_key" in result["msg"]
    assert "sk-sentinel" not in json.dumps(result)


def test_only_the_stages_variables_are_read():
    assert run({"sglang_server_host": "0.0.0.0", "sglang_benchmark_poll": 0}, ["preflight"]).get("failed") is not True


@pytest.mark.parametrize("stages", ["server", ["server", "deploy"]])
def test_bad_stages_are_refused(stages):
    result = run({}, stages)
    assert result["failed"] is True and result["msg"].startswith("validate: stages (sglang_stages) must be a list of")
