# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""Read an AMD ROCm host's GPU state from sysfs, /dev and /proc (and optionally amd-smi).

Pure logic for the rocm_facts and rocm_preflight modules: no AnsibleModule here, so the
unit tests call it directly. Every host path is built from the three host-root prefixes
(sysfs_root, dev_root, proc_root), like node_exporter's --path.sysfs, so the same code reads
a host mounted at /host or a simulated host's fake tree.

Facts come from the kernel's own interfaces (see ../shared/reference/rocm_host.md section 1):
KFD topology nodes are GPUs when their gpu_id is not 0; VRAM comes from mem_banks (the node's
local_mem_size is hard-coded to 0 by the driver); gfx_target_version is a line inside
`properties`, never a file of its own.
"""

from __future__ import absolute_import, division, print_function

import errno
import glob
import json
import os
import re
import stat
import time

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._rocm_health import add_health, kernel_args

__metaclass__ = type

FACTS_SCHEMA_VERSION = 1
AMD_VENDOR_ID = 4098  # 0x1002
KFD_NODES = "class/kfd/kfd/topology/nodes"
AMD_SMI_MODES = ("auto", "always", "never")
SMI_TIMEOUT = 30  # seconds one amd-smi / rocm-smi call may take (option amd_smi_timeout)
SMI_KILL_AFTER = 2
TIMED_OUT_STATUSES = (124, 137)  # coreutils timeout: SIGTERM worked / SIGKILL was needed

# PCI class codes of GPUs: display controllers (0x03xxxx) and processing accelerators
# (0x12xxxx, MI300X). Other AMD functions (audio, bridges) are not GPUs.
GPU_PCI_CLASSES = ("0x03", "0x12")
_BDF = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


def host_root_spec():
    """Argument spec of where a module reads the host's GPU state (doc fragment host_roots)."""
    return dict(
        sysfs_root=dict(type="path", default="/sys"),
        dev_root=dict(type="path", default="/dev"),
        proc_root=dict(type="path", default="/proc"),
        rocm_path=dict(type="path", default="/opt/rocm"),
        amd_smi=dict(type="str", default="auto", choices=list(AMD_SMI_MODES)),
        amd_smi_timeout=dict(type="int", default=SMI_TIMEOUT),
    )


def bounded_smi_run(run_command, timeout_bin, seconds):
    """``run(argv)`` for collect_smi: the tool under coreutils ``timeout`` (SIGKILL
    SMI_KILL_AFTER seconds after SIGTERM), so a hung amd-smi cannot stall the play; without
    ``timeout`` on the host the tool is not run at all."""
    def run(argv):
        if not timeout_bin:
            return 127, "", ("coreutils timeout is not on the host's PATH, so %s is not run without a "
                             "time limit" % os.path.basename(argv[0]))
        return run_command([timeout_bin, "--kill-after=%d" % SMI_KILL_AFTER, str(int(seconds))] + list(argv))
    return run


def gfx_name(target_version):
    """KFD gfx_target_version (major*10000 + minor*100 + stepping) to the LLVM target name.

    The stepping is printed as a hex digit: 90010 -> gfx90a, 90402 -> gfx942.
    """
    if not isinstance(target_version, int) or target_version <= 0:
        return None
    major, rest = divmod(target_version, 10000)
    minor, stepping = divmod(rest, 100)
    return "gfx%d%d%x" % (major, minor, stepping)


def parse_properties(text):
    """`<key> <value>` lines (a KFD properties file) to a dict; numbers become ints.

    Parsed as a map, never by position: the key set differs between driver versions.
    """
    props = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if not parts:
            continue
        value = parts[1].strip() if len(parts) > 1 else ""
        try:
            props[parts[0]] = int(value)
        except ValueError:
            props[parts[0]] = value
    return props


def location_to_bdf(location_id, domain=0):
    """KFD location_id ((bus << 8) | devfn) and domain to a PCI address such as 0000:26:00.0."""
    if not isinstance(location_id, int) or location_id <= 0:
        return None
    bus, devfn = (location_id >> 8) & 0xFF, location_id & 0xFF
    return "%04x:%02x:%02x.%x" % (domain or 0, bus, devfn >> 3, devfn & 7)


def parse_cmdline(text):
    """Kernel command line to its whitespace-separated arguments."""
    return text.split() if text else []


def _first_json(text):
    """The first JSON document in text, skipping warning lines before it and junk after it.

    amd-smi may print a Python warning before its JSON, and `amd-smi partition --json`
    printed extra text after it until ROCm 7.0.
    """
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text or ""):
        start = match.start()
        if text[text.rfind("\n", 0, start) + 1:start].strip():
            continue  # a document starts its line; a '[' inside a warning does not count
        try:
            return decoder.raw_decode(text, start)[0]
        except ValueError:
            continue
    raise ValueError("no JSON document in the output")


def parse_amd_smi_json(text):
    """amd-smi --json output to a list of per-GPU dicts, for both output shapes.

    ROCm 6 (amd-smi <= 25.x) prints a bare list; ROCm 7 (amd-smi >= 26) prints
    {"gpu_data": [...], ...} for static/metric. A lone object is one GPU.
    """
    data = _first_json(text)
    if isinstance(data, dict):
        data = data["gpu_data"] if "gpu_data" in data else [data]
    if not isinstance(data, list):
        raise ValueError("expected a list or an object with gpu_data, got %s" % type(data).__name__)
    return [item for item in data if isinstance(item, dict)]


def parse_amd_smi_version(text):
    """`amd-smi version --json` to one dict (a one-element list on every version so far)."""
    items = parse_amd_smi_json(text)
    if not items:
        raise ValueError("amd-smi version printed no entries")
    return items[0]


def _smi_value_bytes(value):
    """amd-smi {"value": N, "unit": "MB"} (or a bare number of MB) to bytes."""
    units = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
    if isinstance(value, dict):
        number, unit = value.get("value"), str(value.get("unit", "MB")).upper()
    else:
        number, unit = value, "MB"
    try:
        return int(float(number) * units.get(unit, 1 << 20))
    except (TypeError, ValueError):
        return None


def _smi_number(value):
    """amd-smi {"value": N, "unit": ...} or a bare number to a number; "N/A" and the like -> None."""
    if isinstance(value, dict):
        value = value.get("value")
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number == int(number) else number


def parse_rocm_smi_json(text):
    """Legacy `rocm-smi --showproductname --showmeminfo vram --json` to per-card dicts.

    Top level is {"card0": {...}, "system": {...}}; key spelling varies between versions, so
    keys are matched case-insensitively. rocm-smi exits 0 even on failure, and prints
    `WARNING: No JSON data to report` (not JSON) when it has nothing, so parse the text.
    """
    data = _first_json(text)
    if not isinstance(data, dict):
        raise ValueError("expected an object keyed by card")
    cards = []
    for key in sorted(data, key=lambda k: (len(k), k)):
        match = re.match(r"^card(\d+)$", key)
        if not match or not isinstance(data[key], dict):
            continue
        fields = dict((k.lower(), v) for k, v in data[key].items())
        vram = fields.get("vram total memory (b)")
        cards.append({
            "gpu": int(match.group(1)),
            "market_name": fields.get("card series") or fields.get("card model"),
            "target_graphics_version": fields.get("gfx version"),
            "vram_total_bytes": int(vram) if str(vram or "").isdigit() else None,
        })
    return cards


class _Reader:
    """File reads under the host roots that record what could not be read, and why.

    A missing optional file is simply None; any other failure (permission denied: KFD hides
    a GPU's files from a container whose device cgroup does not allow it) is recorded in
    `errors` as {path, error} and also reads as None.
    """

    def __init__(self):
        self.errors = []

    def _record(self, path, exc):
        reason = os.strerror(exc.errno).lower() if getattr(exc, "errno", None) else str(exc)
        self.errors.append({"path": path, "error": reason})

    def text(self, path):
        try:
            with open(path, "r") as handle:
                return handle.read().strip()
        except (IOError, OSError) as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                self._record(path, exc)
            return None
        except UnicodeDecodeError as exc:
            self._record(path, exc)
            return None

    def integer(self, path):
        value = self.text(path)
        try:
            return int(value, 0) if value is not None else None
        except ValueError:
            self.errors.append({"path": path, "error": "not an integer: %r" % value})
            return None

    def listdir(self, path):
        try:
            return sorted(os.listdir(path))
        except (IOError, OSError) as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                self._record(path, exc)
            return []


def char_device(path):
    """True when path is a character device node."""
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False


def _pci_gpus(reader, sysfs_root):
    """AMD GPU functions on the PCI bus, whether or not a driver is bound to them."""
    base = os.path.join(sysfs_root, "bus/pci/devices")
    gpus = []
    for address in reader.listdir(base):
        device_dir = os.path.join(base, address)
        vendor = reader.integer(os.path.join(device_dir, "vendor"))
        pci_class = (reader.text(os.path.join(device_dir, "class")) or "").lower()
        if vendor != AMD_VENDOR_ID or not pci_class.startswith(GPU_PCI_CLASSES):
            continue
        driver = os.path.join(device_dir, "driver")
        gpus.append({
            "address": address,
            "device_id": reader.integer(os.path.join(device_dir, "device")),
            "class": pci_class,
            "driver": os.path.basename(os.path.realpath(driver)) if os.path.exists(driver) else None,
        })
    return gpus


def _resolve_pci(sysfs_root, props, pci_addresses):
    """The PCI address of a KFD node: its location_id, or function 0 of it in partition mode.

    In a compute-partition mode the XCP id is OR-ed into location_id, so every logical GPU of
    one physical GPU resolves to the same PCI function.
    """
    address = location_to_bdf(props.get("location_id"), props.get("domain"))
    if address is None or address in pci_addresses:
        return address
    function0 = address[:-1] + "0"
    if function0 in pci_addresses or os.path.isdir(os.path.join(sysfs_root, "bus/pci/devices", function0)):
        return function0
    return address


def _gpu_node(reader, roots, node, node_dir, props, gpu_id, pci_addresses):
    sysfs_root, dev_root = roots
    address = _resolve_pci(sysfs_root, props, pci_addresses)
    pci_dir = os.path.join(sysfs_root, "bus/pci/devices", address) if address else None
    minor = props.get("drm_render_minor")
    render = os.path.join(dev_root, "dri", "renderD%d" % minor) if isinstance(minor, int) and minor > 0 else None
    bank = parse_properties(reader.text(os.path.join(node_dir, "mem_banks/0/properties")) or "")
    vram = bank.get("size_in_bytes")
    if not isinstance(vram, int) or vram <= 0:
        # Fallback: the PCI device's DRM counter (whole physical GPU, not a partition).
        vram = reader.integer(os.path.join(pci_dir, "mem_info_vram_total")) if pci_dir else None
    partition = {}
    for key in ("compute", "memory"):
        value = reader.text(os.path.join(pci_dir, "current_%s_partition" % key)) if pci_dir else None
        partition[key] = value.upper() if value else None
    group_type = reader.text(os.path.join(pci_dir, "iommu_group/type")) if pci_dir else None
    unique_id = props.get("unique_id")
    return {
        "node": node,
        "gpu_id": gpu_id,
        "name": reader.text(os.path.join(node_dir, "name")) or "",
        "gfx_target_version": props.get("gfx_target_version"),
        "gfx": gfx_name(props.get("gfx_target_version")),
        "vendor_id": props.get("vendor_id"),
        "device_id": props.get("device_id"),
        "pci_address": address,
        "render_minor": minor if render else None,
        "render_node": render,
        "render_node_present": bool(render) and char_device(render),
        "vram_bytes": vram if isinstance(vram, int) and vram > 0 else None,
        "vram_used_bytes": reader.integer(os.path.join(node_dir, "mem_banks/0/used_memory")),
        "compute_partition": partition["compute"],
        "memory_partition": partition["memory"],
        "num_xcc": props.get("num_xcc"),
        "simd_count": props.get("simd_count"),
        # rocminfo's UUID is GPU- + the hex of KFD unique_id
        "uuid": "GPU-%016x" % unique_id if isinstance(unique_id, int) and unique_id > 0 else None,
        "iommu_group_type": group_type,
    }


def _kfd_nodes(reader, roots, pci_addresses):
    """(gpus, cpu node count, unreadable node numbers) from the KFD topology."""
    sysfs_root = roots[0]
    base = os.path.join(sysfs_root, KFD_NODES)
    gpus, cpus, unreadable = [], 0, []
    names = [name for name in reader.listdir(base) if name.isdigit()]
    for name in sorted(names, key=int):
        node_dir = os.path.join(base, name)
        props_text = reader.text(os.path.join(node_dir, "properties"))
        gpu_id = reader.integer(os.path.join(node_dir, "gpu_id"))
        props = parse_properties(props_text or "")
        if gpu_id is None and not props:
            unreadable.append(int(name))
            continue
        if gpu_id is None:
            # No gpu_id file: libhsakmt's fallback, a node with SIMDs and no CPU cores is a GPU.
            is_gpu = props.get("simd_count", 0) > 0 and props.get("cpu_cores_count", 0) == 0
        else:
            is_gpu = gpu_id != 0
        if is_gpu:
            gpus.append(_gpu_node(reader, roots, int(name), node_dir, props, gpu_id, pci_addresses))
        else:
            cpus += 1
    return gpus, cpus, unreadable


def _host_rocm_version(reader, rocm_path):
    """Host ROCm userspace version (informational: the container ships its own ROCm)."""
    candidates = [os.path.join(rocm_path, ".info/version"), os.path.join(rocm_path, "core/.info/version")]
    candidates += sorted(glob.glob(os.path.join(rocm_path, "core-*/.info/version")), reverse=True)
    candidates += sorted(glob.glob(os.path.join(os.path.dirname(rocm_path), "rocm-*/.info/version")), reverse=True)
    for path in candidates:
        version = reader.text(path)
        if version:
            return version.splitlines()[0].strip(), path
    return None, None


def _kfd_processes(reader, sysfs_root):
    """PIDs of processes holding KFD (the driver lists one directory per process)."""
    return [int(name) for name in reader.listdir(os.path.join(sysfs_root, "class/kfd/kfd/proc")) if name.isdigit()]


def collect_smi(mode, which, run, rocm_path="/opt/rocm", timeout=None, clock=None):
    """amd-smi (or, in auto mode without it, legacy rocm-smi) JSON, as a dict.

    `which(name)` returns a binary path or None; `run(argv)` returns (rc, stdout, stderr) and
    runs the tool under a limit of `timeout` seconds (bounded_smi_run). Failures never raise:
    they go to `error`. In `always` mode a missing amd-smi is an error. A tool that ran out of
    time is not asked again in the same run.
    """
    smi = {"mode": mode, "tool": None, "path": None, "version": None, "gpus": [], "error": None}
    if mode == "never":
        return smi
    problems = []
    hung = []
    clock = clock or time.monotonic

    def call(path, argv, parser):
        if hung:
            return None
        started = clock()
        rc, out, err = run([path] + argv)
        if timeout and rc in TIMED_OUT_STATUSES and clock() - started >= timeout - 0.5:
            tool = os.path.basename(path)
            hung.append(tool)
            problems.append("%s did not answer within %ss (`%s`), so it was stopped and not asked "
                            "again; a hung %s usually means a wedged driver or a GPU in reset (check "
                            "dmesg), or raise amd_smi_timeout"
                            % (tool, timeout, " ".join([tool] + argv), tool))
            return None
        try:
            return parser(out)
        except (ValueError, KeyError, TypeError) as exc:
            command = " ".join([os.path.basename(path)] + argv)
            stderr = "; stderr: " + err.strip()[-200:] if err and err.strip() else ""
            problems.append("`%s` (rc %s): %s%s" % (command, rc, exc, stderr))
            return None

    path = which("amd-smi")
    if path:
        smi.update(tool="amd-smi", path=path)
        smi["version"] = call(path, ["version", "--json"], parse_amd_smi_version)
        listed = call(path, ["list", "--json"], parse_amd_smi_json) or []
        static = call(path, ["static", "--asic", "--vram", "--json"], parse_amd_smi_json) or []
        by_index = dict((item.get("gpu"), item) for item in static)
        # The PCIe link as the GPU's firmware reports it; no answer (error or timeout) -> sysfs.
        links = dict((item.get("gpu"), item.get("pcie") or {})
                     for item in call(path, ["metric", "--pcie", "--json"], parse_amd_smi_json) or [])
        for item in listed:
            extra = by_index.get(item.get("gpu"), {})
            asic, vram = extra.get("asic") or {}, extra.get("vram") or {}
            pcie = links.get(item.get("gpu")) or {}
            smi["gpus"].append({
                "gpu": item.get("gpu"),
                "bdf": item.get("bdf") or item.get("gpu_bdf"),
                "uuid": item.get("uuid") or item.get("gpu_uuid"),
                "kfd_id": item.get("kfd_id"),
                "node_id": item.get("node_id"),
                "market_name": asic.get("market_name"),
                "target_graphics_version": asic.get("target_graphics_version"),
                "vram_total_bytes": _smi_value_bytes(vram.get("size")) if vram.get("size") not in (None, "N/A") else None,
                "pcie_width": _smi_number(pcie.get("width")),
                "pcie_speed_gts": _smi_number(pcie.get("speed")),
            })
    elif mode == "auto" and which("rocm-smi"):
        path = which("rocm-smi")
        smi.update(tool="rocm-smi", path=path)
        smi["gpus"] = call(path, ["--showproductname", "--showmeminfo", "vram", "--json"], parse_rocm_smi_json) or []
    elif mode == "always":
        problems.append("amd-smi was not found on PATH or in %s/bin (amd_smi=always requires it)" % rocm_path)
    if problems:
        smi["error"] = "; ".join(problems)
    return smi


def gather(sysfs_root="/sys", dev_root="/dev", proc_root="/proc", rocm_path="/opt/rocm", smi=None):
    """All ROCm host facts as one JSON-serialisable dict (the `rocm` fact).

    `smi` is the result of collect_smi (or None when amd-smi is not consulted).
    """
    reader = _Reader()
    roots = (sysfs_root, dev_root)
    module_dir = os.path.join(sysfs_root, "module/amdgpu")
    pci = _pci_gpus(reader, sysfs_root)
    pci_scanned = os.path.isdir(os.path.join(sysfs_root, "bus/pci/devices"))
    gpus, cpu_nodes, unreadable = _kfd_nodes(reader, roots, set(item["address"] for item in pci))
    cmdline = reader.text(os.path.join(proc_root, "cmdline"))
    health = add_health(reader, (sysfs_root, dev_root, proc_root), gpus, smi)
    args = parse_cmdline(cmdline)
    group_types = [gpu["iommu_group_type"] for gpu in gpus if gpu["iommu_group_type"]]
    if cmdline is None:
        passthrough = None
    else:
        all_identity = bool(gpus) and len(group_types) == len(gpus) and all(t == "identity" for t in group_types)
        passthrough = "iommu=pt" in args or all_identity
    meminfo = reader.text(os.path.join(proc_root, "meminfo")) or ""
    mem_total = re.search(r"^MemTotal:\s+(\d+)\s*kB", meminfo, re.M)
    rocm_version, rocm_version_file = _host_rocm_version(reader, rocm_path)
    facts = {
        "schema_version": FACTS_SCHEMA_VERSION,
        "roots": {"sysfs_root": sysfs_root, "dev_root": dev_root, "proc_root": proc_root},
        "amdgpu_loaded": os.path.isdir(module_dir),
        "amdgpu_initstate": reader.text(os.path.join(module_dir, "initstate")),
        # Only the out-of-tree DKMS driver has a version file; the inbox driver reads null.
        "driver_version": reader.text(os.path.join(module_dir, "version")),
        "driver_srcversion": reader.text(os.path.join(module_dir, "srcversion")),
        "kfd_present": char_device(os.path.join(dev_root, "kfd")),
        "kfd_path": os.path.join(dev_root, "kfd"),
        "kfd_exists": os.path.exists(os.path.join(dev_root, "kfd")),
        "kfd_topology": os.path.isdir(os.path.join(sysfs_root, KFD_NODES)),
        "gpu_count": len(gpus),
        "gpus": gpus,
        "cpu_node_count": cpu_nodes,
        "unreadable_nodes": unreadable,
        "pci_scanned": pci_scanned,
        "pci_gpus": pci,
        "numa_balancing": reader.integer(os.path.join(proc_root, "sys/kernel/numa_balancing")),
        "kernel_cmdline": cmdline,
        "kernel_args": kernel_args(cmdline) if cmdline is not None else None,
        "uptime_seconds": health["uptime_seconds"],
        "kernel_release": health["kernel_release"],
        "kernel_log": health["kernel_log"],
        "iommu_passthrough": passthrough,
        "mem_total_bytes": int(mem_total.group(1)) * 1024 if mem_total else None,
        "dev_mem_present": os.path.exists(os.path.join(dev_root, "mem")),
        "kfd_processes": _kfd_processes(reader, sysfs_root),
        "rocm_version": rocm_version,
        "rocm_version_file": rocm_version_file,
        "smi": smi,
        "errors": reader.errors,
    }
    return facts


# What each host-root prefix must point at: (what, usual path, path when the host is at /host).
ROOT_HINTS = {
    "sysfs_root": ("the host's sysfs", "/sys", "/host/sys"),
    "dev_root": ("the host's device nodes", "/dev", "/host/dev"),
    "proc_root": ("the host's procfs", "/proc", "/host/proc"),
}


def missing_roots(roots):
    """[(option, path)] for every host-root prefix that is not an existing directory."""
    return [(name, path) for name, path in roots if not os.path.isdir(path)]


def root_error(option, path, variable=None, host=None):
    """Why a host-root prefix is unusable and how to fix it, naming the option (and variable)."""
    what, usual, mounted = ROOT_HINTS[option]
    name = "%s (option %s)" % (variable, option) if variable else option
    if host:
        name += " on host %s" % host
    return ("%s: got %r, which is not an existing directory on the host; expected the directory holding %s "
            "(%s, or %s when the host is mounted at /host). Fix: set %s to that directory."
            % (name, path, what, usual, mounted, variable or option))


def disk_space(path):
    """Free and total bytes of the filesystem holding path (or its nearest existing parent).

    A directory that does not exist yet (a cache directory before its first use) is
    measured where it will be created.
    """
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and probe != os.path.dirname(probe):
        probe = os.path.dirname(probe)
    try:
        st = os.statvfs(probe)
        device = os.stat(probe).st_dev
    except OSError as exc:
        return {"path": path, "measured_at": probe, "exists": False, "error": os.strerror(exc.errno).lower(),
                "free_bytes": None, "total_bytes": None, "device": None}
    return {
        "path": path,
        "measured_at": probe,
        "exists": os.path.exists(path),
        "is_dir": os.path.isdir(path),
        "free_bytes": st.f_bavail * st.f_frsize,
        "total_bytes": st.f_blocks * st.f_frsize,
        "device": device,
        "error": None,
    }
