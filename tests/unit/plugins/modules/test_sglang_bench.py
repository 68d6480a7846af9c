"""sglang_bench: the real main() with injected args; only run_command and PATH lookups mocked."""

import json
import os

import pytest
from unittest import mock

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.sglang_rocm.fleet.plugins.modules import sglang_bench

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "bench")
KEY = "sk-fixture-secret"


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


def base_args(tmp_path, **extra):
    args = {
        "container": "Kimi-linear",
        "model": "moonshotai/Kimi-Linear-48B-A3B-Instruct",
        "run_id": "r1",
        "results_dir": str(tmp_path / "r1"),
        "tiers": [{"name": "low", "num_prompts": 10, "max_concurrency": 1},
                  {"name": "medium", "num_prompts": 80, "max_concurrency": 16}],
    }
    args.update(extra)
    return args


def run_module(args, answers=None, check_mode=False):
    """Run main(); answers(argv, environ_update) -> (rc, out, err). Returns (result, calls)."""
    calls = []

    def run_command(self, argv, environ_update=None, **kwargs):
        calls.append((list(argv), dict(environ_update or {}), kwargs))
        return answers(argv, environ_update or {}) if answers else (0, "", "")

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/bin/" + name

    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args), \
            mock.patch.object(basic.AnsibleModule, "run_command", run_command), \
            mock.patch.object(basic.AnsibleModule, "get_bin_path", get_bin_path), \
            mock.patch("sys.stdout.write") as out, \
            pytest.raises(SystemExit) as exc:
        sglang_bench.main()
    text = "".join(call.args[0] for call in out.call_args_list)
    result = json.loads(text)
    result["_rc"] = exc.value.code
    return result, calls


def host_answers(outputs):
    def answer(argv, env):
        if "mkdir" in argv or "rm" in argv:
            return 0, "", ""
        if "cat" in argv:
            jsonl = outputs[os.path.basename(argv[-1]).split(".")[0]][3]
            return (0, jsonl, "") if jsonl else (1, "", "cat: No such file or directory")
        tier = os.path.basename(argv[argv.index("--output-file") + 1]).split(".")[0]
        return outputs[tier][:3]
    return answer


RECIPE_LOW = [
    "/usr/bin/timeout", "--kill-after=30", "3660",
    "/usr/bin/docker", "--host", "unix:///var/run/docker.sock", "exec",
    "--env", "OPENAI_API_KEY", "Kimi-linear",
    "timeout", "--kill-after=30", "3600",
    "python3", "-m", "sglang.bench_serving", "--backend", "sglang",
    "--host", "127.0.0.1", "--port", "30000",
    "--model", "moonshotai/Kimi-Linear-48B-A3B-Instruct",
    "--tokenizer", "moonshotai/Kimi-Linear-48B-A3B-Instruct",
    "--dataset-name", "random", "--dataset-path", "",
    "--random-input-len", "1000", "--random-output-len", "1000", "--random-range-ratio", "0.0",
    "--num-prompts", "10", "--max-concurrency", "1", "--request-rate", "inf",
    "--seed", "1", "--warmup-requests", "1", "--output-file", "/tmp/sglang-bench/r1/low.jsonl",
]


def test_runs_every_tier_and_returns_records(tmp_path):
    outputs = {"low": (0, fixture("stdout_0.5.7_low.txt"), "", None),
               "medium": (0, fixture("stdout_0.5.7_medium.txt"), "",
                          fixture("jsonl_0.5.7_medium.jsonl"))}
    result, calls = run_module(base_args(tmp_path, api_key=KEY), host_answers(outputs))
    assert result["_rc"] == 0 and result["changed"] is True
    short = ["/usr/bin/timeout", "--kill-after=5", "600",
             "/usr/bin/docker", "--host", "unix:///var/run/docker.sock", "exec", "Kimi-linear"]
    assert [c[0] for c in calls] == [
        short + ["mkdir", "-p", "--", "/tmp/sglang-bench/r1"],
        short + ["rm", "-f", "--", "/tmp/sglang-bench/r1/low.jsonl", "/tmp/sglang-bench/r1/low.prime.jsonl"],
        RECIPE_LOW,
        short + ["cat", "--", "/tmp/sglang-bench/r1/low.jsonl"],
        calls[4][0], calls[5][0], calls[6][0],
    ]
    assert len(calls) == 7
    # every docker CLI call runs with the C locale; the key only by name, its value in the environment
    c_locale = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
    assert calls[2][1] == dict(c_locale, OPENAI_API_KEY=KEY)
    assert all(call[1] == c_locale for i, call in enumerate(calls) if i not in (2, 5))
    assert calls[5][0][calls[5][0].index("--num-prompts") + 1] == "80"
    assert [r["tier"] for r in result["records"]] == ["low", "medium"]
    low, medium = result["records"]
    assert (low["status"], low["source"], low["metrics"]["output_throughput"]) == \
        ("ok", "stdout", 176.86)
    assert (medium["source"], medium["metrics"]["median_tpot_ms"]) == ("jsonl", 10.87)
    assert medium["server_info"]["api_key"] == "********"
    assert result["failed_tiers"] == []
    assert result["results_dir"] == str(tmp_path / "r1")
    assert sorted(os.listdir(tmp_path / "r1")) == ["low.log", "low.record.json", "medium.jsonl",
                                                   "medium.log", "medium.record.json",
                                                   "summary.json"]
    everything = json.dumps(result) + "".join(p.read_text() for p in (tmp_path / "r1").iterdir())
    assert KEY not in everything


def test_failing_tier_keeps_the_others_and_fails_after_all_ran(tmp_path):
    tiers = [{"name": "low", "num_prompts": 10, "max_concurrency": 1},
             {"name": "medium", "num_prompts": 80, "max_concurrency": 16},
             {"name": "high", "num_prompts": 500, "max_concurrency": 100}]
    outputs = {"low": (0, fixture("stdout_0.5.7_low.txt"), "", None),
               "medium": (124, "", "", None),
               "high": (0, "", "", fixture("jsonl_0.5.7_medium_failed.jsonl"))}
    result, calls = run_module(base_args(tmp_path, tiers=tiers), host_answers(outputs))
    assert result["_rc"] == 1 and result["failed"] is True
    assert [r["status"] for r in result["records"]] == ["ok", "error", "failed"]
    assert result["failed_tiers"] == ["medium", "high"]
    assert result["msg"].startswith("benchmark tier(s) did not pass: medium: error (tier 'medium' "
                                    "timed out after 3600 s")
    assert "high: failed (423 of 500 requests failed)" in result["msg"]
    assert len(calls) == 1 + 3 * 3


def test_fail_on_error_false_returns_ok(tmp_path):
    outputs = {"low": (1, "", "ValueError: Warmup failed", None),
               "medium": (0, fixture("stdout_0.5.7_medium.txt"), "", None)}
    result, _calls = run_module(base_args(tmp_path, fail_on_error=False), host_answers(outputs))
    assert result["_rc"] == 0 and not result.get("failed")
    assert result["failed_tiers"] == ["low"]
    assert result["records"][1]["status"] == "ok"


def test_check_mode_reports_commands_and_runs_nothing(tmp_path):
    args = base_args(tmp_path, api_key=KEY, offline=True,
                     tokenizer="/models/kimi",
                     tiers=[{"name": "smoke", "num_prompts": 4, "max_concurrency": 2,
                             "dataset_name": "random-ids", "prime_prompts": 2, "timeout": 120}])
    result, calls = run_module(args, check_mode=True)
    assert calls == []
    assert result["_rc"] == 0 and result["changed"] is True and result["records"] == []
    cmd = result["commands"][0]
    assert cmd["tier"] == "smoke"
    assert cmd["run"][:13] == [
        "/usr/bin/timeout", "--kill-after=30", "180",
        "/usr/bin/docker", "--host", "unix:///var/run/docker.sock", "exec",
        "--env", "HF_HUB_OFFLINE=1", "--env", "OPENAI_API_KEY",
        "--env", "TRANSFORMERS_OFFLINE=1"]
    assert cmd["prime"][cmd["prime"].index("--num-prompts") + 1] == "2"
    assert KEY not in json.dumps(result)
    assert not (tmp_path / "r1").exists()


def test_invalid_tier_fails_before_running(tmp_path):
    args = base_args(tmp_path, tiers=[{"name": "low", "max_concurrency": 0}])
    result, calls = run_module(args)
    assert calls == []
    assert result["_rc"] == 1
    assert "tier 'low' (tiers[0]): num_prompts is required" in result["msg"]
    assert "tier 'low' (tiers[0]): max_concurrency must be an integer >= 1" in result["msg"]


def test_offline_without_dataset_fails_clearly(tmp_path):
    result, calls = run_module(base_args(tmp_path, offline=True, tokenizer="/models/kimi"),
                               check_mode=True)
    assert calls == [] and result["_rc"] == 1
    assert "tier 'low' (tiers[0]): dataset_path is required in offline mode" in result["msg"]


# ------------------------------------------- an async budget that runs out (issue 15)

def test_a_killed_job_keeps_the_tiers_that_finished(tmp_path):
    """The async job is killed while the medium tier runs: the low tier's record survives on the
    host, and collect_reason returns it with medium marked not run, with the reason."""
    outputs = {"low": (0, fixture("stdout_0.5.7_low.txt"), "", None)}

    def answers(argv, env):
        if "--output-file" in argv and "/medium." in argv[argv.index("--output-file") + 1]:
            raise SystemExit(-9)  # what async_wrapper's SIGKILL leaves: nothing returned
        return host_answers(outputs)(argv, env)

    with pytest.raises(json.JSONDecodeError):  # the module printed nothing
        run_module(base_args(tmp_path), answers)
    assert sorted(os.listdir(tmp_path / "r1")) == ["low.log", "low.record.json"]

    reason = "async task did not complete within the requested time - 120s"
    result, calls = run_module(base_args(tmp_path, collect_reason=reason, fail_on_error=False))
    assert calls == []  # nothing ran on the host
    assert result["_rc"] == 0 and result["changed"] is False
    low, medium = result["records"]
    assert (low["tier"], low["status"], low["metrics"]["output_throughput"]) == ("low", "ok", 176.86)
    assert low["log_path"] == str(tmp_path / "r1" / "low.log")
    assert (medium["tier"], medium["status"]) == ("medium", "not_run")
    assert medium["error"] == "tier 'medium' did not finish: " + reason
    assert result["failed_tiers"] == ["medium"]

    result, _calls = run_module(base_args(tmp_path, collect_reason=reason))
    assert result["_rc"] == 1 and "medium: not_run" in result["msg"]


def test_collect_reason_still_refuses_bad_tiers(tmp_path):
    result, calls = run_module(base_args(tmp_path, collect_reason="timed out",
                                         tiers=[{"name": "low", "num_prompts": 0,
                                                 "max_concurrency": 1}]))
    assert result["_rc"] == 1 and calls == []
    assert "num_prompts must be an integer >= 1" in result["msg"]
