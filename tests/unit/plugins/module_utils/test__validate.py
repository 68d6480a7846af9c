"""The checks site.yml runs before any host is changed (_validate) and the address rules behind
them (_address): one test per rule, the bad value and the good one."""

import json
import os

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _address, _validate

HERE = os.path.dirname(__file__)
ROLES = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "roles"))
BASELINE = os.path.join(ROLES, "benchmark", "files", "baseline_mi300x_tp4.json")
CATALOG = {"low": {"num_prompts": 10, "max_concurrency": 1}, "smoke": {"num_prompts": 8, "max_concurrency": 4}}


def good(**extra):
    """A complete, valid set of values (the role defaults' shape)."""
    values = {
        "sglang_server_host": "127.0.0.1", "sglang_api_key": "", "sglang_server_allow_unauthenticated": False,
        "sglang_server_timeout": 1800, "sglang_server_connect_timeout": 30, "sglang_server_sleep": 0.1,
        "sglang_server_stop_timeout": 30, "sglang_packages_timeout": 60, "sglang_packages_retries": 3,
        "sglang_preflight_docker_timeout": 10, "sglang_benchmark_timeout": 3600, "sglang_benchmark_poll": 5,
        "sglang_benchmark_tiers": ["low", "smoke"], "sglang_benchmark_tier_catalog": CATALOG,
        "sglang_benchmark_dataset_name": "random", "sglang_benchmark_dataset_path": "",
        "sglang_benchmark_offline": False, "sglang_benchmark_tokenizer": "moonshotai/Kimi-Linear-48B-A3B-Instruct",
        "sglang_benchmark_extra_args": [], "sglang_benchmark_baseline": BASELINE, "sglang_benchmark_tolerances": {},
        "sglang_benchmark_token_tolerance": 0.01, "sglang_benchmark_outlier_tolerance": 0.15,
        "sglang_model_source": "hub", "sglang_model_path": "moonshotai/Kimi-Linear-48B-A3B-Instruct",
        "sglang_tokenizer_path": "moonshotai/Kimi-Linear-48B-A3B-Instruct", "sglang_model_dir": "/var/cache/sglang/models",
        "sglang_model_revision": "main", "sglang_model_hub_endpoint": "https://huggingface.co",
        "sglang_model_local_dir": "", "sglang_model_verify": "stat", "sglang_model_timeout": 14400, "sglang_model_poll": 3,
        "sglang_fanout_timeout": 3600, "sglang_fanout_retries": 3, "sglang_fanout_degree": 2,
    }
    values.update(extra)
    return values


def variables(problems):
    return [problem.variable for problem in problems]


def test_the_defaults_pass_every_stage():
    assert _validate.check_inputs(good(), _validate.STAGES) == []


def test_every_variable_the_checks_read_is_known():
    assert set(good()) == set(_validate.VARIABLES)


# ------------------------------------------------------------------------------ addresses


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "localhost", "LOCALHOST", "localhost."])
def test_loopback_binds(host):
    assert _address.is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", None, "10.0.0.5", "fd00::5", "gpu01.example.net",
                                  "128.0.0.1", "[::1]"])
def test_non_loopback_binds(host):
    assert not _address.is_loopback(host)


@pytest.mark.parametrize("bind, connect, url", [
    ("0.0.0.0", "127.0.0.1", "127.0.0.1"),
    ("", "127.0.0.1", "127.0.0.1"),
    ("::", "::1", "[::1]"),
    ("10.213.78.11", "10.213.78.11", "10.213.78.11"),
    ("fd00::5", "fd00::5", "[fd00::5]"),
    ("127.0.0.1", "127.0.0.1", "127.0.0.1"),
    ("gpu01.example.net", "gpu01.example.net", "gpu01.example.net"),
])
def test_clients_connect_where_the_server_binds(bind, connect, url):
    assert _address.connect_host(bind) == connect
    assert _address.url_host(bind) == url


# ------------------------------------------------------------------------- bind and key


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "gpu01.example.net"])
def test_a_network_bind_without_a_key_is_refused_naming_host_variable_and_fix(host):
    problems = _validate.check_inputs(good(sglang_server_host=host), ["server"])
    assert variables(problems) == ["sglang_server_host"]
    text = problems[0].describe("gpu01")
    assert text.startswith("gpu01: sglang_server_host: got %r, a non-loopback address, with sglang_api_key empty;" % host)
    assert "expected a loopback bind (127.0.0.1, ::1 or localhost) or a non-empty sglang_api_key" in text
    assert "Fix: set sglang_api_key" in text and "sglang_server_allow_unauthenticated: true" in text


@pytest.mark.parametrize("extra", [
    {"sglang_api_key": "k3y"},
    {"sglang_server_allow_unauthenticated": True},
    {"sglang_server_allow_unauthenticated": "yes"},
    {"sglang_server_host": "::1"},
])
def test_a_network_bind_passes_with_a_key_or_the_opt_out(extra):
    assert _validate.check_inputs(good(**dict({"sglang_server_host": "0.0.0.0"}, **extra)), ["server"]) == []


def test_the_opt_out_is_a_real_boolean_not_any_string():
    problems = _validate.check_inputs(good(sglang_server_host="0.0.0.0", sglang_server_allow_unauthenticated="maybe"),
                                      ["server"])
    assert variables(problems) == ["sglang_server_allow_unauthenticated"]
    # "false" from -e is a string: it must not count as an opt-out
    assert variables(_validate.check_inputs(good(sglang_server_host="0.0.0.0", sglang_server_allow_unauthenticated="false"),
                                            ["server"])) == ["sglang_server_host"]


def test_the_bind_is_only_checked_when_the_server_stage_runs():
    assert _validate.check_inputs(good(sglang_server_host="0.0.0.0"), ["preflight", "container", "benchmark"]) == []


@pytest.mark.parametrize("stages", [["server"], ["benchmark"]])
def test_a_key_starting_with_a_dash_is_refused_without_quoting_it(stages):
    key = "-sk-secret-dash-7f3a"
    problems = _validate.check_inputs(good(sglang_api_key=key), stages)
    assert variables(problems) == ["sglang_api_key"]
    text = problems[0].describe("gpu02")
    assert key not in text and "sk-secret" not in text
    assert "argparse" in text and "for an option" in text and text.startswith("gpu02: sglang_api_key:")


def test_a_dash_inside_the_key_is_fine():
    assert _validate.check_inputs(good(sglang_api_key="sk-a-b-c"), ["server", "benchmark"]) == []


# ------------------------------------------------------------------- the model


def test_the_model_inputs_are_read_by_the_stages_that_use_them():
    bad = good(sglang_model_revision="no branch", sglang_model_source="local", sglang_model_local_dir="rel")
    assert variables(_validate.check_inputs(bad, ["model"])) == ["sglang_model_local_dir"]
    assert _validate.check_inputs(bad, ["container", "server"]) == []
    hub = good(sglang_model_revision="no branch")
    assert variables(_validate.check_inputs(hub, ["model"])) == ["sglang_model_revision"]
    path = good(sglang_model_path="/opt/models/kimi", sglang_tokenizer_path="/opt/models/kimi")
    for stages in (["container"], ["model"], ["server"]):
        assert variables(_validate.check_inputs(path, stages)) == ["sglang_model_path"]
    assert _validate.check_inputs(path, ["preflight", "packages", "benchmark"]) == []
    assert _validate.check_inputs(dict(path, sglang_model_source="none"), _validate.STAGES) == []


def test_an_offline_server_cannot_fetch_another_tokenizer():
    other = good(sglang_tokenizer_path="org/other-tokenizer")
    problems = _validate.check_inputs(other, ["server"])
    assert variables(problems) == ["sglang_tokenizer_path"]
    assert "HF_HUB_OFFLINE=1" in problems[0].describe("gpu01")
    assert _validate.check_inputs(good(sglang_tokenizer_path="/opt/tokenizer"), ["server"]) == []
    assert _validate.check_inputs(dict(other, sglang_model_source="none"), ["server"]) == []


def test_an_endpoint_with_credentials_is_refused_without_quoting_them():
    problems = _validate.check_inputs(good(sglang_model_hub_endpoint="https://bob:hunter2secret@hub.example"), ["model"])
    assert variables(problems) == ["sglang_model_hub_endpoint"]
    assert "hunter2secret" not in problems[0].describe("gpu01")


# ------------------------------------------------------------------- polls and timeouts


@pytest.mark.parametrize("name, stage", [(name, stage) for stage, name, _what in _validate.POSITIVE])
@pytest.mark.parametrize("value", [0, -1, "0", -0.5, "soon", None, True, float("nan")])
def test_zero_negative_or_non_numeric_waits_are_refused_by_name(name, stage, value):
    problems = _validate.check_inputs(good(**{name: value}), [stage])
    assert variables(problems) == [name]
    assert problems[0].describe("gpu03").startswith("gpu03: %s: got %r; expected a number > 0" % (name, value))


@pytest.mark.parametrize("name, stage", [(name, stage) for stage, name, _what in _validate.POSITIVE])
def test_positive_waits_pass_and_other_stages_are_not_read(name, stage):
    assert _validate.check_inputs(good(**{name: "2.5" if name == "sglang_server_sleep" else 7}), [stage]) == []
    others = [s for s in _validate.STAGES if s != stage]
    assert name not in variables(_validate.check_inputs(good(**{name: 0}), others))


@pytest.mark.parametrize("value, ok", [(0, True), (5, True), (-1, False), (1.5, False), ("x", False)])
def test_pip_retries_may_be_zero_but_not_negative(value, ok):
    problems = _validate.check_inputs(good(sglang_packages_retries=value), ["packages"])
    assert variables(problems) == ([] if ok else ["sglang_packages_retries"])


@pytest.mark.parametrize("retries, degree, bad", [
    (0, 1, []), (3, 2, []), (-1, 2, ["sglang_fanout_retries"]), (3, 0, ["sglang_fanout_degree"]),
    (3, 1.5, ["sglang_fanout_degree"]), ("x", True, ["sglang_fanout_degree", "sglang_fanout_retries"]),
])
def test_fanout_retries_may_be_zero_and_its_degree_is_at_least_one(retries, degree, bad):
    problems = _validate.check_inputs(good(sglang_fanout_retries=retries, sglang_fanout_degree=degree), ["container"])
    assert sorted(variables(problems)) == bad
    assert not _validate.check_inputs(good(sglang_fanout_degree=0), ["packages"])


# ---------------------------------------------------------------------------- benchmark


@pytest.mark.parametrize("tiers, message", [
    (["huge"], "names tier 'huge', which sglang_benchmark_tier_catalog does not define"),
    ([{"name": "x", "num_prompts": 0, "max_concurrency": 1}], "num_prompts must be an integer >= 1, got 0"),
    ([{"name": "x", "num_prompts": 4, "max_concurrency": 1, "request_rate": -2}], "request_rate must be"),
    ([{"name": "x", "num_prompts": 4, "max_concurrency": 1, "timeout": 0}], "timeout must be a number of seconds >= 1"),
    ([{"name": "x", "num_prompts": 4, "max_concurrency": 1, "dataset_name": "nope"}], "'nope' is not a dataset"),
    ("low", "must be a list"),
    ([], "at least one tier is required"),
])
def test_bad_tiers_are_refused_with_the_benchmark_stage_own_words(tiers, message):
    problems = _validate.check_inputs(good(sglang_benchmark_tiers=tiers), ["benchmark"])
    assert variables(problems) == ["sglang_benchmark_tiers"]
    assert message in problems[0].describe("gpu01")


def test_offline_without_a_tokenizer_is_refused():
    problems = _validate.check_inputs(good(sglang_benchmark_offline=True, sglang_benchmark_tokenizer="",
                                           sglang_benchmark_dataset_path="/d.json"), ["benchmark"])
    assert "offline mode needs a tokenizer" in problems[0].describe("gpu01")


def test_a_baseline_that_does_not_parse_is_refused_naming_file_and_line(tmp_path):
    broken = tmp_path / "baseline.json"
    broken.write_text('{\n  "schema_version": 1\n  "tiers": {}\n}\n')
    problems = _validate.check_inputs(good(sglang_benchmark_baseline=str(broken)), ["benchmark"])
    assert variables(problems) == ["sglang_benchmark_baseline"]
    assert "%s does not parse as JSON at line 3" % broken in problems[0].describe("gpu01")


def test_a_missing_baseline_is_refused_and_an_empty_one_means_none(tmp_path):
    problems = _validate.check_inputs(good(sglang_benchmark_baseline=str(tmp_path / "nope.json")), ["benchmark"])
    assert variables(problems) == ["sglang_benchmark_baseline"] and "cannot be read" in problems[0].seen
    assert _validate.check_inputs(good(sglang_benchmark_baseline=""), ["benchmark"]) == []


def test_a_stored_baseline_passes(tmp_path):
    stored = tmp_path / "b.json"
    stored.write_text(json.dumps({"schema_version": 1, "tiers": {"low": {"metrics": {"output_throughput": 1.0}}}}))
    assert _validate.check_inputs(good(sglang_benchmark_baseline=str(stored)), ["benchmark"]) == []


@pytest.mark.parametrize("tolerances, message", [
    ({"output_throughput": 1.5}, "tolerance must be a fraction in [0, 1)"),
    ({"p99_ttft_ms": 0.1}, "report-only"),
    ({"speed": 0.1}, "unknown metric 'speed'"),
    (["output_throughput"], "['output_throughput']"),
])
def test_bad_tolerances_are_refused(tolerances, message):
    problems = _validate.check_inputs(good(sglang_benchmark_tolerances=tolerances), ["benchmark"])
    assert variables(problems) == ["sglang_benchmark_tolerances"]
    assert message in problems[0].describe("gpu01")


@pytest.mark.parametrize("name", _validate.FRACTIONS)
@pytest.mark.parametrize("value", [1, 1.5, -0.1, "x"])
def test_token_and_outlier_tolerances_are_fractions(name, value):
    assert variables(_validate.check_inputs(good(**{name: value}), ["benchmark"])) == [name]


def test_every_problem_is_reported_at_once():
    problems = _validate.check_inputs(good(sglang_server_host="0.0.0.0", sglang_server_timeout=0, sglang_benchmark_poll=0,
                                           sglang_benchmark_tiers=["huge"], sglang_benchmark_baseline="/nonexistent"),
                                      _validate.STAGES)
    assert variables(problems) == ["sglang_server_host", "sglang_server_timeout", "sglang_benchmark_poll",
                                   "sglang_benchmark_tiers", "sglang_benchmark_baseline"]
