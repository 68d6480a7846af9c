# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""Self-contained HTML rendering of a fleet report: inline CSS and SVG, no script, no network."""

from __future__ import annotations

import html
import math

COLORS = {
    "ok": "#2563eb",
    "violation": "#dc2626",
    "outlier": "#f59e0b",
    "failed": "#9333ea",
    "baseline": "#111827",
    "allowed": "#dc2626",
    "median": "#6b7280",
}
STATE_LABELS = {
    "ok": "within limits",
    "violation": "outside the baseline tolerance",
    "outlier": "outlier vs fleet median",
    "failed": "some requests failed",
}
VERDICT_STYLE = {
    "pass": ("#065f46", "#d1fae5", "#10b981", "PASS"),
    "regression": ("#7f1d1d", "#fee2e2", "#ef4444", "REGRESSION"),
    "incomplete": ("#78350f", "#fef3c7", "#f59e0b", "INCOMPLETE"),
}

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f3f4f6; color: #111827;
  font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 24px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 18px; margin: 32px 0 10px; }
h3 { font-size: 14px; margin: 0 0 6px; color: #374151; font-weight: 600; }
.sub { color: #4b5563; margin: 0 0 18px; }
.sub span + span::before { content: " \\00b7  "; color: #9ca3af; }
.verdict { border-radius: 10px; padding: 16px 20px; border-left: 8px solid; margin: 0 0 18px; }
.verdict .word { font-size: 26px; font-weight: 800; letter-spacing: 0.04em; }
.verdict .summary { font-size: 15px; margin-top: 2px; }
.verdict ul { margin: 10px 0 0; padding-left: 20px; }
.verdict li { margin: 2px 0; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12.5px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px;
  margin-bottom: 8px; }
.card { background: #fff; border: 1px solid #e5e7eb; border-radius: 10px; padding: 12px 14px; }
.card .k { color: #6b7280; font-size: 12px; text-transform: uppercase; letter-spacing: 0.05em; }
.card .v { font-size: 17px; font-weight: 650; margin-top: 2px; }
.panel { background: #fff; border: 1px solid #e5e7eb; border-radius: 12px; padding: 16px 18px;
  margin-bottom: 16px; }
.panel .workload { color: #4b5563; margin: -4px 0 12px; }
.charts { display: flex; flex-wrap: wrap; gap: 18px; margin-bottom: 12px; }
.chart { flex: 1 1 520px; min-width: 0; }
.chart svg { width: 100%; height: auto; display: block; }
.caption { color: #4b5563; font-size: 12px; margin-top: 4px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; color: #4b5563; font-size: 12px;
  margin-top: 4px; }
.legend span { display: inline-flex; align-items: center; gap: 5px; white-space: nowrap; }
.legend i { width: 12px; height: 12px; border-radius: 3px; display: inline-block; }
.verdict .sect { margin-top: 10px; font-weight: 600; font-size: 13px; }
.scroll { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; font-size: 12.5px; }
th, td { padding: 5px 7px; border-bottom: 1px solid #e5e7eb; text-align: left;
  vertical-align: top; }
td.flags { max-width: 320px; }
tr.agg td:first-child { white-space: nowrap; }
th { background: #f9fafb; color: #374151; font-weight: 600; }
td.host { white-space: nowrap; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.agg td { background: #f9fafb; color: #374151; font-style: italic; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px;
  font-weight: 600; white-space: nowrap; }
.b-ok { background: #dbeafe; color: #1e40af; }
.b-failed, .b-degraded { background: #f3e8ff; color: #6b21a8; }
.b-error, .b-stage_failed, .b-missing { background: #fee2e2; color: #991b1b; }
.b-outlier { background: #fef3c7; color: #92400e; }
.b-nc { background: #e5e7eb; color: #374151; }
.bad { color: #b91c1c; font-weight: 600; }
.good { color: #047857; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
ul.notes { margin: 6px 0 0; padding-left: 20px; color: #374151; }
footer { color: #6b7280; font-size: 12px; margin-top: 28px; }
"""


def _e(value):
    return html.escape("" if value is None else str(value), quote=True)


def _num(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return "{:,}".format(value)
    if isinstance(value, float):
        return "{:,.{d}f}".format(value, d=digits)
    return str(value)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def nice_ticks(top, count=5):
    """Round tick values from 0 to at least top (1/2/5 x 10^k steps)."""
    if not top or top <= 0:
        return [0, 1]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    ticks, value = [], 0.0
    while value < top + step * 0.5:
        ticks.append(value)
        value += step
    if ticks[-1] < top:
        ticks.append(value)
    return ticks


def bar_chart(title, rows, lines=(), digits=2):
    """Horizontal bar chart. rows: (label, value|None, state, note); lines: (label, value, kind)."""
    lines = [(label, value, kind) for label, value, kind in lines if _is_number(value)]
    values = [v for _l, v, _s, _n in rows if _is_number(v)] + [v for _l, v, _k in lines]
    ticks = nice_ticks(max(values) if values else 1)
    top = ticks[-1] or 1
    width, left, right, bar_h, gap, head = 560, 130, 130, 22, 10, 12
    plot_w = width - left - right
    height = head + len(rows) * (bar_h + gap) + 34

    def x(value):
        return left + plot_w * (value / top)

    out = ['<svg viewBox="0 0 %d %d" xmlns="http://www.w3.org/2000/svg" role="img" '
           'aria-label="%s" font-family="-apple-system, Segoe UI, Roboto, Arial, sans-serif">'
           % (width, height, _e(title))]
    axis_y = head + len(rows) * (bar_h + gap)
    for tick in ticks:
        tx = x(tick)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e5e7eb"/>'
                   % (tx, head - 4, tx, axis_y))
        out.append('<text x="%.1f" y="%d" font-size="11" fill="#6b7280" text-anchor="middle">%s'
                   '</text>' % (tx, axis_y + 14, "{:,.0f}".format(tick) if top >= 10
                                else "{:.1f}".format(tick)))
    for index, (label, value, state, note) in enumerate(rows):
        y = head + index * (bar_h + gap)
        short = label if len(label) <= 18 else label[:17] + "\u2026"
        out.append('<text x="%d" y="%.1f" font-size="12.5" fill="#111827" text-anchor="end">'
                   '<title>%s</title>%s</text>' % (left - 8, y + bar_h * 0.68, _e(label), _e(short)))
        if _is_number(value):
            bw = max(1.5, x(value) - left)
            out.append('<rect x="%d" y="%d" width="%.1f" height="%d" rx="3" fill="%s">'
                       '<title>%s: %s (%s)</title></rect>'
                       % (left, y, bw, bar_h, COLORS[state], _e(label), _e(_num(value, digits)),
                          _e(STATE_LABELS[state])))
            out.append('<text x="%.1f" y="%.1f" font-size="12" fill="#111827">%s'
                       '<tspan fill="%s" font-size="11">%s</tspan></text>'
                       % (left + bw + 6, y + bar_h * 0.68, _e(_num(value, digits)),
                          "#b91c1c" if state in ("violation", "outlier") else "#6b7280",
                          _e(" " + note if note else "")))
        else:
            out.append('<text x="%d" y="%.1f" font-size="12" fill="#9ca3af" font-style="italic">'
                       'no result</text>' % (left + 6, y + bar_h * 0.68))
    styles = {"baseline": 'stroke-dasharray="6 4" stroke-width="2"',
              "allowed": 'stroke-dasharray="2 3" stroke-width="2"',
              "median": 'stroke-dasharray="1 0" stroke-width="1.5" stroke-opacity="0.8"'}
    for label, value, kind in lines:
        lx = x(value)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" %s>'
                   '<title>%s: %s</title></line>'
                   % (lx, head - 8, lx, axis_y, COLORS[kind], styles[kind], _e(label),
                      _e(_num(value, digits))))
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#9ca3af"/>'
               % (left, head - 8, left, axis_y))
    out.append("</svg>")
    return "".join(out)


def legend(states, lines):
    items = []
    for state in states:
        items.append('<span><i style="background:%s"></i>%s</span>'
                     % (COLORS[state], _e(STATE_LABELS[state])))
    dash = {"baseline": "6 4", "allowed": "2 3", "median": "1 0"}
    for label, value, kind in lines:
        if not _is_number(value):
            continue
        items.append('<span><svg width="22" height="10"><line x1="0" y1="5" x2="22" y2="5" stroke="%s" '
                     'stroke-width="2" stroke-dasharray="%s"/></svg>%s %s</span>'
                     % (COLORS[kind], dash[kind], _e(label), _e(_num(value))))
    return '<div class="legend">%s</div>' % "".join(items)


def _tier_chart(report, tier_name, metric, title, digits=2):
    tolerances = report["settings"]["tolerances"]
    base = report.get("baseline") or {}
    base_value = (base.get("metrics") or {}).get(tier_name, {}).get(metric)
    tier_base = (base.get("tiers") or {}).get(tier_name, {})
    comparable = tier_base.get("status") in ("compared", "mixed")
    higher = metric == "output_throughput"
    rows, used = [], []
    for entry in report["hosts"]:
        tier = entry["tiers"].get(tier_name)
        if tier is None:
            continue
        value = tier["metrics"].get(metric)
        check = ((tier.get("comparison") or {}).get("checks") or {}).get(metric) or {}
        state = "ok"
        if check.get("ok") is False:
            state = "violation"
        elif higher and tier.get("outlier"):
            state = "outlier"
        elif tier["status"] == "failed":
            state = "failed"
        if _is_number(value) and state not in used:
            used.append(state)
        notes = []
        if check.get("delta_pct") is not None and check.get("gated"):
            notes.append("%+.1f%%" % check["delta_pct"])
        if higher and tier.get("outlier"):
            notes.append("outlier")
        note = "(%s)" % ", ".join(notes) if notes else ""
        rows.append((entry["host"], value, state, note))
    lines = []
    if comparable and _is_number(base_value):
        lines.append(("baseline", base_value, "baseline"))
        if metric in tolerances:
            tol = tolerances[metric]
            lines.append(("allowed", base_value * (1 - tol) if higher else base_value * (1 + tol),
                          "allowed"))
    median = ((report["fleet"].get(tier_name) or {}).get(metric) or {}).get("median")
    if len([r for r in rows if _is_number(r[1])]) > 1:
        lines.append(("fleet median", median, "median"))
    caption = ""
    if base and not comparable and _is_number(base_value):
        reasons = tier_base.get("reasons") or []
        caption = ('<div class="caption">Baseline (%s) not drawn: not comparable%s.</div>'
                   % (_e(_num(base_value, digits)), _e(": " + reasons[0]) if reasons else ""))
    return ('<div class="chart"><h3>%s</h3>%s%s%s</div>'
            % (_e(title), bar_chart(title, rows, lines, digits),
               legend([s for s in ("ok", "violation", "outlier", "failed") if s in used], lines),
               caption))


METRIC_NAMES = {
    "output_throughput": "output tok/s", "total_throughput": "total tok/s",
    "request_throughput": "req/s", "input_throughput": "input tok/s",
    "median_tpot_ms": "median TPOT", "mean_tpot_ms": "mean TPOT",
    "median_ttft_ms": "median TTFT", "mean_ttft_ms": "mean TTFT",
    "median_itl_ms": "median ITL", "mean_itl_ms": "mean ITL",
    "median_e2e_latency_ms": "median E2E", "mean_e2e_latency_ms": "mean E2E",
}


def _gate_text(metric, tolerance):
    sign = "\u2212" if "throughput" in metric else "+"
    return "%s %s%g%%" % (METRIC_NAMES.get(metric, metric), sign, tolerance * 100)


def _badge(status, text=None):
    return '<span class="badge b-%s">%s</span>' % (_e(status), _e(text or status.replace("_", " ")))


def _delta_cell(check):
    if not check or check.get("delta_pct") is None:
        return '<td class="n">-</td>'
    cls = "bad" if check.get("ok") is False else ("good" if check.get("ok") else "")
    return '<td class="n %s">%+.1f%%</td>' % (cls, check["delta_pct"])


# Numeric columns of a tier table: (header, metric, baseline check shown next to it).
TABLE_COLUMNS = (
    ("output tok/s", "output_throughput", True),
    ("median TPOT ms", "median_tpot_ms", True),
    ("mean TTFT ms", "mean_ttft_ms", False),
    ("P99 TTFT ms", "p99_ttft_ms", False),
    ("P99 ITL ms", "p99_itl_ms", False),
    ("req/s", "request_throughput", False),
    ("failed", "failed", False),
    ("duration s", "duration_s", False),
)


def _tier_table(report, tier_name):
    head = ["<th>host</th><th>status</th>"]
    for header, _metric, with_delta in TABLE_COLUMNS:
        head.append("<th class='n'>%s</th>" % header)
        if with_delta:
            head.append("<th class='n'>vs base</th>")
    head.append("<th>flags</th>")
    body = []
    for entry in report["hosts"]:
        tier = entry["tiers"].get(tier_name)
        if tier is None:
            continue
        m = tier["metrics"]
        checks = (tier.get("comparison") or {}).get("checks") or {}
        cells = ["<td class='host'>%s</td><td>%s</td>"
                 % (_e(entry["host"]), _badge(tier["status"]))]
        for _header, metric, with_delta in TABLE_COLUMNS:
            value = m.get(metric)
            bad = metric == "failed" and _is_number(value) and value > 0
            text = _num(value)
            if metric == "failed" and _is_number(value):
                text = "%s / %s" % (_num(value), _num(m.get("num_prompts")))
            cells.append("<td class='n%s'>%s</td>" % (" bad" if bad else "", text))
            if with_delta:
                cells.append(_delta_cell(checks.get(metric)))
        flags = []
        if tier.get("outlier"):
            flags.append(_badge("outlier"))
        if (tier.get("comparison") or {}).get("status") == "not_comparable":
            flags.append(_badge("nc", "not comparable"))
        if tier.get("error"):
            flags.append('<span class="mono">%s</span>' % _e(tier["error"][:300]))
        cells.append("<td class='flags'>%s</td>" % " ".join(flags))
        body.append("<tr>%s</tr>" % "".join(cells))

    def aggregate_row(label, values):
        cells = ["<td>%s</td><td></td>" % _e(label)]
        for _header, metric, with_delta in TABLE_COLUMNS:
            cells.append("<td class='n'>%s</td>" % _num(values.get(metric)))
            if with_delta:
                cells.append("<td></td>")
        cells.append("<td></td>")
        return "<tr class='agg'>%s</tr>" % "".join(cells)

    stats = report["fleet"].get(tier_name) or {}
    for label in ("median", "min", "max"):
        body.append(aggregate_row("fleet " + label,
                                  {k: v.get(label) for k, v in stats.items()}))
    bm = ((report.get("baseline") or {}).get("metrics") or {}).get(tier_name)
    if bm:
        body.append(aggregate_row("baseline", bm))
    return ('<div class="scroll"><table><tr>%s</tr>%s</table></div>'
            % ("".join(head), "".join(body)))


def _workload(report, tier_name):
    for entry in report["hosts"]:
        tier = entry["tiers"].get(tier_name)
        if tier and tier.get("spec"):
            s = tier["spec"]
            return ("%s prompts \u00b7 max concurrency %s \u00b7 %s %s in / %s out \u00b7 range ratio "
                    "%s \u00b7 request rate %s \u00b7 seed %s" % (
                        s.get("num_prompts"), s.get("max_concurrency"), s.get("dataset_name"),
                        s.get("random_input_len"), s.get("random_output_len"),
                        s.get("random_range_ratio"), s.get("request_rate"), s.get("seed")))
    return ""


def render_html(report):
    run = report.get("run") or {}
    verdict = report["verdict"]
    fg, bg, border, word = VERDICT_STYLE.get(verdict["status"], VERDICT_STYLE["incomplete"])
    parts = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
             '<meta name="viewport" content="width=device-width, initial-scale=1">'
             '<title>Fleet benchmark %s: %s</title><style>%s</style></head><body><main>'
             % (_e(run.get("run_id")), _e(word), CSS)]
    parts.append("<h1>SGLang fleet benchmark</h1>")
    sub = [("run", run.get("run_id")), ("model", run.get("model")), ("image", run.get("image")),
           ("TP", run.get("tp_size")), ("started", run.get("started")),
           ("finished", run.get("finished"))]
    parts.append('<p class="sub">%s</p>' % "".join(
        "<span>%s <b>%s</b></span>" % (_e(k), _e(v)) for k, v in sub if v not in (None, "")))
    summary = verdict["summary"]
    if summary.upper().startswith(word + ":"):
        summary = summary[len(word) + 1:].strip()
    lists = ""
    for heading, items in (("Violations", verdict["violations"]),
                           ("Without results", verdict["incomplete"])):
        if items:
            lists += '<div class="sect">%s</div><ul>%s</ul>' % (
                heading, "".join("<li>%s</li>" % _e(v) for v in items))
    parts.append('<section class="verdict" style="background:%s;color:%s;border-color:%s">'
                 '<div class="word">%s</div><div class="summary">%s</div>%s</section>'
                 % (bg, fg, border, word, _e(summary), lists))

    measured = len([e for e in report["hosts"] if e["tiers"]])
    base = report.get("baseline")
    cards = [
        ("hosts measured", "%d / %d" % (measured, len(report["hosts"]))),
        ("tiers", ", ".join(report["tiers"]) or "-"),
        ("violations", str(len(report["violations"]))),
        ("outliers", str(len(report["outliers"]))),
        ("baseline", base["status"].replace("_", " ") if base else "none"),
        ("gates", ", ".join(_gate_text(k, v) for k, v in
                            sorted(report["settings"]["tolerances"].items())) or "none"),
    ]
    parts.append('<div class="cards">%s</div>' % "".join(
        '<div class="card"><div class="k">%s</div><div class="v">%s</div></div>'
        % (_e(k), _e(v)) for k, v in cards))
    notes = list(run.get("notes") or []) + report["notes"]
    if notes:
        parts.append('<ul class="notes">%s</ul>' % "".join("<li>%s</li>" % _e(n) for n in notes))

    for tier_name in report["tiers"]:
        parts.append('<h2>Tier %s</h2><div class="panel"><div class="workload">%s</div>'
                     '<div class="charts">%s%s</div>%s</div>'
                     % (_e(tier_name), _e(_workload(report, tier_name)),
                        _tier_chart(report, tier_name, "output_throughput",
                                    "Output throughput (tok/s), higher is better"),
                        _tier_chart(report, tier_name, "median_tpot_ms",
                                    "Median TPOT (ms), lower is better"),
                        _tier_table(report, tier_name)))

    rows = []
    for entry in report["hosts"]:
        digest = entry["image_digest"] or "-"
        detail = ""
        if entry["status"] in ("stage_failed", "missing"):
            detail = "%s %s: %s" % (entry["stage"] or "benchmark",
                                    entry["stage_status"] or entry["status"], entry["error"])
        rows.append("<tr><td class='host'>%s</td><td>%s</td><td class='mono' title='%s'>%s%s</td><td>%s</td>"
                    "<td class='mono'>%s</td></tr>"
                    % (_e(entry["host"]), _badge(entry["status"]), _e(digest),
                       _e(digest if len(digest) <= 24 else digest[:19] + "\u2026" + digest[-6:]),
                       " " + _badge("error", "differs from fleet majority")
                       if entry["digest_mismatch"] else "",
                       _e(entry["sglang_version"] or "-"), _e(detail)))
    parts.append('<h2>Hosts</h2><div class="panel"><table><tr><th>host</th><th>status</th>'
                 '<th>image digest</th><th>sglang</th><th>stage / error</th></tr>%s</table></div>'
                 % "".join(rows))
    base_text = ""
    if base:
        base_text = " Baseline: %s%s." % (_e(base.get("path")), _e(
            " (" + base["description"] + ")" if base.get("description") else ""))
    parts.append('<footer>Generated by sglang_rocm.fleet %s from the real sglang.bench_serving '
                 'results. Output throughput and median TPOT are gated against the baseline; '
                 'P99 figures are reported, never gated. Outliers: output throughput below the '
                 'fleet median by more than %g%%, judged with at least %d hosts.%s</footer>'
                 % (_e(run.get("collection_version") or ""),
                    report["settings"]["outlier_tolerance"] * 100,
                    report["settings"]["outlier_min_hosts"], base_text))
    parts.append("</main></body></html>\n")
    return "".join(parts)
