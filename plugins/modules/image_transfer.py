#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_transfer
short_description: Save an image as one verified file for a fan-out, or load it and check its ID
version_added: 0.1.0
description:
  - The container role's image fan-out on one host (the files travel with M(sglang_rocm.fleet.sglang_fanout)).
  - V(saved), on the seed, runs C(docker save) of O(image) into O(dir) (created 0700) as
    C(image-<first 16 hex digits of the image ID>.tar) (0600), hashes it once and returns a
    one-file manifest (C(plugins/module_utils/_manifest.py)) whose revision is the image ID; the
    verified-state stamp marks the file, so the seed can serve it at once. An archive of the same
    image saved before, still matching its hash, is kept.
  - V(loaded), on every host of the fan-out, does nothing when the host's O(image) already has
    the ID O(image_id). Otherwise it checks the received archive against O(manifest), runs
    C(docker load) and fails unless the image's ID is then O(image_id). Then it removes the
    archive unless O(keep_archive).
  - Every docker command goes through the docker CLI with a time limit (O(timeout)).
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Docker is read; nothing is saved, loaded or removed, and the result says what would be.
  diff_mode:
    support: none
    description: Files are compared by hash, not shown.
  idempotent:
    support: full
    description: A saved archive that still matches is kept; a host that has the seed's image loads nothing.
options:
  state:
    description: V(saved) on the seed, V(loaded) on every host of the fan-out.
    type: str
    choices: [saved, loaded]
    required: true
  image:
    description: The image reference (as the container role resolved it).
    type: str
    required: true
  dir:
    description: The staging directory (C(sglang_container_staging_dir)).
    type: path
    required: true
  manifest:
    description: With O(state=loaded), the seed's manifest of the archive (null in check mode when nothing was saved).
    type: dict
  image_id:
    description: With O(state=loaded), the seed's image ID that the loaded image must have.
    type: str
    default: ""
  keep_archive:
    description: Keep the archive after a successful load (C(sglang_container_fanout_keep_archive)).
    type: bool
    default: false
  host:
    description: Host name used in messages (the inventory name); defaults to the node name.
    type: str
    default: ""
  docker_host:
    description: The Docker daemon (C(sglang_docker_host)).
    type: str
    default: unix:///var/run/docker.sock
  timeout:
    description: Seconds one docker command (save, load) may take.
    type: int
    default: 3600
"""

EXAMPLES = r"""
- name: Save the image on the seed
  sglang_rocm.fleet.image_transfer:
    state: saved
    image: lmsysorg/sglang:v0.5.7-rocm700-mi30x
    dir: /var/lib/sglang-rocm/images
  register: saved

- name: Load it where it was received
  sglang_rocm.fleet.image_transfer:
    state: loaded
    image: lmsysorg/sglang:v0.5.7-rocm700-mi30x
    dir: /var/lib/sglang-rocm/images
    manifest: "{{ hostvars['gpu01'].saved.manifest }}"
    image_id: "{{ hostvars['gpu01'].saved.image_id }}"
"""

RETURN = r"""
image_id:
  description: The image's ID on this host (with state saved, the seed's; null in check mode when the image is absent).
  returned: always
  type: str
manifest:
  description: With state saved, the one-file manifest of the archive (null in check mode when nothing was saved yet).
  returned: with state saved
  type: dict
path:
  description: With state saved, the archive's path on the seed.
  returned: with state saved
  type: str
loaded:
  description: With state loaded, whether the archive was (or in check mode would be) loaded.
  returned: with state loaded
  type: bool
removed:
  description: With state loaded, the staging files removed (or that would be).
  returned: with state loaded
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._docker_cli import DockerCli, ModuleFailure
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._image_transfer import ImageTransfer


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", required=True, choices=["saved", "loaded"]),
            image=dict(type="str", required=True),
            dir=dict(type="path", required=True),
            manifest=dict(type="dict"),
            image_id=dict(type="str", default=""),
            keep_archive=dict(type="bool", default=False),
            host=dict(type="str", default=""),
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
            timeout=dict(type="int", default=3600),
        ),
        supports_check_mode=True,
    )
    p = module.params
    transfer = ImageTransfer(DockerCli(module, p["docker_host"], p["timeout"]), p["image"], p["dir"],
                             p["host"] or os.uname()[1], module.check_mode)
    try:
        if p["state"] == "saved":
            result = transfer.saved()
        else:
            result = transfer.loaded(p["manifest"], p["image_id"], p["keep_archive"])
    except ModuleFailure as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
