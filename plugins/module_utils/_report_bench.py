# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""Fleet report logic behind the bench_report module (stdlib only, no AnsibleModule).

Takes the per-tier records sglang_bench returned on every host, the hosts that failed an
earlier stage, each host's image digest, its startup phases and how its image and model arrived;
computes fleet statistics, baseline comparisons (gated on output throughput and median TPOT, P99s
report-only, workload comparability by token totals), outlier hosts, the bytes each artifact moved
over the upstream link, and a verdict; renders JSON, CSV, Markdown and HTML.
"""

from __future__ import annotations

import collections
import json
import os
import statistics

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _render as R
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._files import json_safe, json_text
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._render import is_number as _is_number
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._render import number_text as _fmt
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._startup import (
    PHASES,
    image_arrival,
    model_arrival,
    seconds_of,
)

# The report's schema_version changes only when a field is removed, renamed or changes meaning;
# a new field (such as "startup" or "cold_start" per host and for the fleet) is added under the same version,
# and readers ignore fields they do not know. The CSV adds columns at the end only.
SCHEMA_VERSION = 1
BASELINE_SCHEMA_VERSION = 1

# Metrics a tolerance may gate, and which direction is worse.
HIGHER_IS_BETTER = ("output_throughput", "total_throughput", "request_throughput",
                    "input_throughput")
LOWER_IS_BETTER = ("median_tpot_ms", "mean_tpot_ms", "median_ttft_ms", "mean_ttft_ms",
                   "median_itl_ms", "mean_itl_ms", "median_e2e_latency_ms",
                   "mean_e2e_latency_ms")
GATEABLE = HIGHER_IS_BETTER + LOWER_IS_BETTER
DEFAULT_TOLERANCES = {"output_throughput": 0.10, "median_tpot_ms": 0.10}
# Compared with the baseline and shown, never gated: with 10 prompts a P99 is the maximum.
REPORT_ONLY = ("mean_ttft_ms", "p99_ttft_ms", "p99_tpot_ms", "p99_itl_ms", "p99_e2e_latency_ms")
# Workload fields that must match the baseline's for a comparison to mean anything.
WORKLOAD_KEYS = ("dataset_name", "num_prompts", "max_concurrency", "random_input_len",
                 "random_output_len", "random_range_ratio", "request_rate", "seed")
TOKEN_KEYS = ("total_input_tokens", "total_output_tokens")
# Metrics summarised across the fleet (median/min/max) and shown in tables.
FLEET_METRICS = (
    "output_throughput", "total_throughput", "request_throughput", "mean_ttft_ms",
    "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "median_tpot_ms", "p99_tpot_ms",
    "mean_itl_ms", "median_itl_ms", "p99_itl_ms", "mean_e2e_latency_ms", "median_e2e_latency_ms",
    "concurrency", "duration_s", "completed", "failed", "total_input_tokens",
    "total_output_tokens",
)
OK_STAGE_STATUSES = ("ok", "success", "passed", "changed", "", None)
RECORD_KEYS = ("status", "metrics", "reported", "spec", "source", "exit_status", "timed_out",
               "duration_s", "started", "finished", "raw_path", "log_path", "priming", "argv",
               "warnings", "error")


class ReportError(ValueError):
    """Bad report input (baseline file, tolerances) with a message that says how to fix it."""


def _pct(observed, baseline):
    if not (_is_number(observed) and _is_number(baseline)) or baseline == 0:
        return None
    return round((observed - baseline) / baseline * 100.0, 2)


# ------------------------------------------------------------------------------ inputs

def check_tolerances(tolerances):
    """Merge user tolerances over the defaults; None switches a gate off."""
    merged = dict(DEFAULT_TOLERANCES)
    errors = []
    for metric, value in (tolerances or {}).items():
        if metric in REPORT_ONLY and metric not in GATEABLE:
            errors.append("%s is report-only and cannot be gated (a P99 over few prompts is "
                          "their maximum); gate on one of %s" % (metric, ", ".join(GATEABLE)))
            continue
        if metric not in GATEABLE:
            errors.append("unknown metric %r; tolerances may gate %s" % (metric, ", ".join(GATEABLE)))
            continue
        if value is None:
            merged[metric] = None
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = -1.0
        if isinstance(value, bool) or not 0.0 <= number < 1.0:
            errors.append("%s: tolerance must be a fraction in [0, 1) such as 0.1 for 10%%, got %r"
                          % (metric, value))
            continue
        merged[metric] = number
    if errors:
        raise ReportError("invalid tolerances: " + "; ".join(errors))
    return {k: v for k, v in merged.items() if v is not None}


def _refuse_constant(token):
    raise ValueError("%s is not JSON (a metric must be a finite number or null)" % token)


def parse_baseline(text, path="<baseline>"):
    """Parse and check a baseline document; errors name the file and the line."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        where = "line %s column %s" % (line, getattr(exc, "colno", "?")) if line else "?"
        raise ReportError("baseline file %s does not parse as JSON at %s: %s; fix that line or "
                          "point the baseline at another file"
                          % (path, where, getattr(exc, "msg", exc)))
    if not isinstance(data, dict) or not isinstance(data.get("tiers"), dict) or not data["tiers"]:
        raise ReportError("baseline file %s: expected an object with a non-empty 'tiers' object "
                          "(tier name -> {workload, metrics})" % path)
    for name, tier in data["tiers"].items():
        if not isinstance(tier, dict) or not isinstance(tier.get("metrics"), dict):
            raise ReportError("baseline file %s: tier %r needs a 'metrics' object" % (path, name))
        bad = [k for k, v in tier["metrics"].items() if v is not None and not _is_number(v)]
        if bad:
            raise ReportError("baseline file %s: tier %r has non-numeric metrics %s"
                              % (path, name, ", ".join(sorted(bad))))
        if not isinstance(tier.get("workload", {}), dict):
            raise ReportError("baseline file %s: tier %r 'workload' must be an object" % (path, name))
    return data


def load_baseline(path):
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ReportError("baseline file %s cannot be read: %s" % (path, exc.strerror or exc))
    return parse_baseline(text, path)


def _records_of(value):
    """Accept a list of records or a whole sglang_bench result (with its 'records')."""
    if isinstance(value, dict):
        value = value.get("records", [])
    return [r for r in (value or []) if isinstance(r, dict) and r.get("tier")]


# --------------------------------------------------------------------------- analysis

def _median(values):
    return statistics.median(values) if values else None


def fleet_stats(hosts, tiers):
    """tier -> metric -> {median, min, max, n} over every host that has the metric."""
    stats = {}
    for tier in tiers:
        per_metric = {}
        for metric in FLEET_METRICS:
            values = [h["tiers"][tier]["metrics"].get(metric) for h in hosts
                      if tier in h["tiers"]]
            values = [v for v in values if _is_number(v)]
            if values:
                per_metric[metric] = {"median": _median(values), "min": min(values),
                                      "max": max(values), "n": len(values)}
        stats[tier] = per_metric
    return stats


def compare_tier(record, base_tier, tolerances, token_tolerance):
    """Compare one host-tier record with the baseline's tier."""
    if base_tier is None:
        return {"status": "no_baseline", "reasons": ["the baseline has no such tier"], "checks": {}}
    metrics = record.get("metrics") or {}
    if not metrics:
        return {"status": "no_result", "reasons": ["the tier produced no metrics"], "checks": {}}
    reasons = []
    spec = record.get("spec") or {}
    for key in WORKLOAD_KEYS:
        want = (base_tier.get("workload") or {}).get(key)
        have = spec.get(key)
        if want is None or have is None:
            continue
        same = (float(want) == float(have)) if _is_number(want) and _is_number(have) \
            else str(want) == str(have)
        if not same:
            reasons.append("%s %s differs from the baseline's %s" % (key, _fmt(have), _fmt(want)))
    base_metrics = base_tier["metrics"]
    for key in TOKEN_KEYS:
        want, have = base_metrics.get(key), metrics.get(key)
        if not (_is_number(want) and _is_number(have)):
            continue
        off = abs(have - want) / want if want else float(have != want)
        if off > token_tolerance:
            reasons.append("%s %s differs from the baseline's %s by %.1f%% (more than %.1f%%): "
                           "not the same workload" % (key, _fmt(have), _fmt(want), off * 100,
                                                      token_tolerance * 100))
    comparable = not reasons
    checks = {}
    for metric in list(tolerances) + [m for m in REPORT_ONLY if m not in tolerances]:
        base, observed = base_metrics.get(metric), metrics.get(metric)
        if not _is_number(base):
            continue
        gated = metric in tolerances and comparable
        check = {"observed": observed, "baseline": base, "delta_pct": _pct(observed, base),
                 "gated": gated, "tolerance": tolerances.get(metric), "allowed": None,
                 "direction": "higher" if metric in HIGHER_IS_BETTER else "lower", "ok": None}
        if metric in tolerances:
            tol = tolerances[metric]
            check["allowed"] = base * (1 - tol) if metric in HIGHER_IS_BETTER else base * (1 + tol)
            if gated and _is_number(observed):
                check["ok"] = observed >= check["allowed"] if metric in HIGHER_IS_BETTER \
                    else observed <= check["allowed"]
        checks[metric] = check
    return {"status": "compared" if comparable else "not_comparable", "reasons": reasons,
            "checks": checks}


def majority_digest(digests):
    """(majority digest or None, hosts whose digest differs from it)."""
    known = {h: d for h, d in digests.items() if d}
    if not known:
        return None, []
    counts = collections.Counter(known.values())
    digest, count = counts.most_common(1)[0]
    if count * 2 > len(known):
        return digest, sorted(h for h, d in known.items() if d != digest)
    return None, sorted(known) if len(counts) > 1 else []


LOST = ("the controller lost this host during the run (unreachable, or a task outside the "
        "stages failed) and collected nothing from it; what it finished stays on the host under "
        "sglang_benchmark_host_results_dir/%s, one <tier>.record.json per finished tier")


def left_run_status(lost_hosts, validation=None, run_id=None):
    """Host -> {stage, status, error} for the hosts that left the play before the report.

    A host whose input check failed (the validate task's registered result) failed stage
    ``validate``; any other host the play lost was unreachable, or failed outside the stages'
    block (whose rescue records a stage failure in host_status instead).
    """
    status = {}
    for host in lost_hosts or []:
        checked = (validation or {}).get(host) or {}
        if checked.get("failed"):
            status[host] = {"stage": "validate", "status": "failed",
                            "error": checked.get("msg") or "invalid input"}
        else:
            status[host] = {"stage": "run", "status": "unreachable", "error": LOST % (run_id or "<run id>")}
    return status


def startup_stats(entries):
    """phase -> {median, max, n} of its seconds over the hosts that have it (None without any)."""
    stats = {}
    for name in PHASES:
        values = [seconds_of(e["startup"], name) for e in entries]
        values = [v for v in values if v is not None]
        stats[name] = {"median": _median(values), "max": max(values), "n": len(values)} if values else None
    return stats


# The artifacts of a cold start, and how each host's record of it is read (_startup).
ARTIFACTS = ("image", "model")
ARRIVAL_OF = {"image": image_arrival, "model": model_arrival}


def cold_start_host(image=None, model=None):
    """How the image (sglang_container_image_facts) and the model (sglang_model_result) reached
    one host in this run; None when neither stage ran there."""
    record = {"image": json_safe(image_arrival(image)), "model": json_safe(model_arrival(model))}
    return record if any(record.values()) else None


def _majority(values):
    values = [v for v in values if v not in (None, "")]
    return collections.Counter(values).most_common(1)[0][0] if values else None


def cold_start_fleet(entries, images=None, models=None):
    """Per artifact: one copy's bytes (``copy_bytes``: the image's size, the model revision's
    bytes), the bytes that crossed the upstream link (``upstream_bytes``: what the hosts pulled
    or downloaded), that as a multiple of one copy (``copies``), and the hosts by how it arrived.
    None for an artifact that no host has a record of."""
    images, models = images or {}, models or {}
    identity = {
        "image": ("id", _majority([(images.get(e["host"]) or {}).get("id") for e in entries]),
                  _majority([_number((images.get(e["host"]) or {}).get("size")) for e in entries])),
        "model": ("revision", _majority([(models.get(e["host"]) or {}).get("revision") for e in entries]),
                  _majority([_number((models.get(e["host"]) or {}).get("bytes_total")) for e in entries])),
    }
    fleet = {}
    for artifact in ARTIFACTS:
        arrived = [(e["host"], (e.get("cold_start") or {}).get(artifact)) for e in entries]
        arrived = [(host, a) for host, a in arrived if a]
        if not arrived:
            fleet[artifact] = None
            continue
        key, value, copy = identity[artifact]
        upstream = sum(a["upstream_bytes"] or 0 for _host, a in arrived)
        hosts = {}
        for host, arrival in arrived:
            hosts.setdefault(arrival["how"], []).append(host)
        fleet[artifact] = {
            key: value, "copy_bytes": copy, "upstream_bytes": upstream,
            "copies": round(float(upstream) / copy, 3) if copy else None,
            "from_upstream": [host for host, a in arrived if a["upstream_bytes"]], "hosts": hosts}
    return fleet


def _number(value):
    return value if _is_number(value) else None


def _startup_record(value):
    """A host's sglang_server_startup record as the report keeps it, or None."""
    if not isinstance(value, dict) or not isinstance(value.get("phases"), dict):
        return None
    return json_safe(value)


def build_report(hosts, records, host_status=None, image_digests=None, baseline=None,
                 baseline_path=None, tolerances=None, token_tolerance=0.01,
                 outlier_tolerance=0.15, outlier_min_hosts=3, run=None, startup=None, images=None,
                 models=None):
    """The whole fleet report as one JSON-able dict (schema_version 1). ``startup`` maps a host
    to its startup record (the fact sglang_server_startup, _startup.host_record); ``images`` and
    ``models`` map a host to its sglang_container_image_facts and sglang_model_result."""
    tolerances = check_tolerances(tolerances)
    host_status = host_status or {}
    image_digests = image_digests or {}
    startup = startup or {}
    images, models = images or {}, models or {}
    names = list(hosts or [])
    for extra in list(records or {}) + list(host_status):
        if extra not in names:
            names.append(extra)

    tiers, entries, non_finite = [], [], []
    for name in names:
        recs = _records_of((records or {}).get(name))
        stage = host_status.get(name) or {}
        entry = {"host": name, "status": "ok", "stage": None, "stage_status": None, "error": None,
                 "image_digest": image_digests.get(name) or None, "digest_mismatch": False,
                 "sglang_version": None, "tiers": {}, "startup": _startup_record(startup.get(name)),
                 "cold_start": cold_start_host(images.get(name), models.get(name))}
        for rec in recs:
            if rec["tier"] not in tiers:
                tiers.append(rec["tier"])
            # A NaN/inf (from the client's printed summary, an older module, a hand-made
            # file) is unknown, never zero, and never reaches the JSON report.
            found = []
            tier = json_safe({k: rec.get(k) for k in RECORD_KEYS}, found=found)
            tier["metrics"] = dict(tier.get("metrics") or {})
            tier["warnings"] = list(tier.get("warnings") or [])
            for where in found:
                text = "%s was not a finite number (nan or inf); treated as unknown" % (
                    where[len("metrics."):] if where.startswith("metrics.") else where)
                tier["warnings"].append(text)
                non_finite.append("%s / %s: %s" % (name, rec["tier"], text))
            tier["outlier"] = False
            tier["comparison"] = None
            entry["tiers"][rec["tier"]] = tier
            version = (rec.get("reported") or {}).get("sglang_version")
            entry["sglang_version"] = entry["sglang_version"] or version
        if stage and stage.get("status") not in OK_STAGE_STATUSES:
            entry.update(status="stage_failed", stage=stage.get("stage"),
                         stage_status=stage.get("status"), error=stage.get("error"))
        elif not recs:
            entry.update(status="missing", error="no benchmark records: the benchmark stage did "
                         "not run on this host or its result was not collected")
        elif any(t["status"] != "ok" for t in entry["tiers"].values()):
            entry["status"] = "degraded"
        entries.append(entry)

    violations, incomplete, outliers, notes = [], [], [], list(non_finite)
    for entry in entries:
        if entry["status"] == "stage_failed":
            incomplete.append({"host": entry["host"], "tier": None, "stage": entry["stage"],
                               "status": entry["stage_status"], "error": entry["error"]})
        elif entry["status"] == "missing":
            incomplete.append({"host": entry["host"], "tier": None, "stage": "benchmark",
                               "status": "missing", "error": entry["error"]})
        for tier_name, tier in entry["tiers"].items():
            if tier["status"] == "error" or not tier["metrics"]:
                incomplete.append({"host": entry["host"], "tier": tier_name, "stage": "benchmark",
                                   "status": tier["status"], "error": tier["error"]})
            failed = tier["metrics"].get("failed")
            if _is_number(failed) and failed > 0:
                violations.append({
                    "kind": "failed_requests", "host": entry["host"], "tier": tier_name,
                    "metric": "failed", "observed": failed, "allowed": 0, "reference": None,
                    "message": "%s / %s: %s of %s requests failed (allowed 0)" % (
                        entry["host"], tier_name, failed, tier["metrics"].get("num_prompts", "?"))})

    # Baseline comparison.
    base_tiers = (baseline or {}).get("tiers") or {}
    comparability = {}
    for entry in entries:
        for tier_name, tier in entry["tiers"].items():
            if baseline is None or not tier["metrics"]:
                continue
            comp = compare_tier(tier, base_tiers.get(tier_name), tolerances, token_tolerance)
            tier["comparison"] = comp
            comparability.setdefault(tier_name, []).append(comp)
            for metric, check in comp["checks"].items():
                if check["ok"] is False:
                    better = "at least" if check["direction"] == "higher" else "at most"
                    violations.append({
                        "kind": "baseline", "host": entry["host"], "tier": tier_name,
                        "metric": metric, "observed": check["observed"],
                        "allowed": check["allowed"], "reference": check["baseline"],
                        "message": "%s / %s / %s: observed %s, allowed %s %s (baseline %s, "
                                   "tolerance %g%%)" % (
                                       entry["host"], tier_name, metric,
                                       _fmt(check["observed"]), better, _fmt(check["allowed"]),
                                       _fmt(check["baseline"]), check["tolerance"] * 100)})
    baseline_summary = None
    if baseline is not None:
        per_tier = {}
        for tier_name in tiers:
            comps = comparability.get(tier_name, [])
            statuses = sorted({c["status"] for c in comps})
            reasons = []
            for comp in comps:
                for reason in comp["reasons"]:
                    if reason not in reasons:
                        reasons.append(reason)
            per_tier[tier_name] = {"status": statuses[0] if len(statuses) == 1 else
                                   ("mixed" if statuses else "no_result"),
                                   "reasons": reasons}
        states = {v["status"] for v in per_tier.values()}
        overall = "compared" if states == {"compared"} else (
            "not_comparable" if "compared" not in states else "partial")
        baseline_summary = {"path": baseline_path, "description": baseline.get("description"),
                            "source": baseline.get("source"),
                            "environment": baseline.get("environment"),
                            "status": overall, "tiers": per_tier,
                            "metrics": {t: base_tiers[t]["metrics"] for t in tiers
                                        if t in base_tiers}}
        not_comp = [t for t, v in per_tier.items() if v["status"] in ("not_comparable", "mixed")]
        if not_comp:
            notes.append("baseline not comparable for tier(s) %s: %s" % (
                ", ".join(not_comp), "; ".join(per_tier[not_comp[0]]["reasons"][:2])))
        missing = [t for t, v in per_tier.items() if v["status"] == "no_baseline"]
        if missing:
            notes.append("the baseline has no tier(s) %s; not compared" % ", ".join(missing))
    else:
        notes.append("no baseline given: hosts were compared with each other only")

    # Outliers: output throughput below the fleet median by more than the tolerance.
    fleet = fleet_stats(entries, tiers)
    for tier_name in tiers:
        measured = [(e, e["tiers"][tier_name]["metrics"].get("output_throughput"))
                    for e in entries if tier_name in e["tiers"]]
        measured = [(e, v) for e, v in measured if _is_number(v)]
        if len(measured) < outlier_min_hosts:
            continue
        median = _median([v for _e, v in measured])
        allowed = median * (1 - outlier_tolerance)
        for entry, value in measured:
            if value < allowed:
                entry["tiers"][tier_name]["outlier"] = True
                item = {"kind": "outlier", "host": entry["host"], "tier": tier_name,
                        "metric": "output_throughput", "observed": value, "allowed": allowed,
                        "reference": median,
                        "message": "%s / %s / output_throughput: observed %s, allowed at least %s "
                                   "(fleet median %s, outlier tolerance %g%%)" % (
                                       entry["host"], tier_name, _fmt(value), _fmt(allowed),
                                       _fmt(median), outlier_tolerance * 100)}
                outliers.append(item)
                violations.append(item)
    if len([e for e in entries if e["tiers"]]) < outlier_min_hosts:
        notes.append("outliers are judged with at least %d measured hosts; this run has %d"
                     % (outlier_min_hosts, len([e for e in entries if e["tiers"]])))

    majority, mismatched = majority_digest({e["host"]: e["image_digest"] for e in entries})
    for entry in entries:
        entry["digest_mismatch"] = entry["host"] in mismatched
    if mismatched:
        notes.append("image digest differs from the fleet majority on %s" % ", ".join(mismatched)
                     if majority else "no image digest is shared by a majority of hosts: %s"
                     % ", ".join(mismatched))

    order = {name: i for i, name in enumerate(names)}
    violations.sort(key=lambda v: (order.get(v["host"], len(order)),
                                   tiers.index(v["tier"]) if v["tier"] in tiers else -1))
    if violations:
        status = "regression"
        hosts_hit = sorted({v["host"] for v in violations})
        summary = "REGRESSION: %d violation(s) on %s" % (len(violations), ", ".join(hosts_hit))
    elif incomplete:
        status = "incomplete"
        summary = "INCOMPLETE: %d host(s)/tier(s) without results (%s)" % (
            len(incomplete), ", ".join(sorted({i["host"] for i in incomplete})))
    else:
        status = "pass"
        measured = [e for e in entries if e["tiers"]]
        summary = "PASS: %d host(s) x %d tier(s), no failed requests%s%s" % (
            len(measured), len(tiers),
            ", within tolerance of the baseline" if baseline_summary and
            baseline_summary["status"] != "not_comparable" else "",
            ", no outlier host" if len(measured) >= outlier_min_hosts else "")
    failures = [dict(i) for i in incomplete]
    for entry in entries:
        for tier_name, tier in entry["tiers"].items():
            if tier["status"] == "failed":
                failures.append({"host": entry["host"], "tier": tier_name, "stage": "benchmark",
                                 "status": "failed", "error": tier["error"]})

    return {
        "schema_version": SCHEMA_VERSION,
        "run": dict(run or {}),
        "verdict": {"status": status, "summary": summary,
                    "violations": [v["message"] for v in violations],
                    "incomplete": [_incomplete_text(i) for i in incomplete]},
        "settings": {"tolerances": tolerances, "token_tolerance": token_tolerance,
                     "outlier_tolerance": outlier_tolerance,
                     "outlier_min_hosts": outlier_min_hosts,
                     "gated_metrics": sorted(tolerances), "report_only_metrics": list(REPORT_ONLY)},
        "tiers": tiers,
        "hosts": entries,
        "fleet": fleet,
        "baseline": baseline_summary,
        "violations": violations,
        "outliers": outliers,
        "failures": failures,
        "digests": {"majority": majority, "mismatched": mismatched,
                    "hosts": {e["host"]: e["image_digest"] for e in entries}},
        "notes": notes,
        "startup": {"phases": list(PHASES), "fleet": startup_stats(entries),
                    "hosts": len([e for e in entries if e["startup"]])},
        "cold_start": cold_start_fleet(entries, images, models),
    }


def _incomplete_text(item):
    where = item["host"] + (" / " + item["tier"] if item["tier"] else "")
    return "%s: %s %s: %s" % (where, item["stage"], item["status"], item["error"])


def baseline_from_report(report):
    """A baseline document made of the fleet medians of the hosts whose tier was clean."""
    tiers = {}
    for tier_name in report["tiers"]:
        clean = [e["tiers"][tier_name] for e in report["hosts"]
                 if tier_name in e["tiers"] and e["tiers"][tier_name]["status"] == "ok"]
        if not clean:
            continue
        keys = sorted({k for t in clean for k, v in t["metrics"].items() if _is_number(v)})
        metrics = {}
        for key in keys:
            values = [t["metrics"][key] for t in clean if _is_number(t["metrics"].get(key))]
            metrics[key] = round(_median(values), 4)
        spec = clean[0].get("spec") or {}
        tiers[tier_name] = {"workload": {k: spec[k] for k in WORKLOAD_KEYS if k in spec},
                            "hosts": len(clean), "metrics": metrics}
    if not tiers:
        raise ReportError("cannot store this run as a baseline: no tier finished cleanly on any "
                          "host")
    run = report.get("run") or {}
    return {
        "schema_version": BASELINE_SCHEMA_VERSION,
        "description": "fleet median of run %s" % run.get("run_id"),
        "source": "sglang_rocm.fleet bench_report, run %s (%s)" % (
            run.get("run_id"), run.get("finished") or run.get("started") or "time unknown"),
        "environment": {k: run.get(k) for k in ("model", "image", "tp_size",
                                                "collection_version") if run.get(k)},
        "tiers": tiers,
    }


# ------------------------------------------------------------------------------- views

REPORT_FILES = (("json", "fleet_report.json"), ("csv", "fleet_report.csv"),
                ("markdown", "fleet_report.md"), ("html", "fleet_report.html"))
METRIC_NAMES = {
    "output_throughput": "output tok/s", "total_throughput": "total tok/s",
    "request_throughput": "req/s", "input_throughput": "input tok/s",
    "median_tpot_ms": "median TPOT", "mean_tpot_ms": "mean TPOT",
    "median_ttft_ms": "median TTFT", "mean_ttft_ms": "mean TTFT",
    "median_itl_ms": "median ITL", "mean_itl_ms": "mean ITL",
    "median_e2e_latency_ms": "median E2E", "mean_e2e_latency_ms": "mean E2E",
}


def workload_line(spec):
    """A tier's workload in one line: the only place it is worded, for every format."""
    return ("%s prompts \u00b7 max concurrency %s \u00b7 %s %s in / %s out \u00b7 range ratio %s "
            "\u00b7 request rate %s \u00b7 seed %s" % (
                spec.get("num_prompts"), spec.get("max_concurrency"), spec.get("dataset_name"),
                spec.get("random_input_len"), spec.get("random_output_len"),
                spec.get("random_range_ratio"), spec.get("request_rate"), spec.get("seed")))


def tier_spec(report, tier_name):
    """The spec of the tier as the first host that ran it recorded it, else None."""
    for entry in report["hosts"]:
        tier = entry["tiers"].get(tier_name)
        if tier and tier.get("spec"):
            return tier["spec"]
    return None


def _checks(tier):
    return (tier.get("comparison") or {}).get("checks") or {}


# A tier table: each host's figures, the fleet's median/min/max and the baseline.
TIER_COLUMNS = (
    R.Column("host", fmt=R.TEXT, css="host"),
    R.Column("status", fmt=R.STATUS),
    R.Column("output_throughput", "output tok/s", numeric=True),
    R.Column("output_throughput_check", "vs baseline", R.DELTA, numeric=True),
    R.Column("median_tpot_ms", "median TPOT ms", numeric=True),
    R.Column("median_tpot_ms_check", "vs baseline", R.DELTA, numeric=True),
    R.Column("mean_ttft_ms", "mean TTFT ms", numeric=True),
    R.Column("p99_ttft_ms", "P99 TTFT ms", numeric=True),
    R.Column("p99_itl_ms", "P99 ITL ms", numeric=True),
    R.Column("request_throughput", "req/s", numeric=True),
    R.Column("failed", "failed", R.OF_TOTAL, numeric=True),
    R.Column("duration_s", "duration s", numeric=True),
    R.Column("flags", "flags", R.FLAGS, css="flags"),
)
TIER_METRICS = ("output_throughput", "median_tpot_ms", "mean_ttft_ms", "p99_ttft_ms",
                "p99_itl_ms", "request_throughput", "failed", "duration_s")


def _flags(tier):
    flags = []
    if tier["outlier"]:
        flags.append(("outlier", "outlier"))
    if (tier.get("comparison") or {}).get("status") == "not_comparable":
        flags.append(("nc", "not comparable"))
    if tier["error"]:
        flags.append(("error", tier["error"]))
    return flags


def tier_rows(report, tier_name):
    rows = []
    for entry in report["hosts"]:
        tier = entry["tiers"].get(tier_name)
        if tier is None:
            continue
        metrics, checks = tier["metrics"], _checks(tier)
        row = {k: metrics.get(k) for k in TIER_METRICS}
        if _is_number(metrics.get("failed")):
            row["failed"] = (metrics["failed"], metrics.get("num_prompts"))
        row.update(host=entry["host"], status=tier["status"], flags=_flags(tier),
                   output_throughput_check=checks.get("output_throughput"),
                   median_tpot_ms_check=checks.get("median_tpot_ms"))
        rows.append(row)
    stats = report["fleet"].get(tier_name) or {}
    for label in ("median", "min", "max"):
        rows.append(dict({k: (stats.get(k) or {}).get(label) for k in TIER_METRICS},
                         _label="fleet " + label))
    base_metrics = ((report.get("baseline") or {}).get("metrics") or {}).get(tier_name)
    if base_metrics:
        rows.append(dict({k: base_metrics.get(k) for k in TIER_METRICS}, _label="baseline"))
    return rows


HOST_COLUMNS = (
    R.Column("host", fmt=R.TEXT, css="host"),
    R.Column("status", fmt=R.STATUS),
    R.Column("image_digest", "image digest", R.DIGEST, css="mono"),
    R.Column("sglang_version", "sglang", R.TEXT),
    R.Column("detail", "stage / error", R.PLAIN, css="mono"),
)


def host_rows(report):
    rows = []
    for entry in report["hosts"]:
        detail = ""
        if entry["status"] in ("stage_failed", "missing"):
            detail = "%s %s: %s" % (entry["stage"] or "benchmark",
                                    entry["stage_status"] or entry["status"], entry["error"])
        rows.append({"host": entry["host"], "status": entry["status"],
                     "image_digest": (entry["image_digest"], entry["digest_mismatch"]),
                     "sglang_version": entry["sglang_version"], "detail": detail})
    return rows


# Startup: each host's phases in seconds (image and weights: how long their stage took on the
# host; the server's: from its launch), then the fleet's median and maximum.
STARTUP_COLUMNS = (
    R.Column("host", fmt=R.TEXT, css="host"),
    R.Column("server", "server", R.TEXT),
    R.Column("image", "image", R.TEXT),
    R.Column("image_ready", "image ready s", numeric=True),
    R.Column("weights_ready", "weights ready s", numeric=True),
    R.Column("process_started", "process started s", numeric=True),
    R.Column("port_open", "port open s", numeric=True),
    R.Column("ready", "ready s", numeric=True),
    R.Column("launched_at", "launched at (UTC)", R.TEXT, css="mono"),
)
STARTUP_NOTE = ("Image ready and weights ready are how long the container and model stages took "
                "to have the image and the weights on the host; process started, port open and "
                "ready count from the server's launch. A host whose server was already running "
                "with the same spec is \"unchanged\" and has no startup time; \"-\" is not measured.")


def startup_rows(report):
    rows = []
    for entry in report["hosts"]:
        record = entry.get("startup")
        if not record:
            continue
        row = {name: seconds_of(record, name) for name in PHASES}
        row.update(host=entry["host"], server=record.get("server"), image=record.get("image"),
                   launched_at=record.get("launched_at") or (
                       "running since %s" % record["running_since"] if record.get("running_since") else None))
        rows.append(row)
    stats = (report.get("startup") or {}).get("fleet") or {}
    if len(rows) > 1:
        for label in ("median", "max"):
            rows.append(dict({name: (stats.get(name) or {}).get(label) for name in PHASES},
                             _label="fleet " + label))
    return rows


# Cold start: how the image and the model reached each host, then what crossed the upstream link.
MIB = R.Format(text=lambda v: "%.1f" % (v / 1048576.0) if _is_number(v) else "-")
COLD_START_COLUMNS = (
    R.Column("host", fmt=R.TEXT, css="host"),
    R.Column("image", "image", R.TEXT),
    R.Column("image_bytes", "image MiB", MIB, numeric=True),
    R.Column("image_seconds", "image s", numeric=True),
    R.Column("model", "model", R.TEXT),
    R.Column("model_bytes", "model MiB", MIB, numeric=True),
    R.Column("model_seconds", "model s", numeric=True),
)
COLD_START_NOTE = ("How the image and the model reached each host in this run: held (already there), "
                   "pulled from the registry or staged from the model hub (over the upstream link), "
                   "loaded from an archive or staged from a local copy, or received from the hosts "
                   "named. MiB is what reached the host (a pull counts the image's size on the host; "
                   "the registry sends it compressed, so that is an upper bound); s is how long it "
                   "took there (a received model: the transfer and the verification).")


def arrival_text(arrival):
    """'received from gpu01, gpu02', 'staged from hub', 'pulled', 'held'; '-' for no record."""
    if not arrival:
        return "-"
    how = arrival["how"]
    if arrival.get("sources"):
        return "%s from %s" % (how, ", ".join(arrival["sources"]))
    if how in ("staged", "loaded") and arrival.get("origin"):
        return "%s from %s" % (how, arrival["origin"])
    return how


def upstream_text(summary):
    """'48.0 MiB = 1.00 x one copy (48.0 MiB)' for an artifact's fleet summary."""
    if not summary:
        return "-"
    text = "%s MiB" % MIB.text(summary["upstream_bytes"])
    if summary.get("copies") is not None:
        text += " = %.2f \u00d7 one copy (%s MiB)" % (summary["copies"], MIB.text(summary["copy_bytes"]))
    return text


def cold_start_rows(report):
    rows = []
    for entry in report["hosts"]:
        record = entry.get("cold_start")
        if not record:
            continue
        row = {"host": entry["host"]}
        for artifact in ARTIFACTS:
            arrival = record.get(artifact) or {}
            row.update({artifact: arrival_text(record.get(artifact)), artifact + "_bytes": arrival.get("bytes"),
                        artifact + "_seconds": arrival.get("seconds")})
        rows.append(row)
    fleet = report.get("cold_start") or {}
    if rows:
        upstream = {"_label": "upstream link"}
        for artifact in ARTIFACTS:
            summary = fleet.get(artifact) or {}
            upstream[artifact + "_bytes"] = summary.get("upstream_bytes")
            if summary:
                upstream[artifact] = ("%.2f \u00d7 one copy" % summary["copies"]) if summary.get("copies") is not None \
                    else "-"
        rows.append(upstream)
    return rows


# One row per host and tier (one per host without tiers), every value as measured.
CSV_METRICS = ("completed", "failed", "output_throughput", "median_tpot_ms", "mean_ttft_ms",
               "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "p99_tpot_ms", "median_itl_ms",
               "p99_itl_ms", "request_throughput", "total_throughput", "duration_s",
               "total_input_tokens", "total_output_tokens")
CSV_COLUMNS = tuple(R.Column(key) for key in (
    "run_id", "host", "host_status", "image_digest", "digest_mismatch", "sglang_version", "tier",
    "status", "num_prompts", "max_concurrency", "completed", "failed", "output_throughput",
    "baseline_output_throughput", "output_throughput_delta_pct", "median_tpot_ms",
    "baseline_median_tpot_ms", "median_tpot_ms_delta_pct", "mean_ttft_ms", "median_ttft_ms",
    "p99_ttft_ms", "mean_tpot_ms", "p99_tpot_ms", "median_itl_ms", "p99_itl_ms",
    "request_throughput", "total_throughput", "duration_s", "total_input_tokens",
    "total_output_tokens", "baseline", "outlier", "error", "startup_server", "startup_image",
) + tuple("startup_%s_s" % name for name in PHASES) + tuple(
    "%s_%s" % (artifact, key) for artifact in ARTIFACTS for key in ("arrival", "sources", "bytes", "seconds")))


def csv_rows(report):
    rows = []
    run_id = (report.get("run") or {}).get("run_id")
    for entry in report["hosts"]:
        record = entry.get("startup") or {}
        base = {"run_id": run_id, "host": entry["host"], "host_status": entry["status"],
                "image_digest": entry["image_digest"], "digest_mismatch": entry["digest_mismatch"],
                "sglang_version": entry["sglang_version"], "startup_server": record.get("server"),
                "startup_image": record.get("image")}
        base.update(("startup_%s_s" % name, seconds_of(record, name)) for name in PHASES)
        for artifact in ARTIFACTS:
            arrival = (entry.get("cold_start") or {}).get(artifact) or {}
            base.update({artifact + "_arrival": arrival.get("how"),
                         artifact + "_sources": " ".join(arrival.get("sources") or []) or None,
                         artifact + "_bytes": arrival.get("bytes"), artifact + "_seconds": arrival.get("seconds")})
        if not entry["tiers"]:
            rows.append(dict(base, status=entry["stage_status"] or entry["status"],
                             error=entry["error"]))
            continue
        for tier_name in report["tiers"]:
            tier = entry["tiers"].get(tier_name)
            if tier is None:
                continue
            spec, checks = tier.get("spec") or {}, _checks(tier)
            row = dict(base, tier=tier_name, status=tier["status"],
                       num_prompts=spec.get("num_prompts"),
                       max_concurrency=spec.get("max_concurrency"),
                       baseline=(tier.get("comparison") or {}).get("status"),
                       outlier=tier["outlier"], error=tier["error"])
            row.update((key, tier["metrics"].get(key)) for key in CSV_METRICS)
            for key in ("output_throughput", "median_tpot_ms"):
                if key in checks:
                    row["baseline_" + key] = checks[key]["baseline"]
                    row[key + "_delta_pct"] = checks[key]["delta_pct"]
            rows.append(row)
    return rows


def _chart(report, tier_name, metric, title):
    """A tier's bars for one metric, with the baseline, its allowed limit and the fleet median."""
    tolerances = report["settings"]["tolerances"]
    base = report.get("baseline") or {}
    base_value = (base.get("metrics") or {}).get(tier_name, {}).get(metric)
    tier_base = (base.get("tiers") or {}).get(tier_name, {})
    comparable = tier_base.get("status") in ("compared", "mixed")
    higher = metric in HIGHER_IS_BETTER
    rows, states = [], []
    for entry in report["hosts"]:
        tier = entry["tiers"].get(tier_name)
        if tier is None:
            continue
        value = tier["metrics"].get(metric)
        check = _checks(tier).get(metric) or {}
        state = "ok"
        if check.get("ok") is False:
            state = "violation"
        elif higher and tier.get("outlier"):
            state = "outlier"
        elif tier["status"] == "failed":
            state = "failed"
        if _is_number(value) and state not in states:
            states.append(state)
        notes = []
        if check.get("delta_pct") is not None and check.get("gated"):
            notes.append("%+.1f%%" % check["delta_pct"])
        if higher and tier.get("outlier"):
            notes.append("outlier")
        rows.append((entry["host"], value, state, "(%s)" % ", ".join(notes) if notes else ""))
    lines = []
    if comparable and _is_number(base_value):
        lines.append(("baseline", base_value, "baseline"))
        if metric in tolerances:
            tol = tolerances[metric]
            lines.append(("allowed", base_value * (1 - tol) if higher else base_value * (1 + tol),
                          "allowed"))
    if len([r for r in rows if _is_number(r[1])]) > 1:
        median = ((report["fleet"].get(tier_name) or {}).get(metric) or {}).get("median")
        lines.append(("fleet median", median, "median"))
    caption = ""
    if base and not comparable and _is_number(base_value):
        reasons = tier_base.get("reasons") or []
        caption = "Baseline (%s) not drawn: not comparable%s." % (
            _fmt(base_value), ": " + reasons[0] if reasons else "")
    order = ("ok", "violation", "outlier", "failed")
    return R.chart(title, rows, lines, [s for s in order if s in states], caption)


def _gates(report, names=None):
    tolerances = sorted(report["settings"]["tolerances"].items())
    if names:
        return ", ".join("%s %s%g%%" % (METRIC_NAMES.get(k, k),
                                        "\u2212" if k in HIGHER_IS_BETTER else "+", v * 100)
                         for k, v in tolerances) or "none"
    return ", ".join("%s (%g%%)" % (k, v * 100) for k, v in tolerances) or "nothing"


def document(report):
    """What the Markdown and HTML reports show, as _render blocks."""
    run = report.get("run") or {}
    verdict = report["verdict"]
    word = verdict["status"].upper()
    base = report.get("baseline")
    settings = report["settings"]
    measured = len([e for e in report["hosts"] if e["tiers"]])
    blocks = [
        R.verdict(verdict["status"], word, verdict["summary"],
                  [("Violations", verdict["violations"]), ("Incomplete", verdict["incomplete"])]),
        R.facts([("Run", run.get("run_id")), ("Started", run.get("started")),
                 ("Finished", run.get("finished")), ("Model", run.get("model")),
                 ("Image", run.get("image")), ("Tensor parallel", run.get("tp_size")),
                 ("Collection", run.get("collection_version")),
                 ("Baseline", "%s (%s)" % (base["path"], base["status"]) if base else "none")]),
        R.cards([("hosts measured", "%d / %d" % (measured, len(report["hosts"]))),
                 ("tiers", ", ".join(report["tiers"]) or "-"),
                 ("violations", str(len(report["violations"]))),
                 ("outliers", str(len(report["outliers"]))),
                 ("baseline", base["status"].replace("_", " ") if base else "none"),
                 ("gates", _gates(report, names=True))]),
        R.items(list(run.get("notes") or []) + report["notes"], heading="Notes"),
    ]
    for tier_name in report["tiers"]:
        spec = tier_spec(report, tier_name)
        blocks.append(R.panel("Tier " + tier_name, (
            [R.paragraph(workload_line(spec), role="lead")] if spec else []) + [
            _chart(report, tier_name, "output_throughput",
                   "Output throughput (tok/s), higher is better"),
            _chart(report, tier_name, "median_tpot_ms", "Median TPOT (ms), lower is better"),
            R.table(TIER_COLUMNS, tier_rows(report, tier_name))]))
    startup = startup_rows(report)
    if startup:
        blocks.append(R.panel("Startup", [R.paragraph(STARTUP_NOTE, role="lead"),
                                          R.table(STARTUP_COLUMNS, startup)]))
    cold = cold_start_rows(report)
    if cold:
        fleet = report.get("cold_start") or {}
        blocks.append(R.panel("Cold start", [
            R.paragraph(COLD_START_NOTE, role="lead"),
            R.items(["%s over the upstream link: %s" % (artifact, upstream_text(fleet.get(artifact)))
                     for artifact in ARTIFACTS if fleet.get(artifact)]),
            R.table(COLD_START_COLUMNS, cold)]))
    blocks.append(R.panel("Hosts", [R.table(HOST_COLUMNS, host_rows(report))]))
    version = run.get("collection_version")
    base_text = ""
    if base:
        base_text = " Baseline: %s%s." % (base.get("path"), " (%s)" % base["description"]
                                          if base.get("description") else "")
    blocks.append(R.paragraph(
        "Generated by sglang_rocm.fleet%s from the real sglang.bench_serving results. Gated: %s; "
        "P99 figures are reported, never gated. Outliers: output throughput below the fleet "
        "median by more than %g%%, judged with at least %d hosts.%s" % (
            " " + version if version else "", _gates(report),
            settings["outlier_tolerance"] * 100, settings["outlier_min_hosts"], base_text),
        role="footer"))
    return {"title": "SGLang fleet benchmark report: run %s" % (run.get("run_id") or "?"),
            "page_title": "Fleet benchmark %s: %s" % (run.get("run_id") or "?", word),
            "blocks": blocks}


def render(report):
    """Every report file's text, by kind (json, csv, markdown, html)."""
    doc = document(report)
    return {"json": R.render_json(report),
            "csv": R.render_csv(R.Table(CSV_COLUMNS, csv_rows(report))),
            "markdown": R.render_markdown(doc),
            "html": R.render_html(doc)}


def report_paths(output_dir):
    return {kind: os.path.join(output_dir, name) for kind, name in REPORT_FILES}


def write_report(report, output_dir):
    """Write the four report files, each atomically; returns their paths by kind."""
    paths, texts = report_paths(output_dir), render(report)
    R.write_files(output_dir, {paths[kind]: texts[kind] for kind in paths})
    return paths


def write_baseline(path, baseline):
    R.write_files(os.path.dirname(path) or ".", {path: json_text(baseline)})
