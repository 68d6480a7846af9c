# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""rollout: the upgrade role's one interface to the rollout model (docs in modules/rollout.py).

An action plugin: every step reads variables and other hosts' records on the controller and
writes at most the summary file, so it needs no connection and no module transfer. The logic
is in module_utils/_rollout.py; this file only moves values between Ansible and it.
"""

from __future__ import annotations

import datetime
import json
import os

from ansible.plugins.action import ActionBase
from ansible.utils.vars import load_extra_vars

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _rollout
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._render import write_files

RECORD = "sglang_upgrade_host"
STEPS = ("check", "images", "batch", "plan", "record", "summary")


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("step", "settings", "results", "image", "before", "outcome", "error",
                             "failed_task", "container", "server", "path"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        self._vars = task_vars or {}
        args = self._task.args
        step = args.get("step")
        if step not in STEPS:
            return dict(result, failed=True, msg="rollout: step must be one of %s, got %r" % (", ".join(STEPS), step))
        try:
            result.update(getattr(self, "_step_" + step)(args))
        except OSError as exc:
            result.update(failed=True, msg="rollout: could not write the rollout summary: %s. Check "
                                           "sglang_results_dir (a writable directory on the controller)." % exc)
        result.setdefault("changed", False)
        return result

    # ------------------------------------------------------------------ helpers
    def _settings(self, args):
        settings = dict(args.get("settings") or {})
        settings.setdefault("target", {})
        settings.setdefault("batches", list(_rollout.DEFAULT_BATCHES))
        settings.setdefault("max_fail_percentage", 0)
        settings.setdefault("smoke_tiers", [])
        return settings

    def _record(self, host=None):
        if host is None:
            return dict(self._vars.get(RECORD) or {})
        hostvars = self._vars["hostvars"][host]
        return dict(hostvars.get(RECORD) or {}) if RECORD in hostvars else {"status": "not_reached"}

    def _records(self, fresh=None):
        """Every host of the play with its record; ``fresh`` overrides some (set in this task)."""
        records = {host: self._record(host) for host in self._vars.get("ansible_play_hosts_all", [])}
        records.update(fresh or {})
        return records

    def _write_summary(self, args, records):
        settings = self._settings(args)
        data = _rollout.summary(records, settings["target"], settings["batches"], self._vars.get("sglang_run_id"),
                                self._vars.get("ansible_check_mode", False), _now())
        write_files(os.path.dirname(args["path"]), {args["path"]: json.dumps(data, indent=2) + "\n"})
        return data

    # ------------------------------------------------------------------ steps
    def _step_check(self, args):
        """Refuse bad settings and target variables given as extra vars; nothing is changed."""
        settings = self._settings(args)
        problems = _rollout.settings_problems(settings["target"], settings["batches"],
                                              settings["max_fail_percentage"], settings["smoke_tiers"])
        if problems:
            return {"failed": True, "msg": _rollout.settings_message(problems)}
        extra = _rollout.target_extra_vars(load_extra_vars(self._loader))
        if extra:
            return {"failed": True, "msg": _rollout.extra_vars_message(extra)}
        return {"msg": "the rollout settings are valid"}

    def _step_images(self, args):
        """Stop the run when the registry has no image for a target reference."""
        missing = _rollout.missing_images(args.get("results"))
        if missing:
            return {"failed": True, "missing": missing, "msg": _rollout.missing_images_message(
                missing, self._vars.get("inventory_hostname"), self._vars.get("sglang_docker_host"), args.get("image"))}
        return {"missing": []}

    def _step_batch(self, args):
        """Once per batch: stop when an earlier batch did not end healthy; otherwise number the
        batch, mark its hosts in progress and write the progress summary (an interrupted run then
        leaves a true account)."""
        settings = self._settings(args)
        records = self._records()
        stop, why = _rollout.batch_gate(records, settings["max_fail_percentage"])
        if stop:
            return {"stop": True, "msg": "The rollout stops before this batch: %s." % why}
        record = {"status": "in_progress", "batch": _rollout.next_batch(records), "started": _now()}
        batch_hosts = self._vars.get("ansible_play_batch", [])
        self._write_summary(args, self._records({host: record for host in batch_hosts}))
        return {"stop": False, "batch": record["batch"], "ansible_facts": {RECORD: record}}

    def _step_plan(self, args):
        """The host's plan: the spec to apply, the spec to roll back to, the gates to pass."""
        settings = self._settings(args)
        current = {}
        for key in _rollout.SPEC_KEYS:
            default = "" if key in _rollout.IMAGE_PINS else None
            current[key] = self._templar.template(self._vars.get(key, default))
        seen = _rollout.seen_container(args.get("before"))
        apply, rollback = _rollout.plan_host(current, settings["target"], seen)
        record = dict(self._record(), before=seen)
        return {"apply": apply, "rollback": rollback, "gates": _rollout.host_gates(settings["smoke_tiers"]),
                "ansible_facts": {RECORD: record}}

    def _step_record(self, args):
        """The host's record after an outcome of its change (see _rollout.finished)."""
        container, server = args.get("container"), args.get("server")
        after = (_rollout.after_change(container, server, self._vars.get("sglang_server_startup"))
                 if args.get("outcome") in ("done", "rolled_back") else None)
        record = _rollout.finished(self._record(), args.get("outcome"), _now(),
                                   check_mode=self._vars.get("ansible_check_mode", False),
                                   changed=_rollout.host_changed(container, server), after=after,
                                   error=args.get("error"), failed_task=args.get("failed_task"))
        return {"status": record["status"], "ansible_facts": {RECORD: record}}

    def _step_summary(self, args):
        """Write upgrade_summary.json; return its lines and a failure message per unhealthy host."""
        records = self._records()
        data = self._write_summary(args, records)
        return {"summary": data, "lines": _rollout.summary_lines(data, args["path"]),
                "failures": _rollout.failures(records, args["path"], self._settings(args)["target"])}
