# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""teardown_cache: which cache paths a teardown removes and which it keeps (docs in teardown_cache.yml)."""

from __future__ import annotations

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._teardown import cache_plan, weights_note


def teardown_cache(paths, cache_dir, realpaths=None, model_dir=None, remove_model=True):
    """``realpaths`` is the output of ``realpath -m -- CACHE_DIR PATHS...`` on the host, one line
    per argument in that order. With ``model_dir``, ``model`` says what happens to the staged
    model weights."""
    paths = list(paths or [])
    lines = list(realpaths or [])
    resolved = {}
    if len(lines) == len(paths) + 1:
        resolved = dict(zip([cache_dir] + [str(p) for p in paths], lines))
    plan = cache_plan(paths, cache_dir, resolved)
    if model_dir:
        plan["model"] = weights_note(plan, model_dir, remove_model)
    return plan


class FilterModule(object):
    def filters(self):
        return {"teardown_cache": teardown_cache}
