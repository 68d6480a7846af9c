# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""model_seed: the host that stages the model for the play, and the hosts that already hold it
(docs in model_seed.yml)."""

from __future__ import annotations

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._model import choose_seed

PROBE = "__sglang_model_probe"


def model_seed(hostvars, hosts, revision):
    """Reads each host's probe (the model role registers it as PROBE)."""
    probes = {}
    for host in hosts or []:
        probe = hostvars[host].get(PROBE) if host in hostvars else None
        probes[host] = probe if isinstance(probe, dict) else {}
    return choose_seed(list(hosts or []), probes, revision)


class FilterModule(object):
    def filters(self):
        return {"model_seed": model_seed}
