"""Fake ROCm host trees: named host profiles (pure data) and the generator that writes them.

A tree has three parts, mirroring what the collection reads through its host-root prefixes
(`sglang_preflight_sysfs_root`, `..._dev_root`, `..._proc_root`):

  sys/   KFD topology, /sys/module/amdgpu, DRM class entries, the GPUs' PCI devices
  dev/   kfd, dri/card*, dri/renderD*, mem: character nodes with /dev/null's numbers (1:3),
         so `docker run --device` accepts them and they are harmless inside a container
  proc/  cmdline, sys/kernel/numa_balancing, sys/kernel/osrelease, meminfo, uptime

GPU health (amdgpu's own sysfs names): fw_version/<block>_fw_version (hex; the KFD node's
fw_version property holds the MEC version in decimal), vbios_version, the PCIe link files on
the GPU and on its root port (sys/devices/pci0000:00/<root port>/<gpu>), ras/<block>_err_count
(`ue: N` / `ce: N`) and ras/gpu_vram_bad_pages; dev/kmsg is a regular file in /dev/kmsg's record
format (`pri,seq,ts_usec,flags;message`).

Values come from ../shared/reference/rocm_host.md (sections 1 and 7): the MI300X node is the
section 1.2 capture; gfx90a values are derived (no real capture exists), as marked below.
`build_tree` writes everything except the character nodes and returns them as a plan, so
it runs without root; `create_device_nodes` (root only) makes the nodes.
"""
from __future__ import annotations

import dataclasses
import grp
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

# Key order of kfd_topology.c node_show(): shared keys, GPU-only keys, then the last key.
_NODE_KEYS = (
    "cpu_cores_count", "simd_count", "mem_banks_count", "caches_count", "io_links_count",
    "p2p_links_count", "cpu_core_id_base", "simd_id_base", "max_waves_per_simd",
    "lds_size_in_kb", "gds_size_in_kb", "num_gws", "wave_front_size", "array_count",
    "simd_arrays_per_engine", "cu_per_simd_array", "simd_per_cu", "max_slots_scratch_cu",
    "gfx_target_version", "vendor_id", "device_id", "location_id", "domain", "drm_render_minor",
    "hive_id", "num_sdma_engines", "num_sdma_xgmi_engines", "num_sdma_queues_per_engine",
    "num_cp_queues",
)
_GPU_ONLY_KEYS = (
    "max_engine_clk_fcompute", "local_mem_size", "fw_version", "capability", "debug_prop",
    "sdma_fw_version", "unique_id", "num_xcc",
)
_LAST_KEY = "max_engine_clk_ccompute"

AMD_VENDOR_ID = 4098  # 0x1002
DRM_RENDER_MAJOR = 226
KFD_DEV = "510:0"  # the KFD char major is dynamic; 510 is one value seen in the wild
NULL_MAJOR, NULL_MINOR = 1, 3  # /dev/null: accepted by `docker run --device`, inert

# A CPU node (one per NUMA node), section 1.2 fixture.
CPU_NODE = {
    "cpu_cores_count": 96, "simd_count": 0, "mem_banks_count": 1, "caches_count": 0,
    "io_links_count": 5, "p2p_links_count": 3, "cpu_core_id_base": 0, "simd_id_base": 0,
    "max_waves_per_simd": 0, "lds_size_in_kb": 0, "gds_size_in_kb": 0, "num_gws": 0,
    "wave_front_size": 0, "array_count": 0, "simd_arrays_per_engine": 0, "cu_per_simd_array": 0,
    "simd_per_cu": 0, "max_slots_scratch_cu": 0, "gfx_target_version": 0, "vendor_id": 0,
    "device_id": 0, "location_id": 0, "domain": 0, "drm_render_minor": 0, "hive_id": 0,
    "num_sdma_engines": 0, "num_sdma_xgmi_engines": 0, "num_sdma_queues_per_engine": 0,
    "num_cp_queues": 0, "max_engine_clk_ccompute": 2400,
}
CPU_MEM_BANK = {"heap_type": 0, "size_in_bytes": 1081887653888, "flags": 0, "width": 64, "mem_clk_max": 4800}


@dataclass(frozen=True)
class GpuModel:
    """One kind of GPU: what its KFD node, PCI function and DRM nodes look like."""

    name: str                 # KFD node `name` (lower-cased asic name)
    pci_device: int           # PCI device id
    pci_class: str
    vram_bytes: int
    xcp: bool                 # GC 9.4.3+: partition files, 8 DRM minors reserved per GPU
    pci_buses: tuple          # one PCI bus per GPU, function 0
    node: dict                # GPU node properties; per-node keys are filled in by the generator
    first_gpu_id: int
    first_unique_id: int


MI300X = GpuModel(
    name="ip discovery",      # IP-discovery ASICs have no named asic_type
    pci_device=0x74A1,
    pci_class="0x120000",     # processing accelerator
    vram_bytes=206141652992,
    xcp=True,
    pci_buses=(0x05, 0x26, 0x46, 0x65, 0x85, 0xA6, 0xC6, 0xE5),
    node={
        "cpu_cores_count": 0, "simd_count": 1216, "mem_banks_count": 1, "caches_count": 626,
        "io_links_count": 7, "p2p_links_count": 1, "cpu_core_id_base": 0, "simd_id_base": 2147487784,
        "max_waves_per_simd": 8, "lds_size_in_kb": 64, "gds_size_in_kb": 0, "num_gws": 64,
        "wave_front_size": 64, "array_count": 32, "simd_arrays_per_engine": 1, "cu_per_simd_array": 10,
        "simd_per_cu": 4, "max_slots_scratch_cu": 32, "gfx_target_version": 90402,
        "vendor_id": AMD_VENDOR_ID, "device_id": 29857, "domain": 0, "hive_id": 10631624818852212319,
        "num_sdma_engines": 2, "num_sdma_xgmi_engines": 14, "num_sdma_queues_per_engine": 8,
        # The section 1.2 capture reads fw_version 166; the healthy bed runs MEC 177 (Profile.mec_firmware
        # replaces it), the mi300x-old-mec profile keeps 166.
        "num_cp_queues": 24, "max_engine_clk_fcompute": 2100, "local_mem_size": 0, "fw_version": 166,
        "capability": 746037888, "debug_prop": 1511, "sdma_fw_version": 22, "num_xcc": 8,
        "max_engine_clk_ccompute": 2400,
    },
    first_gpu_id=28851,
    first_unique_id=4376936076086227261,
)

# MI250X/MI250 graphics compute die: each GCD is its own PCI function, KFD node and render
# node. Derived values (section 1.3: no real capture was found): ids, gfx90a, 440 SIMDs.
MI250_GCD = GpuModel(
    name="aldebaran",
    pci_device=0x740C,
    pci_class="0x038000",     # display controller
    vram_bytes=68702699520,   # 64 GiB HBM2e per GCD, as reported (65520 MiB)
    xcp=False,
    pci_buses=(0xC1, 0xC6, 0xC9, 0xCE, 0xD1, 0xD6, 0xD9, 0xDE),
    node={
        "cpu_cores_count": 0, "simd_count": 440, "mem_banks_count": 1, "caches_count": 104,
        "io_links_count": 5, "p2p_links_count": 7, "cpu_core_id_base": 0, "simd_id_base": 2147487744,
        "max_waves_per_simd": 8, "lds_size_in_kb": 64, "gds_size_in_kb": 0, "num_gws": 64,
        "wave_front_size": 64, "array_count": 8, "simd_arrays_per_engine": 1, "cu_per_simd_array": 14,
        "simd_per_cu": 4, "max_slots_scratch_cu": 32, "gfx_target_version": 90010,
        "vendor_id": AMD_VENDOR_ID, "device_id": 29708, "domain": 0, "hive_id": 5918225932395611235,
        "num_sdma_engines": 2, "num_sdma_xgmi_engines": 3, "num_sdma_queues_per_engine": 8,
        "num_cp_queues": 24, "max_engine_clk_fcompute": 1700, "local_mem_size": 0, "fw_version": 78,
        "capability": 746029952, "debug_prop": 1495, "sdma_fw_version": 8, "num_xcc": 1,
        "max_engine_clk_ccompute": 2400,
    },
    first_gpu_id=53476,
    first_unique_id=1298032876145720433,
)

# Logical GPUs per physical GPU in each MI300X compute partition mode.
PARTITION_SPLIT = {"SPX": 1, "DPX": 2, "QPX": 4, "CPX": 8}

HEALTHY_CMDLINE = ("BOOT_IMAGE=/boot/vmlinuz-6.8.0-79-generic root=/dev/mapper/vg0-root ro "
                   "pci=realloc=off amd_iommu=on iommu=pt quiet")
GEN5_X16 = ("32.0 GT/s PCIe", "16", "32.0 GT/s PCIe", "16")  # current speed, width, max speed, width
# Firmware blocks besides MEC (hex files), values of an MI300X with MEC 177 (illustrative).
OTHER_FIRMWARE = {"sdma": 0x16, "smc": 0x557300, "rlc": 0x11, "sos": 0x210D0, "ta_ras": 0x1B000B01}
BOOT_KMSG = (
    "Linux version 6.8.0-79-generic (buildd@lcy02-amd64-049) #79-Ubuntu SMP PREEMPT_DYNAMIC",
    "amdgpu: Virtual CRAT table created for CPU",
    "[drm] amdgpu kernel modesetting enabled.",
    "amdgpu 0000:05:00.0: amdgpu: SMU is initialized successfully!",
    "amdgpu 0000:05:00.0: amdgpu: RAS: optional ras ta ucode is not available",
    "kfd kfd: amdgpu: added device 1002:74a1",
)


@dataclass(frozen=True)
class Profile:
    """A simulated host's GPU and kernel state."""

    name: str
    summary: str
    gpu: GpuModel | None = MI300X
    gpus: int = 8
    amdgpu_loaded: bool = True      # /sys/module/amdgpu, DRM nodes, driver links
    kfd: bool = True                # /dev/kfd and the KFD topology (kernel CONFIG_HSA_AMD)
    dkms_version: str | None = "6.14.14"   # /sys/module/amdgpu/version exists only with DKMS
    compute_partition: str = "SPX"
    memory_partition: str = "NPS1"
    numa_balancing: int = 0
    cmdline: str = HEALTHY_CMDLINE
    cpu_nodes: int = 2
    mem_total_kib: int = 2113853440  # 2 TiB class host
    mec_firmware: int = 177         # both the hex fw_version file and the KFD decimal property
    link: tuple = GEN5_X16          # PCIe link files of every GPU and its root port
    odd_gpu_link: tuple | None = None   # the link of GPU 3 only (a GPU trained at x8)
    odd_gpu_ras: dict | None = None     # ras/<block>_err_count texts of GPU 3 only
    odd_gpu_bad_pages: int = 0
    kmsg: tuple = BOOT_KMSG
    uptime_seconds: float = 3 * 86400.0

    @property
    def logical_gpus(self) -> int:
        """GPU nodes KFD exposes: physical GPUs times the compute-partition split."""
        if self.gpu is None or not (self.amdgpu_loaded and self.kfd):
            return 0
        split = PARTITION_SPLIT[self.compute_partition] if self.gpu.xcp else 1
        return self.gpus * split


_HEALTHY = Profile("mi300x-8gpu", "healthy 8x MI300X, SPX/NPS1, DKMS driver, iommu=pt, numa_balancing 0")

PROFILES = {p.name: p for p in (
    _HEALTHY,
    dataclasses.replace(_HEALTHY, name="mi300x-4gpu", summary="healthy 4x MI300X (a 4-GPU VM or half box)",
                        gpus=4),
    dataclasses.replace(_HEALTHY, name="mi250-gfx90a", summary="8 MI250X GCDs (gfx90a): not the image's target",
                        gpu=MI250_GCD),
    dataclasses.replace(_HEALTHY, name="no-amdgpu", summary="GPUs on PCI but amdgpu not loaded (no DRM, no KFD)",
                        amdgpu_loaded=False, kfd=False, dkms_version=None),
    dataclasses.replace(_HEALTHY, name="no-kfd", summary="amdgpu loaded without KFD: no /dev/kfd, no topology",
                        kfd=False),
    dataclasses.replace(_HEALTHY, name="numa-balancing-on", summary="healthy except kernel.numa_balancing=1",
                        numa_balancing=1),
    dataclasses.replace(_HEALTHY, name="cpx-partition", summary="8x MI300X in CPX/NPS4: 64 logical GPUs",
                        compute_partition="CPX", memory_partition="NPS4"),
    dataclasses.replace(_HEALTHY, name="inbox-driver", summary="healthy but distro amdgpu (no module version file)",
                        dkms_version=None),
    dataclasses.replace(_HEALTHY, name="no-iommu-pt", summary="healthy except iommu=pt missing from the cmdline",
                        cmdline=HEALTHY_CMDLINE.replace(" iommu=pt", "")),
    dataclasses.replace(_HEALTHY, name="mi300x-old-mec", summary="healthy except MEC firmware 166 (the real capture's)",
                        mec_firmware=166),
    dataclasses.replace(_HEALTHY, name="mi300x-x8-link", summary="healthy except GPU 3's PCIe link trained at x8",
                        odd_gpu_link=("32.0 GT/s PCIe", "8", "32.0 GT/s PCIe", "16")),
    dataclasses.replace(_HEALTHY, name="mi300x-ecc-errors",
                        summary="healthy except GPU 3: 2 uncorrectable UMC errors, 1200 correctable, 3 retired pages",
                        odd_gpu_ras={"umc": "ue: 2\nce: 1200", "sdma": "ue: 0\nce: 0", "gfx": "ue: 0\nce: 0"},
                        odd_gpu_bad_pages=3),
    dataclasses.replace(_HEALTHY, name="mi300x-no-realloc", summary="healthy except pci=realloc=off missing from the cmdline",
                        cmdline=HEALTHY_CMDLINE.replace(" pci=realloc=off", "")),
)}
DEFAULT_PROFILE = _HEALTHY.name


@dataclass(frozen=True)
class DeviceNode:
    """A character node to create, relative to the tree root."""

    path: str
    group: str  # owning group on a real host: render for kfd/renderD, video for card


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _link(path: Path, target: Path) -> None:
    """Relative symlink, so the tree stays valid wherever it is mounted or copied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(os.path.relpath(target, path.parent))


def _properties(values: dict, gpu: bool) -> str:
    keys = _NODE_KEYS + (_GPU_ONLY_KEYS if gpu else ()) + (_LAST_KEY,)
    return "".join(f"{key} {values[key]}\n" for key in keys)


def _bdf(bus: int) -> str:
    return f"0000:{bus:02x}:00.0"


def _gpu_id(index: int, first: int) -> int:
    # Real gpu_ids are hashes; any distinct non-zero 16-bit values will do.
    return (first + 9029 * index) % 65535 or 1


def _kfd_gpu_nodes(profile: Profile):
    """Yield (physical gpu index, properties dict) for every KFD GPU node."""
    gpu = profile.gpu
    split = profile.logical_gpus // profile.gpus
    for index in range(profile.logical_gpus):
        phys, xcp = divmod(index, split)
        values = dict(gpu.node, fw_version=profile.mec_firmware)
        # In a partition mode the XCP id is OR-ed into location_id; each XCP has its own
        # render minor (the 8 reserved per MI300X) and a share of the GPU's compute.
        values["location_id"] = (gpu.pci_buses[phys] << 8) | xcp
        values["drm_render_minor"] = 128 + phys * (8 if gpu.xcp else 1) + xcp
        values["unique_id"] = (gpu.first_unique_id + index * 0x9E3779B97F4A7C15) % 2 ** 64
        if split > 1:
            values["simd_count"] //= split
            values["array_count"] //= split
            values["num_xcc"] = max(1, values["num_xcc"] // split)
        yield phys, values


def _write_health(profile: Profile, index: int, pci: Path, root_port: Path) -> None:
    """Firmware, VBIOS, PCIe link (GPU and root port) and RAS files of physical GPU `index`."""
    for block, version in dict(OTHER_FIRMWARE, mec=profile.mec_firmware).items():
        _write(pci / "fw_version" / f"{block}_fw_version", f"0x{version:08x}\n")
    _write(pci / "vbios_version", "113-M3000100-102\n")
    link = profile.odd_gpu_link if profile.odd_gpu_link and index == 3 else profile.link
    for directory in (pci, root_port):
        for name, value in zip(("current_link_speed", "current_link_width", "max_link_speed", "max_link_width"), link):
            _write(directory / name, value + "\n")
    ras = profile.odd_gpu_ras if profile.odd_gpu_ras and index == 3 else dict.fromkeys(("umc", "sdma", "gfx"), "ue: 0\nce: 0")
    for block, text in ras.items():
        _write(pci / "ras" / f"{block}_err_count", text + "\n")
    pages = profile.odd_gpu_bad_pages if index == 3 else 0
    _write(pci / "ras/gpu_vram_bad_pages", "".join(f"0x{0x7f000 + page:08x} : 0x00001000 : R\n" for page in range(pages)))


def build_tree(root: Path, profile: Profile) -> list:
    """Write the profile's sys/, dev/ and proc/ under root (replacing any previous tree).

    Returns the character nodes still to create (see create_device_nodes); everything else
    is written here, so this runs without root.
    """
    root = Path(root)
    for part in ("sys", "dev", "proc"):
        shutil.rmtree(root / part, ignore_errors=True)
    sys_, dev, proc = root / "sys", root / "dev", root / "proc"
    nodes = [DeviceNode("mem", "kmem")]
    dev.mkdir(parents=True)

    _write(proc / "cmdline", profile.cmdline + "\n")
    _write(proc / "uptime", f"{profile.uptime_seconds:.2f} {profile.uptime_seconds * 100:.2f}\n")
    _write(proc / "sys/kernel/osrelease", "6.8.0-79-generic\n")
    _write(proc / "sys/kernel/numa_balancing", f"{profile.numa_balancing}\n")
    _write(proc / "meminfo", f"MemTotal:       {profile.mem_total_kib} kB\n"
                             f"MemFree:        {profile.mem_total_kib * 9 // 10} kB\n"
                             f"MemAvailable:   {profile.mem_total_kib * 9 // 10} kB\n")

    gpu = profile.gpu
    if gpu is None:
        return nodes

    drivers = sys_ / "bus/pci/drivers/amdgpu"
    if profile.amdgpu_loaded:
        _write(dev / "kmsg", "".join(f"6,{seq},{1500000 + seq * 2500},-;{line}\n" for seq, line in enumerate(profile.kmsg)))
        drivers.mkdir(parents=True)
        module = sys_ / "module/amdgpu"
        _write(module / "initstate", "live\n")
        _write(module / "srcversion", "6CCB5408246071AC9F63359\n")
        if profile.dkms_version:
            _write(module / "version", profile.dkms_version + "\n")

    # PCI functions are there whether or not a driver is bound.
    pci_dirs = []
    for index in range(profile.gpus):
        bdf = _bdf(gpu.pci_buses[index])
        root_port = sys_ / "devices/pci0000:00" / f"0000:00:{index + 1:02x}.1"
        pci = root_port / bdf
        pci_dirs.append(pci)
        _write(pci / "vendor", f"0x{AMD_VENDOR_ID:04x}\n")
        _write(pci / "device", f"0x{gpu.pci_device:04x}\n")
        _write(pci / "class", gpu.pci_class + "\n")
        _write(pci / "numa_node", f"{index * profile.cpu_nodes // profile.gpus}\n")
        _link(sys_ / "bus/pci/devices" / bdf, pci)
        group = sys_ / "kernel/iommu_groups" / str(20 + index)
        _write(group / "type", "identity\n" if "iommu=pt" in profile.cmdline.split() else "DMA-FQ\n")
        _link(pci / "iommu_group", group)
        if not profile.amdgpu_loaded:
            continue
        _link(pci / "driver", drivers)
        _write_health(profile, index, pci, root_port)
        _write(pci / "mem_info_vram_total", f"{gpu.vram_bytes}\n")
        _write(pci / "mem_info_vram_used", "0\n")
        if gpu.xcp:
            _write(pci / "current_compute_partition", profile.compute_partition + "\n")
            _write(pci / "available_compute_partition", "SPX, DPX, CPX\n")
            _write(pci / "current_memory_partition", profile.memory_partition + "\n")
            _write(pci / "available_memory_partition", "NPS1, NPS4\n")

    if not profile.amdgpu_loaded:
        return nodes

    # DRM: an MI300X reserves 8 minors (1 PCI-backed + 7 XCP platform devices), so minors
    # step by 8 and 8 GPUs show 64 render nodes; counting renderD* does not count GPUs.
    per_gpu = 8 if gpu.xcp else 1
    for index, pci in enumerate(pci_dirs):
        for xcp in range(per_gpu):
            minor = index * per_gpu + xcp
            parent = pci if xcp == 0 else sys_ / f"devices/platform/amdgpu_xcp.{index * (per_gpu - 1) + xcp - 1}"
            parent.mkdir(parents=True, exist_ok=True)
            for name, number in ((f"card{minor}", minor), (f"renderD{128 + minor}", 128 + minor)):
                entry = sys_ / "class/drm" / name
                _write(entry / "dev", f"{DRM_RENDER_MAJOR}:{number}\n")
                _link(entry / "device", parent)
            nodes.append(DeviceNode(f"dri/card{minor}", "video"))
            nodes.append(DeviceNode(f"dri/renderD{128 + minor}", "render"))

    if not profile.kfd:
        return nodes

    kfd = sys_ / "class/kfd/kfd"
    _write(kfd / "dev", KFD_DEV + "\n")
    topology = kfd / "topology"
    _write(topology / "generation_id", "1\n")
    _write(topology / "system_properties", "platform_oem 0\nplatform_id 0\nplatform_rev 0\n")
    node_dir = topology / "nodes"
    for cpu in range(profile.cpu_nodes):
        values = dict(CPU_NODE, cpu_core_id_base=cpu * CPU_NODE["cpu_cores_count"])
        _write(node_dir / str(cpu) / "gpu_id", "0\n")
        _write(node_dir / str(cpu) / "name", "\n")
        _write(node_dir / str(cpu) / "properties", _properties(values, gpu=False))
        _write(node_dir / str(cpu) / "mem_banks/0/properties",
               "".join(f"{k} {v}\n" for k, v in CPU_MEM_BANK.items()))
    split = profile.logical_gpus // profile.gpus
    for offset, (_phys, values) in enumerate(_kfd_gpu_nodes(profile)):
        node = node_dir / str(profile.cpu_nodes + offset)
        _write(node / "gpu_id", f"{_gpu_id(offset, gpu.first_gpu_id)}\n")
        _write(node / "name", gpu.name + "\n")
        _write(node / "properties", _properties(values, gpu=True))
        bank = {"heap_type": 1, "size_in_bytes": gpu.vram_bytes // split, "flags": 0,
                "width": 8192 if gpu.xcp else 4096, "mem_clk_max": 1300 if gpu.xcp else 1600}
        _write(node / "mem_banks/0/properties", "".join(f"{k} {v}\n" for k, v in bank.items()))
        _write(node / "mem_banks/0/used_memory", "0\n")
    nodes.append(DeviceNode("kfd", "render"))
    return nodes


def create_device_nodes(root: Path, nodes: list) -> None:
    """mknod each planned node under root/dev as a char device with /dev/null's numbers.

    Needs root (CAP_MKNOD). Groups follow a real host where the group exists here.
    """
    dev = Path(root) / "dev"
    for node in nodes:
        path = dev / node.path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            path.unlink()
        os.mknod(path, stat.S_IFCHR | 0o660, os.makedev(NULL_MAJOR, NULL_MINOR))
        os.chmod(path, 0o660)  # mknod honours the umask; a real host has 0660
        try:
            os.chown(path, 0, grp.getgrnam(node.group).gr_gid)
        except KeyError:
            pass


def install_tree(root: Path, profile: Profile) -> None:
    """build_tree + create_device_nodes: the complete tree for a simulated host."""
    create_device_nodes(root, build_tree(root, profile))
