# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""Fleet report logic behind the bench_report module (stdlib only, no AnsibleModule).

Takes the per-tier records sglang_bench returned on every host, the hosts that failed an
earlier stage and each host's image digest; computes fleet statistics, baseline comparisons
(gated on output throughput and median TPOT, P99s report-only, workload comparability by token
totals), outlier hosts and a verdict; renders JSON, CSV, Markdown and HTML.
"""

from __future__ import annotations

import collections
import csv
import io
import json
import math
import os
import statistics

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._report_html import render_html

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


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _pct(observed, baseline):
    if not (_is_number(observed) and _is_number(baseline)) or baseline == 0:
        return None
    return round((observed - baseline) / baseline * 100.0, 2)


def _fmt(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "%.*f" % (digits, value)
    return str(value)


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


def parse_baseline(text, path="<baseline>"):
    """Parse and check a baseline document; errors name the file and the line."""
    try:
        data = json.loads(text)
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


def build_report(hosts, records, host_status=None, image_digests=None, baseline=None,
                 baseline_path=None, tolerances=None, token_tolerance=0.01,
                 outlier_tolerance=0.15, outlier_min_hosts=3, run=None):
    """The whole fleet report as one JSON-able dict (schema_version 1)."""
    tolerances = check_tolerances(tolerances)
    host_status = host_status or {}
    image_digests = image_digests or {}
    names = list(hosts or [])
    for extra in list(records or {}) + list(host_status):
        if extra not in names:
            names.append(extra)

    tiers, entries = [], []
    for name in names:
        recs = _records_of((records or {}).get(name))
        stage = host_status.get(name) or {}
        entry = {"host": name, "status": "ok", "stage": None, "stage_status": None, "error": None,
                 "image_digest": image_digests.get(name) or None, "digest_mismatch": False,
                 "sglang_version": None, "tiers": {}}
        for rec in recs:
            if rec["tier"] not in tiers:
                tiers.append(rec["tier"])
            tier = {k: rec.get(k) for k in RECORD_KEYS}
            tier["metrics"] = dict(rec.get("metrics") or {})
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

    violations, incomplete, outliers, notes = [], [], [], []
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


# ---------------------------------------------------------------------------- renderers

CSV_COLUMNS = (
    "run_id", "host", "host_status", "image_digest", "digest_mismatch", "sglang_version", "tier",
    "status", "num_prompts", "max_concurrency", "completed", "failed", "output_throughput",
    "baseline_output_throughput", "output_throughput_delta_pct", "median_tpot_ms",
    "baseline_median_tpot_ms", "median_tpot_ms_delta_pct", "mean_ttft_ms", "median_ttft_ms",
    "p99_ttft_ms", "mean_tpot_ms", "p99_tpot_ms", "median_itl_ms", "p99_itl_ms",
    "request_throughput", "total_throughput", "duration_s", "total_input_tokens",
    "total_output_tokens", "baseline", "outlier", "error",
)


def render_csv(report):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    run_id = (report.get("run") or {}).get("run_id")
    for entry in report["hosts"]:
        base = {"run_id": run_id, "host": entry["host"], "host_status": entry["status"],
                "image_digest": entry["image_digest"], "digest_mismatch": entry["digest_mismatch"],
                "sglang_version": entry["sglang_version"]}
        if not entry["tiers"]:
            writer.writerow(dict(base, status=entry["stage_status"] or entry["status"],
                                 error=entry["error"]))
            continue
        for tier_name in report["tiers"]:
            tier = entry["tiers"].get(tier_name)
            if tier is None:
                continue
            m, spec = tier["metrics"], tier.get("spec") or {}
            checks = (tier.get("comparison") or {}).get("checks", {})
            row = dict(base, tier=tier_name, status=tier["status"],
                       num_prompts=spec.get("num_prompts"),
                       max_concurrency=spec.get("max_concurrency"),
                       baseline=(tier.get("comparison") or {}).get("status"),
                       outlier=tier["outlier"], error=tier["error"])
            for key in ("completed", "failed", "output_throughput", "median_tpot_ms",
                        "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms",
                        "p99_tpot_ms", "median_itl_ms", "p99_itl_ms", "request_throughput",
                        "total_throughput", "duration_s", "total_input_tokens",
                        "total_output_tokens"):
                row[key] = m.get(key)
            for key, col in (("output_throughput", "output_throughput"),
                             ("median_tpot_ms", "median_tpot_ms")):
                if key in checks:
                    row["baseline_" + col] = checks[key]["baseline"]
                    row[col + "_delta_pct"] = checks[key]["delta_pct"]
            writer.writerow(row)
    return out.getvalue()


def _md_escape(value):
    return _fmt(value).replace("|", "\\|").replace("\n", " ")


def tier_workload(report, tier_name):
    for entry in report["hosts"]:
        tier = entry["tiers"].get(tier_name)
        if tier and tier.get("spec"):
            spec = tier["spec"]
            return "%s prompts, concurrency %s, %s %s/%s, range ratio %s" % (
                spec.get("num_prompts"), spec.get("max_concurrency"), spec.get("dataset_name"),
                spec.get("random_input_len"), spec.get("random_output_len"),
                spec.get("random_range_ratio"))
    return ""


def render_markdown(report):
    run = report.get("run") or {}
    verdict = report["verdict"]
    lines = ["# SGLang fleet benchmark report: run %s" % (run.get("run_id") or "?"), "",
             "**Verdict: %s.** %s" % (verdict["status"].upper(), verdict["summary"]), ""]
    lines += ["| | |", "|---|---|"]
    for label, key in (("Run", "run_id"), ("Started", "started"), ("Finished", "finished"),
                       ("Model", "model"), ("Image", "image"), ("Tensor parallel", "tp_size"),
                       ("Collection", "collection_version")):
        if run.get(key) not in (None, ""):
            lines.append("| %s | %s |" % (label, _md_escape(run[key])))
    base = report.get("baseline")
    base_text = "%s (%s)" % (base["path"], base["status"]) if base else "none"
    lines.append("| Baseline | %s |" % _md_escape(base_text))
    lines.append("")
    if report["violations"]:
        lines += ["## Violations", ""] + ["- %s" % v["message"] for v in report["violations"]] + [""]
    if verdict["incomplete"]:
        lines += ["## Incomplete", ""] + ["- %s" % i for i in verdict["incomplete"]] + [""]
    notes = list(run.get("notes") or []) + report["notes"]
    if notes:
        lines += ["## Notes", ""] + ["- %s" % n for n in notes] + [""]
    for tier_name in report["tiers"]:
        lines += ["## Tier %s" % tier_name, "", "_%s_" % tier_workload(report, tier_name), "",
                  "| host | status | output tok/s | vs baseline | median TPOT ms | vs baseline | "
                  "mean TTFT ms | P99 TTFT ms | P99 ITL ms | failed | flags |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for entry in report["hosts"]:
            tier = entry["tiers"].get(tier_name)
            if tier is None:
                continue
            m = tier["metrics"]
            checks = (tier.get("comparison") or {}).get("checks", {})

            def delta(metric, checks=checks):
                c = checks.get(metric)
                if not c or c["delta_pct"] is None:
                    return "-"
                return "%+.1f%%%s" % (c["delta_pct"], " ✗" if c["ok"] is False else "")
            flags = []
            if tier["outlier"]:
                flags.append("outlier")
            if (tier.get("comparison") or {}).get("status") == "not_comparable":
                flags.append("not comparable")
            if tier["error"]:
                flags.append(tier["error"])
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                _md_escape(entry["host"]), tier["status"], _fmt(m.get("output_throughput")),
                delta("output_throughput"), _fmt(m.get("median_tpot_ms")),
                delta("median_tpot_ms"), _fmt(m.get("mean_ttft_ms")),
                _fmt(m.get("p99_ttft_ms")), _fmt(m.get("p99_itl_ms")), _fmt(m.get("failed")),
                _md_escape("; ".join(flags)) if flags else ""))
        stats = report["fleet"].get(tier_name, {})
        for label in ("median", "min", "max"):
            lines.append("| _fleet %s_ | | %s | | %s | | %s | %s | %s | %s | |" % (
                label, *[_fmt((stats.get(k) or {}).get(label)) for k in (
                    "output_throughput", "median_tpot_ms", "mean_ttft_ms", "p99_ttft_ms",
                    "p99_itl_ms", "failed")]))
        if base and tier_name in base["metrics"]:
            bm = base["metrics"][tier_name]
            lines.append("| _baseline_ | | %s | | %s | | %s | %s | %s | | |" % tuple(
                _fmt(bm.get(k)) for k in ("output_throughput", "median_tpot_ms", "mean_ttft_ms",
                                          "p99_ttft_ms", "p99_itl_ms")))
        lines.append("")
    lines += ["## Hosts", "", "| host | status | image digest | sglang | stage / error |",
              "|---|---|---|---|---|"]
    for entry in report["hosts"]:
        digest = entry["image_digest"] or "-"
        if entry["digest_mismatch"]:
            digest += " (differs from fleet majority)"
        detail = ""
        if entry["status"] in ("stage_failed", "missing"):
            detail = "%s %s: %s" % (entry["stage"] or "benchmark", entry["stage_status"] or
                                    entry["status"], entry["error"])
        lines.append("| %s | %s | %s | %s | %s |" % (
            _md_escape(entry["host"]), entry["status"], _md_escape(digest),
            _md_escape(entry["sglang_version"]), _md_escape(detail)))
    lines += ["", "P99 figures are reported, never gated. Gated: %s." % (
        ", ".join("%s (%g%%)" % (k, v * 100)
                  for k, v in sorted(report["settings"]["tolerances"].items())) or "nothing"), ""]
    return "\n".join(lines)


def write_report(report, output_dir, write=None):
    """Write the four report files; returns their paths."""
    def default_write(path, text):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    write = write or default_write
    os.makedirs(output_dir, exist_ok=True)
    paths = {
        "json": os.path.join(output_dir, "fleet_report.json"),
        "csv": os.path.join(output_dir, "fleet_report.csv"),
        "markdown": os.path.join(output_dir, "fleet_report.md"),
        "html": os.path.join(output_dir, "fleet_report.html"),
    }
    write(paths["json"], json.dumps(report, indent=2, sort_keys=False, allow_nan=False) + "\n")
    write(paths["csv"], render_csv(report))
    write(paths["markdown"], render_markdown(report))
    write(paths["html"], render_html(report))
    return paths
