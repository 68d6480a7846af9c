#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)

# This file holds the documentation only: the work is done by the action plugin of the same name
# (plugins/action/rollout.py), on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rollout
short_description: The rollout model of playbooks/upgrade.yml, step by step
version_added: 0.1.0
description:
  - The one interface of the C(sglang_rocm.fleet.upgrade) role to the rollout model
    (C(module_utils/_rollout.py)), which holds the variables a target may change, the validation
    of the settings, the per-host plan, the gates after a change, the batch gate, the per-host
    record and the summary.
  - An action plugin that runs on the controller inside the task's worker, with no connection to
    the host it is called for. It changes no host; the only file it writes is the summary.
  - The per-host record is the host fact C(sglang_upgrade_host); the summary reads it from every
    host of the play through C(hostvars).
  - Values of secret-looking names (C(WANDB_KEY), C(HF_TOKEN), ...) and of secret-looking flags in
    argument lists (C(--api-key X)) are masked in the summary, its printed lines and the failure
    messages, by the collection's one secret rule.
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
options:
  step:
    description:
      - V(check) refuses invalid O(settings) and target variables given as extra vars (run once,
        before any host is touched).
      - V(images) fails when an entry of O(results) was not found in the registry.
      - V(batch) (run once per batch) returns RV(stop) when an earlier batch did not end healthy;
        otherwise it numbers the batch, marks its hosts in progress and writes the progress summary.
      - V(plan) returns the host's RV(apply) and RV(rollback) specs and its RV(gates), and records
        the container O(before) the change.
      - V(record) records O(outcome) for the host.
      - V(summary) (run once) writes the summary to O(path) and returns RV(lines) and RV(failures).
    type: str
    required: true
    choices: [check, images, batch, plan, record, summary]
  settings:
    description:
      - The rollout settings, keys C(target), C(batches), C(max_fail_percentage), C(smoke_tiers)
        (the role's C(sglang_upgrade_*) variables).
    type: dict
  results:
    description: With O(step=images), the C(images) returned by M(sglang_rocm.fleet.image_manifest).
    type: list
    elements: dict
  image:
    description: With O(step=images), the target image as the operator gave it (for the message).
    type: str
  before:
    description: With O(step=plan), the result of M(community.docker.docker_container_info) for the container.
    type: dict
  outcome:
    description: With O(step=record), what happened to the host.
    type: str
    choices: [done, failed, rolled_back, rollback_failed, unreachable]
  error:
    description: With O(step=record), the error of a failed step.
    type: str
  failed_task:
    description: With O(step=record) and O(outcome=failed), the name of the failed task.
    type: str
  container:
    description: With O(step=record), the container role's registered result (the container after the change).
    type: dict
  server:
    description: With O(step=record), the server role's registered result (the server after the change).
    type: dict
  path:
    description: With O(step=batch) or O(step=summary), the summary file on the controller.
    type: path
attributes:
  check_mode:
    support: full
    description: Runs in check mode too; a host that would change is recorded as C(would_upgrade).
  diff_mode:
    support: none
    description: Nothing on a host changes, so there is nothing to diff.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller only, whatever the target host is.
seealso:
  - module: sglang_rocm.fleet.image_manifest
"""

EXAMPLES = r"""
- name: Check the upgrade settings and refuse target variables given as extra vars
  sglang_rocm.fleet.rollout:
    step: check
    settings:
      target: {sglang_image: "lmsysorg/sglang:v0.5.8-rocm700-mi30x"}
      batches: [1, "25%", "100%"]
      max_fail_percentage: 0
      smoke_tiers: []
  run_once: true
"""

RETURN = r"""
stop:
  description: With O(step=batch), whether the rollout stops before this batch.
  returned: step is batch
  type: bool
batch:
  description: With O(step=batch), the number of the batch that starts (1 is the canary).
  returned: step is batch and the rollout goes on
  type: int
apply:
  description: With O(step=plan), the variables to set on the host for the change.
  returned: step is plan
  type: dict
rollback:
  description: With O(step=plan), the variables that restore the host (the recorded image, the inventory's spec).
  returned: step is plan
  type: dict
gates:
  description: With O(step=plan), the gates a changed host runs after the health gate, in order.
  returned: step is plan
  type: list
  elements: str
  sample: [smoke]
status:
  description: With O(step=record), the host's status after the outcome.
  returned: step is record
  type: str
  sample: upgraded
summary:
  description: With O(step=summary), the summary as written to O(path).
  returned: step is summary
  type: dict
lines:
  description: With O(step=summary), the summary as printed, one status per line.
  returned: step is summary
  type: list
  elements: str
failures:
  description: With O(step=summary), a message per host that the rollout did not leave on the target.
  returned: step is summary
  type: dict
"""
