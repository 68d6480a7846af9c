# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""startup_phases: one host's startup record from its stage results (docs in startup_phases.yml)."""

from __future__ import annotations

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._startup import host_record


def startup_phases(server, image=None, weights=None, restart=None):
    """The sglang_server_startup record (the rules: ``_startup.host_record``)."""
    return host_record(server, image=image, weights=weights, restart=restart)


class FilterModule(object):
    def filters(self):
        return {"startup_phases": startup_phases}
