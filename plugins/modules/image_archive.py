#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_archive
short_description: Verify an image tarball on the host before it is loaded
version_added: 0.1.0
description:
  - Checks that an image archive (the output of C(docker save), plain or compressed) on the GPU host
    has the expected sha256 and carries the expected image reference, so that
    M(community.docker.docker_image_load) only ever loads the intended image.
  - Read-only. On a checksum mismatch it fails and nothing is loaded, so the image already on the
    host, if any, stays as it is.
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Reads only, so check mode verifies the same way.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to show.
  idempotent:
    support: full
    description: Reads only.
options:
  path:
    description: Archive path on the host.
    type: path
    required: true
  sha256:
    description: Expected sha256 of the archive file (hex, optionally prefixed with V(sha256:)).
    type: str
    required: true
  image:
    description:
      - Image reference the archive must carry (as in its C(manifest.json) C(RepoTags)).
      - Empty to skip the check.
    type: str
    default: ""
  host:
    description: Host name used in messages (the inventory name); defaults to the node name.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Verify the staged tarball
  sglang_rocm.fleet.image_archive:
    path: /var/lib/sglang-rocm/images/sglang.tar
    sha256: "{{ sglang_container_image_archive_sha256 }}"
    image: lmsysorg/sglang:v0.5.7-rocm700-mi30x
"""

RETURN = r"""
sha256:
  description: The archive's sha256.
  returned: success
  type: str
repo_tags:
  description: Image references found in the archive's manifest (empty when it has none).
  returned: success
  type: list
  elements: str
size:
  description: Archive size in bytes.
  returned: success
  type: int
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._image_archive import ArchiveError, verify


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            sha256=dict(type="str", required=True),
            image=dict(type="str", default=""),
            host=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        result = verify(p["path"], p["sha256"], p["image"], p["host"] or os.uname()[1])
    except ArchiveError as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
