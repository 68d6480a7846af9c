#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_manifest
short_description: Ask a Docker daemon whether its registries have images, without pulling them
version_added: 0.1.0
description:
  - For each of O(references), asks the Docker daemon at O(docker_host) for the image's manifest
    descriptor (C(GET /distribution/<reference>/json)). The daemon asks the registry with its own
    settings (mirrors, insecure registries, proxy), as a C(docker pull) would, but nothing is
    pulled and nothing changes.
  - The request goes through community.docker's API client, so O(docker_host) (V(unix://),
    V(tcp://) with TLS, V(ssh://)) and the other connection options work as in the
    community.docker modules.
  - A missing image is an answer, not a failure. Each reference is returned with C(found), the
    HTTP status and the daemon's message, so the caller decides what a missing image means (the
    upgrade playbook stops before any host is touched).
  - The module fails when the daemon cannot be reached, naming the host, O(docker_host), what
    was seen and the fix.
  - O(registry_username) and O(registry_password) travel only in the C(X-Registry-Auth) header of
    each request, over the connection the options set up. They are never sent to a V(tcp://)
    daemon without TLS; the module fails instead.
  - The logic lives in C(plugins/module_utils/_docker_engine.py).
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
extends_documentation_fragment:
  - sglang_rocm.fleet.docker_engine
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads, so check mode asks the daemon too.
  diff_mode:
    support: none
  idempotent:
    description: When run twice with the same parameters, the second run changes nothing.
    support: full
  platform:
    platforms: posix
options:
  references:
    description:
      - Image references, C(name[:tag][@digest]), as C(docker pull) takes them.
      - An empty list asks nothing, and the daemon is not contacted.
    type: list
    elements: str
    required: true
  registry_username:
    description:
      - User name for the registry of each reference; empty sends no credentials and the daemon
        uses none (its own C(docker login) state is not used by this API call).
    type: str
    default: ""
  registry_password:
    description: Password or token of O(registry_username).
    type: str
    default: ""
  host:
    description: Name of the host in error messages; defaults to the host name.
    type: str
    default: ""
requirements:
  - Docker API >= 1.25.
seealso:
  - module: sglang_rocm.fleet.container_prepare
"""

EXAMPLES = r"""
- name: Ask the registry for the target images through the first host's Docker daemon
  sglang_rocm.fleet.image_manifest:
    references:
      - lmsysorg/sglang:v0.5.7-rocm700-mi30x
    docker_host: "{{ sglang_docker_host }}"
    registry_username: "{{ sglang_container_registry_username }}"
    registry_password: "{{ sglang_container_registry_password }}"
    host: "{{ inventory_hostname }}"
  register: manifests
  run_once: true

- name: Stop when an image is missing
  ansible.builtin.fail:
    msg: "{{ manifests.images | rejectattr('found') | map(attribute='reference') | join(', ') }} not found"
  when: manifests.images | rejectattr('found') | list | length > 0
  run_once: true
"""

RETURN = r"""
images:
  description: One entry per reference, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    reference:
      description: The reference as given.
      type: str
      sample: lmsysorg/sglang:v0.5.7-rocm700-mi30x
    found:
      description: Whether the daemon found the image's manifest (HTTP 200).
      type: bool
    status:
      description:
        - HTTP status of the daemon's answer (for example V(404) or V(401) when the registry has
          no such image or refuses the credentials), or null when no answer came.
      type: int
      sample: 200
    message:
      description: The daemon's error message, or why no answer came; empty when found.
      type: str
      sample: "manifest unknown: manifest unknown"
    digest:
      description: Digest of the manifest (or manifest list) the registry serves, or null.
      type: str
      sample: sha256:0d5e0e4d1f8e0c6bd5e1a3f2a8f1b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7
  sample:
    - reference: lmsysorg/sglang:v0.5.7-rocm700-mi30x
      found: true
      status: 200
      message: ""
      digest: sha256:0d5e0e4d1f8e0c6bd5e1a3f2a8f1b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _docker_engine as D


def main():
    module = AnsibleModule(
        **D.module_kwargs(dict(
            references=dict(type="list", elements="str", required=True),
            registry_username=dict(type="str", default=""),
            registry_password=dict(type="str", default="", no_log=True),
            host=dict(type="str", default=""),
        )),
        supports_check_mode=True,
    )
    p = module.params
    host = p["host"] or os.uname()[1]
    images = []
    if p["references"]:
        try:
            images = D.manifests(module, p["references"], p["registry_username"], p["registry_password"])
        except D.DaemonError as exc:
            module.fail_json(msg="Host %s: %s" % (host, D.unreachable_message(
                p["docker_host"], exc, what="the image manifests")))
        except D.PlainHttpRefused as exc:
            module.fail_json(msg="Host %s: %s" % (host, exc))
    module.exit_json(changed=False, images=images)


if __name__ == "__main__":
    main()
