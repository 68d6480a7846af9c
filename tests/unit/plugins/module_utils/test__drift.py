"""module_utils/_drift.py: the odd host out by majority, per GPU device id; no majority, no pick."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures" / "rocm"))
from rocm_harness import build_host  # noqa: E402

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _drift, _rocm  # noqa: E402


def versions(device="0x74a1", **facts):
    base = {"driver": "6.14.14", "fw.mec": "177", "vbios": "113-M3000100-102", "kernel_args": "iommu=pt pci=realloc=off"}
    base.update(facts)
    return {"device": device, "facts": dict((k, v) for k, v in base.items() if v is not None)}


def test_versioned_facts_of_a_host(tmp_path):
    facts = _rocm.gather(*build_host(tmp_path, health={"mec": 166}).roots.values())
    found = _drift.versioned_facts(facts, {"version": "27.5.1"})
    assert found == {"device": "0x74a1", "facts": {
        "driver": "6.14.14", "vbios": "113-M3000100-102", "kernel": "6.8.0-79-generic",
        "kernel_args": "amd_iommu=on iommu=pt pci=realloc=off", "docker": "27.5.1",
        "fw.mec": "166", "fw.sdma": "22", "fw.smc": "5600000"}}


def test_the_image_a_host_holds_is_compared_and_a_host_without_it_is_not(tmp_path):
    facts = _rocm.gather(*build_host(tmp_path).roots.values())
    held = _drift.versioned_facts(facts, {"version": "27.5.1", "image": {"present": True, "id": "6ef053024a65"}})
    absent = _drift.versioned_facts(facts, {"version": "27.5.1", "image": {"present": False, "id": None}})
    assert held["facts"]["image"] == "6ef053024a65" and "image" not in absent["facts"]
    other = dict(held, facts=dict(held["facts"], image="1e56c4d79ed4"))
    result = _drift.drift([("gpu01", held), ("gpu02", held), ("gpu03", other), ("gpu04", absent)])
    assert [(f["host"], f["fact"], f["value"], f["majority"], f["majority_hosts"], f["hosts"]) for f in result["findings"]] == [
        ("gpu03", "image", "1e56c4d79ed4", "6ef053024a65", 2, 3)]


def test_the_odd_host_is_named_with_its_value_and_the_majority():
    result = _drift.drift([("gpu01", versions()), ("gpu02", versions(**{"fw.mec": "166"})),
                           ("gpu03", versions()), ("gpu04", versions())])
    assert result["findings"] == [{"host": "gpu02", "device": "0x74a1", "fact": "fw.mec", "value": "166",
                                   "majority": "177", "majority_hosts": 3, "hosts": 4, "status": "warn"}]
    assert _drift.finding_text(result["findings"][0]) == "fw.mec 166, majority 177 (3 of 4 hosts with device 0x74a1)"
    assert result["failed_hosts"] == [] and result["no_majority"] == []


def test_two_hosts_that_disagree_have_no_majority_and_none_is_picked():
    result = _drift.drift([("gpu01", versions(driver="6.12.12")), ("gpu02", versions())])
    assert result["findings"] == []
    assert result["no_majority"] == [{"device": "0x74a1", "fact": "driver", "hosts": 2,
                                      "values": {"6.12.12": ["gpu01"], "6.14.14": ["gpu02"]}}]
    assert _drift.no_majority_text(result["no_majority"][0]) == (
        "driver: no majority among 2 hosts with device 0x74a1, none picked (6.12.12 on gpu01; 6.14.14 on gpu02)")


def test_groups_by_device_id_and_a_lone_host_is_not_compared():
    result = _drift.drift([("gpu01", versions()), ("gpu02", versions()), ("gpu03", versions(device="0x740c", driver="5.0")),
                           ("gpu04", versions(device=_drift.DEVICE_NONE, driver=None))])
    assert result["findings"] == [] and result["no_majority"] == []
    assert [(g["device"], g["alone"]) for g in result["groups"]] == [("0x740c", True), ("0x74a1", False),
                                                                     (_drift.DEVICE_NONE, True)]


def test_under_limit_only_the_hosts_that_ran_count_and_hosts_without_a_report_are_left_out():
    result = _drift.drift([("gpu01", versions()), ("gpu02", versions()), ("gpu03", versions(vbios="113-OLD")),
                           ("gpu09", None)])
    assert [(f["host"], f["majority_hosts"], f["hosts"]) for f in result["findings"]] == [("gpu03", 2, 3)]


def test_a_fact_listed_to_fail_fails_the_host():
    result = _drift.drift([("gpu01", versions()), ("gpu02", versions()), ("gpu03", versions(driver="6.8"))],
                          fail_facts=["driver"])
    assert result["findings"][0]["status"] == "fail" and result["failed_hosts"] == ["gpu03"]


def test_an_unknown_fact_is_not_compared():
    result = _drift.drift([("gpu01", versions()), ("gpu02", versions()), ("gpu03", versions(vbios=None))])
    assert result["findings"] == []
