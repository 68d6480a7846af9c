#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sglang_bench
short_description: Run sglang.bench_serving tiers inside the SGLang container and parse them
version_added: 0.1.0
description:
  - Runs each benchmark tier with the real C(python3 -m sglang.bench_serving) client inside the
    running SGLang container through C(docker exec), against the server on the same host.
  - Every workload flag is passed explicitly (C(--backend sglang), host and port, C(--model),
    C(--tokenizer), C(--dataset-name), C(--dataset-path), C(--random-input-len),
    C(--random-output-len), C(--random-range-ratio), C(--num-prompts), C(--max-concurrency),
    C(--request-rate), C(--seed), C(--warmup-requests)) together with a fresh C(--output-file)
    per tier, so results never depend on the client's defaults or on an older file.
  - Each tier runs under its own timeout, inside the container (so the client is really stopped)
    and around the docker CLI. A tier that fails never loses the tiers already done; all tiers run
    and every record is returned.
  - The JSONL line the client writes is read back with C(docker exec cat), with a fallback to the
    summary block printed on stdout when no JSONL was written. Key sets of sglang 0.3 to 0.5.9
    are understood, and C(Infinity)/C(NaN) tokens are accepted.
  - The number of failed requests (C(num_prompts - completed); the client does not record it) is
    computed, and a tier with any failed request gets status C(failed).
  - Secrets are scrubbed from the client's C(server_info) (C(api_key) and any key named like a
    key, token, secret or password) and from saved logs before anything is written or returned.
  - The scrubbed JSONL and a log of each tier are written to O(results_dir) on the host.
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
options:
  host:
    description:
      - Address the SGLang server binds (the server role's C(sglang_server_host)); the container
        shares the host's network.
      - The client connects to that address; to a wildcard bind (C(0.0.0.0), C(::)) through the
        loopback address of the same family (C(127.0.0.1), C(::1)). An IPv6 address is put in
        brackets for the client's URL.
    type: str
    default: 127.0.0.1
  port:
    description: Port of the SGLang server.
    type: int
    default: 30000
  model:
    description:
      - Model id or path passed as C(--model) (the server's C(--model-path)).
      - Passing it also stops the client from asking the server for C(/v1/models).
    type: str
    required: true
  tokenizer:
    description:
      - Tokenizer passed as C(--tokenizer); defaults to O(model).
      - Required in offline mode, where it must exist inside the container (a local directory or a
        model already in the Hugging Face cache).
    type: str
  api_key:
    description:
      - Key of a server started with C(--api-key).
      - Handed to the client as C(OPENAI_API_KEY) in the C(docker exec) environment, which the
        client sends as C(Authorization Bearer); it never appears on a command line, in a log or
        in the returned records.
    type: str
  offline:
    description:
      - Run the client without network access; sets C(HF_HUB_OFFLINE=1) and
        C(TRANSFORMERS_OFFLINE=1) in its environment.
      - Requires O(tokenizer), and a tier C(dataset_path) for the C(random), C(sharegpt),
        C(custom) and C(mooncake) datasets (for C(random), a ShareGPT-format JSON file), since the
        client would otherwise download ShareGPT; C(random-ids) needs no file.
    type: bool
    default: false
  env:
    description:
      - Extra environment for the client (for example C(HF_HOME) or C(HF_ENDPOINT)).
      - Variables whose names look secret (C(HF_TOKEN), ...) are forwarded by name only, so their
        values do not appear in the docker command line.
    type: dict
    default: {}
  tiers:
    description:
      - The benchmark tiers, run in order.
      - Each tier is a dict with V(name), V(num_prompts) and V(max_concurrency) (all required) and
        optionally V(dataset_name) (V(random)), V(dataset_path) (empty), V(random_input_len)
        (V(1000)), V(random_output_len) (V(1000)), V(random_range_ratio) (V(0.0), the client's
        default, which samples lengths uniformly in 1..len), V(request_rate) (V(inf)), V(seed)
        (V(1)), V(warmup_requests) (V(1)), V(prime_prompts) (V(0); when set, a discarded priming
        pass with that many prompts at the tier's concurrency runs first), V(timeout) (seconds,
        defaults to O(timeout)) and V(extra_args) (a list of further client flags).
      - Unknown fields, a missing V(num_prompts), a concurrency below 1 or an unknown dataset are
        rejected before anything runs, naming the tier and the field.
    type: list
    elements: dict
    required: true
  extra_args:
    description: Further client flags appended to every tier's command.
    type: list
    elements: str
    default: []
  timeout:
    description: Default timeout of one tier in seconds (priming pass and main run each).
    type: int
    default: 3600
  run_id:
    description: Identifier of this run; names the result directory inside the container.
    type: str
    required: true
  results_dir:
    description: Directory on the host where the scrubbed JSONL and the log of each tier are written.
    type: path
    required: true
  container_results_dir:
    description:
      - Directory inside the container for the client's C(--output-file); the files go to
        C(<container_results_dir>/<run_id>/<tier>.jsonl) and are removed before each tier.
    type: str
    default: /tmp/sglang-bench
  fail_on_error:
    description:
      - Fail the task, after every tier has run, when any tier's status is not V(ok).
      - The records of all tiers are returned either way; set to V(false) when a later report
        should judge the results.
    type: bool
    default: true
notes:
  - Needs coreutils C(timeout) inside the container too (present in the SGLang ROCm images).
  - O(exec_timeout) limits the short calls (C(mkdir), C(rm), C(cat)); each tier run has its own
    limit, O(timeout) or the tier's, inside the container and (60 s later) around the docker CLI.
  - The module always reports C(changed), since it runs a benchmark and writes result files.
extends_documentation_fragment:
  - sglang_rocm.fleet.docker_exec
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode nothing runs; the module validates the tiers and returns the commands it would run.
  diff_mode:
    support: none
  idempotent:
    description: Whether a second run with the same arguments reports no change.
    support: none
    details: Every run benchmarks again and writes new result files.
  platform:
    platforms: posix
seealso:
  - module: sglang_rocm.fleet.bench_report
"""

EXAMPLES = r"""
- name: Run the recipe's three tiers against the local server
  sglang_rocm.fleet.sglang_bench:
    container: Kimi-linear
    model: moonshotai/Kimi-Linear-48B-A3B-Instruct
    run_id: "{{ sglang_run_id }}"
    results_dir: /var/lib/sglang-bench/{{ sglang_run_id }}
    tiers:
      - {name: low, num_prompts: 10, max_concurrency: 1}
      - {name: medium, num_prompts: 80, max_concurrency: 16}
      - {name: high, num_prompts: 500, max_concurrency: 100}
    fail_on_error: false
  register: bench

- name: Offline, key-protected server, with a priming pass before each tier
  sglang_rocm.fleet.sglang_bench:
    container: Kimi-linear
    model: /models/Kimi-Linear-48B-A3B-Instruct
    tokenizer: /models/Kimi-Linear-48B-A3B-Instruct
    api_key: "{{ sglang_api_key }}"
    offline: true
    run_id: "{{ sglang_run_id }}"
    results_dir: /var/lib/sglang-bench/{{ sglang_run_id }}
    tiers:
      - name: smoke
        num_prompts: 4
        max_concurrency: 2
        random_output_len: 64
        dataset_path: /data/sharegpt_small.json
        prime_prompts: 4
        timeout: 300
"""

RETURN = r"""
records:
  description:
    - One record per tier, in tier order, also when the module fails.
    - C(status) is V(ok) when all requests succeeded, V(failed) when the client ran but some
      requests failed, and V(error) when there is no result (non-zero exit, timeout, nothing
      parsed).
    - C(metrics) holds the client's figures under its own names (C(output_throughput),
      C(median_tpot_ms), C(p99_itl_ms), ...) plus C(duration_s) (benchmark phase), C(completed),
      C(failed), C(num_prompts) and the token totals.
  returned: always
  type: list
  elements: dict
  sample:
    - tier: low
      status: ok
      metrics: {output_throughput: 176.86, median_tpot_ms: 5.33, completed: 10, failed: 0,
                total_input_tokens: 6101, total_output_tokens: 4220, duration_s: 23.86}
      reported: {backend: sglang, dataset_name: random, request_rate: inf, max_concurrency: 1,
                 random_range_ratio: 0.0, sglang_version: 0.5.7}
      source: jsonl
      exit_status: 0
      timed_out: false
      duration_s: 41.2
      raw_path: /var/lib/sglang-bench/20250101T000000Z/low.jsonl
      log_path: /var/lib/sglang-bench/20250101T000000Z/low.log
      error: null
results_dir:
  description: Directory on the host holding C(<tier>.jsonl) and C(<tier>.log).
  returned: always
  type: str
  sample: /var/lib/sglang-bench/20250101T000000Z
commands:
  description: Per tier, the commands run (or, in check mode, that would run); no secret values.
  returned: always
  type: list
  elements: dict
  sample:
    - tier: low
      run: [timeout, --kill-after=30, '3660', docker, --host, unix:///var/run/docker.sock, exec,
            Kimi-linear, timeout, --kill-after=30, '3600', python3, -m, sglang.bench_serving]
failed_tiers:
  description: Names of the tiers whose status is not V(ok).
  returned: always
  type: list
  elements: str
  sample: [high]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._address import url_host
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._docker_cli import DockerCli, exec_argument_spec
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._bench import (
    BenchSpecError,
    plan_run,
    run_plan,
    summarize,
    validate_tiers,
)


def argument_spec():
    return dict(
        exec_argument_spec(),
        host=dict(type="str", default="127.0.0.1"),
        port=dict(type="int", default=30000),
        model=dict(type="str", required=True),
        tokenizer=dict(type="str", no_log=False),
        api_key=dict(type="str", no_log=True),
        offline=dict(type="bool", default=False),
        env=dict(type="dict", default={}),
        tiers=dict(type="list", elements="dict", required=True),
        extra_args=dict(type="list", elements="str", default=[]),
        timeout=dict(type="int", default=3600),
        run_id=dict(type="str", required=True),
        results_dir=dict(type="path", required=True),
        container_results_dir=dict(type="str", default="/tmp/sglang-bench"),
        fail_on_error=dict(type="bool", default=True),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    try:
        specs = validate_tiers(p["tiers"], offline=p["offline"], tokenizer=p["tokenizer"],
                               default_timeout=p["timeout"], extra_args=p["extra_args"])
    except BenchSpecError as exc:
        module.fail_json(msg=str(exc))
    docker = DockerCli(module, p["docker_host"], p["exec_timeout"])
    # bench_serving builds http://<host>:<port> from --host: the address the server answers on
    params = dict(p, docker=docker.bin, timeout_bin=docker.timeout_bin, host=url_host(p["host"]))
    plan = plan_run(params, specs)
    commands = [dict(tier=t["name"], reset=t["reset"], prime=t["prime"], run=t["run"],
                     read=t["read"]) for t in plan["tiers"]]
    result = dict(changed=True, results_dir=p["results_dir"], commands=commands, records=[],
                  failed_tiers=[])
    if module.check_mode:
        module.exit_json(**result)

    def run(argv, env):
        return docker.run(argv, env=env)[:3]

    secrets = [p["api_key"]] + list(plan["env"].values())
    records = run_plan(plan, run, secrets=[s for s in secrets if s])
    result.update(records=records, failed_tiers=[r["tier"] for r in records if r["status"] != "ok"])
    if p["fail_on_error"] and result["failed_tiers"]:
        module.fail_json(msg="benchmark tier(s) did not pass: %s" % summarize(records), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
