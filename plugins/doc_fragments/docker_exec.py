# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations


class ModuleDocFragment:
    # The options of modules that work inside the SGLang container through the docker CLI
    # (sglang_server, sglang_packages, sglang_bench); their argument specs take these options
    # from module_utils/_docker_cli.py exec_argument_spec().
    DOCUMENTATION = r"""
options:
  container:
    description: Name or ID of the running container to work in.
    type: str
    required: true
  docker_host:
    description: Docker daemon to use, passed to the docker CLI as C(--host).
    type: str
    default: unix:///var/run/docker.sock
  python:
    description: Python interpreter inside the container.
    type: str
    default: python3
  exec_timeout:
    description:
      - Seconds one C(docker exec) may take before the docker CLI is stopped (coreutils
        C(timeout), then SIGKILL 5 seconds later); the module then fails and says so.
      - Stopping the docker CLI does not stop what it started in the container.
    type: int
    default: 600
requirements:
  - The docker CLI and coreutils C(timeout) on the host, and a running container.
"""
