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

import json
import os
import tempfile

from ansible.module_utils.common.collections import is_sequence
from ansible.plugins.action import ActionBase

from ansible_collections.sglang_rocm.fleet.plugins.filter.preflight_fleet import preflight_fleet


def _write(path, text):
    """Replace ``path`` atomically (a reader never sees half a file); mode 0644."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_summary(hostvars, hosts, run_id, results_dir):
    """Compute the fleet summary and write preflight.json and preflight.md; returns the result dict."""
    markdown_path = os.path.join(results_dir, "preflight.md")
    fleet = preflight_fleet(hostvars, hosts, run_id, markdown_path)
    os.makedirs(results_dir, mode=0o755, exist_ok=True)
    json_path = os.path.join(results_dir, "preflight.json")
    _write(json_path, json.dumps(fleet["report"], indent=2, sort_keys=False) + "\n")
    _write(markdown_path, fleet["markdown"])
    return {"changed": False, "report": fleet["report"], "summary": fleet["summary"],
            "paths": {"json": json_path, "markdown": markdown_path},
            "failed_hosts": fleet["report"].get("failed_hosts", [])}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("hosts", "run_id", "results_dir"))

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
        results_dir = os.path.expanduser(str(args["results_dir"]))
        try:
            result.update(write_summary(task_vars["hostvars"], list(hosts), str(args["run_id"]), results_dir))
        except OSError as exc:
            return dict(result, failed=True,
                        msg="preflight_summary: could not write the fleet's preflight results under %s: %s. "
                            "Check sglang_results_dir (it must be a writable directory on the controller)."
                            % (results_dir, exc))
        return result
