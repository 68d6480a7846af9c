#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)

# This file holds the documentation only: the work is done by the action plugin of the same name
# (plugins/action/validate.py), on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: validate
short_description: Check every stage's input on the controller before any host is changed
version_added: 0.1.0
description:
  - The first task of C(playbooks/site.yml) (and so of C(deploy.yml), C(benchmark.yml) and
    C(preflight.yml)), for every host, tagged C(always). A host whose input is bad fails
    here, before preflight or the container stage touches it; the other hosts go on.
  - It reads the variables the given O(stages) use as their roles will see them (the host's
    value, else the role default) and checks, per stage
  - C(server) - a non-loopback C(sglang_server_host) (anything but 127.0.0.0/8, C(::1),
    C(localhost)) needs a non-empty C(sglang_api_key), unless
    C(sglang_server_allow_unauthenticated) is true; C(sglang_server_timeout),
    C(sglang_server_connect_timeout), C(sglang_server_sleep) and C(sglang_server_stop_timeout)
    are greater than 0.
  - C(server) and C(benchmark) - C(sglang_api_key) does not start with C(-) (the server reads it
    with argparse, which takes such a value for an option).
  - C(benchmark) - C(sglang_benchmark_tiers) resolve against C(sglang_benchmark_tier_catalog)
    and every tier is one C(sglang.bench_serving) can run (the rules of
    M(sglang_rocm.fleet.sglang_bench), offline mode and its tokenizer included); the
    C(sglang_benchmark_baseline) file parses; C(sglang_benchmark_tolerances),
    C(sglang_benchmark_token_tolerance) and C(sglang_benchmark_outlier_tolerance) are fractions
    in [0, 1); C(sglang_benchmark_timeout) and C(sglang_benchmark_poll) are greater than 0.
  - C(packages) - C(sglang_packages_timeout) is greater than 0 and C(sglang_packages_retries) an
    integer of 0 or more. C(preflight) - C(sglang_preflight_docker_timeout) is greater than 0.
  - C(container), C(model) and C(server) - C(sglang_model_source) is hub, local or none; unless
    it is none, C(sglang_model_path) is a hub repo id (not a path) and C(sglang_model_dir) an
    absolute directory.
  - C(model) - C(sglang_model_revision) is a branch, tag or commit, C(sglang_model_hub_endpoint)
    an http(s) URL without credentials, C(sglang_model_local_dir) an absolute directory (local
    source), C(sglang_model_verify) stat or full, C(sglang_model_timeout) and C(sglang_model_poll)
    greater than 0.
  - C(server) - with a staged model the server runs offline, so C(sglang_tokenizer_path) is the
    model path or a path inside the container.
  - Each problem names the host, the variable, what was seen, what was expected and the fix.
    The values themselves are not returned, and the API key is never quoted.
  - An action plugin that runs on the controller inside the task's worker, with no connection to
    the host it is called for.
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
options:
  stages:
    description: The stages the play runs (C(sglang_stages)); only their variables are checked.
    type: list
    elements: str
    choices: [preflight, container, model, packages, server, benchmark]
    default: [preflight, container, model, packages, server, benchmark]
attributes:
  check_mode:
    support: full
    description: It only reads variables and the baseline file.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  platform:
    support: full
    platforms: posix
    description: Runs on the controller only, whatever the target host is.
seealso:
  - module: sglang_rocm.fleet.sglang_server
  - module: sglang_rocm.fleet.sglang_bench
  - module: sglang_rocm.fleet.bench_report
"""

EXAMPLES = r"""
- name: Check every stage's input before any host is changed
  sglang_rocm.fleet.validate:
    stages: [server, benchmark]
  tags: [always]
"""

RETURN = r"""
stages:
  description: The stages whose input was checked.
  returned: always
  type: list
  elements: str
  sample: [server, benchmark]
checked:
  description: The variables that were checked (names only, never values).
  returned: always
  type: list
  elements: str
  sample: [sglang_api_key, sglang_server_host, sglang_server_timeout]
problems:
  description: One line per problem, naming host, variable, what was seen and expected, and the fix.
  returned: failed
  type: list
  elements: str
  sample:
    - "gpu01: sglang_server_host: got '0.0.0.0', a non-loopback address, with sglang_api_key empty; expected ..."
"""
