# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""preflight_summary: write the fleet's preflight results on the controller (docs in modules/preflight_summary.py).

An action plugin, not a module: the work is reading every host's report fact and writing two
files next to the playbook run, so it runs inside the controller's worker with no module
transfer, no connection and no interpreter start (one task where a set_fact, a mkdir and two
copies were four).
"""

from __future__ import annotations

import os

from ansible.module_utils.common.collections import is_sequence
from ansible.plugins.action import ActionBase

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._report_preflight import write_summary


def _report_of(hostvars, host):
    """A host's sglang_preflight_report fact, or None when it has none (or is not in the inventory)."""
    try:
        host_vars = hostvars[host]
    except KeyError:
        return None
    facts = host_vars.get("ansible_facts") or {}
    return facts.get("sglang_preflight_report") or None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("hosts", "run_id", "results_dir", "drift_fail"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        missing = [name for name in ("hosts", "run_id", "results_dir") if args.get(name) in (None, "")]
        if missing:
            return dict(result, failed=True, msg="preflight_summary: missing required argument(s): %s"
                        % ", ".join(missing))
        hosts = args["hosts"]
        if isinstance(hosts, str) or not is_sequence(hosts):
            return dict(result, failed=True, msg="preflight_summary: hosts must be a list of inventory names, got %s"
                        % type(hosts).__name__)
        drift_fail = args.get("drift_fail") or []
        if isinstance(drift_fail, str) or not is_sequence(drift_fail):
            return dict(result, failed=True, msg="preflight_summary: drift_fail (sglang_preflight_drift_fail) must be a "
                        "list of fact names such as [driver, fw.mec], got %s" % type(drift_fail).__name__)
        results_dir = os.path.expanduser(str(args["results_dir"]))
        reports = [(host, _report_of(task_vars["hostvars"], host)) for host in hosts]
        try:
            result.update(write_summary(reports, str(args["run_id"]), results_dir, [str(f) for f in drift_fail]))
        except OSError as exc:
            return dict(result, failed=True,
                        msg="preflight_summary: could not write the fleet's preflight results under %s: %s. "
                            "Check sglang_results_dir (it must be a writable directory on the controller)."
                            % (results_dir, exc))
        result["changed"] = False
        return result
