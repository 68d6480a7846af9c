"""Unit tests of plugins/module_utils/_report_bench.py: gates, comparability, outliers, what each file shows."""

import copy
import csv
import io
import json
import os
import re

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _bench
from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _report_bench as _report

HERE = os.path.dirname(__file__)
FIXTURES = os.path.join(HERE, "..", "..", "fixtures", "bench")
DEFAULT_BASELINE = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "roles",
                                                 "benchmark", "files", "baseline_mi300x_tp4.json"))
TIERS = {"low": (10, 1), "medium": (80, 16), "high": (500, 100)}


def reference_records(scale=None, tiers=("low", "medium", "high")):
    """sglang_bench records built from the recipe's printed reference runs."""
    records = []
    for name in tiers:
        n, c = TIERS[name]
        spec = _bench.validate_tiers([{"name": name, "num_prompts": n, "max_concurrency": c}])[0]
        with open(os.path.join(FIXTURES, "stdout_0.5.7_%s.txt" % name), encoding="utf-8") as fh:
            rec = _bench.build_record(spec, 0, 60.0, stdout=fh.read())
        for metric, factor in (scale or {}).get(name, {}).items():
            rec["metrics"][metric] = round(rec["metrics"][metric] * factor, 2)
        records.append(rec)
    return records


def baseline():
    return _report.load_baseline(DEFAULT_BASELINE)


def fleet(**overrides):
    hosts = {"gpu-01": reference_records(), "gpu-02": reference_records(),
             "gpu-03": reference_records()}
    hosts.update(overrides)
    return hosts


# ---------------------------------------------------------------------------- baseline

def test_default_baseline_holds_the_recipe_figures():
    tiers = baseline()["tiers"]
    expected = {  # DESIGN.md: output tok/s, mean TTFT, median TPOT, P99 ITL, duration, tokens
        "low": (176.86, 141.33, 5.33, 5.58, 23.86, 6101, 4220),
        "medium": (1300.37, 175.25, 10.87, 116.80, 31.38, 39668, 40805),
        "high": (3169.72, 564.46, 31.28, 157.80, 79.71, 249831, 252662),
    }
    for name, figures in expected.items():
        m = tiers[name]["metrics"]
        assert (m["output_throughput"], m["mean_ttft_ms"], m["median_tpot_ms"], m["p99_itl_ms"],
                m["duration_s"], m["total_input_tokens"], m["total_output_tokens"]) == figures
        assert tiers[name]["workload"]["random_range_ratio"] == 0.0
        assert (tiers[name]["workload"]["num_prompts"],
                tiers[name]["workload"]["max_concurrency"]) == TIERS[name]


def test_baseline_that_does_not_parse_names_the_line(tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text('{\n  "schema_version": 1,\n  "tiers": {\n    "low": {"metrics": '
                    '{"output_throughput": 176.86,}}\n  }\n}\n')
    with pytest.raises(_report.ReportError) as exc:
        _report.load_baseline(str(path))
    assert "baseline file %s does not parse as JSON at line 4 column" % path in str(exc.value)


@pytest.mark.parametrize("text, expected", [
    ("[]", "expected an object with a non-empty 'tiers' object"),
    ('{"tiers": {"low": {}}}', "tier 'low' needs a 'metrics' object"),
    ('{"tiers": {"low": {"metrics": {"output_throughput": "fast"}}}}',
     "tier 'low' has non-numeric metrics output_throughput"),
])
def test_baseline_shape_errors(text, expected):
    with pytest.raises(_report.ReportError, match=re.escape(expected)):
        _report.parse_baseline(text, "b.json")


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_a_baseline_with_a_non_finite_metric_is_refused_naming_the_token(tmp_path, token):
    """issue 15: a hand-edited (or once json.dumps-ed) baseline with NaN is not JSON."""
    path = tmp_path / "baseline.json"
    path.write_text('{"tiers": {"low": {"metrics": {"median_tpot_ms": %s}}}}' % token)
    with pytest.raises(_report.ReportError) as exc:
        _report.load_baseline(str(path))
    assert str(exc.value).startswith("baseline file %s does not parse as JSON at " % path)
    assert "%s is not JSON (a metric must be a finite number or null)" % token in str(exc.value)


def test_missing_baseline_file(tmp_path):
    with pytest.raises(_report.ReportError, match="cannot be read"):
        _report.load_baseline(str(tmp_path / "nope.json"))


# -------------------------------------------------------------------------- tolerances

def test_tolerances_merge_and_refuse_p99():
    assert _report.check_tolerances({"output_throughput": 0.05}) == \
        {"output_throughput": 0.05, "median_tpot_ms": 0.10}
    assert _report.check_tolerances({"median_tpot_ms": None}) == {"output_throughput": 0.10}
    with pytest.raises(_report.ReportError) as exc:
        _report.check_tolerances({"p99_itl_ms": 0.2, "speed": 0.1, "mean_ttft_ms": 2})
    text = str(exc.value)
    assert "p99_itl_ms is report-only" in text
    assert "unknown metric 'speed'" in text
    assert "mean_ttft_ms: tolerance must be a fraction in [0, 1)" in text


# ----------------------------------------------------------------------------- verdicts

def test_reference_fleet_passes_against_reference_baseline():
    report = _report.build_report(["gpu-01", "gpu-02", "gpu-03"], fleet(),
                                  image_digests=dict.fromkeys(["gpu-01", "gpu-02", "gpu-03"],
                                                              "sha256:aaa"),
                                  baseline=baseline(), baseline_path="b.json")
    assert report["verdict"]["status"] == "pass", report["verdict"]
    assert report["verdict"]["summary"] == ("PASS: 3 host(s) x 3 tier(s), no failed requests, "
                                            "within tolerance of the baseline, no outlier host")
    assert report["baseline"]["status"] == "compared"
    assert report["tiers"] == ["low", "medium", "high"]
    check = report["hosts"][0]["tiers"]["medium"]["comparison"]["checks"]["output_throughput"]
    assert check == {"observed": 1300.37, "baseline": 1300.37, "delta_pct": 0.0, "gated": True,
                     "tolerance": 0.10, "allowed": pytest.approx(1170.333), "direction": "higher",
                     "ok": True}
    assert report["fleet"]["high"]["output_throughput"] == \
        {"median": 3169.72, "min": 3169.72, "max": 3169.72, "n": 3}
    assert report["digests"] == {"majority": "sha256:aaa", "mismatched": [],
                                 "hosts": dict.fromkeys(["gpu-01", "gpu-02", "gpu-03"],
                                                        "sha256:aaa")}
    json.dumps(report, allow_nan=False)


def test_doubled_tpot_is_a_regression_naming_host_tier_metric_observed_allowed():
    hosts = fleet(**{"gpu-02": reference_records({"medium": {"median_tpot_ms": 2.0}})})
    report = _report.build_report(list(hosts), hosts, baseline=baseline())
    assert report["verdict"]["status"] == "regression"
    assert report["verdict"]["violations"] == [
        "gpu-02 / medium / median_tpot_ms: observed 21.74, allowed at most 11.96 "
        "(baseline 10.87, tolerance 10%)"]
    v = report["violations"][0]
    assert (v["kind"], v["host"], v["tier"], v["metric"], v["observed"]) == \
        ("baseline", "gpu-02", "medium", "median_tpot_ms", 21.74)
    assert v["allowed"] == pytest.approx(11.957)
    assert report["verdict"]["summary"] == "REGRESSION: 1 violation(s) on gpu-02"


def test_slow_host_is_an_outlier_and_a_baseline_violation():
    hosts = fleet(**{"gpu-03": reference_records({"medium": {"output_throughput": 0.7}})})
    report = _report.build_report(list(hosts), hosts, baseline=baseline())
    kinds = sorted((v["kind"], v["host"], v["tier"]) for v in report["violations"])
    assert kinds == [("baseline", "gpu-03", "medium"), ("outlier", "gpu-03", "medium")]
    outlier = report["outliers"][0]
    assert outlier["observed"] == 910.26 and outlier["reference"] == 1300.37
    assert outlier["allowed"] == pytest.approx(1300.37 * 0.85)
    assert outlier["message"] == ("gpu-03 / medium / output_throughput: observed 910.26, allowed "
                                  "at least 1105.31 (fleet median 1300.37, outlier tolerance 15%)")
    assert report["hosts"][2]["tiers"]["medium"]["outlier"] is True
    assert report["hosts"][0]["tiers"]["medium"]["outlier"] is False


def test_outliers_need_three_hosts():
    hosts = {"gpu-01": reference_records(),
             "gpu-02": reference_records({"low": {"output_throughput": 0.5}})}
    report = _report.build_report(list(hosts), hosts, baseline=None)
    assert report["outliers"] == [] and report["verdict"]["status"] == "pass"
    assert "outliers are judged with at least 3 measured hosts; this run has 2" in report["notes"]
    assert "no baseline given: hosts were compared with each other only" in report["notes"]


def test_outlier_without_baseline_just_inside_and_outside():
    hosts = {"a": reference_records(tiers=("low",)), "b": reference_records(tiers=("low",)),
             "c": reference_records({"low": {"output_throughput": 0.86}}, tiers=("low",)),
             "d": reference_records({"low": {"output_throughput": 0.84}}, tiers=("low",))}
    report = _report.build_report(list(hosts), hosts)
    # median of (176.86, 176.86, 152.10, 148.56) = 164.48; allowed 139.81: nobody is below it.
    assert report["outliers"] == []
    hosts["d"] = reference_records({"low": {"output_throughput": 0.5}}, tiers=("low",))
    report = _report.build_report(list(hosts), hosts)
    assert [o["host"] for o in report["outliers"]] == ["d"]
    assert report["verdict"]["status"] == "regression"


def test_p99_is_reported_never_gated():
    hosts = fleet(**{"gpu-01": reference_records({"low": {"p99_itl_ms": 10.0,
                                                          "p99_ttft_ms": 10.0}})})
    report = _report.build_report(list(hosts), hosts, baseline=baseline())
    assert report["verdict"]["status"] == "pass"
    check = report["hosts"][0]["tiers"]["low"]["comparison"]["checks"]["p99_itl_ms"]
    assert check["gated"] is False and check["ok"] is None and check["delta_pct"] == 900.0


def test_scaled_tiers_are_not_comparable_rather_than_failed():
    records = []
    for rec in reference_records({"low": {"output_throughput": 0.3}}):
        rec = copy.deepcopy(rec)
        rec["spec"]["num_prompts"] = 4
        rec["metrics"]["total_input_tokens"] = 2000
        records.append(rec)
    report = _report.build_report(["h"], {"h": records}, baseline=baseline())
    comp = report["hosts"][0]["tiers"]["low"]["comparison"]
    assert comp["status"] == "not_comparable"
    assert comp["reasons"][0] == "num_prompts 4 differs from the baseline's 10"
    assert comp["reasons"][1].startswith("total_input_tokens 2000 differs from the baseline's "
                                         "6101 by 67.2% (more than 1.0%)")
    assert comp["checks"]["output_throughput"]["gated"] is False
    assert report["violations"] == [] and report["verdict"]["status"] == "pass"
    assert report["baseline"]["status"] == "not_comparable"
    assert report["notes"][0].startswith("baseline not comparable for tier(s) low, medium, high")


def test_token_totals_alone_make_a_run_not_comparable():
    records = reference_records(tiers=("high",))
    records[0]["metrics"]["total_output_tokens"] = 240000
    report = _report.build_report(["h"], {"h": records}, baseline=baseline())
    comp = report["hosts"][0]["tiers"]["high"]["comparison"]
    assert comp["status"] == "not_comparable"
    assert comp["reasons"] == ["total_output_tokens 240000 differs from the baseline's 252662 by "
                               "5.0% (more than 1.0%): not the same workload"]
    report = _report.build_report(["h"], {"h": records}, baseline=baseline(), token_tolerance=0.06)
    assert report["hosts"][0]["tiers"]["high"]["comparison"]["status"] == "compared"


def test_failed_stage_errors_and_failed_requests():
    failed_tier = reference_records(tiers=("medium",))
    failed_tier[0]["metrics"]["completed"] = 77
    failed_tier[0]["metrics"]["failed"] = 3
    failed_tier[0]["status"] = "failed"
    failed_tier[0]["error"] = "3 of 80 requests failed"
    errored = reference_records(tiers=("low",))
    errored.append(_bench.build_record(
        _bench.validate_tiers([{"name": "medium", "num_prompts": 80, "max_concurrency": 16}])[0],
        1, 3.0, stderr="ValueError: Warmup failed"))
    records = {"gpu-01": reference_records(tiers=("low", "medium")),
               "gpu-02": {"records": failed_tier, "changed": True},  # a whole registered result
               "gpu-03": errored}
    status = {"gpu-04": {"stage": "server", "status": "failed",
                         "error": "health check timed out after 1800 s"},
              "gpu-01": {"stage": "server", "status": "ok"}}
    report = _report.build_report(["gpu-01", "gpu-02", "gpu-03", "gpu-04", "gpu-05"], records,
                                  host_status=status)
    by_host = {e["host"]: e for e in report["hosts"]}
    assert [e["host"] for e in report["hosts"]] == ["gpu-01", "gpu-02", "gpu-03", "gpu-04",
                                                    "gpu-05"]
    assert {h: e["status"] for h, e in by_host.items()} == {
        "gpu-01": "ok", "gpu-02": "degraded", "gpu-03": "degraded", "gpu-04": "stage_failed",
        "gpu-05": "missing"}
    assert (by_host["gpu-04"]["stage"], by_host["gpu-04"]["stage_status"]) == ("server", "failed")
    assert report["verdict"]["status"] == "regression"  # failed requests are a violation
    assert report["violations"][0]["message"] == \
        "gpu-02 / medium: 3 of 80 requests failed (allowed 0)"
    incomplete = report["verdict"]["incomplete"]
    assert incomplete[0].startswith("gpu-03 / medium: benchmark error: bench_serving exited with "
                                    "status 1: ValueError: Warmup failed")
    assert incomplete[1] == "gpu-04: server failed: health check timed out after 1800 s"
    assert incomplete[2].startswith("gpu-05: benchmark missing: no benchmark records")
    assert [(f["host"], f["tier"], f["status"]) for f in report["failures"]] == [
        ("gpu-03", "medium", "error"), ("gpu-04", None, "failed"), ("gpu-05", None, "missing"),
        ("gpu-02", "medium", "failed")]
    # With no violation the same gaps make the verdict incomplete.
    del records["gpu-02"]
    report = _report.build_report(["gpu-01", "gpu-03", "gpu-04"], records, host_status=status)
    assert report["verdict"]["status"] == "incomplete"
    assert report["verdict"]["summary"] == \
        "INCOMPLETE: 2 host(s)/tier(s) without results (gpu-03, gpu-04)"


@pytest.mark.parametrize("digests, majority, mismatched", [
    ({"a": "sha256:1", "b": "sha256:1", "c": "sha256:2"}, "sha256:1", ["c"]),
    ({"a": "sha256:1", "b": "sha256:2"}, None, ["a", "b"]),
    ({"a": "sha256:1", "b": None, "c": "sha256:1"}, "sha256:1", []),
    ({}, None, []),
])
def test_digest_majority(digests, majority, mismatched):
    assert _report.majority_digest(digests) == (majority, mismatched)


def test_digest_mismatch_is_flagged_in_report():
    hosts = fleet()
    report = _report.build_report(list(hosts), hosts, image_digests={
        "gpu-01": "sha256:aaa", "gpu-02": "sha256:aaa", "gpu-03": "sha256:bbb"})
    assert [e["digest_mismatch"] for e in report["hosts"]] == [False, False, True]
    assert "image digest differs from the fleet majority on gpu-03" in report["notes"]


def test_store_as_baseline_then_rerun_with_tpot_doubled_fails(tmp_path):
    hosts = fleet(**{"gpu-03": reference_records({"high": {"output_throughput": 0.95}})})
    first = _report.build_report(list(hosts), hosts, run={"run_id": "r1", "model": "m"})
    stored = _report.baseline_from_report(first)
    assert stored["tiers"]["high"]["metrics"]["output_throughput"] == 3169.72  # median of 3
    assert stored["tiers"]["low"]["workload"]["num_prompts"] == 10
    assert stored["tiers"]["low"]["hosts"] == 3
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(stored))
    rerun = fleet(**{"gpu-01": reference_records({"low": {"median_tpot_ms": 2.0}})})
    report = _report.build_report(list(rerun), rerun, baseline=_report.load_baseline(str(path)))
    assert report["verdict"]["violations"] == [
        "gpu-01 / low / median_tpot_ms: observed 10.66, allowed at most 5.86 (baseline 5.33, "
        "tolerance 10%)"]


def test_store_as_baseline_needs_a_clean_tier():
    rec = reference_records(tiers=("low",))
    rec[0]["status"] = "failed"
    with pytest.raises(_report.ReportError, match="no tier finished cleanly"):
        _report.baseline_from_report(_report.build_report(["h"], {"h": rec}))


# ---------------------------------------------------------------------------- renderers

def slow_fleet_report():
    hosts = fleet(**{"gpu-03": reference_records({"medium": {"output_throughput": 0.7},
                                                  "high": {"median_tpot_ms": 1.5}})})
    hosts["gpu-04"] = []
    return _report.build_report(
        list(hosts) + ["gpu-05"], hosts, baseline=baseline(), baseline_path=DEFAULT_BASELINE,
        host_status={"gpu-05": {"stage": "preflight", "status": "failed",
                                "error": "expected 8 GPUs, found 4 <kfd>"}},
        image_digests={"gpu-01": "sha256:" + "a" * 64, "gpu-02": "sha256:" + "a" * 64,
                       "gpu-03": "sha256:" + "a" * 64, "gpu-04": "sha256:" + "b" * 64},
        run={"run_id": "20250101T000000Z", "model": "moonshotai/Kimi-Linear-48B-A3B-Instruct",
             "image": "lmsysorg/sglang:v0.5.7-rocm700-mi30x", "tp_size": 4,
             "started": "2025-01-01T00:00:00Z", "finished": "2025-01-01T00:09:00Z",
             "collection_version": "0.1.0", "notes": ["unit-test fixture"]})


def test_csv_has_a_row_per_host_tier():
    report = slow_fleet_report()
    rows = list(csv.DictReader(io.StringIO(_report.render(report)["csv"])))
    assert len(rows) == 3 * 3 + 2
    row = [r for r in rows if r["host"] == "gpu-03" and r["tier"] == "medium"][0]
    assert row["outlier"] == "True" and row["output_throughput"] == "910.26"
    assert row["baseline_output_throughput"] == "1300.37"
    assert row["output_throughput_delta_pct"] == "-30.0"
    assert row["baseline"] == "compared"
    gpu5 = [r for r in rows if r["host"] == "gpu-05"][0]
    assert (gpu5["tier"], gpu5["status"], gpu5["host_status"]) == ("", "failed", "stage_failed")


def test_markdown_states_verdict_and_each_violation():
    text = _report.render(slow_fleet_report())["markdown"]
    assert "**Verdict: REGRESSION.**" in text
    assert "- gpu-03 / medium / output_throughput: observed 910.26, allowed at least 1170.33 " \
           "(baseline 1300.37, tolerance 10%)" in text
    assert "- gpu-05: preflight failed: expected 8 GPUs, found 4 <kfd>" in text
    assert "| gpu-03 | ok | 910.26 | -30.0% ✗ |" in text
    assert "(differs from fleet majority)" in text
    assert "## Tier high" in text and "_fleet median_" in text


def test_html_is_self_contained_and_has_two_charts_per_tier():
    text = _report.render(slow_fleet_report())["html"]
    assert text.count("<svg viewBox") == 2 * 3
    assert "<script" not in text.lower()
    # The only URL is the SVG namespace, which is a name, not a fetch.
    assert set(re.findall(r"https?://[^\s\"'<>]+", text)) == {"http://www.w3.org/2000/svg"}
    for attr in ("src=", "href=", "@import", "url("):
        assert attr not in text
    assert "REGRESSION" in text and "expected 8 GPUs, found 4 &lt;kfd&gt;" in text
    assert "(-30.0%, outlier)" in text  # gpu-03 medium: red bar, outlier noted
    assert 'class="badge b-outlier"' in text and "differs from fleet majority" in text


def test_write_report_writes_four_files(tmp_path):
    paths = _report.write_report(slow_fleet_report(), str(tmp_path / "out"))
    assert sorted(os.path.basename(p) for p in paths.values()) == [
        "fleet_report.csv", "fleet_report.html", "fleet_report.json", "fleet_report.md"]
    data = json.loads((tmp_path / "out" / "fleet_report.json").read_text())
    assert data["schema_version"] == 1
    assert data["verdict"]["status"] == "regression"
    assert [h["host"] for h in data["hosts"]] == ["gpu-01", "gpu-02", "gpu-03", "gpu-04",
                                                  "gpu-05"]


def test_workload_line_is_worded_once_for_markdown_and_html():
    texts = _report.render(slow_fleet_report())
    line = ("80 prompts \u00b7 max concurrency 16 \u00b7 random 1000 in / 1000 out \u00b7 range ratio 0.0 "
            "\u00b7 request rate inf \u00b7 seed 1")
    assert "_%s_" % line in texts["markdown"]
    assert '<div class="lead">%s</div>' % line in texts["html"]


def test_markdown_and_html_show_a_value_alike():
    texts = _report.render(slow_fleet_report())
    # the tier tables share their columns and formatters: same headers, same figures
    for fragment in ("1300.37", "-30.0% \u2717", "0 / 80", "req/s", "duration s"):
        assert fragment in texts["markdown"] and fragment in texts["html"]
    assert "1,300.37" not in texts["html"]


def test_footer_names_the_gates_that_were_applied():
    hosts = fleet()
    report = _report.build_report(list(hosts), hosts, baseline=baseline(),
                                  tolerances={"median_tpot_ms": None, "total_throughput": 0.2})
    texts = _report.render(report)
    for text in (texts["markdown"], texts["html"]):
        assert "Gated: output_throughput (10%), total_throughput (20%); P99 figures" in text
        assert "median TPOT are gated" not in text


# ---------------------------------------------------------------------------- startup phases

def startup_record(server="started", image_ready=231.5, weights_ready=40.25, process=0.042, port=71.2,
                   ready=82.4):
    def at(seconds):
        return None if seconds is None else {"seconds": seconds, "at": "2026-01-05T10:31:02.417+00:00"}
    return {"server": server, "launched_at": "2026-01-05T10:29:39.989+00:00" if server != "unchanged" else None,
            "running_since": "2026-01-05T09:00:00.000+00:00" if server == "unchanged" else None,
            "image": "pulled" if image_ready is not None else "present",
            "phases": {"image_ready": at(image_ready), "weights_ready": at(weights_ready),
                       "process_started": at(process), "port_open": at(port), "ready": at(ready)}}


def startup_report():
    hosts = fleet()
    startup = {"gpu-01": startup_record(),
               "gpu-02": startup_record(image_ready=120.0, weights_ready=None, port=60.0, ready=90.5),
               "gpu-03": startup_record("unchanged", None, None, None, None, None),
               "gpu-09": "not a record"}
    return _report.build_report(list(hosts) + ["gpu-09"], hosts, startup=startup)


def test_each_host_keeps_its_startup_record_and_the_fleet_gets_median_and_max_per_phase():
    report = startup_report()
    by_host = {e["host"]: e["startup"] for e in report["hosts"]}
    assert by_host["gpu-01"]["phases"]["ready"]["seconds"] == 82.4
    assert by_host["gpu-03"]["server"] == "unchanged" and by_host["gpu-09"] is None
    assert report["startup"] == {
        "phases": ["image_ready", "weights_ready", "process_started", "port_open", "ready"],
        "hosts": 3,
        "fleet": {"image_ready": {"median": 175.75, "max": 231.5, "n": 2},
                  "weights_ready": {"median": 40.25, "max": 40.25, "n": 1},
                  "process_started": {"median": 0.042, "max": 0.042, "n": 2},
                  "port_open": {"median": 65.6, "max": 71.2, "n": 2},
                  "ready": {"median": 86.45, "max": 90.5, "n": 2}}}
    # additive: the same schema version, and nothing else changes with the records
    without = _report.build_report(list(fleet()) + ["gpu-09"], fleet())
    assert report["schema_version"] == 1 and report["verdict"] == without["verdict"]
    assert {k: v for k, v in report.items() if k not in ("startup", "hosts")} == \
        {k: v for k, v in without.items() if k not in ("startup", "hosts")}
    assert _report.build_report(["h"], {})["startup"]["fleet"]["ready"] is None


def test_startup_in_the_json_file(tmp_path):
    _report.write_report(startup_report(), str(tmp_path))
    data = json.loads((tmp_path / "fleet_report.json").read_text())
    assert data["hosts"][1]["startup"]["phases"]["weights_ready"] is None  # unknown, never 0
    assert data["startup"]["fleet"]["port_open"]["max"] == 71.2


def test_startup_columns_end_every_csv_row():
    text = _report.render(startup_report())["csv"]
    header = next(csv.reader(io.StringIO(text)))
    first = header.index("startup_server")
    assert header[first:first + 7] == ["startup_server", "startup_image", "startup_image_ready_s",
                                       "startup_weights_ready_s", "startup_process_started_s", "startup_port_open_s",
                                       "startup_ready_s"]
    assert header.index("error") < header.index("startup_server")  # the earlier columns did not move
    rows = list(csv.DictReader(io.StringIO(text)))
    gpu2 = [r for r in rows if r["host"] == "gpu-02"]
    assert len(gpu2) == 3 and {r["startup_ready_s"] for r in gpu2} == {"90.5"}
    assert gpu2[0]["startup_weights_ready_s"] == "" and gpu2[0]["startup_image"] == "pulled"
    gpu3 = [r for r in rows if r["host"] == "gpu-03"][0]
    assert (gpu3["startup_server"], gpu3["startup_ready_s"]) == ("unchanged", "")


def test_startup_table_in_markdown_and_html():
    texts = _report.render(startup_report())
    md = texts["markdown"]
    assert "## Startup" in md
    assert "| host | server | image | image ready s | weights ready s | process started s | port open s | " \
           "ready s | launched at (UTC) |" in md
    assert "| gpu-01 | started | pulled | 231.50 | 40.25 | 0.04 | 71.20 | 82.40 | 2026-01-05T10:29:39.989+00:00 |" in md
    assert "| gpu-02 | started | pulled | 120.00 | - | 0.04 | 60.00 | 90.50 |" in md
    assert "| gpu-03 | unchanged | present | - | - | - | - | - | running since 2026-01-05T09:00:00.000+00:00 |" in md
    assert "| _fleet median_ |  |  | 175.75 | 40.25 | 0.04 | 65.60 | 86.45 |" in md
    assert "| _fleet max_ |  |  | 231.50 | 40.25 | 0.04 | 71.20 | 90.50 |" in md
    assert "gpu-09 |" not in md.split("## Startup")[1].split("## Hosts")[0]
    html = texts["html"]
    assert "Startup" in html and "port open s" in html and "running since 2026-01-05T09:00:00.000+00:00" in html
    for fragment in ("231.50", "86.45", "90.50"):
        assert fragment in html


# ---------------------------------------------------------------------------- cold start

MODEL_BYTES = 48 << 20
SHARD = 12 << 20
IMAGE_BYTES = 640 << 20
IMAGE_ID = "sha256:" + "5d" * 32
COMMIT = "c0ffee" + "0" * 34


def image_facts(obtained=7.5, transfer=None, size=IMAGE_BYTES):
    return {"reference": "r/sglang:v1", "source": "registry", "id": IMAGE_ID, "size": size,
            "obtained": {"seconds": obtained, "at": None} if obtained is not None else None, "transfer": transfer}


def model_result(role="fanout", downloaded=0, placed=0, seconds=0.5, fanout=None):
    return {"repo": "org/model", "source": "hub", "revision": COMMIT, "seed": "gpu-01", "role": role,
            "bytes_total": MODEL_BYTES, "bytes_downloaded": downloaded, "bytes_placed": placed, "seconds": seconds,
            "fanout": fanout}


def received(*sources, size=MODEL_BYTES, seconds=3.0):
    return {"name": "x", "status": "received", "sources": list(sources), "bytes": size, "seconds": seconds,
            "error": None}


def cold_report(images=None, models=None):
    hosts = fleet()
    images = images if images is not None else {
        "gpu-01": image_facts(20.0, {"status": "held", "sources": []}),
        "gpu-02": image_facts(9.0, received("gpu-01", size=IMAGE_BYTES + 4096)),
        "gpu-03": image_facts(9.5, received("gpu-01", size=IMAGE_BYTES + 4096))}
    models = models if models is not None else {
        "gpu-01": model_result("seed", MODEL_BYTES, MODEL_BYTES, 6.25, {"status": "held", "sources": []}),
        "gpu-02": model_result(fanout=received("gpu-01")),
        "gpu-03": model_result(fanout=received("gpu-01"), seconds="0.75")}
    return _report.build_report(list(hosts), hosts, images=images, models=models)


def test_each_host_says_how_the_image_and_the_model_came_and_the_fleet_counts_the_upstream_bytes():
    report = cold_report()
    by_host = {e["host"]: e["cold_start"] for e in report["hosts"]}
    assert by_host["gpu-01"] == {
        "image": {"how": "pulled", "origin": "registry", "sources": [], "bytes": IMAGE_BYTES,
                  "upstream_bytes": IMAGE_BYTES, "seconds": 20.0},
        "model": {"how": "staged", "origin": "hub", "sources": [], "bytes": MODEL_BYTES,
                  "upstream_bytes": MODEL_BYTES, "seconds": 6.25}}
    assert by_host["gpu-03"]["image"]["how"] == "received" and by_host["gpu-03"]["image"]["sources"] == ["gpu-01"]
    assert by_host["gpu-03"]["model"] == {"how": "received", "origin": "peers", "sources": ["gpu-01"],
                                          "bytes": MODEL_BYTES, "upstream_bytes": 0, "seconds": 3.75}
    assert report["cold_start"] == {
        "image": {"id": IMAGE_ID, "copy_bytes": IMAGE_BYTES, "upstream_bytes": IMAGE_BYTES, "copies": 1.0,
                  "from_upstream": ["gpu-01"], "hosts": {"pulled": ["gpu-01"], "received": ["gpu-02", "gpu-03"]}},
        "model": {"revision": COMMIT, "copy_bytes": MODEL_BYTES, "upstream_bytes": MODEL_BYTES, "copies": 1.0,
                  "from_upstream": ["gpu-01"], "hosts": {"staged": ["gpu-01"], "received": ["gpu-02", "gpu-03"]}}}
    # additive: the same schema version and verdict as a report without these records
    assert report["schema_version"] == 1 and report["verdict"] == _report.build_report(list(fleet()), fleet())["verdict"]


def test_every_host_fetching_for_itself_is_n_copies_and_a_rerun_is_none():
    own = {h: image_facts(30.0) for h in fleet()}
    models = {h: model_result("staged", MODEL_BYTES, MODEL_BYTES, 6.0) for h in fleet()}
    report = cold_report(own, models)
    assert (report["cold_start"]["image"]["copies"], report["cold_start"]["model"]["copies"]) == (3.0, 3.0)
    assert report["cold_start"]["model"]["from_upstream"] == ["gpu-01", "gpu-02", "gpu-03"]
    # a re-run: everything held, nothing crossed
    held = cold_report({h: image_facts(None) for h in fleet()},
                       {h: model_result("seed" if h == "gpu-01" else "fanout", seconds=0.1,
                                        fanout={"status": "held", "sources": [], "bytes": 0}) for h in fleet()})
    assert held["cold_start"]["model"] == {"revision": COMMIT, "copy_bytes": MODEL_BYTES, "upstream_bytes": 0,
                                           "copies": 0.0, "from_upstream": [],
                                           "hosts": {"held": ["gpu-01", "gpu-02", "gpu-03"]}}
    # a resumed shard and one shard repaired from a peer: only what moved counts
    repaired = cold_report(models={"gpu-01": model_result("seed", SHARD - (10 << 20), SHARD, 2.0),
                                   "gpu-02": model_result(fanout=received("gpu-01", size=2 * SHARD)),
                                   "gpu-03": model_result(fanout=received("gpu-01", size=SHARD))})
    assert repaired["cold_start"]["model"]["upstream_bytes"] == 2 << 20
    assert repaired["cold_start"]["model"]["copies"] == round(2.0 / 48, 3)


def test_without_the_stages_there_is_no_cold_start_record():
    report = _report.build_report(list(fleet()), fleet())
    assert report["cold_start"] == {"image": None, "model": None}
    assert {e["cold_start"] for e in report["hosts"]} == {None}
    # the model stage skipped (sglang_model_source: none): the image alone
    only_image = cold_report(models={})
    assert only_image["cold_start"]["model"] is None and only_image["cold_start"]["image"]["copies"] == 1.0
    texts = _report.render(only_image)
    assert "image over the upstream link" in texts["markdown"] and "model over the upstream link" not in texts["markdown"]
    assert "Cold start" not in _report.render(report)["markdown"]


def test_cold_start_in_every_file(tmp_path):
    report = cold_report()
    texts = _report.render(report)
    md = texts["markdown"]
    assert "## Cold start" in md
    assert "| host | image | image MiB | image s | model | model MiB | model s |" in md
    assert "| gpu-01 | pulled | 640.0 | 20.00 | staged from hub | 48.0 | 6.25 |" in md
    assert "| gpu-02 | received from gpu-01 | 640.0 | 9.00 | received from gpu-01 | 48.0 | 3.50 |" in md
    assert "| _upstream link_ | 1.00 \u00d7 one copy | 640.0 |  | 1.00 \u00d7 one copy | 48.0 |  |" in md
    assert "- model over the upstream link: 48.0 MiB = 1.00 \u00d7 one copy (48.0 MiB)" in md
    html = texts["html"]
    assert "Cold start" in html and "received from gpu-01" in html and "1.00 \u00d7 one copy" in html
    header = next(csv.reader(io.StringIO(texts["csv"])))
    assert header[-8:] == ["image_arrival", "image_sources", "image_bytes", "image_seconds",
                           "model_arrival", "model_sources", "model_bytes", "model_seconds"]
    assert header.index("startup_ready_s") < header.index("image_arrival")  # added at the end
    row = [r for r in csv.DictReader(io.StringIO(texts["csv"])) if r["host"] == "gpu-02"][0]
    assert (row["model_arrival"], row["model_sources"], row["model_bytes"]) == ("received", "gpu-01", str(MODEL_BYTES))
    _report.write_report(report, str(tmp_path))
    data = json.loads((tmp_path / "fleet_report.json").read_text())
    assert data["cold_start"]["model"]["copies"] == 1.0 and data["hosts"][1]["cold_start"]["model"]["sources"] == ["gpu-01"]


def test_no_startup_records_no_startup_table():
    texts = _report.render(slow_fleet_report())
    assert "Startup" not in texts["markdown"] and "Startup" not in texts["html"]
