# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""run_id: draw a new run id and claim its results directory on the controller (docs in modules/run_id.py).

An action plugin: it runs on the controller, with no connection, once per playbook run.
"""

from __future__ import annotations

import os
import secrets
import time

from ansible.plugins.action import ActionBase

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._run_lock import claim_run_dir, new_run_id


def _mkdir(path):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    os.mkdir(path, 0o755)  # FileExistsError: never merge into another run's directory


def draw(results_dir, check_mode, now=time.time, token=lambda: secrets.token_hex(3), mkdir=_mkdir):
    """The action's result for ``results_dir``."""
    run_id = new_run_id(now(), token())
    path = os.path.join(results_dir, run_id)
    if not check_mode:
        try:
            path = claim_run_dir(results_dir, run_id, mkdir)
        except OSError as exc:
            return dict(failed=True, run_id=run_id, path=path,
                        msg="run_id: %s" % (exc.strerror if isinstance(exc, FileExistsError) else
                                            "could not create the results directory %s: %s. Check "
                                            "sglang_results_dir (a writable directory on the "
                                            "controller)" % (path, exc)))
    return dict(changed=False, run_id=run_id, path=path)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("results_dir",))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        results_dir = self._task.args.get("results_dir")
        if not results_dir:
            return dict(result, failed=True, msg="run_id: results_dir (sglang_results_dir) is required")
        result.update(draw(os.path.expanduser(str(results_dir)), bool(self._task.check_mode)))
        return result
