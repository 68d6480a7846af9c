# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""The preflight fleet report: its model and what it shows (controller only; stdlib only).

Behind the preflight_summary action. fleet_report() gathers every host's preflight report (the
JSON document), fleet_summary() is the one-screen text for the play output, document() says
what preflight.md shows; _render draws it. The per-host checks live in _preflight, which runs on
the GPU hosts and so must not import this module.
"""

from __future__ import annotations

import os

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _render as R
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._preflight import REPORT_SCHEMA_VERSION
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._preflight_checks import CHECKS, _listing, _plural

REPORT_FILES = (("json", "preflight.json"), ("markdown", "preflight.md"))
NO_REPORT = "no preflight report: the host was unreachable or failed before its checks ran"
CHECK_CELL = R.mapped({"pass": "ok", "warn": "WARN", "fail": "FAIL", "skipped": "skip", "n/a": "-"})
HOST_STATUS = R.Format(text=lambda status: status if status == "pass" else str(status).upper())


def fleet_report(reports, run_id):
    """The fleet document from [(host, report or None)] in inventory order."""
    hosts = []
    for host, report in reports:
        if not report:
            report = {"schema_version": REPORT_SCHEMA_VERSION, "host": host, "status": "error", "failed": [],
                      "warnings": [], "skipped": [], "checks": [], "remediation": [], "summary": {},
                      "message": NO_REPORT}
        hosts.append(report)
    counts = dict((status, sum(1 for h in hosts if h["status"] == status)) for status in ("pass", "warn", "fail", "error"))
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "run_id": run_id,
        "checks": list(CHECKS),
        "counts": counts,
        "failed_hosts": [h["host"] for h in hosts if h["status"] in ("fail", "error")],
        "hosts": hosts,
    }


def document(fleet):
    """preflight.md: a host x check table, then every failure and warning with its fix."""
    counts = fleet["counts"]
    columns = [R.Column("host", fmt=R.TEXT, css="host"), R.Column("status", fmt=HOST_STATUS)]
    columns += [R.Column(name, fmt=CHECK_CELL) for name in fleet["checks"]]
    rows = [dict(((c["name"], c["status"]) for c in host["checks"]), host=host["host"], status=host["status"])
            for host in fleet["hosts"]]
    problems = [[("strong", host["host"]), ": %s" % host["message"]]
                for host in fleet["hosts"] if host["status"] == "error"]
    problems += [[("strong", host["host"]), " ", ("code", check["name"]), " %s: %s. Expected %s. Fix: %s%s" % (
        check["status"].upper(), check["observed"], check["expected"], check["fix"],
        " (remediation: %s)" % check["remediation"] if check.get("remediation") else "")]
        for host in fleet["hosts"] for check in host["checks"] if check["status"] in ("fail", "warn")]
    waived = [[("strong", host["host"]), " ", ("code", check["name"]), ": %s" % check["observed"]]
              for host in fleet["hosts"] for check in host["checks"] if check["status"] == "skipped"]
    return {"title": "Preflight %s" % fleet["run_id"], "blocks": [
        R.paragraph("%d hosts: %d pass, %d warn, %d fail, %d without a report." % (
            len(fleet["hosts"]), counts["pass"], counts["warn"], counts["fail"], counts["error"])),
        R.table(columns, rows),
        R.items(problems, heading="Problems and fixes"),
        R.items(waived, heading="Waived checks"),
    ]}


def fleet_summary(fleet, location=None, host_limit=6):
    """A one-screen summary: one line per failing or warning check across the fleet, not per host."""
    counts = fleet["counts"]
    lines = ["preflight %s: %d hosts, %d pass, %d warn, %d fail%s" % (
        fleet["run_id"], len(fleet["hosts"]), counts["pass"], counts["warn"], counts["fail"],
        ", %d without a report" % counts["error"] if counts["error"] else "")]
    if location:
        lines.append("report: %s" % location)
    for status in ("fail", "warn"):
        for name in fleet["checks"]:
            hit = [(h["host"], c) for h in fleet["hosts"] for c in h["checks"] if c["name"] == name and c["status"] == status]
            if not hit:
                continue
            hosts = _listing((entry[0] for entry in hit), host_limit)
            lines.append("%s %s on %s: %s" % (status.upper(), name, _plural(len(hit), "host"), hosts))
            lines.append("    e.g. %s: %s" % (hit[0][0], hit[0][1]["observed"]))
            lines.append("    fix: %s" % hit[0][1]["fix"])
    missing = [h["host"] for h in fleet["hosts"] if h["status"] == "error"]
    if missing:
        lines.append("NO REPORT from %s: unreachable or failed before the checks" % _listing(missing, host_limit))
    if fleet["failed_hosts"]:
        lines.append("leaving the play: %s" % _listing(fleet["failed_hosts"], host_limit * 2))
    else:
        lines.append("every host continues")
    return lines


def write_summary(reports, run_id, results_dir):
    """Build the fleet report from [(host, report or None)], write preflight.json and preflight.md
    atomically under results_dir; returns {report, summary, paths, failed_hosts}."""
    paths = dict((kind, os.path.join(results_dir, name)) for kind, name in REPORT_FILES)
    fleet = fleet_report(reports, run_id)
    R.write_files(results_dir, {paths["json"]: R.render_json(fleet),
                                paths["markdown"]: R.render_markdown(document(fleet))})
    return {"report": fleet, "summary": fleet_summary(fleet, paths["markdown"]), "paths": paths,
            "failed_hosts": fleet["failed_hosts"]}
