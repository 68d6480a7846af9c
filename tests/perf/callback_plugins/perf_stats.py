"""Counts what a playbook run did per host for `make perf` (tests/perf/perf.py).

Enabled by the harness only (ANSIBLE_CALLBACK_PLUGINS=tests/perf/callback_plugins,
ANSIBLE_CALLBACKS_ENABLED=perf_stats); the normal stdout callback keeps printing. At the end
of the run it writes PERF_STATS_FILE as JSON:

    {"hosts": {HOST: {"tasks": executed task results (ok, changed or failed),
                      "skipped": n, "ok": n, "changed": n, "failed": n, "unreachable": n,
                      "server": {"returned_at": epoch s when the sglang_server result reached
                                 the controller, "ready_at": the module's own ready_at,
                                 "log_path": ..., "changed": bool}}},
     "tasks": [{"name", "action", "start", "end", "seconds"}: first start to last host result]}

A looped task counts once, like a task without a loop.
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: perf_stats
type: aggregate
short_description: per-host task counts and sglang_server return times for make perf
description: Writes the JSON file named by PERF_STATS_FILE at the end of the run.
requirements: [enabled with ANSIBLE_CALLBACKS_ENABLED=perf_stats]
"""

SERVER_ACTIONS = ("sglang_rocm.fleet.sglang_server", "sglang_server")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "perf_stats"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._hosts = {}
        self._tasks = []

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._tasks.append({"name": task.get_name(), "action": task.action, "start": time.time(), "end": None})

    def _task_done(self):
        if self._tasks:
            self._tasks[-1]["end"] = time.time()

    def _host(self, result):
        name = result._host.get_name()
        return self._hosts.setdefault(name, {"tasks": 0, "skipped": 0, "ok": 0, "changed": 0, "failed": 0,
                                             "unreachable": 0})

    def _count(self, result, key):
        self._task_done()
        host = self._host(result)
        host[key] += 1
        if key in ("ok", "failed"):
            host["tasks"] += 1
            if result._result.get("changed"):
                host["changed"] += 1
        if key == "ok" and result._task.action in SERVER_ACTIONS:
            host["server"] = {"returned_at": time.time(), "ready_at": result._result.get("ready_at"),
                              "log_path": result._result.get("log_path"),
                              "changed": bool(result._result.get("changed"))}

    def v2_runner_on_ok(self, result):
        self._count(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._count(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._count(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        for name in stats.processed:
            summary = stats.summarize(name)
            host = self._hosts.setdefault(name, {"tasks": 0, "skipped": 0, "ok": 0, "changed": 0, "failed": 0,
                                                 "unreachable": 0})
            host["recap"] = summary
        path = os.environ.get("PERF_STATS_FILE")
        if path:
            tasks = [dict(t, seconds=round((t["end"] or t["start"]) - t["start"], 3)) for t in self._tasks]
            with open(path, "w", encoding="utf-8") as handle:
                json.dump({"hosts": self._hosts, "tasks": tasks}, handle, indent=1, sort_keys=True)
