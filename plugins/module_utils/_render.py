# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""The one renderer of the fleet reports (controller only; stdlib only).

A report module (_report_bench, _report_preflight) builds a plain model of the fleet and a
document describing what to show: a list of blocks (facts, verdict, lists, tables, charts,
panels) made of plain values. This module turns that document into Markdown and a
self-contained HTML page, a table into CSV, and the model into JSON, and writes the files
atomically. How a field's value looks is said once, by the formatter of its column; Markdown,
HTML and CSV all use it.

Charts and cards are visual summaries of numbers that the tables and lists already hold, so the
Markdown leaves them out.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _files
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._files import json_safe

# The one writer of result files (the host-side modules use it too, from _files).
write_atomic = _files.write_atomic
write_files = _files.write_files


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------------------- formatters

def number_text(value, digits=2):
    """A value as people read it: '-' for nothing, yes/no, integers as is, floats to `digits`."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "%.*f" % (digits, value)
    return str(value)


def _raw(value):
    return value


class Format:
    """How one field is shown: ``text`` for Markdown and HTML, ``csv`` for the CSV (the machine
    value, full precision), optional ``html`` markup built from the text, and ``state`` (a CSS
    class: bad, good) for HTML cells."""

    def __init__(self, text=number_text, csv=_raw, markup=None, state=None):
        self.text, self.csv, self._markup, self._state = text, csv, markup, state

    def html(self, value):
        if self._markup is not None:
            return self._markup(value)
        return escape_html(self.text(value))

    def state(self, value):
        return self._state(value) if self._state is not None else ""


def _delta_text(check):
    if not check or check.get("delta_pct") is None:
        return "-"
    return "%+.1f%%%s" % (check["delta_pct"], " \u2717" if check.get("ok") is False else "")


def _delta_state(check):
    if not check or check.get("delta_pct") is None or check.get("ok") is None:
        return ""
    return "bad" if check["ok"] is False else "good"


def _of_text(value):
    """A count out of a total, (3, 80) -> '3 / 80'; a bare number (a fleet statistic) as is."""
    if isinstance(value, tuple):
        return "%s / %s" % (number_text(value[0]), number_text(value[1]))
    return number_text(value)


def _of_state(value):
    count = value[0] if isinstance(value, tuple) else None
    return "bad" if is_number(count) and count > 0 else ""


def badge(status, text=None):
    text = text or status.replace("_", " ")
    return '<span class="badge b-%s">%s</span>' % (escape_html(status), escape_html(text))


def _flags_markup(flags):
    parts = []
    for kind, text in flags or ():
        if kind == "error":
            parts.append('<span class="mono">%s</span>' % escape_html(text[:300]))
        else:
            parts.append(badge(kind, text))
    return " ".join(parts)


def _digest_text(value):
    digest, mismatch = value if isinstance(value, tuple) else (value, False)
    return (digest or "-") + (" (differs from fleet majority)" if mismatch else "")


def _digest_markup(value):
    digest, mismatch = value if isinstance(value, tuple) else (value, False)
    digest = digest or "-"
    short = digest if len(digest) <= 24 else digest[:19] + "\u2026" + digest[-6:]
    return "<span title='%s'>%s</span>%s" % (
        escape_html(digest), escape_html(short),
        " " + badge("error", "differs from fleet majority") if mismatch else "")


NUMBER = Format()
TEXT = Format(text=lambda v: "-" if v in (None, "") else str(v))
PLAIN = Format(text=lambda v: "" if v is None else str(v))
STATUS = Format(text=lambda v: "" if v is None else str(v),
                markup=lambda v: badge(v) if v else "")
DELTA = Format(text=_delta_text, csv=lambda c: (c or {}).get("delta_pct"), state=_delta_state)
OF_TOTAL = Format(text=_of_text, csv=lambda v: v[0] if isinstance(v, tuple) else v, state=_of_state)
FLAGS = Format(text=lambda flags: "; ".join(text for _kind, text in flags or ()),
               markup=_flags_markup)
DIGEST = Format(text=_digest_text, csv=lambda v: v[0] if isinstance(v, tuple) else v,
                markup=_digest_markup)


def mapped(names, missing="?"):
    """A formatter that shows a code by its name in ``names`` (unknown codes as they are)."""
    return Format(text=lambda v: missing if v is None else names.get(v, str(v)))


class Column:
    """One column of a table: the row key it shows, its header and its formatter."""

    def __init__(self, key, header=None, fmt=NUMBER, numeric=False, css=""):
        self.key, self.header, self.fmt = key, key if header is None else header, fmt
        self.numeric, self.css = numeric, css


class Table:
    """Rows are dicts keyed by column key. A row's ``_label`` marks a summary row (fleet
    median, baseline): its first cell is that label, and keys it lacks are left empty."""

    def __init__(self, columns, rows):
        self.columns, self.rows = list(columns), list(rows)


def _cells(table, row, render):
    label = row.get("_label")
    out = []
    for index, column in enumerate(table.columns):
        if label is not None and index == 0:
            out.append(render(None, label))
        elif label is not None and column.key not in row:
            out.append(render(None, ""))
        else:
            out.append(render(column, row.get(column.key)))
    return out


# ---------------------------------------------------------------------------- blocks
# A document is a dict: title, optional page_title, and blocks; each block a dict with a kind.

def facts(pairs):
    return {"kind": "facts", "pairs": [(k, v) for k, v in pairs if v not in (None, "")]}


def verdict(status, word, summary, lists):
    return {"kind": "verdict", "status": status, "word": word, "summary": summary,
            "lists": [(heading, list(items)) for heading, items in lists if items]}


def cards(pairs):
    return {"kind": "cards", "pairs": list(pairs)}


def heading(text, level=2):
    return {"kind": "heading", "text": text, "level": level}


def paragraph(spans, role=""):
    """spans: a string, or a list of strings and (style, text) with style strong or code."""
    return {"kind": "paragraph", "spans": spans, "role": role}


def items(entries, heading=None):
    """A bullet list (each entry spans like a paragraph's), under an optional heading."""
    return {"kind": "list", "items": list(entries), "heading": heading}


def table(columns, rows):
    return {"kind": "table", "table": Table(columns, rows)}


def chart(title, rows, lines=(), states=(), caption=""):
    """Horizontal bars. rows: (label, value|None, state, note); lines: (label, value, kind)."""
    return {"kind": "chart", "title": title, "rows": list(rows), "lines": list(lines),
            "states": list(states), "caption": caption}


def panel(title, blocks):
    """A titled group (a tier): charts side by side, then the rest."""
    return {"kind": "panel", "title": title, "blocks": list(blocks)}


# ---------------------------------------------------------------------------- Markdown

def escape_md(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _spans(spans, escape, styles):
    """Inline text: a string, or strings and (style, text) pairs drawn by ``styles[style]``."""
    if isinstance(spans, str):
        return escape(spans)
    return "".join(escape(span) if isinstance(span, str) else styles[span[0]](span[1])
                   for span in spans)


MD_STYLES = {"strong": lambda text: "**%s**" % escape_md(text), "code": lambda text: "`%s`" % text}


def _md_spans(spans):
    return _spans(spans, escape_md, MD_STYLES)


def markdown_table(tbl):
    lines = ["| " + " | ".join(escape_md(c.header) for c in tbl.columns) + " |",
             "|" + "".join("---:|" if c.numeric else "---|" for c in tbl.columns)]
    for row in tbl.rows:
        def cell(column, value, italic=row.get("_label") is not None):
            if column is None:
                return "_%s_" % escape_md(value) if value and italic else escape_md(value)
            return escape_md(column.fmt.text(value))
        lines.append("| " + " | ".join(_cells(tbl, row, cell)) + " |")
    return lines


def _md_block(block):
    kind = block["kind"]
    if kind == "facts":
        rows = ["| %s | %s |" % (escape_md(k), escape_md(number_text(v))) for k, v in block["pairs"]]
        return [["| | |", "|---|---|"] + rows]
    if kind == "verdict":
        out = [["**Verdict: %s.** %s" % (block["word"], escape_md(block["summary"]))]]
        for title, entries in block["lists"]:
            out += [["## " + title], ["- " + _md_spans(e) for e in entries]]
        return out
    if kind == "heading":
        return [["#" * block["level"] + " " + escape_md(block["text"])]]
    if kind == "paragraph":
        text = _md_spans(block["spans"])
        return [["_%s_" % text if block["role"] == "lead" else text]]
    if kind == "list":
        if not block["items"]:
            return []
        head = [["## " + block["heading"]]] if block["heading"] else []
        return head + [["- " + _md_spans(e) for e in block["items"]]]
    if kind == "table":
        return [markdown_table(block["table"])]
    if kind == "panel":
        out = [["## " + escape_md(block["title"])]]
        for inner in block["blocks"]:
            out += _md_block(inner)
        return out
    return []  # cards, chart: visual summaries of what the tables say


def render_markdown(document):
    chunks = [["# " + escape_md(document["title"])]]
    for block in document["blocks"]:
        chunks += _md_block(block)
    return "\n\n".join("\n".join(chunk) for chunk in chunks) + "\n"


# ---------------------------------------------------------------------------- CSV and JSON

def render_csv(tbl):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.header for c in tbl.columns])
    for row in tbl.rows:
        writer.writerow([c.fmt.csv(row.get(c.key)) for c in tbl.columns])
    return out.getvalue()


def render_json(model):
    # json_safe: a NaN/inf that escaped the model's own checks is written as null, never as the
    # NaN/Infinity tokens that are not JSON (and never crashes the report).
    return json.dumps(json_safe(model), indent=2, sort_keys=False, allow_nan=False) + "\n"


# ---------------------------------------------------------------------------- HTML

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
VERDICT_STYLE = {  # text, background, border
    "pass": ("#065f46", "#d1fae5", "#10b981"),
    "regression": ("#7f1d1d", "#fee2e2", "#ef4444"),
    "incomplete": ("#78350f", "#fef3c7", "#f59e0b"),
}
LINE_DASH = {"baseline": "6 4", "allowed": "2 3", "median": "1 0"}

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
.panel .lead { color: #4b5563; margin: -4px 0 12px; }
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
.b-ok, .b-pass { background: #dbeafe; color: #1e40af; }
.b-failed, .b-degraded, .b-warn { background: #f3e8ff; color: #6b21a8; }
.b-error, .b-stage_failed, .b-missing, .b-fail { background: #fee2e2; color: #991b1b; }
.b-outlier { background: #fef3c7; color: #92400e; }
.b-nc { background: #e5e7eb; color: #374151; }
.bad { color: #b91c1c; font-weight: 600; }
.good { color: #047857; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
ul.notes { margin: 6px 0 0; padding-left: 20px; color: #374151; }
footer { color: #6b7280; font-size: 12px; margin-top: 28px; }
"""


def escape_html(value):
    return html.escape("" if value is None else str(value), quote=True)


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


def bar_chart(title, rows, lines=()):
    """Horizontal bar chart as inline SVG. rows: (label, value|None, state, note)."""
    lines = [(label, value, kind) for label, value, kind in lines if is_number(value)]
    values = [v for _l, v, _s, _n in rows if is_number(v)] + [v for _l, v, _k in lines]
    ticks = nice_ticks(max(values) if values else 1)
    top = ticks[-1] or 1
    width, left, right, bar_h, gap, head = 560, 130, 130, 22, 10, 12
    plot_w = width - left - right
    height = head + len(rows) * (bar_h + gap) + 34

    def x(value):
        return left + plot_w * (value / top)

    out = ['<svg viewBox="0 0 %d %d" xmlns="http://www.w3.org/2000/svg" role="img" '
           'aria-label="%s" font-family="-apple-system, Segoe UI, Roboto, Arial, sans-serif">'
           % (width, height, escape_html(title))]
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
                   '<title>%s</title>%s</text>' % (left - 8, y + bar_h * 0.68, escape_html(label),
                                                   escape_html(short)))
        if is_number(value):
            bw = max(1.5, x(value) - left)
            out.append('<rect x="%d" y="%d" width="%.1f" height="%d" rx="3" fill="%s">'
                       '<title>%s: %s (%s)</title></rect>'
                       % (left, y, bw, bar_h, COLORS[state], escape_html(label),
                          escape_html(NUMBER.text(value)), escape_html(STATE_LABELS[state])))
            out.append('<text x="%.1f" y="%.1f" font-size="12" fill="#111827">%s'
                       '<tspan fill="%s" font-size="11">%s</tspan></text>'
                       % (left + bw + 6, y + bar_h * 0.68, escape_html(NUMBER.text(value)),
                          "#b91c1c" if state in ("violation", "outlier") else "#6b7280",
                          escape_html(" " + note if note else "")))
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
                   % (lx, head - 8, lx, axis_y, COLORS[kind], styles[kind], escape_html(label),
                      escape_html(NUMBER.text(value))))
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#9ca3af"/>'
               % (left, head - 8, left, axis_y))
    out.append("</svg>")
    return "".join(out)


def legend(states, lines):
    entries = ['<span><i style="background:%s"></i>%s</span>'
               % (COLORS[state], escape_html(STATE_LABELS[state])) for state in states]
    for label, value, kind in lines:
        if is_number(value):
            entries.append('<span><svg width="22" height="10"><line x1="0" y1="5" x2="22" y2="5" '
                           'stroke="%s" stroke-width="2" stroke-dasharray="%s"/></svg>%s %s</span>'
                           % (COLORS[kind], LINE_DASH[kind], escape_html(label),
                              escape_html(NUMBER.text(value))))
    return '<div class="legend">%s</div>' % "".join(entries)


HTML_STYLES = {"strong": lambda text: "<b>%s</b>" % escape_html(text),
               "code": lambda text: "<code>%s</code>" % escape_html(text)}


def _html_spans(spans):
    return _spans(spans, escape_html, HTML_STYLES)


def html_table(tbl):
    head = "".join("<th%s>%s</th>" % (" class='n'" if c.numeric else "", escape_html(c.header))
                   for c in tbl.columns)
    body = []
    for row in tbl.rows:
        def cell(column, value):
            if column is None:
                return "<td>%s</td>" % escape_html(value)
            classes = " ".join(c for c in (column.css, "n" if column.numeric else "",
                                           column.fmt.state(value)) if c)
            return "<td%s>%s</td>" % (" class='%s'" % classes if classes else "",
                                      column.fmt.html(value))
        body.append("<tr%s>%s</tr>" % (" class='agg'" if row.get("_label") is not None else "",
                                       "".join(_cells(tbl, row, cell))))
    return '<div class="scroll"><table><tr>%s</tr>%s</table></div>' % (head, "".join(body))


def _html_chart(block):
    caption = '<div class="caption">%s</div>' % escape_html(block["caption"]) \
        if block["caption"] else ""
    return '<div class="chart"><h3>%s</h3>%s%s%s</div>' % (
        escape_html(block["title"]), bar_chart(block["title"], block["rows"], block["lines"]),
        legend(block["states"], block["lines"]), caption)


def _html_block(block):
    kind = block["kind"]
    if kind == "facts":
        return '<p class="sub">%s</p>' % "".join(
            "<span>%s <b>%s</b></span>" % (escape_html(k), escape_html(number_text(v)))
            for k, v in block["pairs"])
    if kind == "verdict":
        fg, bg, border = VERDICT_STYLE.get(block["status"], VERDICT_STYLE["incomplete"])
        summary = block["summary"]
        if summary.upper().startswith(block["word"] + ":"):
            summary = summary[len(block["word"]) + 1:].strip()
        lists = "".join('<div class="sect">%s</div><ul>%s</ul>' % (
            escape_html(title), "".join("<li>%s</li>" % _html_spans(e) for e in entries))
            for title, entries in block["lists"])
        return ('<section class="verdict" style="background:%s;color:%s;border-color:%s">'
                '<div class="word">%s</div><div class="summary">%s</div>%s</section>'
                % (bg, fg, border, escape_html(block["word"]), escape_html(summary), lists))
    if kind == "cards":
        return '<div class="cards">%s</div>' % "".join(
            '<div class="card"><div class="k">%s</div><div class="v">%s</div></div>'
            % (escape_html(k), escape_html(v)) for k, v in block["pairs"])
    if kind == "heading":
        return "<h%d>%s</h%d>" % (block["level"], escape_html(block["text"]), block["level"])
    if kind == "paragraph":
        roles = {"lead": ("div", ' class="lead"'), "footer": ("footer", "")}
        tag = roles.get(block["role"], ("p", ""))
        return "<%s%s>%s</%s>" % (tag[0], tag[1], _html_spans(block["spans"]), tag[0])
    if kind == "list":
        if not block["items"]:
            return ""
        head = "<h2>%s</h2>" % escape_html(block["heading"]) if block["heading"] else ""
        return '%s<ul class="notes">%s</ul>' % (
            head, "".join("<li>%s</li>" % _html_spans(e) for e in block["items"]))
    if kind == "table":
        return html_table(block["table"])
    if kind == "chart":
        return _html_chart(block)
    if kind == "panel":
        charts = [b for b in block["blocks"] if b["kind"] == "chart"]
        rest = [b for b in block["blocks"] if b["kind"] != "chart"]
        lead = [b for b in rest if b["kind"] == "paragraph" and b["role"] == "lead"]
        rest = [b for b in rest if b not in lead]
        return '<h2>%s</h2><div class="panel">%s%s%s</div>' % (
            escape_html(block["title"]), "".join(_html_block(b) for b in lead),
            '<div class="charts">%s</div>' % "".join(_html_chart(c) for c in charts)
            if charts else "", "".join(_html_block(b) for b in rest))
    raise ValueError("unknown block kind %r" % kind)


def render_html(document):
    """A self-contained page: inline CSS and SVG, no script, no network."""
    parts = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
             '<meta name="viewport" content="width=device-width, initial-scale=1">'
             '<title>%s</title><style>%s</style></head><body><main><h1>%s</h1>'
             % (escape_html(document.get("page_title") or document["title"]), CSS,
                escape_html(document["title"]))]
    parts += [_html_block(block) for block in document["blocks"]]
    parts.append("</main></body></html>\n")
    return "".join(parts)
