"""The GPU-health checks (pcie_link, ecc_*, kernel_log, firmware_settings, iommu's kernel args) on fake host trees."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures" / "rocm"))
from rocm_harness import build_host, write_health  # noqa: E402
from test__preflight import check, evaluate  # noqa: E402

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _firmware_rules  # noqa: E402


def gpu_dir(tree, bus=0x26):
    return Path(tree.sysfs_root) / ("bus/pci/devices/0000:%02x:00.0" % bus)


def test_healthy_host_passes_the_health_checks(tmp_path):
    report = evaluate(build_host(tmp_path))
    for name in ("pcie_link", "ecc_uncorrectable", "ecc_correctable", "kernel_log", "firmware_settings", "iommu"):
        assert check(report, name)["status"] == "pass", check(report, name)
    assert check(report, "pcie_link")["observed"] == "8 GPUs at 32 GT/s x16 (sysfs endpoint)"
    assert report["firmware_env"] == {} and report["firmware_rules"] == []


def test_x8_link_on_an_mi300x_fails_naming_the_gpu_and_the_floor(tmp_path):
    tree = build_host(tmp_path)
    write_health(gpu_dir(tree), link=("32.0 GT/s PCIe", "8", "32.0 GT/s PCIe", "16"))
    result = check(evaluate(tree), "pcie_link")
    assert result["status"] == "fail"
    assert result["observed"] == "0000:26:00.0 (node 3) 32 GT/s x8 via sysfs endpoint, below 32 GT/s x16"
    assert "sglang_preflight_pcie_min_width" in result["expected"] and "lspci" in result["fix"]


def test_link_below_its_max_only_warns_off_mi300_or_with_the_floor_off(tmp_path):
    tree = build_host(tmp_path, kind="mi250")
    write_health(Path(tree.sysfs_root) / "bus/pci/devices/0000:c5:00.0", link=("8.0 GT/s PCIe", "16", "16.0 GT/s PCIe", "16"))
    result = check(evaluate(tree), "pcie_link")
    assert result["status"] == "warn" and "below max: 0000:c5:00.0 (node 3) 8 GT/s x16" in result["observed"]
    tree = build_host(tmp_path / "b")
    write_health(gpu_dir(tree), link=("16.0 GT/s PCIe", "16", "32.0 GT/s PCIe", "16"))
    assert check(evaluate(tree, pcie_min_speed_gts=0, pcie_min_width=0), "pcie_link")["status"] == "warn"


def test_unreadable_link_is_unknown_never_pass(tmp_path):
    tree = build_host(tmp_path)
    (gpu_dir(tree) / "current_link_width").write_text("\n")
    result = check(evaluate(tree), "pcie_link")
    assert result["status"] == "warn" and "link unknown (unreadable) on 0000:26:00.0 (node 3)" in result["observed"]


def test_no_link_files_is_not_applicable(tmp_path):
    assert check(evaluate(build_host(tmp_path, health=None)), "pcie_link")["status"] == "n/a"


def test_uncorrectable_errors_and_bad_pages_fail(tmp_path):
    tree = build_host(tmp_path)
    write_health(gpu_dir(tree), ras={"umc": "ue: 2\nce: 40", "gfx": "ue: 0\nce: 0"}, bad_pages=70)
    result = check(evaluate(tree), "ecc_uncorrectable")
    assert result["status"] == "fail"
    assert result["observed"] == ("0000:26:00.0 (node 3): umc ue 2, 0000:26:00.0 (node 3): 70 retired pages (threshold 64)")
    assert check(evaluate(tree, max_bad_pages=100), "ecc_uncorrectable")["observed"] == "0000:26:00.0 (node 3): umc ue 2"


@pytest.mark.parametrize("text", ["Query currently inaccessible", ""])
def test_inaccessible_counter_is_unknown_never_pass(tmp_path, text):
    tree = build_host(tmp_path)
    write_health(gpu_dir(tree), ras={"umc": text})
    for name in ("ecc_uncorrectable", "ecc_correctable"):
        result = check(evaluate(tree), name)
        assert result["status"] == "warn" and "0000:26:00.0 (node 3)" in result["observed"], result


def test_correctable_rate_per_day_of_uptime(tmp_path):
    tree = build_host(tmp_path, health={"uptime": 2 * 86400.0})
    write_health(gpu_dir(tree), ras={"umc": "ue: 0\nce: 500"})
    result = check(evaluate(tree), "ecc_correctable")
    assert result["status"] == "warn" and result["observed"] == "0000:26:00.0 (node 3): 500 in 2.0 days (250/day)"
    assert check(evaluate(tree, max_ce_per_day=300), "ecc_correctable")["status"] == "pass"
    assert check(evaluate(tree), "ecc_uncorrectable")["status"] == "pass"


def test_missing_acceptance_kernel_args_warn_with_the_grub_line(tmp_path):
    tree = build_host(tmp_path, cmdline="BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro iommu=pt quiet")
    result = check(evaluate(tree, kernel_params=["pci=realloc=off", "amd_iommu=on"]), "iommu")
    assert result["status"] == "warn" and result["observed"].endswith("missing pci=realloc=off amd_iommu=on")
    assert 'GRUB_CMDLINE_LINUX="iommu=pt quiet pci=realloc=off amd_iommu=on"' in result["fix"]


def test_missing_iommu_pt_still_fails_and_its_grub_line_has_every_missing_arg(tmp_path):
    tree = build_host(tmp_path, cmdline="ro quiet")
    result = check(evaluate(tree, kernel_params=["pci=realloc=off"]), "iommu")
    assert result["status"] == "fail" and 'GRUB_CMDLINE_LINUX="quiet iommu=pt pci=realloc=off"' in result["fix"]


def test_resets_and_page_faults_in_the_kernel_log_fail_with_the_lines(tmp_path):
    lines = ["amdgpu 0000:26:00.0: amdgpu: GPU reset begin!",
             "amdgpu 0000:26:00.0: amdgpu: [gfxhub] page fault (src_id:0 ring:24 vmid:8 pasid:32770)"]
    result = check(evaluate(build_host(tmp_path, health={"kmsg": lines})), "kernel_log")
    assert result["status"] == "fail"
    assert result["observed"] == "1 resets, 1 page faults: [5.0] %s | [5.0] %s" % tuple(lines)


def test_unreadable_kernel_log_is_unknown_never_pass(tmp_path):
    tree = build_host(tmp_path)
    Path(tree.dev_root, "kmsg").unlink()
    result = check(evaluate(tree), "kernel_log")
    assert result["status"] == "warn" and result["observed"].endswith("kmsg unreadable: absent")


def test_old_mec_firmware_applies_hsa_no_scratch_reclaim_on_that_host_only(tmp_path):
    old = evaluate(build_host(tmp_path / "old", health={"mec": 166}))
    new = evaluate(build_host(tmp_path / "new"))
    result = check(old, "firmware_settings")
    assert result["status"] == "warn"
    assert result["observed"].startswith("MEC firmware 166 on nodes 2-9, below 177: HSA_NO_SCRATCH_RECLAIM=1 applied (")
    assert old["firmware_env"] == {"HSA_NO_SCRATCH_RECLAIM": "1"} and new["firmware_env"] == {}
    assert old["firmware_rules"][0]["sources"] == list(_firmware_rules.RULES[0].sources)


def test_the_users_value_wins_and_the_report_says_so(tmp_path):
    report = evaluate(build_host(tmp_path, health={"mec": 166}), container_env={"HSA_NO_SCRATCH_RECLAIM": "0"})
    assert "HSA_NO_SCRATCH_RECLAIM=0 from sglang_env wins over 1" in check(report, "firmware_settings")["observed"]


def test_firmware_rules_ignore_other_targets_and_unknown_versions():
    gpus = [{"node": 2, "gfx": "gfx90a", "mec_firmware": 78}, {"node": 3, "gfx": "gfx942", "mec_firmware": None}]
    assert _firmware_rules.evaluate({"gpus": gpus}) == []
    applied = _firmware_rules.evaluate({"gpus": [{"node": 2, "gfx": "gfx942", "mec_firmware": 176}]})
    assert _firmware_rules.env_defaults(applied) == {"HSA_NO_SCRATCH_RECLAIM": "1"}
    assert _firmware_rules.evaluate({"gpus": [{"node": 2, "gfx": "gfx942", "mec_firmware": 177}]}) == []


def test_every_rule_has_sources_and_a_reason():
    for rule in _firmware_rules.RULES:
        assert rule.sources and rule.why and rule.env and rule.gfx
