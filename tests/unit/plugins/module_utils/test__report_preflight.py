"""module_utils/_report_preflight.py: the fleet document, preflight.md and the one-screen summary."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures" / "rocm"))
from rocm_harness import build_host  # noqa: E402
from test__preflight import evaluate  # noqa: E402  (a real host report from a fake host tree)

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _preflight, _render  # noqa: E402
from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _report_preflight as P  # noqa: E402


def fleet(tmp_path):
    reports = [("gpu01", evaluate(build_host(tmp_path / "a"))),
               ("gpu02", evaluate(build_host(tmp_path / "b", kind="mi250"))),
               ("gpu03", evaluate(build_host(tmp_path / "c", numa_balancing=1))),
               ("gpu04", None)]
    for host, report in reports:
        if report:
            report["host"] = host
    return P.fleet_report(reports, "20250101T000000Z")


def markdown(doc):
    return _render.render_markdown(P.document(doc))


def test_fleet_report_counts_and_lists_hosts_without_a_report(tmp_path):
    doc = fleet(tmp_path)
    assert doc["counts"] == {"pass": 1, "warn": 0, "fail": 2, "error": 1}
    assert doc["failed_hosts"] == ["gpu02", "gpu03", "gpu04"]
    assert doc["hosts"][3]["status"] == "error" and "unreachable" in doc["hosts"][3]["message"]


def test_fleet_markdown_is_a_host_by_check_table_with_fixes(tmp_path):
    text = markdown(fleet(tmp_path))
    lines = text.splitlines()
    assert lines[:3] == ["# Preflight 20250101T000000Z", "",
                         "4 hosts: 1 pass, 0 warn, 2 fail, 1 without a report."]
    header = next(line for line in lines if line.startswith("| host |"))
    assert header.split(" | ")[2:] == list(_preflight.CHECKS)[:-1] + [_preflight.CHECKS[-1] + " |"]
    assert lines[lines.index(header) + 1] == "|---|---|" + "---|" * len(_preflight.CHECKS)
    row = next(line for line in lines if line.startswith("| gpu02 |"))
    assert row.startswith("| gpu02 | FAIL | ok | ok | ok | ok | ok | FAIL |")
    assert "| gpu04 | ERROR | ? |" in text
    assert "- **gpu03** `numa_balancing` FAIL: kernel.numa_balancing = 1" in text
    assert "- **gpu04**: no preflight report: the host was unreachable" in text
    assert "## Waived checks" not in text and text.endswith(".\n")


def test_waived_checks_are_listed_and_cells_escape_the_table(tmp_path):
    doc = fleet(tmp_path)
    doc["hosts"][0]["checks"][0].update(status="skipped", observed="waived by a|b")
    text = markdown(doc)
    assert "| gpu01 | pass | skip |" in text
    assert text.endswith("## Waived checks\n\n- **gpu01** `facts_readable`: waived by a\\|b\n")


def test_fleet_summary_groups_by_check_so_it_fits_one_screen(tmp_path):
    doc = fleet(tmp_path)
    lines = P.fleet_summary(doc, "/results/run/preflight.md")
    assert lines[0] == "preflight 20250101T000000Z: 4 hosts, 1 pass, 0 warn, 2 fail, 1 without a report"
    assert "FAIL gfx on 1 host: gpu02" in lines and "FAIL numa_balancing on 1 host: gpu03" in lines
    assert lines[-1] == "leaving the play: gpu02, gpu03, gpu04"
    big = P.fleet_report([("h%03d" % i, dict(doc["hosts"][2], host="h%03d" % i))
                          for i in range(200)], "r")
    assert len(P.fleet_summary(big)) < 12  # 200 failing hosts, still one screen


def test_write_summary_writes_both_files(tmp_path):
    out = P.write_summary([("gpu01", None)], "run1", str(tmp_path / "r"))
    assert out["paths"] == {"json": str(tmp_path / "r" / "preflight.json"),
                            "markdown": str(tmp_path / "r" / "preflight.md")}
    assert json.loads((tmp_path / "r" / "preflight.json").read_text()) == out["report"]
    assert out["summary"][1] == "report: %s" % (tmp_path / "r" / "preflight.md")
    assert out["failed_hosts"] == ["gpu01"]
