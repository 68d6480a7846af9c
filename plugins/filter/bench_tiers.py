# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""bench_tiers: resolve the benchmark role's tier selection against its catalog (docs in bench_tiers.yml)."""

from __future__ import absolute_import, division, print_function

from ansible.errors import AnsibleFilterError

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._validate import TierError, resolve_tiers

__metaclass__ = type


def bench_tiers(selection, catalog, defaults=None):
    """List of tier dicts for sglang_bench (the rules: ``_validate.resolve_tiers``)."""
    try:
        return resolve_tiers(selection, catalog, defaults)
    except TierError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"bench_tiers": bench_tiers}
