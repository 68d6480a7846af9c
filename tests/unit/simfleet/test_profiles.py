"""The fake ROCm host trees: each profile writes what rocm_host.md says a real host shows."""
import os
import stat

import pytest

from simfleet import profiles

KFD_NODES = "sys/class/kfd/kfd/topology/nodes"


def props(path):
    """A KFD `properties` file as a dict; order-insensitive, as parsers must be."""
    return {key: int(value) for key, value in (line.split() for line in path.read_text().splitlines())}


def kfd_nodes(root):
    nodes = root / KFD_NODES
    return sorted(nodes.iterdir(), key=lambda p: int(p.name)) if nodes.exists() else []


def gpu_nodes(root):
    return [n for n in kfd_nodes(root) if (n / "gpu_id").read_text().strip() != "0"]


def build(tmp_path, name):
    plan = profiles.build_tree(tmp_path, profiles.get_profile(name))
    return {node.path for node in plan}


def test_healthy_mi300x_matches_reference_values(tmp_path):
    planned = build(tmp_path, "mi300x-8gpu")

    nodes = kfd_nodes(tmp_path)
    assert [n.name for n in nodes] == [str(i) for i in range(10)]     # CPU nodes come first
    for cpu in nodes[:2]:
        assert (cpu / "gpu_id").read_text() == "0\n"
        assert props(cpu / "properties")["cpu_cores_count"] == 96
        assert props(cpu / "properties")["simd_count"] == 0
    gpus = gpu_nodes(tmp_path)
    assert len(gpus) == 8
    for index, node in enumerate(gpus):
        values = props(node / "properties")
        assert values["gfx_target_version"] == 90402
        assert values["vendor_id"] == 4098
        assert values["device_id"] == 29857
        assert values["num_xcc"] == 8
        assert values["local_mem_size"] == 0                           # always 0 on current drivers
        assert values["drm_render_minor"] == 128 + 8 * index            # minors step by 8 on MI300X
        assert props(node / "mem_banks/0/properties")["size_in_bytes"] == 206141652992
        assert (node / "name").read_text() == "ip discovery\n"
        assert f"dri/renderD{values['drm_render_minor']}" in planned

    for pci in (tmp_path / "sys/bus/pci/devices").iterdir():
        assert (pci / "vendor").read_text() == "0x1002\n"
        assert (pci / "device").read_text() == "0x74a1\n"
        assert (pci / "current_compute_partition").read_text() == "SPX\n"
        assert (pci / "current_memory_partition").read_text() == "NPS1\n"
        assert (pci / "mem_info_vram_total").read_text() == "206141652992\n"
        assert (pci / "iommu_group/type").read_text() == "identity\n"
        assert (pci / "driver").resolve() == (tmp_path / "sys/bus/pci/drivers/amdgpu").resolve()

    assert (tmp_path / "sys/module/amdgpu/version").read_text() == "6.14.14\n"
    assert (tmp_path / "proc/sys/kernel/numa_balancing").read_text() == "0\n"
    assert "iommu=pt" in (tmp_path / "proc/cmdline").read_text().split()
    assert {"kfd", "mem"} <= planned
    # 8 minors reserved per GPU: 64 render nodes for 8 GPUs, so renderD* does not count GPUs
    assert len([p for p in planned if p.startswith("dri/renderD")]) == 64


def test_properties_follow_the_kernel_key_order(tmp_path):
    build(tmp_path, "mi300x-8gpu")
    keys = [line.split()[0] for line in (tmp_path / KFD_NODES / "2/properties").read_text().splitlines()]
    assert keys[:3] == ["cpu_cores_count", "simd_count", "mem_banks_count"]
    assert keys.index("gfx_target_version") < keys.index("drm_render_minor") < keys.index("unique_id")
    assert keys[-1] == "max_engine_clk_ccompute"
    cpu_keys = [line.split()[0] for line in (tmp_path / KFD_NODES / "0/properties").read_text().splitlines()]
    assert "unique_id" not in cpu_keys and cpu_keys[-1] == "max_engine_clk_ccompute"


def test_gpu_ids_are_distinct_and_nonzero(tmp_path):
    build(tmp_path, "cpx-partition")
    ids = [int((n / "gpu_id").read_text()) for n in gpu_nodes(tmp_path)]
    assert len(ids) == len(set(ids)) == 64 and 0 not in ids


def test_four_gpu_profile(tmp_path):
    build(tmp_path, "mi300x-4gpu")
    assert len(gpu_nodes(tmp_path)) == 4
    assert len(list((tmp_path / "sys/bus/pci/devices").iterdir())) == 4


def test_gfx90a_has_no_partition_files_and_contiguous_minors(tmp_path):
    planned = build(tmp_path, "mi250-gfx90a")
    gpus = gpu_nodes(tmp_path)
    assert len(gpus) == 8
    assert {props(n / "properties")["gfx_target_version"] for n in gpus} == {90010}
    assert [props(n / "properties")["drm_render_minor"] for n in gpus] == list(range(128, 136))
    assert (gpus[0] / "name").read_text() == "aldebaran\n"
    assert not list((tmp_path / "sys").rglob("current_compute_partition"))
    assert len([p for p in planned if p.startswith("dri/renderD")]) == 8


def test_no_amdgpu_keeps_pci_devices_only(tmp_path):
    planned = build(tmp_path, "no-amdgpu")
    assert planned == {"mem"}
    assert not (tmp_path / "sys/module/amdgpu").exists()
    assert not (tmp_path / "sys/class/kfd").exists()
    assert not (tmp_path / "sys/class/drm").exists()
    devices = list((tmp_path / "sys/bus/pci/devices").iterdir())
    assert len(devices) == 8                                             # lspci still sees them
    assert not any((d / "driver").exists() for d in devices)


def test_no_kfd_has_driver_and_render_nodes_but_no_kfd(tmp_path):
    planned = build(tmp_path, "no-kfd")
    assert (tmp_path / "sys/module/amdgpu").is_dir()
    assert not (tmp_path / "sys/class/kfd").exists()
    assert "kfd" not in planned and "dri/renderD128" in planned


def test_numa_balancing_on(tmp_path):
    build(tmp_path, "numa-balancing-on")
    assert (tmp_path / "proc/sys/kernel/numa_balancing").read_text() == "1\n"
    assert len(gpu_nodes(tmp_path)) == 8


def test_cpx_partition_exposes_eight_logical_gpus_per_device(tmp_path):
    planned = build(tmp_path, "cpx-partition")
    gpus = gpu_nodes(tmp_path)
    assert len(gpus) == 64
    values = [props(n / "properties") for n in gpus]
    assert sorted(v["drm_render_minor"] for v in values) == list(range(128, 192))
    assert {v["num_xcc"] for v in values} == {1}
    assert values[1]["location_id"] == values[0]["location_id"] | 1     # XCP id OR-ed in
    for pci in (tmp_path / "sys/bus/pci/devices").iterdir():
        assert (pci / "current_compute_partition").read_text() == "CPX\n"
        assert (pci / "current_memory_partition").read_text() == "NPS4\n"
    assert "kfd" in planned


def test_inbox_driver_has_module_without_version(tmp_path):
    build(tmp_path, "inbox-driver")
    assert (tmp_path / "sys/module/amdgpu/srcversion").exists()
    assert not (tmp_path / "sys/module/amdgpu/version").exists()


def test_no_iommu_pt(tmp_path):
    build(tmp_path, "no-iommu-pt")
    assert "iommu=pt" not in (tmp_path / "proc/cmdline").read_text().split()
    types = {p.read_text() for p in (tmp_path / "sys/kernel/iommu_groups").glob("*/type")}
    assert types == {"DMA-FQ\n"}


def test_rebuild_replaces_the_previous_tree(tmp_path):
    build(tmp_path, "mi300x-8gpu")
    (tmp_path / "sys/stray").write_text("left by a test")
    build(tmp_path, "no-amdgpu")
    assert not (tmp_path / "sys/stray").exists()
    assert not (tmp_path / KFD_NODES).exists()


def test_symlinks_are_relative_so_the_tree_can_move(tmp_path):
    build(tmp_path / "a", "mi300x-8gpu")
    os.rename(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "b/sys/class/drm/card0/device/vendor").read_text() == "0x1002\n"


def test_every_profile_builds_and_named_ones_exist(tmp_path):
    required = {"mi300x-8gpu", "mi300x-4gpu", "mi250-gfx90a", "no-amdgpu", "no-kfd", "numa-balancing-on",
                "cpx-partition"}
    assert required <= set(profiles.PROFILES)
    for name, profile in profiles.PROFILES.items():
        build(tmp_path / name, name)
        assert len(gpu_nodes(tmp_path / name)) == profile.logical_gpus


def test_unknown_profile_lists_known_ones():
    with pytest.raises(ValueError, match="mi300x-8gpu"):
        profiles.get_profile("mi400x")


def test_device_nodes_are_char_devices_with_dev_null_numbers(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mknod needs root (CAP_MKNOD); build_tree is covered by the other tests")
    profiles.install_tree(tmp_path, profiles.get_profile("mi300x-8gpu"))
    for path in (tmp_path / "dev/kfd", tmp_path / "dev/dri/renderD128", tmp_path / "dev/mem"):
        info = path.lstat()
        assert stat.S_ISCHR(info.st_mode)
        assert (os.major(info.st_rdev), os.minor(info.st_rdev)) == (1, 3)
        assert stat.S_IMODE(info.st_mode) == 0o660


def test_healthy_mi300x_health_files(tmp_path):
    build(tmp_path, "mi300x-8gpu")
    for node in gpu_nodes(tmp_path):
        assert props(node / "properties")["fw_version"] == 177        # the KFD copy, decimal
    pcis = sorted((tmp_path / "sys/bus/pci/devices").iterdir())
    for pci in pcis:
        assert (pci / "fw_version/mec_fw_version").read_text() == "0x000000b1\n"   # 177, hex
        assert (pci / "current_link_speed").read_text() == "32.0 GT/s PCIe\n"
        assert (pci / "current_link_width").read_text() == "16\n"
        assert (pci / "ras/umc_err_count").read_text() == "ue: 0\nce: 0\n"
        assert (pci / "ras/gpu_vram_bad_pages").read_text() == ""
        root_port = pci.resolve().parent
        assert root_port.name.startswith("0000:00:") and (root_port / "max_link_width").read_text() == "16\n"
    kmsg = (tmp_path / "dev/kmsg").read_text().splitlines()
    assert kmsg[0].startswith("6,0,1500000,-;Linux version") and all(";" in line for line in kmsg)
    assert "pci=realloc=off" in (tmp_path / "proc/cmdline").read_text()
    assert float((tmp_path / "proc/uptime").read_text().split()[0]) == 3 * 86400.0


@pytest.mark.parametrize("name, path, text", [
    ("mi300x-old-mec", "fw_version/mec_fw_version", "0x000000a6\n"),
    ("mi300x-x8-link", "current_link_width", "8\n"),
    ("mi300x-ecc-errors", "ras/umc_err_count", "ue: 2\nce: 1200\n"),
])
def test_odd_host_profiles_differ_in_one_fact(tmp_path, name, path, text):
    build(tmp_path, name)
    pcis = sorted((tmp_path / "sys/bus/pci/devices").iterdir())
    odd = [p.name for p in pcis if (p / path).read_text() == text]
    assert odd == ([p.name for p in pcis] if name == "mi300x-old-mec" else [pcis[3].name])
    if name == "mi300x-old-mec":
        assert {props(n / "properties")["fw_version"] for n in gpu_nodes(tmp_path)} == {166}


def test_missing_kernel_param_profile(tmp_path):
    build(tmp_path, "mi300x-no-realloc")
    cmdline = (tmp_path / "proc/cmdline").read_text().split()
    assert "pci=realloc=off" not in cmdline and "iommu=pt" in cmdline and "amd_iommu=on" in cmdline
