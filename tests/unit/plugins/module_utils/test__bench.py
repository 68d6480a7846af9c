"""Unit tests of plugins/module_utils/_bench.py: tier specs, argv, parsing, scrubbing, run loop."""

import json
import os

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _bench

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "bench")


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


def spec(**overrides):
    tier = {"name": "low", "num_prompts": 10, "max_concurrency": 1}
    tier.update(overrides)
    return _bench.validate_tiers([tier])[0]


# The recipe's reference figures (DESIGN.md) per tier.
REFERENCE = {
    "low": dict(num_prompts=10, max_concurrency=1, output_throughput=176.86, mean_ttft_ms=141.33,
                median_tpot_ms=5.33, p99_itl_ms=5.58, duration_s=23.86, total_input_tokens=6101,
                total_output_tokens=4220),
    "medium": dict(num_prompts=80, max_concurrency=16, output_throughput=1300.37,
                   mean_ttft_ms=175.25, median_tpot_ms=10.87, p99_itl_ms=116.80,
                   duration_s=31.38, total_input_tokens=39668, total_output_tokens=40805),
    "high": dict(num_prompts=500, max_concurrency=100, output_throughput=3169.72,
                 mean_ttft_ms=564.46, median_tpot_ms=31.28, p99_itl_ms=157.80, duration_s=79.71,
                 total_input_tokens=249831, total_output_tokens=252662),
}


# ------------------------------------------------------------------------ tier validation

def test_defaults_follow_the_recipe():
    s = spec()
    assert s == {
        "name": "low", "num_prompts": 10, "max_concurrency": 1, "dataset_name": "random",
        "dataset_path": "", "random_input_len": 1000, "random_output_len": 1000,
        "random_range_ratio": 0.0, "request_rate": "inf", "seed": 1, "warmup_requests": 1,
        "prime_prompts": 0, "timeout": 3600, "extra_args": [],
    }


def test_numbers_given_as_strings_are_accepted():
    s = spec(num_prompts="80", max_concurrency="16", request_rate="4", random_range_ratio="1.0")
    assert (s["num_prompts"], s["max_concurrency"], s["request_rate"], s["random_range_ratio"]) \
        == (80, 16, 4.0, 1.0)


@pytest.mark.parametrize("tier, expected", [
    ({"name": "low", "max_concurrency": 1}, "tier 'low' (tiers[0]): num_prompts is required"),
    ({"name": "low", "num_prompts": 10, "max_concurrency": 0},
     "tier 'low' (tiers[0]): max_concurrency must be an integer >= 1"),
    ({"name": "low", "num_prompts": 10, "max_concurrency": -3},
     "tier 'low' (tiers[0]): max_concurrency must be an integer >= 1"),
    ({"name": "low", "num_prompts": 10, "max_concurrency": 1, "dataset_name": "shargpt"},
     "tier 'low' (tiers[0]): dataset_name 'shargpt' is not a dataset sglang.bench_serving knows"),
    ({"name": "low", "num_prompts": 10, "max_concurrency": 1, "concurrency": 4},
     "tier 'low' (tiers[0]): unknown field(s) concurrency"),
    ({"name": "low", "num_prompts": True, "max_concurrency": 1},
     "tier 'low' (tiers[0]): num_prompts must be an integer >= 1, got True"),
    ({"name": "low", "num_prompts": 10, "max_concurrency": 1, "random_range_ratio": 1.5},
     "random_range_ratio must be a number between 0.0 and 1.0"),
    ({"name": "low", "num_prompts": 10, "max_concurrency": 1, "request_rate": 0},
     "request_rate must be 'inf' or a number of requests per second > 0"),
    ({"name": "low", "num_prompts": 10, "max_concurrency": 1, "extra_args": ["--num-prompts=3"]},
     "extra_args may not set --num-prompts"),
    ({"name": "low/x", "num_prompts": 10, "max_concurrency": 1}, "name must be letters"),
    ({"num_prompts": 10, "max_concurrency": 1}, "tiers[0]: name is required"),
])
def test_bad_tiers_are_named(tier, expected):
    with pytest.raises(_bench.BenchSpecError) as exc:
        _bench.validate_tiers([tier])
    assert expected in str(exc.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(_bench.BenchSpecError) as exc:
        _bench.validate_tiers([{"name": "a", "max_concurrency": 0},
                               {"name": "a", "num_prompts": 1, "max_concurrency": 1}])
    text = str(exc.value)
    assert "tier 'a' (tiers[0]): num_prompts is required" in text
    assert "tier 'a' (tiers[0]): max_concurrency must be" in text
    assert "tier 'a' (tiers[1]): name is used by an earlier tier" in text


def test_offline_needs_tokenizer_and_dataset_path():
    tiers = [{"name": "low", "num_prompts": 10, "max_concurrency": 1},
             {"name": "ids", "num_prompts": 10, "max_concurrency": 1, "dataset_name": "random-ids"}]
    with pytest.raises(_bench.BenchSpecError) as exc:
        _bench.validate_tiers(tiers, offline=True, tokenizer=None)
    text = str(exc.value)
    assert "tokenizer: offline mode needs a tokenizer" in text
    assert "tier 'low' (tiers[0]): dataset_path is required in offline mode for dataset " \
           "'random'" in text
    assert "ShareGPT-format JSON" in text
    assert "'ids'" not in text  # random-ids needs no file
    specs = _bench.validate_tiers([dict(tiers[0], dataset_path="/data/sg.json"), tiers[1]],
                                  offline=True, tokenizer="/models/kimi")
    assert [s["name"] for s in specs] == ["low", "ids"]


def test_offline_rejects_hub_only_dataset():
    with pytest.raises(_bench.BenchSpecError, match="'mmmu' always downloads"):
        _bench.validate_tiers([{"name": "m", "num_prompts": 1, "max_concurrency": 1,
                                "dataset_name": "mmmu"}], offline=True, tokenizer="/t")


def test_module_level_extra_args_may_not_set_managed_flags():
    with pytest.raises(_bench.BenchSpecError, match="extra_args: may not set --output-file"):
        _bench.validate_tiers([{"name": "a", "num_prompts": 1, "max_concurrency": 1}],
                              extra_args=["--output-file", "/x"])


# --------------------------------------------------------------------------------- argv

PARAMS = {
    "docker": "/usr/bin/docker", "timeout_bin": "/usr/bin/timeout",
    "docker_host": "unix:///var/run/docker.sock", "container": "Kimi-linear",
    "host": "127.0.0.1", "port": 30000, "model": "moonshotai/Kimi-Linear-48B-A3B-Instruct",
    "tokenizer": None, "python": "python3", "env": {}, "api_key": None, "offline": False,
    "run_id": "r1", "results_dir": "/var/lib/sglang-bench/r1",
    "container_results_dir": "/tmp/sglang-bench", "extra_args": [],
}


def test_recipe_low_tier_argv():
    plan = _bench.plan_run(PARAMS, [spec()])
    tier = plan["tiers"][0]
    assert tier["run"] == [
        "/usr/bin/timeout", "--kill-after=30", "3660",
        "/usr/bin/docker", "--host", "unix:///var/run/docker.sock", "exec", "Kimi-linear",
        "timeout", "--kill-after=30", "3600",
        "python3", "-m", "sglang.bench_serving", "--backend", "sglang",
        "--host", "127.0.0.1", "--port", "30000",
        "--model", "moonshotai/Kimi-Linear-48B-A3B-Instruct",
        "--tokenizer", "moonshotai/Kimi-Linear-48B-A3B-Instruct",
        "--dataset-name", "random", "--dataset-path", "",
        "--random-input-len", "1000", "--random-output-len", "1000",
        "--random-range-ratio", "0.0", "--num-prompts", "10", "--max-concurrency", "1",
        "--request-rate", "inf", "--seed", "1", "--warmup-requests", "1",
        "--output-file", "/tmp/sglang-bench/r1/low.jsonl",
    ]
    # the short calls run under the docker CLI seam's limit (exec_timeout, 600 s by default)
    assert plan["prepare"] == ["/usr/bin/timeout", "--kill-after=5", "600",
                               "/usr/bin/docker", "--host", "unix:///var/run/docker.sock", "exec",
                               "Kimi-linear", "mkdir", "-p", "--", "/tmp/sglang-bench/r1"]
    assert _bench.plan_run(dict(PARAMS, exec_timeout=30), [spec()])["tiers"][0]["read"][:3] == [
        "/usr/bin/timeout", "--kill-after=5", "30"]
    assert tier["reset"][-5:] == ["rm", "-f", "--", "/tmp/sglang-bench/r1/low.jsonl",
                                  "/tmp/sglang-bench/r1/low.prime.jsonl"]
    assert tier["read"][-3:] == ["cat", "--", "/tmp/sglang-bench/r1/low.jsonl"]
    assert tier["prime"] is None
    assert tier["raw_path"] == "/var/lib/sglang-bench/r1/low.jsonl"
    assert plan["env"] == {}


def test_argv_is_accepted_by_the_real_0_5_7_parser():
    flags = json.loads(fixture("bench_serving_0.5.7_flags.json"))
    s = spec(extra_args=["--disable-tqdm", "--tag", "fleet"], prime_prompts=4)
    plan = _bench.plan_run(dict(PARAMS, extra_args=["--flush-cache"]), [s])
    for argv in (plan["tiers"][0]["bench_argv"], plan["tiers"][0]["prime"]):
        args = argv[argv.index("sglang.bench_serving") + 1:]
        i = 0
        while i < len(args):
            flag = args[i]
            assert flag in flags, flag
            if flags[flag]["takes_value"]:
                value = args[i + 1]
                if flags[flag]["choices"]:
                    assert value in flags[flag]["choices"]
                i += 2
            else:
                i += 1
    assert plan["tiers"][0]["bench_argv"][-4:] == [
        "--flush-cache", "--disable-tqdm", "--tag", "fleet"]


def test_api_key_and_secret_env_never_in_argv():
    params = dict(PARAMS, api_key="sk-123", offline=True, tokenizer="/models/kimi",
                  env={"HF_TOKEN": "hf_abc", "HF_HOME": "/cache/hf"})
    s = spec(dataset_path="/data/sg.json", prime_prompts=3)
    plan = _bench.plan_run(params, [s])
    tier = plan["tiers"][0]
    exec_at = tier["run"].index("exec")
    assert tier["run"][exec_at + 1:exec_at + 12] == [
        "--env", "HF_HOME=/cache/hf", "--env", "HF_HUB_OFFLINE=1", "--env", "HF_TOKEN",
        "--env", "OPENAI_API_KEY", "--env", "TRANSFORMERS_OFFLINE=1", "Kimi-linear"]
    assert plan["env"] == {"HF_TOKEN": "hf_abc", "OPENAI_API_KEY": "sk-123"}
    everything = json.dumps(plan["tiers"])
    assert "sk-123" not in everything and "hf_abc" not in everything
    assert "--tokenizer" in tier["bench_argv"]
    assert tier["bench_argv"][tier["bench_argv"].index("--tokenizer") + 1] == "/models/kimi"
    prime = tier["prime"]
    assert prime[prime.index("--num-prompts") + 1] == "3"
    assert prime[prime.index("--output-file") + 1] == "/tmp/sglang-bench/r1/low.prime.jsonl"


def test_finite_request_rate_and_custom_timeout():
    plan = _bench.plan_run(PARAMS, [spec(request_rate=2.5, timeout=90)])
    run = plan["tiers"][0]["run"]
    assert run[:3] == ["/usr/bin/timeout", "--kill-after=30", "150"]
    assert run[run.index("--request-rate") + 1] == "2.5"
    assert run[8:11] == ["timeout", "--kill-after=30", "90"]


# ------------------------------------------------------------------------------ parsing

@pytest.mark.parametrize("tier", ["low", "medium", "high"])
def test_printed_reference_blocks(tier):
    parsed = _bench.parse_summary(fixture("stdout_0.5.7_%s.txt" % tier))
    ref = REFERENCE[tier]
    m = parsed["metrics"]
    for key in ("output_throughput", "mean_ttft_ms", "median_tpot_ms", "p99_itl_ms", "duration_s",
                "total_input_tokens", "total_output_tokens"):
        assert m[key] == ref[key], key
    assert m["completed"] == ref["num_prompts"]
    assert isinstance(m["completed"], int) and isinstance(m["total_input_tokens"], int)
    assert parsed["reported"] == {"backend": "sglang", "request_rate": "inf",
                                  "max_concurrency": ref["max_concurrency"]}
    # Every row of the block lands somewhere: 17 headline rows (3 describe the workload)
    # and 13 latency rows.
    assert len(m) == 17 - 3 + 13
    assert m["max_itl_ms"] > m["p99_itl_ms"]


def test_printed_block_low_every_value():
    m = _bench.parse_summary(fixture("stdout_0.5.7_low.txt"))["metrics"]
    assert m == {
        "completed": 10, "duration_s": 23.86, "total_input_tokens": 6101,
        "total_input_text_tokens": 6101, "total_input_vision_tokens": 0,
        "total_output_tokens": 4220, "total_output_tokens_retokenized": 4001,
        "request_throughput": 0.42, "input_throughput": 255.70, "output_throughput": 176.86,
        "max_output_tokens_per_s": 190.0, "max_concurrent_requests": 2,
        "total_throughput": 432.56, "concurrency": 1.0,
        "mean_e2e_latency_ms": 2383.93, "median_e2e_latency_ms": 1911.63,
        "mean_ttft_ms": 141.33, "median_ttft_ms": 126.27, "p99_ttft_ms": 294.76,
        "mean_tpot_ms": 5.32, "median_tpot_ms": 5.33, "p99_tpot_ms": 5.36,
        "mean_itl_ms": 5.33, "median_itl_ms": 5.32, "p95_itl_ms": 5.44, "p99_itl_ms": 5.58,
        "max_itl_ms": 11.46,
    }


def test_summary_takes_last_block_and_old_labels():
    old = ("\n============ Serving Benchmark Result ============\n"
           "Backend:                                 sglang    \n"
           "Traffic request rate:                    inf       \n"
           "Max reqeuest concurrency:                not set   \n"
           "Successful requests:                     5         \n"
           "Output token throughput (tok/s):         12.50     \n"
           "---------------Inter-token Latency----------------\n"
           "Median ITL (ms):                         7.00      \n"
           "==================================================\n")
    text = fixture("stdout_0.5.7_low.txt") + old
    parsed = _bench.parse_summary(text)
    assert parsed["metrics"] == {"completed": 5, "output_throughput": 12.5, "median_itl_ms": 7.0}
    assert parsed["reported"]["max_concurrency"] is None


def test_summary_absent_or_truncated():
    assert _bench.parse_summary("Traceback (most recent call last):\nIndexError\n") is None
    head = fixture("stdout_0.5.7_low.txt").split("Successful requests")[0]
    assert _bench.parse_summary(head) is None


def test_jsonl_057_takes_last_line_and_reads_infinity():
    obj, warnings = _bench.parse_jsonl(fixture("jsonl_0.5.7_medium.jsonl"))
    assert warnings == []
    assert obj["output_throughput"] == 1300.37
    assert obj["request_rate"] == float("inf")
    norm = _bench.normalize_result(obj)
    assert norm["reported"]["request_rate"] == "inf"
    assert norm["metrics"]["duration_s"] == 31.38
    assert norm["metrics"]["max_concurrent_requests"] == 21
    assert "server_info" not in norm["metrics"]


def test_jsonl_torn_line_is_skipped_with_warning():
    obj, warnings = _bench.parse_jsonl(fixture("jsonl_0.5.7_medium_failed.jsonl"))
    assert obj["completed"] == 77
    assert len(warnings) == 1 and warnings[0].startswith("JSONL line 2 does not parse")


def test_jsonl_036_key_set():
    rec = _bench.build_record(spec(), 0, 30.0, jsonl_text=fixture("jsonl_0.3.6_low.jsonl"))
    m = rec["metrics"]
    assert rec["status"] == "ok" and rec["source"] == "jsonl"
    assert m["output_throughput"] == 176.86 and m["median_ttft_ms"] == 126.27
    assert "p99_itl_ms" not in m and "mean_tpot_ms" not in m
    assert "total_throughput" not in m  # no input_throughput to derive it from in 0.3.6
    assert rec["reported"] == {"backend": "sglang", "dataset_name": "random",
                               "request_rate": "inf", "sharegpt_output_len": None,
                               "random_input_len": 1000, "random_output_len": 1000,
                               "random_range_ratio": 0.0}
    assert m["failed"] == 0


def test_jsonl_059_key_set_nan_and_details():
    s = spec(name="high", num_prompts=500, max_concurrency=100)
    rec = _bench.build_record(s, 0, 90.0, jsonl_text=fixture("jsonl_0.5.9_high.jsonl"))
    m = rec["metrics"]
    assert m["p90_e2e_latency_ms"] == 24301.77
    assert m["accept_length"] is None  # NaN
    assert "ttfts" not in m and "errors" not in m
    assert rec["reported"]["sglang_version"] == "0.5.9"
    json.dumps(rec, allow_nan=False)  # nothing non-finite reaches Ansible


def test_jsonl_without_result_keys_falls_back_to_stdout():
    rec = _bench.build_record(spec(), 0, 30.0, jsonl_text='{"backend": "sglang"}\n',
                              stdout=fixture("stdout_0.5.7_low.txt"))
    assert rec["source"] == "stdout" and rec["metrics"]["output_throughput"] == 176.86
    assert rec["warnings"] == ["JSONL line 1 is not a bench_serving result; ignored"]


# ------------------------------------------------------------------------------ records

def test_record_from_jsonl_with_stdout_adds_max_itl_and_scrubs():
    s = spec(name="medium", num_prompts=80, max_concurrency=16)
    rec = _bench.build_record(s, 0, 40.5, jsonl_text=fixture("jsonl_0.5.7_medium.jsonl"),
                              stdout=fixture("stdout_0.5.7_medium.txt"), raw_path="/r/medium.jsonl",
                              log_path="/r/medium.log", secrets=["sk-fixture-secret"])
    assert rec["status"] == "ok" and rec["error"] is None and rec["source"] == "jsonl"
    m = rec["metrics"]
    assert m["output_throughput"] == 1300.37  # this run's line, not the older one above it
    assert m["max_itl_ms"] == 299.89  # only printed, never in the JSONL
    assert (m["completed"], m["failed"], m["num_prompts"]) == (80, 0, 80)
    assert rec["reported"]["sglang_version"] == "0.5.7"
    info = rec["server_info"]
    assert info["api_key"] == info["admin_api_key"] == "********"
    assert info["internal_states"][0]["hf_token"] == "********"
    assert info["max_total_tokens"] == 1234567 and info["ssl_keyfile"] is None
    assert "fixture-secret" not in json.dumps(rec) and "hf_fixture" not in json.dumps(rec)
    assert rec["duration_s"] == 40.5 and rec["exit_status"] == 0


def test_record_failed_requests():
    s = spec(name="medium", num_prompts=80, max_concurrency=16)
    rec = _bench.build_record(s, 0, 40.0, jsonl_text=fixture("jsonl_0.5.7_medium_failed.jsonl"))
    assert rec["status"] == "failed"
    assert rec["metrics"]["failed"] == 3
    assert rec["error"] == "3 of 80 requests failed"


def test_record_from_stdout_only():
    s = spec(name="high", num_prompts=500, max_concurrency=100)
    rec = _bench.build_record(s, 0, 100.0, jsonl_text=None, stdout=fixture("stdout_0.5.7_high.txt"))
    assert rec["source"] == "stdout" and rec["status"] == "ok"
    assert rec["metrics"]["output_throughput"] == 3169.72
    assert rec["server_info"] is None


def test_record_timeout_and_crash():
    rec = _bench.build_record(spec(timeout=60), 124, 61.0, stdout="partial")
    assert rec["status"] == "error" and rec["timed_out"]
    assert "timed out after 60 s" in rec["error"]
    crash = "Traceback (most recent call last):\n  File x\nIndexError: index -1 is out of bounds"
    rec = _bench.build_record(spec(), 1, 2.0, stderr=crash + " sk-9", secrets=["sk-9"])
    assert rec["status"] == "error"
    assert rec["error"].startswith("bench_serving exited with status 1: Traceback")
    assert "IndexError" in rec["error"] and "sk-9" not in rec["error"]
    rec = _bench.build_record(spec(), 0, 2.0, stdout="nothing useful")
    assert rec["status"] == "error" and "left no result" in rec["error"]
    rec = _bench.build_record(spec(timeout=60), 137, 95.0)
    assert rec["status"] == "error" and not rec["timed_out"]
    assert rec["error"].startswith("bench_serving was killed (exit status 137, SIGKILL)")


def test_scrub_jsonl_keeps_infinity_and_masks():
    text = _bench.scrub_jsonl(fixture("jsonl_0.5.7_medium.jsonl") + '{"api_key": "sk-x", torn',
                              secrets=["sk-fixture-secret"])
    assert "fixture-secret" not in text and "sk-x" not in text
    lines = text.splitlines()
    assert len(lines) == 3 and '"request_rate": Infinity' in lines[1]
    assert json.loads(lines[1])["server_info"]["api_key"] == "********"


# ------------------------------------------------------------------------------ run loop

class FakeHost:
    """Stands in for run_command: answers by the command's verb, records every call."""

    def __init__(self, outputs):
        self.outputs = outputs  # tier name -> (rc, stdout, stderr, jsonl or None)
        self.calls = []

    def __call__(self, argv, env):
        self.calls.append((argv, env))
        if "mkdir" in argv or "rm" in argv:
            return 0, "", ""
        if "cat" in argv:
            tier = os.path.basename(argv[-1]).split(".")[0]
            jsonl = self.outputs[tier][3]
            return (0, jsonl, "") if jsonl is not None else (1, "", "cat: no such file")
        out = argv[argv.index("--output-file") + 1]
        tier = os.path.basename(out).split(".")[0]
        rc, stdout, stderr = self.outputs[tier][:3]
        return rc, stdout, stderr


def test_run_plan_keeps_earlier_tiers_when_one_fails(tmp_path):
    specs = _bench.validate_tiers([
        {"name": "low", "num_prompts": 10, "max_concurrency": 1},
        {"name": "medium", "num_prompts": 80, "max_concurrency": 16, "prime_prompts": 16},
        {"name": "high", "num_prompts": 500, "max_concurrency": 100},
    ])
    params = dict(PARAMS, results_dir=str(tmp_path), api_key="sk-fixture-secret")
    plan = _bench.plan_run(params, specs)
    host = FakeHost({
        "low": (0, fixture("stdout_0.5.7_low.txt"), "", None),
        "medium": (0, fixture("stdout_0.5.7_medium.txt"), "",
                   fixture("jsonl_0.5.7_medium.jsonl")),
        "high": (1, "", "ValueError: Warmup failed - Connection refused", None),
    })
    ticks = iter(range(100))
    records = _bench.run_plan(plan, host, clock=lambda: float(next(ticks)),
                              now=lambda: "2025-01-01T00:00:00Z",
                              secrets=["sk-fixture-secret"])
    assert [(r["tier"], r["status"], r["source"]) for r in records] == [
        ("low", "ok", "stdout"), ("medium", "ok", "jsonl"), ("high", "error", None)]
    assert "Warmup failed" in records[2]["error"]
    verbs = [next(v for v in ("mkdir", "rm", "cat", "sglang.bench_serving") if v in argv)
             for argv, _env in host.calls]
    assert verbs == ["mkdir",
                     "rm", "sglang.bench_serving", "cat",
                     "rm", "sglang.bench_serving", "sglang.bench_serving", "cat",
                     "rm", "sglang.bench_serving", "cat"]
    # Only the client runs get the key, and only through the environment.
    envs = [env for argv, env in host.calls if "sglang.bench_serving" in argv]
    assert envs == [{"OPENAI_API_KEY": "sk-fixture-secret"}] * 4
    assert all(env is None for argv, env in host.calls if "sglang.bench_serving" not in argv)
    assert records[1]["priming"] == {"num_prompts": 16, "exit_status": 0, "duration_s": 1.0,
                                     "timed_out": False}
    assert records[1]["raw_path"] == str(tmp_path / "medium.jsonl")
    assert records[0]["raw_path"] is None
    saved = (tmp_path / "medium.jsonl").read_text()
    assert "fixture-secret" not in saved and "Infinity" in saved
    assert sorted(os.listdir(tmp_path)) == ["high.log", "low.log", "medium.jsonl", "medium.log"]
    assert "ValueError: Warmup failed" in (tmp_path / "high.log").read_text()
    assert _bench.summarize(records).startswith("high: error (bench_serving exited with status 1")


def test_run_plan_container_unreachable(tmp_path):
    plan = _bench.plan_run(dict(PARAMS, results_dir=str(tmp_path)), [spec()])
    calls = []

    def run(argv, env):
        calls.append(argv)
        return 1, "", "Error response from daemon: container Kimi-linear is not running"

    records = _bench.run_plan(plan, run)
    assert len(calls) == 1
    assert records[0]["status"] == "error"
    assert "is not running" in records[0]["error"]
    assert os.listdir(tmp_path) == []


def test_run_plan_survives_an_unwritable_results_dir():
    plan = _bench.plan_run(PARAMS, [spec()])
    host = FakeHost({"low": (0, fixture("stdout_0.5.7_low.txt"), "",
                             fixture("jsonl_0.5.7_medium.jsonl"))})

    def write(path, text):
        raise PermissionError(13, "Permission denied", path)

    records = _bench.run_plan(plan, host, write=write)
    assert records[0]["status"] == "ok"
    assert (records[0]["raw_path"], records[0]["log_path"]) == (None, None)
    assert records[0]["warnings"] == [
        "could not write /var/lib/sglang-bench/r1/low.jsonl: [Errno 13] Permission denied: "
        "'/var/lib/sglang-bench/r1/low.jsonl'",
        "could not write /var/lib/sglang-bench/r1/low.log: [Errno 13] Permission denied: "
        "'/var/lib/sglang-bench/r1/low.log'"]


class WedgedHost(FakeHost):
    """A docker daemon that wedges on the short steps: the call ends at its coreutils limit (124)."""

    def __init__(self, outputs, wedged_verbs, clock):
        super().__init__(outputs)
        self.wedged_verbs = wedged_verbs
        self.clock = clock

    def __call__(self, argv, env):
        if any(verb in argv for verb in self.wedged_verbs):
            self.calls.append((argv, env))
            self.clock["now"] += int(argv[2])  # timeout stops the docker CLI at its limit
            return 124, "", ""
        return super().__call__(argv, env)


def test_a_wedged_prepare_step_names_the_command_and_its_limit(tmp_path):
    plan = _bench.plan_run(dict(PARAMS, results_dir=str(tmp_path), exec_timeout=45), [spec()])
    clock = {"now": 0.0}
    host = WedgedHost({}, ["mkdir"], clock)
    records = _bench.run_plan(plan, host, clock=lambda: clock["now"])
    assert host.calls[0][0][1:3] == ["--kill-after=5", "45"]
    assert records[0]["status"] == "error"
    assert records[0]["error"] == (
        "could not prepare /tmp/sglang-bench/r1 in the container (docker exec exited 124): `mkdir -p -- "
        "/tmp/sglang-bench/r1` in the container did not answer within 45 s (exec_timeout, "
        "sglang_docker_exec_timeout), so the docker CLI was stopped; is the docker daemon or the container wedged?")


def test_wedged_reset_and_read_steps_are_warnings_that_name_them(tmp_path):
    plan = _bench.plan_run(dict(PARAMS, results_dir=str(tmp_path), exec_timeout=30), [spec()])
    clock = {"now": 0.0}
    host = WedgedHost({"low": (0, fixture("stdout_0.5.7_low.txt"), "", None)}, ["rm", "cat"], clock)
    records = _bench.run_plan(plan, host, clock=lambda: clock["now"])
    assert records[0]["status"] == "ok" and records[0]["source"] == "stdout"
    assert [w.split(" in the container did not answer within ")[0] for w in records[0]["warnings"]
            if "did not answer" in w] == ["`rm -f -- /tmp/sglang-bench/r1/low.jsonl /tmp/sglang-bench/r1/low.prime.jsonl`",
                                          "`cat -- /tmp/sglang-bench/r1/low.jsonl`"]
    assert all("within 30 s (exec_timeout" in w for w in records[0]["warnings"] if "did not answer" in w)
