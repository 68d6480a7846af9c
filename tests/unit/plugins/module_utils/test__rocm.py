"""module_utils/_rocm.py: facts from fake host trees built from the research notes' values."""
import errno
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures" / "rocm"))
from rocm_harness import MI300X_VRAM, build_host, fixture_text  # noqa: E402

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _rocm  # noqa: E402


HEALTH_KEYS = ("firmware", "mec_firmware", "kfd_fw_version", "vbios_version", "pcie", "ras", "xgmi")


def gather(tree, **kwargs):
    return _rocm.gather(tree.sysfs_root, tree.dev_root, tree.proc_root, **kwargs)


@pytest.mark.parametrize("version, name", [
    (90402, "gfx942"), (90010, "gfx90a"), (90008, "gfx908"), (90500, "gfx950"),
    (90401, "gfx941"), (110001, "gfx1101"), (0, None), (None, None),
])
def test_gfx_name_prints_the_stepping_as_hex(version, name):
    assert _rocm.gfx_name(version) == name


def test_parse_properties_reads_the_mi300x_capture_as_a_map():
    props = _rocm.parse_properties(fixture_text("mi300x_node_properties"))
    assert props["gfx_target_version"] == 90402
    assert props["simd_count"] == 1216 and props["num_xcc"] == 8
    assert props["hive_id"] == 10631624818852212319  # 64-bit values survive
    assert props["local_mem_size"] == 0  # why VRAM never comes from here
    assert "capability2" not in props  # older capture: parse by key, never by position


@pytest.mark.parametrize("location, domain, bdf", [
    (9728, 0, "0000:26:00.0"), (18176, 0, "0000:47:00.0"), (0x2603, 1, "0001:26:00.3"), (0, 0, None),
])
def test_location_id_decodes_to_a_pci_address(location, domain, bdf):
    assert _rocm.location_to_bdf(location, domain) == bdf


def test_amd_smi_rocm6_list_and_rocm7_gpu_data_shapes_parse_the_same():
    rocm6 = _rocm.parse_amd_smi_json(fixture_text("amd_smi_static_rocm6.json"))
    rocm7 = _rocm.parse_amd_smi_json(fixture_text("amd_smi_static_rocm7.json"))
    assert rocm6 == rocm7
    assert len(rocm7) == 8 and rocm7[0]["asic"]["target_graphics_version"] == "gfx942"


def test_amd_smi_json_after_a_warning_line_and_before_trailing_text():
    parsed = _rocm.parse_amd_smi_json(fixture_text("amd_smi_static_rocm7_warning.txt") + "\nextra text\n")
    assert len(parsed) == 8


def test_amd_smi_output_without_json_is_an_error():
    with pytest.raises(ValueError):
        _rocm.parse_amd_smi_json("ERROR: amdgpu driver not initialized [x] (check dmesg)\n")


def test_amd_smi_version_both_generations():
    assert _rocm.parse_amd_smi_version(fixture_text("amd_smi_version_rocm7.json"))["amdgpu_version"] == "6.16.6"
    assert _rocm.parse_amd_smi_version(fixture_text("amd_smi_version_rocm6.json"))["rocm_version"] == "6.3.1"


def test_rocm_smi_cards_with_their_vram_and_target():
    cards = _rocm.parse_rocm_smi_json(fixture_text("rocm_smi_mi300x.json"))
    assert [c["gpu"] for c in cards] == list(range(8))
    assert cards[0] == {"gpu": 0, "market_name": "AMD Instinct MI300X", "target_graphics_version": "gfx942",
                        "vram_total_bytes": 205822885888}


def test_rocm_smi_no_data_warning_is_not_json():
    with pytest.raises(ValueError):
        _rocm.parse_rocm_smi_json(fixture_text("rocm_smi_no_data.txt"))


def test_healthy_mi300x_host(tmp_path):
    facts = gather(build_host(tmp_path))
    assert facts["amdgpu_loaded"] and facts["amdgpu_initstate"] == "live"
    assert facts["driver_version"] == "6.14.14"
    assert facts["kfd_present"] and facts["kfd_topology"]
    assert facts["gpu_count"] == 8 and facts["cpu_node_count"] == 2
    assert facts["numa_balancing"] == 0 and facts["iommu_passthrough"] is True
    assert facts["dev_mem_present"] and facts["errors"] == [] and facts["unreadable_nodes"] == []
    first = dict((k, v) for k, v in facts["gpus"][0].items() if k not in HEALTH_KEYS)
    assert first == {
        "node": 2, "gpu_id": 28851, "name": "ip discovery", "gfx_target_version": 90402, "gfx": "gfx942",
        "vendor_id": 4098, "device_id": 29857, "pci_address": "0000:05:00.0", "render_minor": 128,
        "render_node": str(tmp_path / "dev/dri/renderD128"), "render_node_present": True,
        "vram_bytes": MI300X_VRAM, "vram_used_bytes": 0, "compute_partition": "SPX", "memory_partition": "NPS1",
        "num_xcc": 8, "simd_count": 1216, "uuid": "GPU-3cbe002bd3b6313d", "iommu_group_type": "identity",
    }
    # render minors step by 8 on MI300X: one DRM device plus 7 reserved for partitions per GPU
    assert [g["render_minor"] for g in facts["gpus"]] == list(range(128, 192, 8))
    assert len(facts["pci_gpus"]) == 8 and facts["pci_gpus"][0]["device_id"] == 0x74A1


def test_gpu_nodes_are_recognised_by_gpu_id_and_vram_by_mem_banks(tmp_path):
    tree = build_host(tmp_path, gpus=1)
    facts = gather(tree)
    assert [g["node"] for g in facts["gpus"]] == [2]  # nodes 0 and 1 are CPUs (gpu_id 0)
    assert facts["gpus"][0]["vram_bytes"] == MI300X_VRAM  # although local_mem_size is 0


def test_vram_falls_back_to_the_drm_counter_without_mem_banks(tmp_path):
    facts = gather(build_host(tmp_path, gpus=2, mem_bank=False))
    assert [g["vram_bytes"] for g in facts["gpus"]] == [MI300X_VRAM] * 2


def test_node_without_gpu_id_file_uses_the_simd_fallback(tmp_path):
    tree = build_host(tmp_path, gpus=1)
    (Path(tree.sysfs_root) / "class/kfd/kfd/topology/nodes/2/gpu_id").unlink()
    (Path(tree.sysfs_root) / "class/kfd/kfd/topology/nodes/0/gpu_id").unlink()
    facts = gather(tree)
    assert [g["node"] for g in facts["gpus"]] == [2] and facts["cpu_node_count"] == 2


def test_gfx90a_host_has_no_partitions(tmp_path):
    facts = gather(build_host(tmp_path, kind="mi250"))
    assert {g["gfx"] for g in facts["gpus"]} == {"gfx90a"}
    assert {g["name"] for g in facts["gpus"]} == {"aldebaran"}
    assert {(g["compute_partition"], g["memory_partition"]) for g in facts["gpus"]} == {(None, None)}
    assert [g["render_minor"] for g in facts["gpus"]] == list(range(128, 136))


def test_missing_render_node_is_reported_per_gpu(tmp_path):
    facts = gather(build_host(tmp_path, missing_render=(136,)))
    present = dict((g["render_minor"], g["render_node_present"]) for g in facts["gpus"])
    assert present[136] is False and sum(present.values()) == 7


def test_cpx_nps4_partitions_map_every_logical_gpu_to_its_physical_pci_function(tmp_path):
    facts = gather(build_host(tmp_path, partition=("CPX", "NPS4")))
    assert facts["gpu_count"] == 64
    assert len({g["pci_address"] for g in facts["gpus"]}) == 8
    assert {g["pci_address"][-1] for g in facts["gpus"]} == {"0"}
    assert {(g["compute_partition"], g["memory_partition"]) for g in facts["gpus"]} == {("CPX", "NPS4")}
    assert {g["vram_bytes"] for g in facts["gpus"]} == {MI300X_VRAM // 8}


def test_permission_denied_is_recorded_and_the_node_is_not_counted(tmp_path, monkeypatch):
    tree = build_host(tmp_path)
    real_open = open

    def kfd_open(path, *args, **kwargs):
        # KFD answers EPERM for a GPU outside the caller's device cgroup
        if "/topology/nodes/3/" in str(path):
            raise PermissionError(errno.EPERM, "Operation not permitted", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(_rocm, "open", kfd_open, raising=False)
    facts = gather(tree)
    assert facts["gpu_count"] == 7 and facts["unreadable_nodes"] == [3]
    assert {e["error"] for e in facts["errors"]} == {"operation not permitted"}
    assert any(e["path"].endswith("nodes/3/properties") for e in facts["errors"])


def test_host_without_amdgpu_still_lists_its_pci_gpus(tmp_path):
    facts = gather(build_host(tmp_path, amdgpu=False))
    assert not facts["amdgpu_loaded"] and facts["driver_version"] is None
    assert not facts["kfd_present"] and not facts["kfd_exists"] and facts["gpu_count"] == 0
    assert len(facts["pci_gpus"]) == 8 and facts["pci_scanned"]
    assert facts["errors"] == []  # absent files are facts, not errors


def test_inbox_driver_has_no_version(tmp_path):
    facts = gather(build_host(tmp_path, dkms=None))
    assert facts["driver_version"] is None and facts["driver_srcversion"] == "6CCB5408246071AC9F63359"


def test_numa_on_and_no_iommu_pt(tmp_path):
    facts = gather(build_host(tmp_path, numa_balancing=1, cmdline="ro quiet pci=realloc=off"))
    assert facts["numa_balancing"] == 1
    assert facts["iommu_passthrough"] is False
    assert {g["iommu_group_type"] for g in facts["gpus"]} == {"DMA-FQ"}


def test_kfd_processes_are_listed(tmp_path):
    tree = build_host(tmp_path, gpus=1)
    for pid in ("4242", "77"):
        (Path(tree.sysfs_root) / "class/kfd/kfd/proc" / pid).mkdir(parents=True)
    assert gather(tree)["kfd_processes"] == [4242, 77]


@pytest.mark.parametrize("layout, expected", [
    ({"rocm/.info/version": "6.0.0-12568\n"}, ("6.0.0-12568", "rocm/.info/version")),
    ({"rocm/core-7.0.2/.info/version": "7.0.2\n"}, ("7.0.2", "rocm/core-7.0.2/.info/version")),
    ({"rocm-6.3.1/.info/version": "6.3.1\n"}, ("6.3.1", "rocm-6.3.1/.info/version")),
    ({}, (None, None)),
])
def test_host_rocm_version(tmp_path, layout, expected):
    tree = build_host(tmp_path / "host", gpus=0, amdgpu=False)
    opt = tmp_path / "opt"
    opt.mkdir()
    for rel, text in layout.items():
        (opt / rel).parent.mkdir(parents=True, exist_ok=True)
        (opt / rel).write_text(text)
    facts = gather(tree, rocm_path=str(opt / "rocm"))
    found = (facts["rocm_version"], facts["rocm_version_file"] and str(Path(facts["rocm_version_file"]).relative_to(opt)))
    assert found == expected


class FakeTools:
    """which/run boundary for collect_smi: canned outputs per argv, and the calls made."""

    def __init__(self, present, outputs):
        self.present, self.outputs, self.calls = present, outputs, []

    def which(self, name):
        return "/opt/rocm/bin/" + name if name in self.present else None

    def run(self, argv):
        self.calls.append(argv)
        return self.outputs[tuple(argv[1:])]


def test_collect_amd_smi_rocm7():
    tools = FakeTools({"amd-smi"}, {
        ("version", "--json"): (0, fixture_text("amd_smi_version_rocm7.json"), ""),
        ("list", "--json"): (0, fixture_text("amd_smi_list_rocm6.json"), ""),
        ("static", "--asic", "--vram", "--json"): (0, fixture_text("amd_smi_static_rocm7_warning.txt"), ""),
        ("metric", "--pcie", "--json"): (0, fixture_text("amd_smi_metric_pcie_rocm7.json"), ""),
    })
    smi = _rocm.collect_smi("auto", tools.which, tools.run)
    assert smi["tool"] == "amd-smi" and smi["error"] is None
    assert smi["version"]["rocm_version"] == "7.0.2"
    assert smi["gpus"][0] == {"gpu": 0, "bdf": "0000:05:00.0", "uuid": "8dff74a1-0000-1000-8000-8d1457e2c20f",
                              "kfd_id": 28851, "node_id": 2, "market_name": "AMD Instinct MI300X",
                              "target_graphics_version": "gfx942", "vram_total_bytes": 196592 << 20,
                              "pcie_width": 16, "pcie_speed_gts": 32}
    assert smi["gpus"][3]["pcie_width"] == 8
    assert tools.calls == [["/opt/rocm/bin/amd-smi", "version", "--json"], ["/opt/rocm/bin/amd-smi", "list", "--json"],
                           ["/opt/rocm/bin/amd-smi", "static", "--asic", "--vram", "--json"],
                           ["/opt/rocm/bin/amd-smi", "metric", "--pcie", "--json"]]


def test_collect_amd_smi_failure_is_reported_not_raised():
    tools = FakeTools({"amd-smi"}, {
        ("version", "--json"): (0, fixture_text("amd_smi_version_rocm6.json"), ""),
        ("list", "--json"): (1, "", "amdgpu driver not initialized"),
        ("static", "--asic", "--vram", "--json"): (0, fixture_text("amd_smi_static_rocm6.json"), ""),
        ("metric", "--pcie", "--json"): (124, "", ""),
    })
    smi = _rocm.collect_smi("auto", tools.which, tools.run)
    assert smi["gpus"] == [] and "amd-smi list --json" in smi["error"] and "not initialized" in smi["error"]


def test_collect_falls_back_to_rocm_smi_in_auto_mode():
    tools = FakeTools({"rocm-smi"}, {
        ("--showproductname", "--showmeminfo", "vram", "--json"): (0, fixture_text("rocm_smi_mi300x.json"), ""),
    })
    smi = _rocm.collect_smi("auto", tools.which, tools.run)
    assert smi["tool"] == "rocm-smi" and len(smi["gpus"]) == 8 and smi["error"] is None


def test_collect_never_runs_nothing_and_always_requires_amd_smi():
    tools = FakeTools(set(), {})
    assert _rocm.collect_smi("never", tools.which, tools.run)["tool"] is None
    assert _rocm.collect_smi("auto", tools.which, tools.run)["error"] is None
    assert "amd-smi was not found" in _rocm.collect_smi("always", tools.which, tools.run)["error"]
    assert tools.calls == []


def test_disk_space_of_a_directory_not_created_yet(tmp_path):
    disk = _rocm.disk_space(str(tmp_path / "cache" / "sglang"))
    assert disk["measured_at"] == str(tmp_path) and disk["exists"] is False
    assert disk["free_bytes"] > 0 and disk["total_bytes"] >= disk["free_bytes"]


def test_root_error_names_option_variable_host_and_fix():
    message = _rocm.root_error("proc_root", "/nope", "sglang_preflight_proc_root", "gpu07")
    assert message.startswith("sglang_preflight_proc_root (option proc_root) on host gpu07: got '/nope'")
    assert "/host/proc" in message and "Fix: set sglang_preflight_proc_root" in message
