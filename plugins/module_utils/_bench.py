# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""Pure logic behind the sglang_bench module (stdlib only, no AnsibleModule).

Tier specs are validated and normalised here, turned into the argv of the real
``python3 -m sglang.bench_serving`` client run through ``docker exec``, and the client's
output (the JSONL line it appends to ``--output-file``, or the printed summary block when
no JSONL was written) is parsed into one normalised record per tier. The run loop takes
its side effects (command runner, file writer, clock) as arguments so it is unit-tested
without Docker or Ansible.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import shlex
import time

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._docker_cli import (
    DEFAULT_EXEC_TIMEOUT,
    KILL_AFTER as EXEC_KILL_AFTER,
    env_args,
    exec_argv,
    timed,
)
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._secrets import (
    MASK,
    mask_text,
    scrub,
)

# --dataset-name choices of sglang.bench_serving 0.5.7.
DATASETS = (
    "sharegpt", "custom", "random", "random-ids", "generated-shared-prefix",
    "mmmu", "image", "mooncake",
)
# Datasets that read --dataset-path and download a default file when it is empty or not valid
# JSON (random samples ShareGPT text); offline runs must point them at a local file.
OFFLINE_NEEDS_DATASET_PATH = ("random", "sharegpt", "custom", "mooncake")
# Datasets that always fetch from the Hub.
OFFLINE_UNSUPPORTED = ("mmmu",)

TIER_REQUIRED = ("name", "num_prompts", "max_concurrency")
# Defaults follow the published recipe (random 1000/1000, request rate inf) and the client's
# own defaults for the rest (range ratio 0.0, seed 1, one warm-up request).
TIER_DEFAULTS = {
    "dataset_name": "random",
    "dataset_path": "",
    "random_input_len": 1000,
    "random_output_len": 1000,
    "random_range_ratio": 0.0,
    "request_rate": "inf",
    "seed": 1,
    "warmup_requests": 1,
    "prime_prompts": 0,
    "timeout": None,
    "extra_args": [],
}
TIER_KEYS = TIER_REQUIRED + tuple(TIER_DEFAULTS)

# Flags the module always sets itself; a tier's extra_args may not repeat them.
MANAGED_FLAGS = (
    "--backend", "--host", "--port", "--model", "--tokenizer", "--dataset-name",
    "--dataset-path", "--random-input-len", "--random-output-len", "--random-range-ratio",
    "--num-prompts", "--max-concurrency", "--request-rate", "--seed", "--warmup-requests",
    "--output-file",
)

TIER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# Seconds the host-side timeout waits beyond the in-container one before it gives up on a
# docker CLI that does not return, and the grace period before SIGKILL.
OUTER_TIMEOUT_MARGIN = 60
KILL_AFTER = 30
TIMEOUT_EXIT_CODE = 124  # coreutils timeout: the command ran out of time
KILLED_EXIT_CODE = 137  # SIGKILL: timeout's --kill-after, or the kernel's OOM killer


class BenchSpecError(ValueError):
    """A tier spec or module input that cannot be run; the message names tier and field."""


# --------------------------------------------------------------------------- tier specs

def _as_int(value, minimum):
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError
        value = int(value)
    if isinstance(value, str):
        value = int(value.strip())
    if not isinstance(value, int) or value < minimum:
        raise ValueError
    return value


def _as_float(value, minimum=None, maximum=None):
    if isinstance(value, bool):
        raise ValueError
    value = float(value)
    if math.isnan(value) or (minimum is not None and value < minimum) or (
            maximum is not None and value > maximum):
        raise ValueError
    return value


def _request_rate(value):
    if isinstance(value, str) and value.strip().lower() in ("inf", "infinity"):
        return "inf"
    rate = _as_float(value)
    if math.isinf(rate) and rate > 0:
        return "inf"
    if rate <= 0:
        raise ValueError
    return rate


def normalize_tier(tier, index, offline=False, default_timeout=3600):
    """Return (spec, errors) for one tier dict; errors name the tier and the field."""
    errors = []
    if not isinstance(tier, dict):
        return None, ["tiers[%d]: expected a dict with name, num_prompts and max_concurrency, "
                      "got %s" % (index, type(tier).__name__)]
    name = tier.get("name")
    label = "tier %r (tiers[%d])" % (name, index) if name else "tiers[%d]" % index

    def err(field, text):
        errors.append("%s: %s %s" % (label, field, text))

    unknown = sorted(set(tier) - set(TIER_KEYS))
    if unknown:
        errors.append("%s: unknown field(s) %s; known fields are %s"
                      % (label, ", ".join(unknown), ", ".join(TIER_KEYS)))
    for field in TIER_REQUIRED:
        if tier.get(field) in (None, ""):
            err(field, "is required")
    spec = dict(TIER_DEFAULTS)
    spec["extra_args"] = []
    spec.update({k: v for k, v in tier.items() if k in TIER_KEYS and v is not None})

    if name not in (None, "") and not (isinstance(name, str) and TIER_NAME_RE.match(name)):
        err("name", "must be letters, digits, '.', '_' or '-' (it names result files), got %r"
            % (name,))
    checks = (
        ("num_prompts", 1, "an integer >= 1"),
        ("max_concurrency", 1, "an integer >= 1 (1 is the recipe's low tier)"),
        ("random_input_len", 1, "an integer >= 1"),
        ("random_output_len", 1, "an integer >= 1"),
        ("seed", 0, "an integer >= 0"),
        ("warmup_requests", 0, "an integer >= 0"),
        ("prime_prompts", 0, "an integer >= 0 (0 disables the priming pass)"),
    )
    for field, minimum, what in checks:
        if field in TIER_REQUIRED and tier.get(field) in (None, ""):
            continue
        try:
            spec[field] = _as_int(spec[field], minimum)
        except (TypeError, ValueError):
            err(field, "must be %s, got %r" % (what, spec[field]))
    try:
        spec["random_range_ratio"] = _as_float(spec["random_range_ratio"], 0.0, 1.0)
    except (TypeError, ValueError):
        err("random_range_ratio", "must be a number between 0.0 and 1.0, got %r"
            % (spec["random_range_ratio"],))
    try:
        spec["request_rate"] = _request_rate(spec["request_rate"])
    except (TypeError, ValueError):
        err("request_rate", "must be 'inf' or a number of requests per second > 0, got %r"
            % (spec["request_rate"],))
    if spec["timeout"] in (None, ""):
        spec["timeout"] = default_timeout
    try:
        spec["timeout"] = _as_int(spec["timeout"], 1)
    except (TypeError, ValueError):
        err("timeout", "must be a number of seconds >= 1, got %r" % (spec["timeout"],))

    dataset = spec["dataset_name"]
    if dataset not in DATASETS:
        err("dataset_name", "%r is not a dataset sglang.bench_serving knows; expected one of %s"
            % (dataset, ", ".join(DATASETS)))
    if not isinstance(spec["dataset_path"], str):
        err("dataset_path", "must be a path string, got %r" % (spec["dataset_path"],))
    elif offline and dataset in OFFLINE_NEEDS_DATASET_PATH and not spec["dataset_path"]:
        err("dataset_path", "is required in offline mode for dataset %r: without it "
            "bench_serving downloads ShareGPT from the Hub; point it at a ShareGPT-format JSON "
            "file inside the container, or use dataset_name 'random-ids'" % dataset)
    if offline and dataset in OFFLINE_UNSUPPORTED:
        err("dataset_name", "%r always downloads from the Hub and cannot run in offline mode"
            % dataset)

    extra = spec["extra_args"]
    if isinstance(extra, str) or not isinstance(extra, (list, tuple)):
        err("extra_args", "must be a list of strings, got %r" % (extra,))
    else:
        spec["extra_args"] = [str(a) for a in extra]
        for flag in _managed_flags_in(spec["extra_args"]):
            err("extra_args", "may not set %s: the module passes it from the tier's own field"
                % flag)
    return spec, errors


def _managed_flags_in(args):
    found = []
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag in MANAGED_FLAGS and flag not in found:
            found.append(flag)
    return found


def validate_tiers(tiers, offline=False, tokenizer=None, default_timeout=3600, extra_args=None):
    """Normalise every tier or raise BenchSpecError listing every problem found."""
    errors = []
    if offline and not tokenizer:
        errors.append("tokenizer: offline mode needs a tokenizer that exists inside the container "
                      "(a local directory or a model already in the HF cache); with "
                      "HF_HUB_OFFLINE=1 bench_serving cannot download one")
    for flag in _managed_flags_in(extra_args or []):
        errors.append("extra_args: may not set %s: the module passes it from the tier spec" % flag)
    if not tiers:
        errors.append("tiers: at least one tier is required")
    specs, seen = [], set()
    for index, tier in enumerate(tiers or []):
        spec, tier_errors = normalize_tier(tier, index, offline, default_timeout)
        errors.extend(tier_errors)
        if spec is None:
            continue
        if spec.get("name") in seen:
            errors.append("tier %r (tiers[%d]): name is used by an earlier tier; tier names "
                          "must be unique" % (spec["name"], index))
        seen.add(spec.get("name"))
        specs.append(spec)
    if errors:
        raise BenchSpecError("invalid benchmark input: " + "; ".join(errors))
    return specs


# ------------------------------------------------------------------------------- argv

def format_number(value):
    """Render a number the way argparse reads it back unchanged ("inf", "0.0", "10")."""
    if value == "inf" or (isinstance(value, float) and math.isinf(value)):
        return "inf"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def bench_argv(spec, host, port, model, tokenizer, output_file, python="python3",
               extra_args=None, num_prompts=None):
    """The sglang.bench_serving command for one tier (every workload flag explicit)."""
    argv = [
        python, "-m", "sglang.bench_serving",
        "--backend", "sglang",
        "--host", str(host),
        "--port", str(port),
        "--model", model,
        "--tokenizer", tokenizer or model,
        "--dataset-name", spec["dataset_name"],
        "--dataset-path", spec["dataset_path"],
        "--random-input-len", format_number(spec["random_input_len"]),
        "--random-output-len", format_number(spec["random_output_len"]),
        "--random-range-ratio", format_number(spec["random_range_ratio"]),
        "--num-prompts", format_number(num_prompts or spec["num_prompts"]),
        "--max-concurrency", format_number(spec["max_concurrency"]),
        "--request-rate", format_number(spec["request_rate"]),
        "--seed", format_number(spec["seed"]),
        "--warmup-requests", format_number(spec["warmup_requests"]),
        "--output-file", output_file,
    ]
    return argv + list(extra_args or []) + list(spec["extra_args"])


def plan_run(params, specs):
    """Everything the run needs, per tier, before anything runs (also the check-mode answer).

    params keys: docker, timeout_bin, docker_host, container, host, port, model, tokenizer,
    python, env (dict), api_key, offline, run_id, results_dir, container_results_dir,
    extra_args, exec_timeout (limit of the short docker exec calls).
    """
    env = dict(params.get("env") or {})
    if params.get("offline"):
        env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    if params.get("api_key"):
        # bench_serving sends OPENAI_API_KEY as "Authorization: Bearer <key>", which is what a
        # server started with --api-key checks (API_KEY would be sent without "Bearer").
        env["OPENAI_API_KEY"] = params["api_key"]
    env_argv, hidden_env = env_args(env)
    docker = params.get("docker") or "docker"
    container = params["container"]
    timeout_bin = params.get("timeout_bin") or "timeout"
    cdir = "%s/%s" % (params["container_results_dir"].rstrip("/"), params["run_id"])

    def exec_(command, with_env=False, seconds=params.get("exec_timeout", DEFAULT_EXEC_TIMEOUT), kill_after=EXEC_KILL_AFTER):
        return exec_argv(docker, params.get("docker_host"), container, command, seconds,
                         env_argv=env_argv if with_env else (), timeout_bin=timeout_bin,
                         kill_after=kill_after)

    tiers = []
    for spec in specs:
        name = spec["name"]
        out = "%s/%s.jsonl" % (cdir, name)
        prime_out = "%s/%s.prime.jsonl" % (cdir, name)
        common = dict(host=params["host"], port=params["port"], model=params["model"],
                      tokenizer=params.get("tokenizer"), python=params.get("python") or "python3",
                      extra_args=params.get("extra_args"))
        bench = bench_argv(spec, output_file=out, **common)

        def outer(cmd, seconds=spec["timeout"]):
            # The in-container timeout stops the client where it runs (killing the docker CLI
            # alone would leave it running); the outer one guards a docker CLI that hangs.
            return exec_(timed(cmd, seconds, "timeout", KILL_AFTER), with_env=True,
                         seconds=seconds + OUTER_TIMEOUT_MARGIN, kill_after=KILL_AFTER)

        tier = {
            "name": name,
            "spec": spec,
            "output_file": out,
            "bench_argv": bench,
            "reset": exec_(["rm", "-f", "--", out, prime_out]),
            "prime": None,
            "run": outer(bench),
            "read": exec_(["cat", "--", out]),
            "raw_path": os.path.join(params["results_dir"], name + ".jsonl"),
            "log_path": os.path.join(params["results_dir"], name + ".log"),
        }
        if spec["prime_prompts"]:
            tier["prime"] = outer(bench_argv(spec, output_file=prime_out,
                                             num_prompts=spec["prime_prompts"], **common))
        tiers.append(tier)
    return {
        "container_dir": cdir,
        "prepare": exec_(["mkdir", "-p", "--", cdir]),
        "env": hidden_env,
        "tiers": tiers,
    }


# ---------------------------------------------------------------------------- parsing

# Every key a bench_serving JSONL line has carried from 0.3 to 0.5.9 that the record keeps,
# mapped to the record's name; vLLM-style names are accepted too.
JSONL_METRICS = {
    "duration": "duration_s",
    "benchmark_duration": "duration_s",
    "completed": "completed",
    "total_input_tokens": "total_input_tokens",
    "total_input_text_tokens": "total_input_text_tokens",
    "total_input_vision_tokens": "total_input_vision_tokens",
    "total_output_tokens": "total_output_tokens",
    "total_output_tokens_retokenized": "total_output_tokens_retokenized",
    "request_throughput": "request_throughput",
    "input_throughput": "input_throughput",
    "output_throughput": "output_throughput",
    "total_throughput": "total_throughput",
    "total_token_throughput": "total_throughput",
    "max_output_tokens_per_s": "max_output_tokens_per_s",
    "max_concurrent_requests": "max_concurrent_requests",
    "concurrency": "concurrency",
    "accept_length": "accept_length",
}
REPORTED_KEYS = ("tag", "backend", "dataset_name", "request_rate", "max_concurrency",
                 "sharegpt_output_len", "random_input_len", "random_output_len",
                 "random_range_ratio")
# Per-request arrays written with --output-details; too big for a record.
DETAIL_KEYS = ("input_lens", "output_lens", "ttfts", "itls", "generated_texts", "errors")
LATENCY_RE = re.compile(r"^(mean|median|std|p\d+|max)_(e2e_latency|ttft|tpot|itl)_ms$")
REQUIRED_RESULT_KEYS = ("completed", "output_throughput")

# Printed summary labels (lower-cased, without the colon) to record keys.
SUMMARY_LABELS = {
    "backend": ("reported", "backend"),
    "traffic request rate": ("reported", "request_rate"),
    "max request concurrency": ("reported", "max_concurrency"),
    "max reqeuest concurrency": ("reported", "max_concurrency"),  # typo of early 0.4 builds
    "maximum request concurrency": ("reported", "max_concurrency"),
    "successful requests": ("metrics", "completed"),
    "benchmark duration (s)": ("metrics", "duration_s"),
    "total input tokens": ("metrics", "total_input_tokens"),
    "total input text tokens": ("metrics", "total_input_text_tokens"),
    "total input vision tokens": ("metrics", "total_input_vision_tokens"),
    "total generated tokens": ("metrics", "total_output_tokens"),
    "total generated tokens (retokenized)": ("metrics", "total_output_tokens_retokenized"),
    "request throughput (req/s)": ("metrics", "request_throughput"),
    "input token throughput (tok/s)": ("metrics", "input_throughput"),
    "output token throughput (tok/s)": ("metrics", "output_throughput"),
    "peak output token throughput (tok/s)": ("metrics", "max_output_tokens_per_s"),
    "peak concurrent requests": ("metrics", "max_concurrent_requests"),
    "total token throughput (tok/s)": ("metrics", "total_throughput"),
    "concurrency": ("metrics", "concurrency"),
    "accept length": ("metrics", "accept_length"),
}
SUMMARY_LATENCY_RE = re.compile(
    r"^(mean|median|std|p\d+|max) (e2e latency|ttft|tpot|itl) \(ms\)$")
SUMMARY_START = "Serving Benchmark Result"
SUMMARY_LINE_RE = re.compile(r"^\s*([^:]+?):\s+(\S.*?)\s*$")


def _finite(value):
    """JSON-safe number: NaN becomes None, +/-inf becomes "inf"/"-inf"."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_jsonl(text):
    """Return (last result object, warnings) from a bench_serving JSONL file.

    The file is appended to, so the last complete line is this run's; Python's json reads the
    bare Infinity/NaN tokens the client writes. A torn last line is skipped with a warning.
    """
    result, warnings = None, []
    for number, line in enumerate((text or "").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            warnings.append("JSONL line %d does not parse (%s); ignored" % (number, exc))
            continue
        if isinstance(obj, dict) and all(k in obj for k in REQUIRED_RESULT_KEYS):
            result = obj
        else:
            warnings.append("JSONL line %d is not a bench_serving result; ignored" % number)
    return result, warnings


def _summary_value(text):
    text = text.strip()
    lowered = text.lower()
    if lowered == "not set":
        return None
    if lowered in ("inf", "infinity"):
        return "inf"
    if re.match(r"^-?\d+$", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def parse_summary(text):
    """Parse the last printed 'Serving Benchmark Result' block; None when there is none."""
    lines = (text or "").splitlines()
    starts = [i for i, line in enumerate(lines) if SUMMARY_START in line]
    if not starts:
        return None
    metrics, reported = {}, {}
    for line in lines[starts[-1] + 1:]:
        stripped = line.strip()
        if stripped and set(stripped) == {"="}:
            break
        match = SUMMARY_LINE_RE.match(line)
        if not match:
            continue  # section rules such as ----Time to First Token----
        label, value = match.group(1).strip().lower(), _summary_value(match.group(2))
        latency = SUMMARY_LATENCY_RE.match(label)
        if latency:
            metrics["%s_%s_ms" % (latency.group(1), latency.group(2).replace(" ", "_"))] = value
        elif label in SUMMARY_LABELS:
            where, key = SUMMARY_LABELS[label]
            (metrics if where == "metrics" else reported)[key] = value
    if not all(k in metrics for k in REQUIRED_RESULT_KEYS):
        return None
    return {"metrics": metrics, "reported": reported}


def normalize_result(obj):
    """Split one JSONL result object into metrics / reported workload / server_info."""
    metrics, reported = {}, {}
    for key, value in obj.items():
        if key in JSONL_METRICS:
            metrics[JSONL_METRICS[key]] = _finite(value)
        elif LATENCY_RE.match(key):
            metrics[key] = _finite(value)
        elif key in REPORTED_KEYS:
            reported[key] = _finite(value)
        elif key in DETAIL_KEYS or key == "server_info":
            continue
        elif _is_number(value):
            metrics[key] = _finite(value)  # a metric from a newer client: keep it
    return {"metrics": metrics, "reported": reported, "server_info": obj.get("server_info")}


def scrub_jsonl(text, secrets=()):
    """The JSONL as stored on the host: each line re-serialised with secrets scrubbed."""
    out = []
    for line in (text or "").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            out.append(re.sub(r'("[^"]*(?:key|token|secret|password)[^"]*"\s*:\s*)"[^"]*"',
                              r'\1"%s"' % MASK, mask_text(line, secrets), flags=re.I))
            continue
        out.append(json.dumps(scrub(obj, secrets)))
    return "\n".join(out) + ("\n" if out else "")


def _tail(text, lines=15):
    kept = [line for line in (text or "").splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def build_record(spec, exit_status, duration_s, jsonl_text=None, stdout="", stderr="",
                 raw_path=None, log_path=None, secrets=(), started=None, finished=None,
                 argv=None, priming=None):
    """One normalised per-tier record from everything a tier run produced."""
    timed_out = exit_status == TIMEOUT_EXIT_CODE
    warnings = []
    parsed, source = None, None
    if jsonl_text:
        obj, warnings = parse_jsonl(jsonl_text)
        if obj is not None:
            parsed, source = normalize_result(obj), "jsonl"
    summary = parse_summary(stdout)
    if parsed is None and summary is not None:
        parsed, source = dict(summary, server_info=None), "stdout"
    elif parsed is not None and summary is not None:
        # The printed block has a few figures the JSONL lacks (Max ITL).
        for key, value in summary["metrics"].items():
            parsed["metrics"].setdefault(key, value)

    metrics, reported, server_info = {}, {}, None
    if parsed is not None:
        metrics = dict(parsed["metrics"])
        reported = dict(parsed["reported"])
        server_info = scrub(parsed.get("server_info"), secrets)
        completed = metrics.get("completed")
        if _is_number(completed):
            metrics["failed"] = max(0, spec["num_prompts"] - int(completed))
        metrics["num_prompts"] = spec["num_prompts"]
        if "total_throughput" not in metrics and _is_number(metrics.get("input_throughput")) \
                and _is_number(metrics.get("output_throughput")):
            metrics["total_throughput"] = metrics["input_throughput"] + metrics["output_throughput"]
        if isinstance(server_info, dict) and server_info.get("version"):
            reported["sglang_version"] = server_info["version"]

    error = None
    if timed_out:
        status = "error"
        error = ("tier %r timed out after %d s (tier timeout); raise the tier's timeout or check "
                 "that the server still answers" % (spec["name"], spec["timeout"]))
    elif exit_status == KILLED_EXIT_CODE:
        status = "error"
        error = ("bench_serving was killed (exit status 137, SIGKILL): it ignored SIGTERM after "
                 "the tier timeout of %d s, or the container ran out of memory"
                 % spec["timeout"])
    elif exit_status != 0:
        status = "error"
        error = "bench_serving exited with status %s: %s" % (
            exit_status, _tail(mask_text(stderr or "", secrets) or mask_text(stdout or "", secrets))
            or "no output")
    elif parsed is None:
        status = "error"
        error = ("bench_serving exited 0 but left no result: no JSONL line in its --output-file "
                 "and no 'Serving Benchmark Result' block on stdout")
    elif metrics.get("failed"):
        status = "failed"
        error = "%d of %d requests failed" % (metrics["failed"], spec["num_prompts"])
    else:
        status = "ok"
    return {
        "tier": spec["name"],
        "spec": spec,
        "status": status,
        "metrics": metrics,
        "reported": reported,
        "server_info": server_info,
        "source": source,
        "exit_status": exit_status,
        "timed_out": timed_out,
        "duration_s": round(duration_s, 3) if duration_s is not None else None,
        "started": started,
        "finished": finished,
        "raw_path": raw_path,
        "log_path": log_path,
        "argv": argv,
        "priming": priming,
        "warnings": warnings,
        "error": error,
    }


# ---------------------------------------------------------------------------- the run

def _utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_file(path, text):
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def short_step(run, argv, clock):
    """Run one short docker exec (prepare, reset, read): (rc, stdout, stderr, problem), where
    problem names the command and its limit when the call ran out of time, else None."""
    start = clock()
    rc, out, err = run(argv, None)
    try:
        limit = int(argv[2])
        command = " ".join(shlex.quote(arg) for arg in argv[argv.index("exec") + 2:])
    except (IndexError, ValueError):
        return rc, out, err, None
    if rc in (TIMEOUT_EXIT_CODE, KILLED_EXIT_CODE) and clock() - start >= limit:
        return rc, out, err, ("`%s` in the container did not answer within %d s (exec_timeout, "
                              "sglang_docker_exec_timeout), so the docker CLI was stopped; is the "
                              "docker daemon or the container wedged?" % (command, limit))
    return rc, out, err, None


def run_plan(plan, run, clock=time.monotonic, now=_utc_now, write=_write_file, secrets=()):
    """Run every tier of a plan; a failing tier never loses the records of the others.

    run(argv, env) -> (rc, stdout, stderr) runs one command on the host; env holds the
    variables the docker CLI forwards by name.
    """
    records = []
    rc, out, err, problem = short_step(run, plan["prepare"], clock)
    if rc != 0:
        reason = "could not prepare %s in the container (docker exec exited %s): %s" % (
            plan["container_dir"], rc, problem or _tail(mask_text(err or out or "", secrets), 5))
        for tier in plan["tiers"]:
            record = build_record(tier["spec"], None, None, argv=tier["bench_argv"])
            record.update(status="error", error=reason)
            records.append(record)
        return records

    for tier in plan["tiers"]:
        steps = [short_step(run, tier["reset"], clock)[3]]
        priming = None
        if tier["prime"]:
            start = clock()
            prc, _pout, _perr = run(tier["prime"], plan["env"])
            priming = {"num_prompts": tier["spec"]["prime_prompts"], "exit_status": prc,
                       "duration_s": round(clock() - start, 3),
                       "timed_out": prc == TIMEOUT_EXIT_CODE}
        started = now()
        start = clock()
        rc, out, err = run(tier["run"], plan["env"])
        duration = clock() - start
        finished = now()
        crc, jsonl, _cerr, problem = short_step(run, tier["read"], clock)
        steps.append(problem)
        jsonl = jsonl if crc == 0 and jsonl.strip() else None

        log = "$ %s\n# exit status %s after %.1f s\n--- stdout ---\n%s\n--- stderr ---\n%s\n" % (
            " ".join(shlex.quote(a) for a in tier["bench_argv"]), rc, duration, out or "",
            err or "")
        saved, problems = {}, []
        for key, text in (("raw_path", scrub_jsonl(jsonl, secrets) if jsonl else None),
                          ("log_path", mask_text(log, secrets))):
            if text is None:
                continue
            try:
                write(tier[key], text)
                saved[key] = tier[key]
            except OSError as exc:
                problems.append("could not write %s: %s" % (tier[key], exc))
        record = build_record(
            tier["spec"], rc, duration, jsonl_text=jsonl, stdout=out, stderr=err,
            raw_path=saved.get("raw_path"), log_path=saved.get("log_path"), secrets=secrets,
            started=started, finished=finished, argv=tier["bench_argv"], priming=priming)
        record["warnings"].extend(problems + [step for step in steps if step])
        records.append(record)
    return records


def summarize(records):
    """Short text naming every tier that is not ok, or '' when all are."""
    bad = ["%s: %s (%s)" % (r["tier"], r["status"], r["error"]) for r in records
           if r["status"] != "ok"]
    return "; ".join(bad)
