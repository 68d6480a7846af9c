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
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._drift import drift, finding_text, no_majority_text
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._preflight import REPORT_SCHEMA_VERSION
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._preflight_checks import CHECKS, _listing, _plural

REPORT_FILES = (("json", "preflight.json"), ("markdown", "preflight.md"))
NO_REPORT = "no preflight report: the host was unreachable or failed before its checks ran"
CHECK_CELL = R.mapped({"pass": "ok", "warn": "WARN", "fail": "FAIL", "skipped": "skip", "n/a": "-"})
HOST_STATUS = R.Format(text=lambda status: status if status == "pass" else str(status).upper())


def _firmware_lines(host):
    """'HSA_NO_SCRATCH_RECLAIM=1 (MEC firmware 166 < 177 on nodes 2-9: why)' per applied rule."""
    return ["%s (%s %s < %d on %d GPUs: %s)" % (
        ", ".join("%s=%s" % kv for kv in sorted(rule["env"].items())), rule["label"],
        "/".join(str(v) for v in rule["values"]), rule["below"], len(rule["gpus"]), rule["why"])
        for rule in host.get("firmware_rules") or []]


def fleet_report(reports, run_id, drift_fail=()):
    """The fleet document from [(host, report or None)] in inventory order.

    drift_fail: versioned facts whose drift from the majority fails the host (default: warn).
    """
    hosts = []
    for host, report in reports:
        if not report:
            report = {"schema_version": REPORT_SCHEMA_VERSION, "host": host, "status": "error", "failed": [],
                      "warnings": [], "skipped": [], "checks": [], "remediation": [], "summary": {},
                      "message": NO_REPORT}
        hosts.append(report)
    counts = dict((status, sum(1 for h in hosts if h["status"] == status)) for status in ("pass", "warn", "fail", "error"))
    # Only the hosts of this run with a report are compared (under --limit: the hosts that ran).
    drifted = drift([(h["host"], h.get("versions")) for h in hosts if h["status"] != "error"], drift_fail)
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "run_id": run_id,
        "checks": list(CHECKS),
        "counts": counts,
        "failed_hosts": [h["host"] for h in hosts if h["status"] in ("fail", "error") or h["host"] in drifted["failed_hosts"]],
        "drift": drifted,
        "firmware_env": dict((h["host"], h["firmware_env"]) for h in hosts if h.get("firmware_env")),
        "hosts": hosts,
    }


def drift_messages(fleet):
    """{host: message} for the hosts that drift fails (facts listed in sglang_preflight_drift_fail)."""
    messages = {}
    for finding in fleet["drift"]["findings"]:
        if finding["status"] == "fail":
            messages.setdefault(finding["host"], []).append("- drift: %s. Fix: bring it in line with the fleet, or "
                                                            "drop %s from sglang_preflight_drift_fail."
                                                            % (finding_text(finding), finding["fact"]))
    return dict((host, "preflight drift on %s:\n%s" % (host, "\n".join(lines))) for host, lines in messages.items())


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
    drifted = fleet.get("drift") or {"findings": [], "no_majority": [], "groups": []}
    drift_items = [[("strong", f["host"]), " %s: %s" % (f["status"].upper(), finding_text(f))] for f in drifted["findings"]]
    drift_items += [["no majority: %s" % no_majority_text(entry)] for entry in drifted["no_majority"]]
    firmware = [[("strong", host["host"]), ": %s" % line] for host in fleet["hosts"] for line in _firmware_lines(host)]
    return {"title": "Preflight %s" % fleet["run_id"], "blocks": [block for block in [
        R.paragraph("%d hosts: %d pass, %d warn, %d fail, %d without a report." % (
            len(fleet["hosts"]), counts["pass"], counts["warn"], counts["fail"], counts["error"])),
        R.table(columns, rows),
        R.items(problems, heading="Problems and fixes"),
        R.items(waived, heading="Waived checks"),
        R.paragraph(_compared(drifted)) if drifted["groups"] else None,
        R.items(drift_items, heading="Drift from the fleet majority"),
        R.items(firmware, heading="Settings the firmware requires"),
    ] if block is not None]}


def _compared(drifted):
    """'Drift compared 4 hosts with device 0x74a1; 1 alone with 0x740c (nothing to compare).'"""
    parts = ["%d hosts with device %s" % (len(g["hosts"]), g["device"]) for g in drifted["groups"] if not g["alone"]]
    alone = ["%s alone with device %s" % (g["hosts"][0], g["device"]) for g in drifted["groups"] if g["alone"]]
    text = "Drift compared %s" % (", ".join(parts) if parts else "no group of two or more hosts")
    return text + ("; %s (nothing to compare)." % ", ".join(alone) if alone else ".")


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
    drifted = fleet.get("drift") or {"findings": [], "no_majority": [], "groups": []}
    for finding in drifted["findings"][:host_limit * 2]:
        lines.append("%s drift on %s: %s" % (finding["status"].upper(), finding["host"], finding_text(finding)))
    if len(drifted["findings"]) > host_limit * 2:
        lines.append("    and %d more drift findings in the report" % (len(drifted["findings"]) - host_limit * 2))
    for entry in drifted["no_majority"][:host_limit]:
        lines.append("NO MAJORITY %s" % no_majority_text(entry))
    if drifted["groups"] and not drifted["findings"] and not drifted["no_majority"]:
        lines.append("drift: none (%s)" % _compared(drifted)[len("Drift compared "):].rstrip("."))
    for host in fleet["hosts"]:
        for line in _firmware_lines(host):
            lines.append("FIRMWARE %s: %s" % (host["host"], line))
    missing = [h["host"] for h in fleet["hosts"] if h["status"] == "error"]
    if missing:
        lines.append("NO REPORT from %s: unreachable or failed before the checks" % _listing(missing, host_limit))
    if fleet["failed_hosts"]:
        lines.append("leaving the play: %s" % _listing(fleet["failed_hosts"], host_limit * 2))
    else:
        lines.append("every host continues")
    return lines


def write_summary(reports, run_id, results_dir, drift_fail=()):
    """Build the fleet report from [(host, report or None)], write preflight.json and preflight.md
    atomically under results_dir; returns {report, summary, paths, failed_hosts, drift_failed, drift_messages}."""
    paths = dict((kind, os.path.join(results_dir, name)) for kind, name in REPORT_FILES)
    fleet = fleet_report(reports, run_id, drift_fail)
    R.write_files(results_dir, {paths["json"]: R.render_json(fleet),
                                paths["markdown"]: R.render_markdown(document(fleet))})
    return {"report": fleet, "summary": fleet_summary(fleet, paths["markdown"]), "paths": paths,
            "failed_hosts": fleet["failed_hosts"], "drift_failed": fleet["drift"]["failed_hosts"],
            "drift_messages": drift_messages(fleet)}
