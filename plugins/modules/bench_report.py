#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)

# This file holds the documentation only: the work is done by the action plugin of the same name
# (plugins/action/bench_report.py), on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bench_report
short_description: Aggregate sglang_bench results of a whole fleet, compare them with a baseline and render reports
version_added: 0.1.0
description:
  - Takes the tier records that M(sglang_rocm.fleet.sglang_bench) returned on every host, the
    hosts that failed an earlier stage, each host's image digest and startup phases, and writes
    C(fleet_report.json), C(fleet_report.csv), C(fleet_report.md) and a self-contained
    C(fleet_report.html) (inline SVG charts, no script, opens from disk with no network) to
    O(output_dir), each replaced atomically (a reader never sees half a file).
  - Every targeted host is listed, including hosts that failed an earlier stage (with that stage,
    its status and error) and hosts that returned no records.
  - Fleet median, minimum and maximum are computed per tier and metric.
  - With a O(baseline) file, each host and tier is compared with the baseline's tier of the same
    name. Output throughput (lower is worse) and median TPOT (higher is worse) are gated with
    per-metric O(tolerances); P99 figures and mean TTFT are reported but never gated. A host-tier
    whose workload (tier spec, or token totals beyond O(token_tolerance)) differs from the
    baseline's is marked C(not_comparable) instead of failed.
  - A host whose output throughput in a tier is below the fleet median by more than
    O(outlier_tolerance) is flagged as an outlier, judged only with at least O(outlier_min_hosts)
    measured hosts.
  - An image digest that differs from the fleet majority is flagged.
  - The verdict is V(regression) when there is any violation (baseline gate, outlier, failed
    requests), else V(incomplete) when a host or tier has no result, else V(pass); every
    violation names host, tier, metric, observed and allowed value.
  - An action plugin that runs on the controller inside the task's worker, with no connection to
    the host it is called for and no module transfer. Run it once per play (C(run_once)).
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
options:
  output_dir:
    description: Directory for the four report files, normally C(<sglang_results_dir>/<sglang_run_id>).
    type: path
    required: true
  hosts:
    description: Every targeted host, in report order (for example C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
  records:
    description:
      - Host name to that host's sglang_bench records, or to its whole registered sglang_bench
        result (its C(records) are used).
      - Hosts missing here are reported as having no benchmark records.
    type: dict
    default: {}
  host_status:
    description:
      - Host name to C({stage, status, error}) for hosts that failed an earlier stage; entries
        whose status is V(ok) are ignored.
    type: dict
    default: {}
  lost_hosts:
    description:
      - Hosts that left the play before the report (for example C(ansible_play_hosts_all) minus
        C(ansible_play_hosts)) and have no entry in O(host_status).
      - Each is reported as failed stage V(validate) when its O(validation) result failed, else as
        V(unreachable), naming where its finished tiers stay on the host.
    type: list
    elements: str
    default: []
  validation:
    description: Host name to the registered result of that host's M(sglang_rocm.fleet.validate) task.
    type: dict
    default: {}
  image_digests:
    description: Host name to the image digest its container runs.
    type: dict
    default: {}
  startup:
    description:
      - Host name to that host's startup record, the fact C(sglang_server_startup) the server role
        sets (image ready, weights ready, process started, port open, ready; docs/startup.md).
      - The reports show each host's phases and the fleet's median and maximum per phase
        (C(startup) in the JSON, C(startup_*) columns at the end of the CSV, a Startup table in
        Markdown and HTML). A phase that is not known stays empty, never 0.
    type: dict
    default: {}
  images:
    description:
      - Host name to that host's C(sglang_container_image_facts) (the container role's image
        facts; C(obtained) when this run pulled or loaded the image, C(transfer) when it came
        from peers, C(size)).
      - With O(models), the reports' cold start (C(cold_start) per host and for the fleet in the
        JSON, C(image_*) and C(model_*) columns at the end of the CSV, a Cold start table in
        Markdown and HTML) say per host how each artifact arrived (held, pulled or staged from
        upstream, loaded, received from which peers), its bytes and seconds, and per artifact the
        bytes that crossed the upstream link and that as a multiple of one copy.
    type: dict
    default: {}
  models:
    description:
      - Host name to that host's C(sglang_model_result) (the model role's record of the model
        stage; absent where the stage did not run).
    type: dict
    default: {}
  baseline:
    description:
      - Baseline JSON file to compare with (the collection ships the recipe's MI300X TP 4 figures
        as C(roles/benchmark/files/baseline_mi300x_tp4.json)).
      - A file that does not parse fails the task with the line and column.
    type: path
  tolerances:
    description:
      - Per-metric tolerances as fractions, merged over the defaults (V(0.10) for
        C(output_throughput) and V(0.10) for C(median_tpot_ms)); V(null) switches a gate off.
      - Gateable metrics are throughputs (C(output_throughput), C(total_throughput),
        C(request_throughput), C(input_throughput); lower is worse) and means or medians of TPOT,
        TTFT, ITL and end-to-end latency (higher is worse). P99 metrics are refused.
    type: dict
    default: {}
  token_tolerance:
    description:
      - Largest relative difference of C(total_input_tokens) or C(total_output_tokens) from the
        baseline's for a host-tier to count as the same workload.
    type: float
    default: 0.01
  outlier_tolerance:
    description: A host is an outlier in a tier when its output throughput is below the fleet median times (1 - this).
    type: float
    default: 0.15
  outlier_min_hosts:
    description: Fewest measured hosts in a tier for outliers to be judged.
    type: int
    default: 3
  fail_on_regression:
    description: Fail the task, after writing the reports, when the verdict is V(regression), listing every violation.
    type: bool
    default: false
  store_as_baseline:
    description:
      - Also write this run as a baseline file at this path (fleet median of every metric per tier
        over the hosts whose tier finished cleanly), after comparing with O(baseline).
    type: path
  run_id:
    description: Identifier of the run.
    type: str
    required: true
  started:
    description: When the run started (ISO 8601).
    type: str
  finished:
    description: When the run finished (ISO 8601).
    type: str
  collection_version:
    description: Version of sglang_rocm.fleet that ran.
    type: str
  image:
    description: SGLang image reference the fleet was deployed with.
    type: str
  model:
    description: Model served.
    type: str
  tp_size:
    description: Tensor parallel size of the servers.
    type: int
  notes:
    description: Free-form lines shown at the top of every report (for example that tiers were scaled down).
    type: list
    elements: str
    default: []
  validate_only:
    description:
      - Only check O(baseline) and O(tolerances) and return; write nothing. The benchmark role
        runs this before any tier, so that a baseline that does not parse fails the play before
        an hour of benchmarking rather than after it.
      - O(output_dir), O(hosts) and O(run_id) are still required but not used.
    type: bool
    default: false
    version_added: 0.1.0
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode the report is computed and returned but no file is written.
  diff_mode:
    support: none
  idempotent:
    description: Whether a second run with the same arguments reports no change.
    support: none
    details: The report files are rewritten on every run.
  platform:
    platforms: posix
seealso:
  - module: sglang_rocm.fleet.sglang_bench
"""

EXAMPLES = r"""
- name: Fleet report against the recipe's reference figures
  sglang_rocm.fleet.bench_report:
    output_dir: "{{ sglang_results_dir }}/{{ sglang_run_id }}"
    hosts: "{{ ansible_play_hosts_all }}"
    records: "{{ _bench_records }}"          # host -> registered sglang_bench result
    host_status: "{{ _stage_failures }}"     # host -> {stage, status, error}
    image_digests: "{{ _image_digests }}"
    baseline: "{{ role_path }}/files/baseline_mi300x_tp4.json"
    tolerances:
      output_throughput: 0.05
    fail_on_regression: true
    run_id: "{{ sglang_run_id }}"
    model: "{{ sglang_model_path }}"
    image: "{{ sglang_image }}"
    tp_size: "{{ sglang_tp_size }}"
  run_once: true

- name: Store this run as the fleet's new baseline
  sglang_rocm.fleet.bench_report:
    output_dir: /srv/results/{{ sglang_run_id }}
    hosts: "{{ ansible_play_hosts_all }}"
    records: "{{ _bench_records }}"
    run_id: "{{ sglang_run_id }}"
    store_as_baseline: /srv/results/baseline.json
  run_once: true
"""

RETURN = r"""
baseline_tiers:
  description: Tier names of the baseline file, with O(validate_only=true).
  returned: when O(validate_only=true)
  type: list
  elements: str
  sample: [low, medium, high]
verdict:
  description: V(pass), V(regression) or V(incomplete).
  returned: always
  type: str
  sample: regression
summary:
  description: One line naming the verdict and the hosts concerned.
  returned: always
  type: str
  sample: "REGRESSION: 1 violation(s) on gpu-03"
violations:
  description: Every violation with kind (V(baseline), V(outlier), V(failed_requests)), host, tier, metric, observed, allowed and a message.
  returned: always
  type: list
  elements: dict
  sample:
    - kind: outlier
      host: gpu-03
      tier: medium
      metric: output_throughput
      observed: 901.2
      allowed: 1105.31
      reference: 1300.37
      message: "gpu-03 / medium / output_throughput: observed 901.20, allowed at least 1105.31 (fleet median 1300.37, outlier tolerance 15%)"
incomplete:
  description: Hosts and tiers without results, with stage, status and error.
  returned: always
  type: list
  elements: str
  sample: ["gpu-04: server failed: health check timed out after 1800 s"]
paths:
  description: Paths of the report files (not written in check mode).
  returned: always
  type: dict
  sample:
    json: /srv/results/r1/fleet_report.json
    csv: /srv/results/r1/fleet_report.csv
    markdown: /srv/results/r1/fleet_report.md
    html: /srv/results/r1/fleet_report.html
baseline_path:
  description: Path of the baseline written by O(store_as_baseline), else null.
  returned: always
  type: str
  sample: /srv/results/baseline.json
report:
  description: The report document written to C(fleet_report.json) (schema_version 1).
  returned: always
  type: dict
"""
