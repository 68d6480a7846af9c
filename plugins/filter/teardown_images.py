# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""teardown_images: the image tags a teardown removes (docs in teardown_images.yml)."""

from __future__ import annotations

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._teardown import owned_images


def teardown_images(docker_info, image):
    info = docker_info or {}
    return owned_images(info.get("containers"), info.get("images"), image)


class FilterModule(object):
    def filters(self):
        return {"teardown_images": teardown_images}
