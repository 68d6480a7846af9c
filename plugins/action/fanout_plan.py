# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""fanout_plan: who fetches an artifact from whom, once per play (docs in modules/fanout_plan.py).

An action plugin: it reads every host's check (the registered result of sglang_fanout
state=checked) from hostvars on the controller and returns the plan and a fresh token, with no
connection. Its successful result carries the token, so it marks itself no_log; a failure
carries no token and stays readable.
"""

from __future__ import annotations

import secrets

from ansible.module_utils.common.collections import is_sequence
from ansible.plugins.action import ActionBase

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._fanout import PlanError, check_degree, plan


def as_int(value):
    """An int from an int or a string of digits (templated values may be either); else as given."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def members_of(hosts, hostvars, checks, name):
    """{host: check} of the hosts that checked this transfer (the include ran on them)."""
    found = {}
    for host in hosts:
        try:
            check = hostvars[host].get(checks)
        except KeyError:
            continue
        if isinstance(check, dict) and check.get("name") == name and "holds" in check and not check.get("failed"):
            found[host] = check
    return found


def build(name, hosts, hostvars, sources, degree, checks, token):
    """The action's result (without the no_log marker)."""
    members = members_of(hosts, hostvars, checks, name)
    order = [host for host in hosts if host in members]
    holders = [host for host in order if members[host]["holds"]]
    warnings = []
    for host in sources:
        if host not in members:
            warnings.append("%s: %s is named in sglang_fanout_sources but does not take part in this "
                            "transfer (not in the play, failed, or skipped it)" % (name, host))
        elif not members[host]["holds"]:
            warnings.append("%s: %s is named in sglang_fanout_sources but does not hold a verified copy "
                            "(%d files missing, %d bad); it receives like the others"
                            % (name, host, len(members[host].get("missing") or []), len(members[host].get("bad") or [])))
    shape = plan(order, holders, degree)
    if shape["receivers"] and not holders:
        warnings.append("%s: no host holds a verified copy, so %s cannot receive it"
                        % (name, ", ".join(shape["receivers"])))
    per_host = {}
    for host in order:
        per_host[host] = {
            "role": "receiver" if host in shape["sources"] else "holder",
            "depth": shape["depth"].get(host),
            "parent": shape["parent"].get(host),
            "children": shape["children"].get(host, []),
            "sources": [{"host": src, "address": members[src]["address"], "port": int(members[src]["port"])}
                        for src in shape["sources"].get(host, [])],
        }
    servers = order if shape["receivers"] and holders else []
    depths = [d for d in shape["depth"].values() if d is not None]
    return {"changed": False, "name": name, "token": token, "degree": degree, "members": order,
            "holders": holders, "receivers": shape["receivers"], "servers": servers,
            "depth": max(depths) if depths else 0, "hosts": per_host, "warnings": warnings}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("name", "hosts", "sources", "degree", "checks"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        name = str(args.get("name") or "transfer")
        hosts = args.get("hosts")
        sources = args.get("sources") or []
        for option, value in (("hosts", hosts), ("sources (sglang_fanout_sources)", sources)):
            if isinstance(value, str) or not is_sequence(value):
                return dict(result, failed=True, msg="fanout_plan %s: %s must be a list of inventory names, got %r"
                            % (name, option, value))
        try:
            degree = check_degree(as_int(args.get("degree", 2)))
        except PlanError as exc:
            return dict(result, failed=True, msg="fanout_plan %s: %s" % (name, exc))
        checks = str(args.get("checks") or "__sglang_fanout_check")
        result.update(build(name, [str(h) for h in hosts], task_vars["hostvars"], [str(s) for s in sources],
                            degree, checks, secrets.token_urlsafe(32)))
        # the token is in this result: keep it out of every log and callback
        result["_ansible_no_log"] = True
        return result
