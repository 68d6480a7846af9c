"""module_utils/_render.py: one formatter per field, used alike by Markdown, HTML and CSV."""
import csv
import io
import os

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _render as R


@pytest.mark.parametrize("value, text", [
    (None, "-"), (True, "yes"), (False, "no"), (1300, "1300"), (1300.371, "1300.37"), (0.0, "0.00"),
    ("inf", "inf"),
])
def test_number_text(value, text):
    assert R.number_text(value) == text
    assert R.NUMBER.text(value) == text


def test_delta_shows_the_sign_and_marks_a_failed_gate():
    assert R.DELTA.text({"delta_pct": -30.0, "ok": False}) == "-30.0% \u2717"
    assert R.DELTA.text({"delta_pct": 2.04, "ok": True}) == "+2.0%"
    assert R.DELTA.text({"delta_pct": None}) == R.DELTA.text(None) == "-"
    assert (R.DELTA.state({"delta_pct": -30.0, "ok": False}), R.DELTA.state({"delta_pct": 1, "ok": True}),
            R.DELTA.state({"delta_pct": 1, "ok": None})) == ("bad", "good", "")
    assert R.DELTA.csv({"delta_pct": -30.0, "ok": False}) == -30.0


def test_count_of_total_and_flags_and_digest():
    assert (R.OF_TOTAL.text((3, 80)), R.OF_TOTAL.text(0), R.OF_TOTAL.csv((3, 80))) == ("3 / 80", "0", 3)
    assert (R.OF_TOTAL.state((3, 80)), R.OF_TOTAL.state((0, 80)), R.OF_TOTAL.state(2)) == ("bad", "", "")
    flags = [("outlier", "outlier"), ("error", "x" * 400)]
    assert R.FLAGS.text(flags) == "outlier; " + "x" * 400
    assert R.FLAGS.html(flags) == '<span class="badge b-outlier">outlier</span> <span class="mono">%s</span>' % (
        "x" * 300)
    assert R.DIGEST.text(("sha256:ab", True)) == "sha256:ab (differs from fleet majority)"
    assert R.DIGEST.text((None, False)) == "-" and R.DIGEST.csv(("sha256:ab", True)) == "sha256:ab"
    assert "<span title='sha256:" + "a" * 64 + "'>sha256:aaaaaaaaaaaa\u2026aaaaaa</span>" in R.DIGEST.html(
        ("sha256:" + "a" * 64, False))
    assert R.mapped({"pass": "ok"}).text("pass") == "ok" and R.mapped({}).text(None) == "?"


COLUMNS = (R.Column("host", fmt=R.TEXT, css="host"), R.Column("tok", "tok/s", numeric=True),
           R.Column("vs", "vs baseline", R.DELTA, numeric=True), R.Column("note", fmt=R.PLAIN))
ROWS = [{"host": "gpu|1", "tok": 1300.371, "vs": {"delta_pct": -30.0, "ok": False}, "note": "a\nb"},
        {"_label": "fleet median", "tok": 1300.0}]


def test_markdown_table_uses_each_columns_formatter_and_escapes_cells():
    assert R.markdown_table(R.Table(COLUMNS, ROWS)) == [
        "| host | tok/s | vs baseline | note |",
        "|---|---:|---:|---|",
        "| gpu\\|1 | 1300.37 | -30.0% \u2717 | a b |",
        "| _fleet median_ | 1300.00 |  |  |",
    ]


def test_html_table_shows_the_same_text_with_classes():
    text = R.html_table(R.Table(COLUMNS, ROWS))
    assert "<th class='n'>tok/s</th>" in text
    assert "<td class='host'>gpu|1</td><td class='n'>1300.37</td><td class='n bad'>-30.0% \u2717</td>" in text
    assert "<tr class='agg'><td>fleet median</td><td class='n'>1300.00</td><td></td><td></td></tr>" in text


def test_csv_keeps_the_measured_values():
    rows = list(csv.reader(io.StringIO(R.render_csv(R.Table(COLUMNS, ROWS)))))
    assert rows == [["host", "tok/s", "vs baseline", "note"], ["gpu|1", "1300.371", "-30.0", "a\nb"],
                    ["", "1300.0", "", ""]]


def test_markdown_and_html_documents():
    doc = {"title": "Report r1", "page_title": "r1: PASS", "blocks": [
        R.verdict("pass", "PASS", "PASS: all good", [("Violations", []), ("Incomplete", ["h: x"])]),
        R.facts([("Run", "r1"), ("Model", None), ("TP", 4)]),
        R.cards([("hosts", "3 / 3")]),
        R.items([[("strong", "h1"), " ", ("code", "gfx"), " FAIL: a|b <x>"]], heading="Problems"),
        R.items([], heading="Empty"),
        R.panel("Tier low", [R.paragraph("10 prompts", role="lead"),
                             R.chart("tok/s", [("h1", 5.0, "ok", "")]), R.table(COLUMNS[:2], ROWS[:1])]),
        R.paragraph("footer text", role="footer")]}
    assert R.render_markdown(doc) == "\n".join([
        "# Report r1", "", "**Verdict: PASS.** PASS: all good", "", "## Incomplete", "", "- h: x", "",
        "| | |", "|---|---|", "| Run | r1 |", "| TP | 4 |", "", "## Problems", "",
        "- **h1** `gfx` FAIL: a\\|b <x>", "", "## Tier low", "", "_10 prompts_", "",
        "| host | tok/s |", "|---|---:|", "| gpu\\|1 | 1300.37 |", "", "footer text", ""])
    page = R.render_html(doc)
    assert page.startswith('<!DOCTYPE html>') and "<title>r1: PASS</title>" in page
    assert "<h1>Report r1</h1>" in page and '<div class="word">PASS</div><div class="summary">all good</div>' in page
    assert '<li><b>h1</b> <code>gfx</code> FAIL: a|b &lt;x&gt;</li>' in page and "Empty" not in page
    assert '<h2>Tier low</h2><div class="panel"><div class="lead">10 prompts</div><div class="charts">' in page
    assert page.count("<svg viewBox") == 1 and "<footer>footer text</footer>" in page
    assert "<span>Run <b>r1</b></span><span>TP <b>4</b></span>" in page


def test_nice_ticks():
    assert R.nice_ticks(3169.72) == [0, 1000, 2000, 3000, 4000]
    assert R.nice_ticks(5.86)[-1] >= 5.86
    assert R.nice_ticks(0) == [0, 1]


def test_write_files_replaces_atomically_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "out" / "a.md"
    R.write_files(str(tmp_path / "out"), {str(target): "one"})
    R.write_files(str(tmp_path / "out"), {str(target): "two"})
    assert target.read_text() == "two" and oct(target.stat().st_mode & 0o777) == "0o644"
    assert os.listdir(tmp_path / "out") == ["a.md"]
    with pytest.raises(TypeError):
        R.write_atomic(str(target), None)
    assert target.read_text() == "two" and os.listdir(tmp_path / "out") == ["a.md"]
