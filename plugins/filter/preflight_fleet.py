# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""preflight_fleet: the preflight role's fleet summary, built on the controller (docs in preflight_fleet.yml)."""

from __future__ import absolute_import, division, print_function

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.collections import is_sequence

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._preflight import (
    fleet_markdown,
    fleet_report,
    fleet_summary,
)

__metaclass__ = type


def _report_of(hostvars, host):
    try:
        host_vars = hostvars[host]
    except KeyError:
        return None
    facts = host_vars.get("ansible_facts") or {}
    return facts.get("sglang_preflight_report") or None


def preflight_fleet(hostvars, hosts, run_id, location=None):
    """{report, markdown, summary} for the given hosts, from each host's sglang_preflight_report fact."""
    if not is_sequence(hosts):
        raise AnsibleFilterError("preflight_fleet: hosts must be a list of inventory names, got %s" % type(hosts).__name__)
    fleet = fleet_report([(host, _report_of(hostvars, host)) for host in hosts], run_id)
    return {"report": fleet, "markdown": fleet_markdown(fleet), "summary": fleet_summary(fleet, location)}


class FilterModule(object):
    def filters(self):
        return {"preflight_fleet": preflight_fleet}
