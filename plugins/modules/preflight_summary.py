#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)

# This file holds the documentation only: the work is done by the action plugin of the same name
# (plugins/action/preflight_summary.py), on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: preflight_summary
short_description: Write the fleet's preflight results on the controller
version_added: 0.1.0
description:
  - Reads the C(sglang_preflight_report) fact that M(sglang_rocm.fleet.rocm_preflight) set on
    every given host and writes the fleet document C(preflight.json) and its Markdown table
    C(preflight.md) to O(results_dir), each replaced atomically.
  - A host without a report (unreachable, or failed before its checks ran) is listed with status
    C(error).
  - Compares the versioned facts of the hosts that share a GPU device id (drift by majority) and
    lists the odd host out with its value and the majority's, and every setting the firmware
    rules apply on a host and why.
  - An action plugin that runs on the controller inside the task's worker, with no connection to
    the host it is called for. Run it once per play (C(run_once)).
  - The files are the run's output, not a change to any host, so the result is never C(changed);
    they are written in check mode too.
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
options:
  hosts:
    description: The hosts to include, in order (for example C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
  run_id:
    description: The run id (C(sglang_run_id)); it heads both files.
    type: str
    required: true
  results_dir:
    description: Directory on the controller for the two files, created if missing.
    type: path
    required: true
  drift_fail:
    description:
      - Versioned facts (V(driver), V(fw.mec), V(vbios), V(kernel), V(kernel_args), V(rocm), V(docker), ...)
        whose drift from the majority fails the host; drift in any other fact warns.
      - Drift compares the hosts given in O(hosts) that have a report and share a GPU device id, against
        the strict majority of those that report the fact; with no strict majority nothing is picked.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: The result files are written in check mode too; no host is changed.
  diff_mode:
    support: none
    description: Nothing on a host changes, so there is nothing to diff.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller only, whatever the target host is.
notes:
  - The host reports are read through C(hostvars), so hosts that left the play earlier are still
    listed with what they reported.
seealso:
  - module: sglang_rocm.fleet.rocm_preflight
"""

EXAMPLES = r"""
- name: Write the fleet's preflight results
  sglang_rocm.fleet.preflight_summary:
    hosts: "{{ ansible_play_hosts_all }}"
    run_id: "{{ sglang_run_id }}"
    results_dir: "{{ sglang_results_dir }}/{{ sglang_run_id }}"
  run_once: true
  check_mode: false
  register: preflight

- name: Print the one-screen summary
  ansible.builtin.debug:
    msg: "{{ preflight.summary }}"
  run_once: true
"""

RETURN = r"""
summary:
  description:
    - The one-screen summary, one line per failing or warning check across the fleet (not one per
      host), with the location of C(preflight.md).
  returned: success
  type: list
  elements: str
  sample:
    - "preflight 20261128T142000Z: 4 hosts, 3 pass, 0 warn, 1 fail, 0 without a report"
    - "report: /srv/results/20261128T142000Z/preflight.md"
    - "FAIL numa_balancing on 1 host: gpu02"
    - "WARN drift on gpu03: fw.mec 166, majority 177 (3 of 4 hosts with device 0x74a1)"
    - "FIRMWARE gpu03: HSA_NO_SCRATCH_RECLAIM=1 (MEC firmware 166 < 177 on 8 GPUs: ...)"
report:
  description: The fleet document written to C(preflight.json).
  returned: success
  type: dict
drift_failed:
  description: Hosts that drift fails (a fact of O(drift_fail) differs from the majority).
  returned: success
  type: list
  elements: str
drift_messages:
  description: For each host in RV(drift_failed), the message it fails with.
  returned: success
  type: dict
failed_hosts:
  description: Hosts whose preflight failed, that drift fails, or that have no report.
  returned: success
  type: list
  elements: str
  sample: [gpu02]
paths:
  description: Where the two files were written.
  returned: success
  type: dict
  contains:
    json:
      description: Path of C(preflight.json).
      type: str
      returned: success
    markdown:
      description: Path of C(preflight.md).
      type: str
      returned: success
"""
