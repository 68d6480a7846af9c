# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""bench_report: the benchmark fleet report, written on the controller (docs in modules/bench_report.py).

An action plugin, not a module: it only transforms results the controller already holds and
writes files next to the playbook run, so it runs in the task's worker with no module transfer,
no connection and no interpreter start, and the report code never travels to a GPU host.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._report_bench import (
    ReportError,
    baseline_from_report,
    build_report,
    left_run_status,
    check_tolerances,
    load_baseline,
    report_paths,
    write_baseline,
    write_report,
)

ARGUMENT_SPEC = dict(
    output_dir=dict(type="path", required=True),
    hosts=dict(type="list", elements="str", required=True),
    records=dict(type="dict", default={}),
    host_status=dict(type="dict", default={}),
    lost_hosts=dict(type="list", elements="str", default=[]),
    validation=dict(type="dict", default={}),
    image_digests=dict(type="dict", default={}),
    startup=dict(type="dict", default={}),
    images=dict(type="dict", default={}),
    models=dict(type="dict", default={}),
    baseline=dict(type="path"),
    tolerances=dict(type="dict", default={}),
    token_tolerance=dict(type="float", default=0.01),
    outlier_tolerance=dict(type="float", default=0.15),
    outlier_min_hosts=dict(type="int", default=3),
    fail_on_regression=dict(type="bool", default=False),
    store_as_baseline=dict(type="path"),
    run_id=dict(type="str", required=True),
    started=dict(type="str"),
    finished=dict(type="str"),
    collection_version=dict(type="str"),
    image=dict(type="str"),
    model=dict(type="str"),
    tp_size=dict(type="int"),
    notes=dict(type="list", elements="str", default=[]),
    validate_only=dict(type="bool", default=False),
)
RUN_KEYS = ("run_id", "started", "finished", "collection_version", "image", "model", "tp_size",
            "notes")


def run_report(p, check_mode):
    """The action's result for validated arguments ``p``; ReportError for bad input."""
    for name in ("token_tolerance", "outlier_tolerance"):
        if not 0.0 <= p[name] < 1.0:
            raise ReportError("%s must be a fraction in [0, 1), got %s" % (name, p[name]))
    if p["validate_only"]:
        # The benchmark role calls this before any tier runs: a typo in the baseline or the
        # tolerances must not cost an hour of benchmarking first.
        check_tolerances(p["tolerances"])
        baseline = load_baseline(p["baseline"]) if p["baseline"] else None
        return dict(changed=False, baseline_path=p["baseline"],
                    baseline_tiers=sorted((baseline or {}).get("tiers", {})))
    baseline = load_baseline(p["baseline"]) if p["baseline"] else None
    # a stage failure the play's rescue recorded says more than "lost": it wins (the role passes
    # every host, with an empty entry for the hosts without one)
    host_status = left_run_status(p["lost_hosts"], p["validation"], p["run_id"])
    host_status.update((host, entry) for host, entry in p["host_status"].items() if entry)
    report = build_report(
        p["hosts"], p["records"], host_status=host_status, image_digests=p["image_digests"],
        startup=p["startup"], images=p["images"], models=p["models"], baseline=baseline, baseline_path=p["baseline"], tolerances=p["tolerances"],
        token_tolerance=p["token_tolerance"], outlier_tolerance=p["outlier_tolerance"],
        outlier_min_hosts=p["outlier_min_hosts"], run={k: p[k] for k in RUN_KEYS})
    new_baseline = baseline_from_report(report) if p["store_as_baseline"] else None
    paths = report_paths(p["output_dir"])
    if not check_mode:
        write_report(report, p["output_dir"])
        if new_baseline is not None:
            write_baseline(p["store_as_baseline"], new_baseline)
    verdict = report["verdict"]
    result = dict(changed=True, verdict=verdict["status"], summary=verdict["summary"],
                  violations=report["violations"], incomplete=verdict["incomplete"], paths=paths,
                  baseline_path=p["store_as_baseline"], report=report)
    if p["fail_on_regression"] and verdict["status"] == "regression":
        result.update(failed=True,
                      msg="%s: %s" % (verdict["summary"], "; ".join(verdict["violations"])))
    return result


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        try:
            _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        except AnsibleActionFail as exc:
            msg = str(exc.message)
            if self._load_name:  # the plugin's Python path: say the task name the user typed
                msg = msg.replace(self._load_name, self._task.action)
            return dict(result, failed=True, msg=msg)
        try:
            result.update(run_report(args, bool(self._task.check_mode)))
        except ReportError as exc:
            return dict(result, failed=True, msg=str(exc))
        except OSError as exc:
            return dict(result, failed=True,
                        msg="bench_report: could not write the fleet report under %s: %s. Check "
                            "sglang_results_dir (a writable directory on the controller) and "
                            "sglang_benchmark_store_baseline." % (args["output_dir"], exc))
        return result
