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

import hashlib
import json
import os
import re
import tarfile

from ansible.module_utils.basic import AnsibleModule


def file_sha256(path, chunk=4 * 1024 * 1024):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def archive_repo_tags(path):
    """RepoTags from manifest.json (docker save) or ref annotations from index.json (OCI)."""
    tags = []
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            if member.name.lstrip("./") == "manifest.json":
                for entry in json.load(archive.extractfile(member)) or []:
                    tags.extend(entry.get("RepoTags") or [])
            elif member.name.lstrip("./") == "index.json":
                index = json.load(archive.extractfile(member)) or {}
                for manifest in index.get("manifests") or []:
                    name = (manifest.get("annotations") or {}).get("io.containerd.image.name")
                    if name:
                        tags.append(name)
    return sorted(set(familiar(tag) for tag in tags))


def familiar(ref):
    """docker.io/library/ubuntu:22.04 -> ubuntu:22.04, as Docker shows references."""
    if ref.startswith("docker.io/"):
        ref = ref[len("docker.io/"):]
    if ref.startswith("library/") and ref.count("/") == 1:
        ref = ref[len("library/"):]
    return ref


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
    host = p["host"] or os.uname()[1]
    expected = p["sha256"].strip().lower()
    if expected.startswith("sha256:"):
        expected = expected[len("sha256:"):]
    if not re.match(r"^[0-9a-f]{64}$", expected):
        module.fail_json(msg="Host %s: sglang_container_image_archive_sha256=%r is not a sha256 (64 "
                             "hex digits)" % (host, p["sha256"]))
    if not os.path.isfile(p["path"]):
        module.fail_json(msg="Host %s: image archive %s does not exist on the host" % (host, p["path"]))
    actual = file_sha256(p["path"])
    if actual != expected:
        module.fail_json(
            msg="Host %s: image archive %s has sha256 %s but sglang_container_image_archive_sha256 "
                "is %s; the archive is corrupt or not the intended one. Nothing was loaded and the "
                "image already on the host, if any, is untouched." % (host, p["path"], actual, expected),
            sha256=actual)
    try:
        tags = archive_repo_tags(p["path"])
    except (tarfile.TarError, OSError, ValueError) as exc:
        module.fail_json(msg="Host %s: image archive %s matches its sha256 but is not a readable "
                             "image tarball (docker save output): %s" % (host, p["path"], exc),
                         sha256=actual)
    if p["image"] and familiar(p["image"]) not in tags:
        module.fail_json(
            msg="Host %s: image archive %s carries %s, not %s; set sglang_image to the reference "
                "the archive was saved with (or re-save it with that tag). Nothing was loaded."
                % (host, p["path"], ", ".join(tags) or "no image reference", p["image"]),
            sha256=actual, repo_tags=tags)
    module.exit_json(changed=False, sha256=actual, repo_tags=tags, size=os.path.getsize(p["path"]))


if __name__ == "__main__":
    main()
