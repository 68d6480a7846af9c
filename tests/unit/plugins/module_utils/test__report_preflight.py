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
    assert "## Waived checks\n\n- **gpu01** `facts_readable`: waived by a\\|b\n" in text


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


def mixed_fleet(tmp_path):
    """Four MI300X hosts, one with old MEC firmware, and an MI250 host alone with its device id."""
    reports = [("gpu01", evaluate(build_host(tmp_path / "a"))),
               ("gpu02", evaluate(build_host(tmp_path / "b", health={"mec": 166}))),
               ("gpu03", evaluate(build_host(tmp_path / "c"))),
               ("gpu04", evaluate(build_host(tmp_path / "d"))),
               ("gpu05", evaluate(build_host(tmp_path / "e", kind="mi250")))]
    for host, report in reports:
        report["host"] = host
    return reports


def test_drift_and_firmware_settings_are_named_in_the_summary_and_the_markdown(tmp_path):
    doc = P.fleet_report(mixed_fleet(tmp_path), "r1")
    lines = P.fleet_summary(doc)
    assert "WARN drift on gpu02: fw.mec 166, majority 177 (3 of 4 hosts with device 0x74a1)" in lines
    firmware = [line for line in lines if line.startswith("FIRMWARE ")]
    assert len(firmware) == 1 and firmware[0].startswith(
        "FIRMWARE gpu02: HSA_NO_SCRATCH_RECLAIM=1 (MEC firmware 166 < 177 on 8 GPUs: ")
    assert doc["firmware_env"] == {"gpu02": {"HSA_NO_SCRATCH_RECLAIM": "1"}}
    assert doc["failed_hosts"] == ["gpu05"]  # gfx90a; drift only warns by default
    text = markdown(doc)
    assert "Drift compared 4 hosts with device 0x74a1; gpu05 alone with device 0x740c (nothing to compare)." in text
    assert "- **gpu02** WARN: fw.mec 166, majority 177 (3 of 4 hosts with device 0x74a1)" in text
    assert "## Settings the firmware requires\n\n- **gpu02**: HSA_NO_SCRATCH_RECLAIM=1 (MEC firmware 166" in text


def test_drift_listed_to_fail_fails_the_host_with_a_message(tmp_path):
    out = P.write_summary(mixed_fleet(tmp_path), "r1", str(tmp_path / "out"), drift_fail=["fw.mec"])
    assert out["drift_failed"] == ["gpu02"] and out["failed_hosts"] == ["gpu02", "gpu05"]
    assert out["drift_messages"]["gpu02"].startswith(
        "preflight drift on gpu02:\n- drift: fw.mec 166, majority 177 (3 of 4 hosts with device 0x74a1). Fix: ")


def test_two_disagreeing_hosts_are_reported_without_a_pick(tmp_path):
    reports = mixed_fleet(tmp_path)[:2]
    lines = P.fleet_summary(P.fleet_report(reports, "r1"))
    assert ("NO MAJORITY fw.mec: no majority among 2 hosts with device 0x74a1, none picked (166 on gpu02; 177 on gpu01)"
            in lines)
    assert not [line for line in lines if " drift on " in line]


def test_a_clean_fleet_says_what_drift_compared(tmp_path):
    reports = [r for r in mixed_fleet(tmp_path) if r[0] in ("gpu01", "gpu03", "gpu04")]
    assert "drift: none (3 hosts with device 0x74a1)" in P.fleet_summary(P.fleet_report(reports, "r1"))
