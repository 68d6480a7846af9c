#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)

# This file holds the documentation only: the work is done by the action plugin of the same name
# (plugins/action/run_id.py), on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: run_id
short_description: Draw a new run id and claim its results directory on the controller
version_added: 0.1.0
description:
  - Returns a new run id, the UTC time to the second (so ids sort by start time) followed by six
    random hex digits, so that two runs started in the same second never share one.
  - Creates C(<results_dir>/<run_id>) on the controller with an exclusive C(mkdir); when it
    already exists the task fails, naming it, rather than merging into another run's results.
  - In check mode the directory is not created.
  - The common role calls it once per playbook run, unless C(sglang_run_id) is given.
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
options:
  results_dir:
    description: The controller directory that receives one directory per run (C(sglang_results_dir)).
    type: path
    required: true
notes:
  - An action plugin; it runs on the controller and needs no connection.
"""

EXAMPLES = r"""
- name: Claim a new run id and its results directory
  sglang_rocm.fleet.run_id:
    results_dir: "{{ sglang_results_dir }}"
  register: claimed
  run_once: true
"""

RETURN = r"""
run_id:
  description: The new run id.
  returned: always
  type: str
  sample: 20261203T044000Z-5ec9b1
path:
  description: The run's results directory on the controller (created unless in check mode).
  returned: always
  type: str
  sample: /home/me/sglang-results/20261203T044000Z-5ec9b1
"""
