"""bench_report action: the real ActionModule.run() with a stand-in task and no connection,
writing into a temporary directory."""

import json
import os

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.action import bench_report
from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _bench

HERE = os.path.dirname(__file__)
FIXTURES = os.path.join(HERE, "..", "..", "fixtures", "bench")
BASELINE = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "roles", "benchmark",
                                         "files", "baseline_mi300x_tp4.json"))
HOSTS = ["gpu-01", "gpu-02", "gpu-03"]


def records(tpot_factor=1.0, throughput_factor=1.0):
    out = []
    for name, n, c in (("low", 10, 1), ("medium", 80, 16), ("high", 500, 100)):
        spec = _bench.validate_tiers([{"name": name, "num_prompts": n, "max_concurrency": c}])[0]
        with open(os.path.join(FIXTURES, "stdout_0.5.7_%s.txt" % name), encoding="utf-8") as fh:
            rec = _bench.build_record(spec, 0, 60.0, stdout=fh.read())
        rec["metrics"]["median_tpot_ms"] = round(rec["metrics"]["median_tpot_ms"] * tpot_factor, 2)
        rec["metrics"]["output_throughput"] = round(
            rec["metrics"]["output_throughput"] * throughput_factor, 2)
        out.append(rec)
    return out


@pytest.fixture
def run_module(run_controller_action):
    def run(args, check_mode=False):
        result = run_controller_action(bench_report.ActionModule, args, check_mode=check_mode)
        result["_rc"] = 1 if result.get("failed") else 0
        return result
    return run


def base_args(tmp_path, **extra):
    args = {"output_dir": str(tmp_path / "r1"), "hosts": HOSTS, "run_id": "r1",
            "records": {h: {"records": records(), "changed": True} for h in HOSTS},
            "image_digests": dict.fromkeys(HOSTS, "sha256:aaa"), "baseline": BASELINE,
            "model": "moonshotai/Kimi-Linear-48B-A3B-Instruct", "tp_size": "4"}
    args.update(extra)
    return args


def test_pass_writes_four_files(tmp_path, run_module):
    result = run_module(base_args(tmp_path))
    assert result["_rc"] == 0 and result["changed"] is True
    assert result["verdict"] == "pass"
    assert sorted(os.listdir(tmp_path / "r1")) == ["fleet_report.csv", "fleet_report.html",
                                                   "fleet_report.json", "fleet_report.md"]
    data = json.loads((tmp_path / "r1" / "fleet_report.json").read_text())
    assert data["run"]["tp_size"] == 4 and data["baseline"]["status"] == "compared"
    assert result["paths"]["html"] == str(tmp_path / "r1" / "fleet_report.html")


def test_each_hosts_startup_record_reaches_the_reports(tmp_path, run_module):
    record = {"server": "started", "launched_at": "2026-01-05T10:29:39.989+00:00", "running_since": None,
              "image": "present",
              "phases": {"image_ready": None, "weights_ready": None,
                         "process_started": {"seconds": 0.05, "at": "2026-01-05T10:29:40.039+00:00"},
                         "port_open": {"seconds": 2.1, "at": "2026-01-05T10:29:42.089+00:00"},
                         "ready": {"seconds": 3.2, "at": "2026-01-05T10:29:43.189+00:00"}}}
    # hosts whose server role did not run have no record (the role's default is {})
    result = run_module(base_args(tmp_path, startup={"gpu-01": record, "gpu-02": {}}))
    assert result["_rc"] == 0
    data = json.loads((tmp_path / "r1" / "fleet_report.json").read_text())
    assert [h["startup"] for h in data["hosts"]] == [record, None, None]
    assert data["startup"]["fleet"]["ready"] == {"median": 3.2, "max": 3.2, "n": 1}
    assert "| gpu-01 | started | present | - | - | 0.05 | 2.10 | 3.20 |" in (tmp_path / "r1" / "fleet_report.md").read_text()


def test_how_the_image_and_the_model_came_reaches_the_reports(tmp_path, run_module):
    """The role passes every host's sglang_container_image_facts and sglang_model_result ({} when
    the stage did not run there): the report says how each arrived and what crossed upstream."""
    image = {"reference": "r/sglang:v1", "source": "registry", "id": "sha256:" + "ab" * 32, "size": 1000,
             "obtained": {"seconds": 4.0, "at": None}, "transfer": None}
    received = dict(image, transfer={"status": "received", "sources": ["gpu-01"], "bytes": 1100, "seconds": 1.0})
    seed = {"role": "seed", "source": "hub", "revision": "a" * 40, "bytes_total": 500, "bytes_downloaded": 500,
            "bytes_placed": 500, "seconds": 2.0, "fanout": {"status": "held", "sources": [], "bytes": 0}}
    other = dict(seed, role="fanout", bytes_downloaded=0, bytes_placed=0, seconds=0.5,
                 fanout={"status": "received", "sources": ["gpu-01"], "bytes": 500, "seconds": 1.5})
    result = run_module(base_args(tmp_path, images={"gpu-01": image, "gpu-02": received, "gpu-03": {}},
                                  models={"gpu-01": seed, "gpu-02": other, "gpu-03": {}}))
    assert result["_rc"] == 0
    data = json.loads((tmp_path / "r1" / "fleet_report.json").read_text())
    assert [(h["cold_start"] or {}).get("model", {}).get("how") for h in data["hosts"]] == ["staged", "received", None]
    assert data["cold_start"]["model"]["upstream_bytes"] == 500 and data["cold_start"]["model"]["copies"] == 1.0
    assert data["cold_start"]["image"]["hosts"] == {"pulled": ["gpu-01"], "received": ["gpu-02"]}
    assert "| gpu-02 | received from gpu-01 |" in (tmp_path / "r1" / "fleet_report.md").read_text()


def test_fail_on_regression_lists_every_violation(tmp_path, run_module):
    recs = {h: records() for h in HOSTS}
    recs["gpu-02"] = records(tpot_factor=2.0)
    result = run_module(base_args(tmp_path, records=recs, fail_on_regression=True))
    assert result["_rc"] == 1 and result["failed"] is True
    assert result["verdict"] == "regression"
    assert result["msg"] == (
        "REGRESSION: 3 violation(s) on gpu-02: "
        "gpu-02 / low / median_tpot_ms: observed 10.66, allowed at most 5.86 "
        "(baseline 5.33, tolerance 10%); "
        "gpu-02 / medium / median_tpot_ms: observed 21.74, allowed at most 11.96 "
        "(baseline 10.87, tolerance 10%); "
        "gpu-02 / high / median_tpot_ms: observed 62.56, allowed at most 34.41 "
        "(baseline 31.28, tolerance 10%)")
    assert (tmp_path / "r1" / "fleet_report.html").exists()  # reports are written first


def test_regression_without_fail_on_regression_returns_ok(tmp_path, run_module):
    recs = {h: records() for h in HOSTS}
    recs["gpu-03"] = records(throughput_factor=0.5)
    result = run_module(base_args(tmp_path, records=recs, baseline=None))
    assert result["_rc"] == 0 and result["verdict"] == "regression"
    assert {v["kind"] for v in result["violations"]} == {"outlier"}
    assert {v["host"] for v in result["violations"]} == {"gpu-03"}


def test_check_mode_writes_nothing(tmp_path, run_module):
    result = run_module(base_args(tmp_path, store_as_baseline=str(tmp_path / "b.json")),
                        check_mode=True)
    assert result["_rc"] == 0 and result["verdict"] == "pass"
    assert not (tmp_path / "r1").exists() and not (tmp_path / "b.json").exists()


def test_bad_baseline_names_the_line(tmp_path, run_module):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "tiers": {\n    "low": {"metrics": {"output_throughput": 1}}\n  ,}\n}\n')
    result = run_module(base_args(tmp_path, baseline=str(bad)))
    assert result["_rc"] == 1
    assert result["msg"].startswith("baseline file %s does not parse as JSON at line 4 column 4"
                                    % bad)
    assert not (tmp_path / "r1").exists()


def test_store_as_baseline_then_gate_on_it(tmp_path, run_module):
    stored = tmp_path / "baselines" / "fleet.json"
    result = run_module(base_args(tmp_path, store_as_baseline=str(stored)))
    assert result["_rc"] == 0 and result["baseline_path"] == str(stored)
    doc = json.loads(stored.read_text())
    assert doc["tiers"]["medium"]["metrics"]["median_tpot_ms"] == 10.87
    assert doc["environment"] == {"model": "moonshotai/Kimi-Linear-48B-A3B-Instruct", "tp_size": 4}
    recs = {h: records() for h in HOSTS}
    recs["gpu-01"] = records(tpot_factor=2.0)
    result = run_module(base_args(tmp_path / "rerun", records=recs, baseline=str(stored),
                                  fail_on_regression=True))
    assert result["_rc"] == 1
    assert "gpu-01 / medium / median_tpot_ms: observed 21.74, allowed at most 11.96" in result["msg"]


def test_bad_tolerance_is_refused(tmp_path, run_module):
    result = run_module(base_args(tmp_path, tolerances={"p99_itl_ms": 0.2}))
    assert result["_rc"] == 1 and "p99_itl_ms is report-only" in result["msg"]
    result = run_module(base_args(tmp_path, outlier_tolerance=1.5))
    assert result["_rc"] == 1
    assert result["msg"] == "outlier_tolerance must be a fraction in [0, 1), got 1.5"


def test_validate_only_checks_baseline_and_tolerances_and_writes_nothing(tmp_path, run_module):
    args = {"output_dir": str(tmp_path / "r1"), "hosts": HOSTS, "run_id": "r1", "validate_only": True}
    result = run_module(dict(args, baseline=BASELINE))
    assert result["_rc"] == 0 and result["changed"] is False
    assert result["baseline_tiers"] == ["high", "low", "medium"]
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "schema_version": 1\n  "tiers": {}\n}\n')
    result = run_module(dict(args, baseline=str(bad)))
    assert result["_rc"] == 1
    assert result["msg"].startswith("baseline file %s does not parse as JSON at line 3" % bad)
    result = run_module(dict(args, tolerances={"median_tpot_ms": 2}))
    assert result["_rc"] == 1 and result["msg"].startswith("invalid tolerances")
    assert not (tmp_path / "r1").exists()


def test_unknown_option_is_refused_by_the_task_name(tmp_path, run_module):
    result = run_module(base_args(tmp_path, outlier_tolerence=0.2))
    assert result["_rc"] == 1
    assert result["msg"].startswith("Unsupported parameters for (sglang_rocm.fleet.bench_report) module: "
                                    "outlier_tolerence.")
    assert not (tmp_path / "r1").exists()


# ----------------------------------------------------------- non-finite figures (issue 15)

def nan_records():
    """gpu-02's medium tier as bench_serving 0.5.7 printed it with nan TTFTs and an inf peak."""
    out = records()
    spec = _bench.validate_tiers([{"name": "medium", "num_prompts": 80, "max_concurrency": 16}])[0]
    with open(os.path.join(FIXTURES, "stdout_0.5.7_medium_nan.txt"), encoding="utf-8") as fh:
        out[1] = _bench.build_record(spec, 0, 60.0, stdout=fh.read())
    return out


def test_nan_in_the_printed_summary_still_writes_every_host_report(tmp_path, run_module):
    recs = {h: records() for h in HOSTS}
    recs["gpu-02"] = nan_records()
    result = run_module(base_args(tmp_path, records=recs))
    assert result["_rc"] == 0, result.get("msg")
    data = json.loads((tmp_path / "r1" / "fleet_report.json").read_text())  # strict JSON
    medium = data["hosts"][1]["tiers"]["medium"]
    # unknown, never zero; the other figures of that tier are kept
    assert medium["metrics"]["median_ttft_ms"] is None
    assert medium["metrics"]["max_output_tokens_per_s"] is None
    assert medium["metrics"]["output_throughput"] == 1300.37
    assert any("median_ttft_ms" in w and "not a finite number" in w for w in medium["warnings"])
    assert [h["host"] for h in data["hosts"]] == HOSTS
    assert data["fleet"]["medium"]["median_ttft_ms"]["n"] == 2


def test_non_finite_record_values_are_unknown_with_a_note(tmp_path, run_module):
    """Records from any source (an older module, a hand-made file) may carry NaN/inf."""
    recs = {h: records() for h in HOSTS}
    recs["gpu-03"][0]["metrics"]["median_tpot_ms"] = float("nan")
    recs["gpu-03"][0]["metrics"]["output_throughput"] = float("inf")
    result = run_module(base_args(tmp_path, records=recs, store_as_baseline=str(tmp_path / "b.json")))
    assert result["_rc"] == 0, result.get("msg")
    text = (tmp_path / "r1" / "fleet_report.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    low = data["hosts"][2]["tiers"]["low"]
    assert low["metrics"]["median_tpot_ms"] is None and low["metrics"]["output_throughput"] is None
    assert any("gpu-03 / low: median_tpot_ms" in n and "treated as unknown" in n for n in data["notes"])
    assert low["status"] != "ok" or low["warnings"]
    json.loads((tmp_path / "b.json").read_text())  # the stored baseline is strict JSON too


# ------------------------------------------------------ a full disk, a refused write (issue 15)

def _fill(directory):
    """Fill the filesystem of ``directory`` to the last byte."""
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a 1 MiB tmpfs (root only)")
def test_a_full_results_disk_names_the_path_and_keeps_the_previous_report(tmp_path, run_module):
    import subprocess
    mnt = tmp_path / "results"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                      check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        out = mnt / "r1"
        assert run_module(base_args(tmp_path, output_dir=str(out)))["_rc"] == 0
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        _fill(str(mnt))
        recs = {h: records(tpot_factor=2.0) for h in HOSTS}
        result = run_module(base_args(tmp_path, output_dir=str(out), records=recs))
        assert result["_rc"] == 1
        assert "No space left on device" in result["msg"]
        assert "could not write %s/fleet_report." % out in result["msg"]
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # intact, no temp file
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_an_unwritable_report_keeps_the_previous_one_and_names_the_file(
        tmp_path, run_module, monkeypatch):
    assert run_module(base_args(tmp_path))["_rc"] == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "r1").iterdir()}

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    result = run_module(base_args(tmp_path, records={h: records(tpot_factor=2.0) for h in HOSTS}))
    monkeypatch.undo()
    assert result["_rc"] == 1
    assert "could not write %s: No space left on device" % (tmp_path / "r1" / "fleet_report.json") \
        in result["msg"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "r1").iterdir()} == before


def test_a_refused_baseline_write_keeps_the_stored_baseline(tmp_path, run_module, monkeypatch):
    stored = tmp_path / "baseline.json"
    assert run_module(base_args(tmp_path, store_as_baseline=str(stored)))["_rc"] == 0
    before = stored.read_text()
    real_replace = os.replace

    def denied(src, dst):
        if dst == str(stored):
            raise PermissionError(13, "Permission denied")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", denied)
    result = run_module(base_args(tmp_path / "again", store_as_baseline=str(stored),
                                  records={h: records(tpot_factor=2.0) for h in HOSTS}))
    monkeypatch.undo()
    assert result["_rc"] == 1
    assert "could not write %s: Permission denied" % stored in result["msg"]
    assert stored.read_text() == before
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".baseline.json.")]


# ------------------------------------------- hosts the play lost before the report (issue 15)

def test_a_host_lost_mid_run_is_unreachable_and_the_others_are_whole(tmp_path, run_module):
    recs = {h: {"records": records()} for h in HOSTS if h != "gpu-02"}
    # as the role passes them: every host, with an empty entry for the hosts without a stage failure
    result = run_module(base_args(tmp_path, records=recs, lost_hosts=["gpu-02"],
                                  host_status={h: {} for h in HOSTS},
                                  validation={h: {"changed": False, "checked": []} for h in HOSTS}))
    assert result["_rc"] == 0, result.get("msg")
    by_host = {e["host"]: e for e in result["report"]["hosts"]}
    assert by_host["gpu-02"]["status"] == "stage_failed"
    assert by_host["gpu-02"]["stage_status"] == "unreachable"
    assert "sglang_benchmark_host_results_dir/r1" in by_host["gpu-02"]["error"]
    assert [by_host[h]["status"] for h in ("gpu-01", "gpu-03")] == ["ok", "ok"]
    assert result["verdict"] == "incomplete"
    assert any(line.startswith("gpu-02: run unreachable: the controller lost this host")
               for line in result["incomplete"])


def test_a_host_refused_by_validate_is_named_with_its_reason(tmp_path, run_module):
    recs = {h: {"records": records()} for h in HOSTS if h != "gpu-03"}
    refused = {"failed": True, "msg": "invalid input, nothing was changed on gpu-03:\n- sglang_port: 0"}
    result = run_module(base_args(tmp_path, records=recs, lost_hosts=["gpu-03"],
                                  validation={"gpu-03": refused}))
    entry = result["report"]["hosts"][2]
    assert (entry["stage"], entry["stage_status"]) == ("validate", "failed")
    assert "sglang_port: 0" in entry["error"]


def test_a_recorded_stage_failure_wins_over_lost(tmp_path, run_module):
    recs = {h: {"records": records()} for h in HOSTS if h != "gpu-02"}
    failure = {"stage": "server", "status": "failed", "error": "health check timed out"}
    result = run_module(base_args(tmp_path, records=recs, lost_hosts=["gpu-02"],
                                  host_status={"gpu-02": failure}))
    entry = result["report"]["hosts"][1]
    assert (entry["stage"], entry["stage_status"], entry["error"]) == ("server", "failed", "health check timed out")
