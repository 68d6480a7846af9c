"""module_utils/_rocm_health.py: firmware, PCIe, RAS, XGMI and kernel-log facts from fake host trees."""
import errno
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures" / "rocm"))
from rocm_harness import build_host, fixture_text, kmsg_record, write_health  # noqa: E402

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _rocm, _rocm_health  # noqa: E402

HEALTHY = {}


def gather(tree, **kwargs):
    return _rocm.gather(tree.sysfs_root, tree.dev_root, tree.proc_root, **kwargs)


def pci_dir(tree, bus=0x05):
    return Path(tree.sysfs_root) / ("bus/pci/devices/0000:%02x:00.0" % bus)


@pytest.mark.parametrize("text, ue, ce, problem", [
    ("ue: 0\nce: 0\n", 0, 0, None),
    ("ue: 2\nce: 317\n", 2, 317, None),
    ("Query currently inaccessible\n", None, None, "Query currently inaccessible"),
    ("ue: 1\n", None, None, "ue: 1"),
    ("", None, None, "empty"),
    (None, None, None, "unreadable"),
])
def test_ras_counter_is_never_zero_when_it_could_not_be_read(text, ue, ce, problem):
    assert _rocm_health.parse_ras_count(text) == (ue, ce, problem)


@pytest.mark.parametrize("text, speed, gen", [
    ("32.0 GT/s PCIe", 32.0, 5), ("16.0 GT/s PCIe", 16.0, 4), ("2.5 GT/s PCIe", 2.5, 1), ("Unknown", None, None),
])
def test_link_speed_and_generation(text, speed, gen):
    assert _rocm_health.parse_speed(text) == speed
    assert _rocm_health.pcie_generation(speed) == gen


def test_kmsg_record_format_and_boot_args():
    assert _rocm_health.parse_kmsg_record("6,12,5012000,-;amdgpu 0000:05:00.0: amdgpu: GPU reset begin!") == (
        5012000, "amdgpu 0000:05:00.0: amdgpu: GPU reset begin!")
    assert _rocm_health.parse_kmsg_record(" SUBSYSTEM=pci") is None
    assert _rocm_health.kernel_args("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro iommu=pt pci=realloc=off quiet") == [
        "iommu=pt", "pci=realloc=off"]


def test_healthy_host_health_facts(tmp_path):
    facts = gather(build_host(tmp_path, health=HEALTHY))
    gpu = facts["gpus"][0]
    # the hex fw_version file and the KFD node's decimal property are the same MEC version
    assert gpu["firmware"] == {"mec": 177, "sdma": 22, "smc": 0x557300}
    assert gpu["mec_firmware"] == 177 and gpu["kfd_fw_version"] == 177
    assert gpu["vbios_version"] == "113-M3000100-102"
    assert gpu["pcie"]["link"] == {"address": "0000:05:00.0", "current_speed_gts": 32.0, "max_speed_gts": 32.0,
                                   "current_width": 16, "max_width": 16, "source": "sysfs endpoint", "generation": 5}
    assert gpu["ras"] == {"exposed": True, "bad_pages": 0, "bad_pages_error": None,
                          "blocks": dict.fromkeys(("gfx", "sdma", "umc"), {"ue": 0, "ce": 0, "error": None})}
    assert gpu["xgmi"] is None
    assert facts["kernel_args"] == ["amd_iommu=on", "iommu=pt", "pci=realloc=off"]
    assert facts["uptime_seconds"] == 86400.0
    assert facts["kernel_log"]["readable"] and facts["kernel_log"]["events"] == []
    assert facts["errors"] == []


def test_mec_falls_back_to_the_kfd_property_without_the_fw_version_directory(tmp_path):
    old = gather(build_host(tmp_path / "old", gpus=1, health={"mec": 166}))["gpus"][0]
    assert old["firmware"]["mec"] == 166 and old["kfd_fw_version"] == 166
    facts = gather(build_host(tmp_path / "kfd-only", gpus=1, health={"mec": None}))
    assert facts["gpus"][0]["firmware"] == {} and facts["gpus"][0]["mec_firmware"] == 166  # the capture's value


def test_root_port_link_is_judged_when_the_endpoint_shows_an_internal_link(tmp_path):
    tree = build_host(tmp_path, gpus=1)
    devices = Path(tree.sysfs_root) / "devices/pci0000:00"
    root_port, endpoint = devices / "0000:00:01.1", devices / "0000:00:01.1/0000:01:00.0/0000:05:00.0"
    write_health(endpoint, link=("2.5 GT/s PCIe", "16", "2.5 GT/s PCIe", "16"))  # internal link of the package switch
    write_health(root_port, mec=None, vbios=None, ras={}, bad_pages=None, link=("16.0 GT/s PCIe", "16", "32.0 GT/s PCIe", "16"))
    (endpoint.parent / "current_link_speed").write_text("2.5 GT/s PCIe\n")  # the switch port in between
    link = _rocm_health.pcie_links(_rocm._Reader(), str(endpoint))
    assert link["endpoint"]["current_speed_gts"] == 2.5
    assert link["upstream"]["address"] == "0000:00:01.1" and link["link"]["source"] == "sysfs root port"
    assert link["link"]["current_speed_gts"] == 16.0 and link["link"]["max_speed_gts"] == 32.0


def test_amd_smi_link_wins_and_a_timed_out_amd_smi_falls_back_to_sysfs(tmp_path):
    tree = build_host(tmp_path, health=HEALTHY)
    outputs = {
        ("version", "--json"): (0, fixture_text("amd_smi_version_rocm7.json"), ""),
        ("list", "--json"): (0, fixture_text("amd_smi_list_rocm6.json"), ""),
        ("static", "--asic", "--vram", "--json"): (0, fixture_text("amd_smi_static_rocm7.json"), ""),
        ("metric", "--pcie", "--json"): (0, fixture_text("amd_smi_metric_pcie_rocm7.json"), ""),
    }
    smi = _rocm.collect_smi("auto", lambda name: "/opt/rocm/bin/" + name if name == "amd-smi" else None,
                            lambda argv: outputs[tuple(argv[1:])])
    facts = gather(tree, smi=smi)
    links = [g["pcie"]["link"] for g in facts["gpus"]]
    assert {link["source"] for link in links} == {"amd-smi"}
    assert links[3]["current_width"] == 8 and links[3]["max_width"] == 16  # amd-smi's x8, sysfs's max

    # amd-smi that hangs: coreutils timeout ends it with 124 and no output
    outputs[("metric", "--pcie", "--json")] = (124, "", "")
    smi = _rocm.collect_smi("auto", lambda name: "/opt/rocm/bin/" + name if name == "amd-smi" else None,
                            lambda argv: outputs[tuple(argv[1:])])
    facts = gather(tree, smi=smi)
    assert "metric --pcie" in smi["error"]
    assert {g["pcie"]["link"]["source"] for g in facts["gpus"]} == {"sysfs endpoint"}
    assert {g["pcie"]["link"]["current_width"] for g in facts["gpus"]} == {16}


def test_unreadable_and_inaccessible_counters_are_unknown_and_recorded(tmp_path):
    tree = build_host(tmp_path, gpus=2, health=HEALTHY)
    write_health(pci_dir(tree, 0x26), ras={"umc": "Query currently inaccessible"}, bad_pages=None)
    (pci_dir(tree, 0x26) / "ras/gpu_vram_bad_pages").write_text("Query currently inaccessible\n")
    denied = pci_dir(tree) / "ras/sdma_err_count"
    real_open = open

    def fake_open(path, *args, **kwargs):
        if str(path) == str(denied):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)
    import builtins
    builtins.open = fake_open
    try:
        facts = gather(tree)
    finally:
        builtins.open = real_open
    first, second = facts["gpus"][0]["ras"], facts["gpus"][1]["ras"]
    assert first["blocks"]["sdma"] == {"ue": None, "ce": None, "error": "unreadable"}
    assert {"path": str(denied), "error": "permission denied"} in facts["errors"]
    assert second["blocks"]["umc"] == {"ue": None, "ce": None, "error": "Query currently inaccessible"}
    assert second["bad_pages"] is None and second["bad_pages_error"] == "Query currently inaccessible"


def test_ras_counts_and_bad_pages(tmp_path):
    tree = build_host(tmp_path, gpus=2, health=HEALTHY)
    write_health(pci_dir(tree, 0x26), ras={"umc": "ue: 3\nce: 1200", "gfx": "ue: 0\nce: 0"}, bad_pages=5)
    ras = gather(tree)["gpus"][1]["ras"]
    assert ras["blocks"]["umc"] == {"ue": 3, "ce": 1200, "error": None} and ras["bad_pages"] == 5


def test_xgmi_where_exposed(tmp_path):
    tree = build_host(tmp_path, gpus=1, health=HEALTHY)
    (pci_dir(tree) / "xgmi_hive_info").mkdir()
    (pci_dir(tree) / "xgmi_hive_info/xgmi_hive_id").write_text("10631624818852212319\n")
    (pci_dir(tree) / "xgmi_physical_id").write_text("0\n")
    (pci_dir(tree) / "xgmi_error").write_text("0\n")
    assert gather(tree)["gpus"][0]["xgmi"] == {"hive_id": "10631624818852212319", "physical_id": "0", "error_count": 0}


def test_kernel_log_resets_and_page_faults_with_their_lines(tmp_path):
    lines = [
        "Linux version 6.8.0-79-generic",
        "amdgpu 0000:05:00.0: amdgpu: SMU is initialized successfully!",
        "amdgpu 0000:26:00.0: amdgpu: [gfxhub] page fault (src_id:0 ring:24 vmid:8 pasid:32770)",
        "amdgpu 0000:26:00.0: amdgpu: GPU reset begin!",
        "usb 1-1: new high-speed USB device",
    ]
    tree = build_host(tmp_path, gpus=1, health={"kmsg": lines})
    log = gather(tree)["kernel_log"]
    assert log["readable"] and log["amdgpu_lines"] == 3 and log["resets"] == 1 and log["page_faults"] == 1
    assert [e["kind"] for e in log["events"]] == ["page_fault", "reset"]
    assert log["events"][1]["line"] == lines[3] and log["events"][1]["seconds"] == 5.003


def test_kernel_log_read_does_not_block_on_a_fifo_and_reports_absence(tmp_path):
    fifo = tmp_path / "dev" / "kmsg"
    fifo.parent.mkdir()
    os.mkfifo(str(fifo))
    writer = os.open(str(fifo), os.O_RDWR | os.O_NONBLOCK)  # a writer that never writes: a blocking read would hang
    try:
        os.write(writer, kmsg_record(0, "amdgpu 0000:05:00.0: amdgpu: GPU reset(2) succeeded!").encode())
        log = _rocm_health.kernel_log(str(tmp_path / "dev"))
    finally:
        os.close(writer)
    assert log["readable"] and log["resets"] == 1
    assert _rocm_health.kernel_log(str(tmp_path / "nowhere"))["error"] == "absent"
