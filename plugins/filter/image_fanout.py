# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""image_fanout: which host pulls each image once and which hosts receive it from their peers
(docs in image_fanout.yml)."""

from __future__ import annotations

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._fanout import choose_seeds


def image_fanout(hosts, hostvars, plan_var="__sglang_container_plan"):
    members = []
    for host in hosts or []:
        try:
            plan = hostvars[host].get(plan_var)
        except KeyError:
            continue
        if not isinstance(plan, dict) or not plan.get("fanout"):
            continue
        reference = (plan.get("image") or {}).get("reference")
        members.append((host, reference, bool(plan.get("image_present")) and not plan.get("need_pull"),
                        bool(plan.get("need_pull"))))
    roles = {}
    for group in choose_seeds(members).values():
        if not group["receivers"]:
            continue  # one host needs the image: it simply pulls it
        roles[group["seed"]] = {"role": "seed", "seed": group["seed"]}
        for host in group["receivers"]:
            roles[host] = {"role": "receiver", "seed": group["seed"]}
    return roles


class FilterModule(object):
    def filters(self):
        return {"image_fanout": image_fanout}
