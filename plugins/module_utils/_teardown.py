# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own plugins only; it is not a
# public API and may change without notice.
"""What playbooks/teardown.yml removes, decided from what the host's Docker daemon reported."""

from __future__ import annotations

import re


def repository(reference):
    """The repository of an image reference: no digest, no tag (a registry port is kept)."""
    name = str(reference).split("@", 1)[0]
    return re.sub(r":[^:/]*$", "", name)


def owned_images(containers, images, image):
    """Every tag of the repositories that the collection's containers and ``image`` use (never
    another repository's): the tags a teardown with images removes."""
    repositories = {repository(c.get("Image", "")) for c in containers or []}
    repositories.add(repository(image))
    repositories.discard("")
    tags = []
    for entry in images or []:
        for tag in entry.get("RepoTags") or []:
            if repository(tag) in repositories and tag not in tags and "<none>" not in tag:
                tags.append(tag)
    return tags
