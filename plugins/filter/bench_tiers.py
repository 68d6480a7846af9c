# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""bench_tiers: resolve the benchmark role's tier selection against its catalog (docs in bench_tiers.yml)."""

from __future__ import absolute_import, division, print_function

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.collections import is_sequence

__metaclass__ = type


def bench_tiers(selection, catalog, defaults=None):
    """List of tier dicts for sglang_bench.

    A string names a catalog tier; a dict whose name is in the catalog overrides that tier's
    fields; any other dict is a new tier. ``defaults`` fill fields no tier sets (dataset).
    """
    if not is_sequence(selection):
        raise AnsibleFilterError("sglang_benchmark_tiers must be a list of tier names or dicts, got %s"
                                 % type(selection).__name__)
    catalog = dict(catalog or {})
    defaults = {k: v for k, v in (defaults or {}).items() if v not in (None, "")}
    resolved, seen = [], set()
    for position, entry in enumerate(selection, start=1):
        if isinstance(entry, str):
            if entry not in catalog:
                raise AnsibleFilterError(
                    "sglang_benchmark_tiers item %d names tier %r, which sglang_benchmark_tier_catalog does not define; "
                    "known tiers: %s. Fix: use one of them or give a dict with name, num_prompts and max_concurrency."
                    % (position, entry, ", ".join(sorted(catalog)) or "none"))
            tier = dict(catalog[entry], name=entry)
        elif isinstance(entry, dict):
            if not entry.get("name"):
                raise AnsibleFilterError("sglang_benchmark_tiers item %d has no name: %r" % (position, entry))
            tier = dict(catalog.get(entry["name"], {}), **entry)
        else:
            raise AnsibleFilterError("sglang_benchmark_tiers item %d must be a tier name or a dict, got %r" % (position, entry))
        if tier["name"] in seen:
            raise AnsibleFilterError("sglang_benchmark_tiers names tier %r twice; tier names must be unique" % tier["name"])
        seen.add(tier["name"])
        resolved.append(dict(defaults, **tier))
    return resolved


class FilterModule(object):
    def filters(self):
        return {"bench_tiers": bench_tiers}
