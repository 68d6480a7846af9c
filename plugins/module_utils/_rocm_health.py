# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""GPU health and version facts from sysfs, /proc and the kernel log (pure logic, stdlib only).

Read by _rocm.gather() into the `rocm` fact; the preflight checks and the fleet drift read them.
The sysfs names are the amdgpu driver's own (Documentation/gpu/amdgpu/driver-misc.rst,
ras.rst and amdgpu_ras.c in the kernel):

- ``<pci>/fw_version/<block>_fw_version``: one hex number per firmware block (``0x000000b1``);
  the KFD node's ``properties`` line ``fw_version`` holds the MEC version in decimal (177).
- ``<pci>/vbios_version``: the VBIOS part number (``113-M3000100-102``).
- ``<pci>/{current,max}_link_{speed,width}``: ``32.0 GT/s PCIe`` and ``16``, on the endpoint and on
  every PCI bridge above it. A GPU with an on-package switch can show an internal link at the
  endpoint, so the root port's link (the slot) is reported too and is the one judged; amd-smi's
  ``metric --pcie`` answer wins when it has one.
- ``<pci>/ras/<block>_err_count``: ``ue: N`` and ``ce: N`` lines, or ``Query currently
  inaccessible`` while the GPU is in reset; ``<pci>/ras/gpu_vram_bad_pages``: one
  ``pfn : size : flags`` line per retired page.
- ``<pci>/xgmi_hive_info/xgmi_hive_id``, ``<pci>/xgmi_physical_id``, ``<pci>/xgmi_error``: where
  the GPU is in an XGMI hive.
- ``<proc_root>/cmdline`` and ``<proc_root>/uptime``; ``<dev_root>/kmsg``: the kernel's ring
  buffer, one ``pri,seq,ts_usec,flags;message`` record per read, read non-blocking.

A value that could not be read is ``None`` with the reason next to it, never 0: the checks
report it as unknown and never pass on it.
"""

from __future__ import absolute_import, division, print_function

import errno
import os
import re

__metaclass__ = type

INACCESSIBLE = "query currently inaccessible"
RAS_SUFFIX = "_err_count"
FW_SUFFIX = "_fw_version"
# Kernel arguments that identify the boot, not how the kernel runs: left out of drift.
BOOT_ARGS = re.compile(r"^(BOOT_IMAGE|root|initrd|ro|rw|quiet|splash)(=|$)")
KMSG_MAX_RECORDS = 200000
KMSG_MAX_LINES = 20
# amdgpu messages that mean the GPU was reset, hung or faulted (amdgpu_device.c, gmc_v9_0.c,
# amdgpu_job.c; the ROCm runtime's "Memory access fault by GPU node" comes from the same faults).
KMSG_EVENTS = (
    ("reset", re.compile(r"GPU reset|GPU recovery|mode1 reset|ring \S+ timeout|GPU hang", re.I)),
    ("page_fault", re.compile(r"page fault|VM_L2_PROTECTION_FAULT|Memory access fault", re.I)),
)
_SPEED = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*GT/s", re.I)
_BDF_DIR = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


def parse_speed(text):
    """'32.0 GT/s PCIe' -> 32.0; anything else (e.g. 'Unknown') -> None."""
    match = _SPEED.search(text or "")
    return float(match.group(1)) if match else None


def pcie_generation(speed_gts):
    """Transfer rate per lane to the PCIe generation: 2.5 -> 1, 16 -> 4, 32 -> 5."""
    table = ((2.5, 1), (5.0, 2), (8.0, 3), (16.0, 4), (32.0, 5), (64.0, 6))
    for rate, gen in table:
        if speed_gts is not None and abs(speed_gts - rate) < 0.01:
            return gen
    return None


def parse_ras_count(text):
    """A ``ras/<block>_err_count`` file to (ue, ce, problem).

    ``ue: 0\\nce: 3`` -> (0, 3, None); ``Query currently inaccessible`` or anything without both
    counts -> (None, None, what was read): unknown, never zero.
    """
    if text is None:
        return None, None, "unreadable"
    values = dict((key.lower(), int(num)) for key, num in re.findall(r"^\s*(ue|ce)\s*:\s*(\d+)\s*$", text, re.M | re.I))
    if "ue" in values and "ce" in values:
        return values["ue"], values["ce"], None
    said = " ".join(text.split())[:80] or "empty"
    return None, None, said


def parse_bad_pages(text):
    """``gpu_vram_bad_pages`` (one ``pfn : size : flags`` line per retired page) to a count, or None."""
    if text is None:
        return None
    if INACCESSIBLE in text.lower():
        return None
    return len([line for line in text.splitlines() if re.match(r"^\s*0x[0-9a-f]+\s*:", line, re.I)])


def parse_kmsg_record(record):
    """One kmsg record ``pri,seq,ts_usec,flags;message`` (continuation lines start with a space)
    to (ts_usec, message), or None for a line that is not a record."""
    head, sep, message = record.partition(";")
    if not sep:
        return None
    fields = head.split(",")
    if len(fields) < 3 or not fields[2].strip().isdigit():
        return None
    return int(fields[2]), message.rstrip("\n").split("\n")[0]


def kernel_args(cmdline):
    """The kernel command line's arguments that change how it runs (drift compares these)."""
    return sorted(set(arg for arg in (cmdline or "").split() if not BOOT_ARGS.match(arg)))


def _read_kmsg(path, max_records=KMSG_MAX_RECORDS):
    """Every record in the kernel ring buffer at path, non-blocking: /dev/kmsg answers one record
    per read and EAGAIN at the end; a regular file in the same format reads to EOF.

    Returns (records, error): error is None, 'absent', or the reason the read failed.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (IOError, OSError) as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return [], "absent"
        return [], os.strerror(exc.errno).lower()
    records, pending = [], b""
    try:
        while len(records) < max_records:
            try:
                chunk = os.read(fd, 8192)
            except (IOError, OSError) as exc:
                if exc.errno == errno.EAGAIN:
                    break
                if exc.errno == errno.EPIPE:
                    continue  # records were overwritten while reading: go on with the next one
                return records, os.strerror(exc.errno).lower()
            if not chunk:
                break
            pending += chunk
            # /dev/kmsg: each read is one record ending in a newline; a file: many records
            lines = pending.split(b"\n")
            pending = lines.pop()
            records.extend(line.decode("utf-8", "replace") for line in lines if line and not line.startswith(b" "))
        if pending and not pending.startswith(b" "):
            records.append(pending.decode("utf-8", "replace"))
    finally:
        os.close(fd)
    return records, None


def kernel_log(dev_root):
    """amdgpu reset and page-fault messages in <dev_root>/kmsg: {path, readable, error, amdgpu_lines, events}."""
    path = os.path.join(dev_root, "kmsg")
    records, error = _read_kmsg(path)
    events, amdgpu = [], 0
    for record in records:
        parsed = parse_kmsg_record(record)
        if parsed is None:
            continue
        ts_usec, message = parsed
        if "amdgpu" not in message.lower() and "kfd" not in message.lower():
            continue
        amdgpu += 1
        for kind, pattern in KMSG_EVENTS:
            if pattern.search(message):
                events.append({"kind": kind, "seconds": round(ts_usec / 1e6, 3), "line": message[:300]})
                break
    return {"path": path, "readable": error is None, "error": error, "amdgpu_lines": amdgpu,
            "events": events[:KMSG_MAX_LINES], "event_count": len(events),
            "resets": sum(1 for e in events if e["kind"] == "reset"),
            "page_faults": sum(1 for e in events if e["kind"] == "page_fault")}


def _link(reader, directory):
    """The PCIe link files of one device or bridge directory, or None when it has none."""
    raw = dict((name, reader.text(os.path.join(directory, name))) for name in (
        "current_link_speed", "max_link_speed", "current_link_width", "max_link_width"))
    if all(value is None for value in raw.values()):
        return None

    def width(value):
        return int(value) if value and value.strip().isdigit() and int(value) > 0 else None
    return {
        "address": os.path.basename(directory),
        "current_speed_gts": parse_speed(raw["current_link_speed"]),
        "max_speed_gts": parse_speed(raw["max_link_speed"]),
        "current_width": width(raw["current_link_width"]),
        "max_width": width(raw["max_link_width"]),
    }


def _root_port(pci_dir):
    """The bridge directly under the host bridge (pci<domain>:<bus>) above the GPU, if any."""
    real = os.path.realpath(pci_dir)
    chain = []
    parent = os.path.dirname(real)
    while _BDF_DIR.match(os.path.basename(parent)):
        chain.append(parent)
        parent = os.path.dirname(parent)
    return chain[-1] if chain else None


def pcie_links(reader, pci_dir, smi_gpu=None):
    """Endpoint link, root-port link, and the one judged: amd-smi's, else the root port's, else the endpoint's."""
    endpoint = _link(reader, pci_dir)
    upstream_dir = _root_port(pci_dir)
    upstream = _link(reader, upstream_dir) if upstream_dir else None
    smi_link = None
    if smi_gpu and (smi_gpu.get("pcie_speed_gts") or smi_gpu.get("pcie_width")):
        smi_link = {"address": smi_gpu.get("bdf"), "current_speed_gts": smi_gpu.get("pcie_speed_gts"),
                    "current_width": smi_gpu.get("pcie_width"),
                    "max_speed_gts": (upstream or endpoint or {}).get("max_speed_gts"),
                    "max_width": (upstream or endpoint or {}).get("max_width")}
    if smi_link:
        judged, source = smi_link, "amd-smi"
    elif upstream:
        judged, source = upstream, "sysfs root port"
    elif endpoint:
        judged, source = endpoint, "sysfs endpoint"
    else:
        judged, source = None, None
    if judged:
        judged = dict(judged, source=source, generation=pcie_generation(judged.get("current_speed_gts")))
    return {"endpoint": endpoint, "upstream": upstream, "link": judged}


def ras_counters(reader, pci_dir):
    """{exposed, blocks: {block: {ue, ce, error}}, bad_pages, bad_pages_error} from <pci>/ras."""
    ras_dir = os.path.join(pci_dir, "ras")
    names = reader.listdir(ras_dir)
    if not names and not os.path.isdir(ras_dir):
        return {"exposed": False, "blocks": {}, "bad_pages": None, "bad_pages_error": None}
    blocks = {}
    for name in names:
        if not name.endswith(RAS_SUFFIX):
            continue
        ue, ce, problem = parse_ras_count(reader.text(os.path.join(ras_dir, name)))
        blocks[name[:-len(RAS_SUFFIX)]] = {"ue": ue, "ce": ce, "error": problem}
    bad_path = os.path.join(ras_dir, "gpu_vram_bad_pages")
    bad_text = reader.text(bad_path) if "gpu_vram_bad_pages" in names else None
    bad_pages = parse_bad_pages(bad_text)
    bad_error = None
    if "gpu_vram_bad_pages" in names and bad_pages is None:
        bad_error = "unreadable" if bad_text is None else " ".join(bad_text.split())[:80]
    return {"exposed": True, "blocks": blocks, "bad_pages": bad_pages, "bad_pages_error": bad_error}


def firmware(reader, pci_dir):
    """{block: version} from <pci>/fw_version/<block>_fw_version (hex); unreadable blocks are None."""
    fw_dir = os.path.join(pci_dir, "fw_version")
    versions = {}
    for name in reader.listdir(fw_dir):
        if name.endswith(FW_SUFFIX):
            value = reader.text(os.path.join(fw_dir, name))
            try:
                versions[name[:-len(FW_SUFFIX)]] = int(value, 16) if value is not None else None
            except ValueError:
                versions[name[:-len(FW_SUFFIX)]] = None
    return versions


def xgmi(reader, pci_dir):
    """XGMI hive membership and error count where the driver exposes them, else None."""
    hive = reader.text(os.path.join(pci_dir, "xgmi_hive_info/xgmi_hive_id"))
    physical = reader.text(os.path.join(pci_dir, "xgmi_physical_id"))
    error = reader.text(os.path.join(pci_dir, "xgmi_error"))
    if hive is None and physical is None and error is None:
        return None
    count = None
    if error is not None:
        match = re.search(r"(\d+)", error)
        count = int(match.group(1)) if match else None
    return {"hive_id": hive, "physical_id": physical, "error_count": count}


def gpu_health(reader, sysfs_root, gpu, smi_gpu=None):
    """The health and version facts of one GPU (a gathered KFD GPU node)."""
    address = gpu.get("pci_address")
    pci_dir = os.path.join(sysfs_root, "bus/pci/devices", address) if address else None
    node_props = os.path.join(sysfs_root, "class/kfd/kfd/topology/nodes/%d/properties" % gpu["node"])
    kfd_mec = None
    for line in (reader.text(node_props) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "fw_version" and parts[1].isdigit():
            kfd_mec = int(parts[1])
    if not pci_dir or not os.path.isdir(pci_dir):
        return {"firmware": {}, "mec_firmware": kfd_mec, "vbios_version": None,
                "pcie": {"endpoint": None, "upstream": None, "link": None},
                "ras": {"exposed": False, "blocks": {}, "bad_pages": None, "bad_pages_error": None}, "xgmi": None}
    versions = firmware(reader, pci_dir)
    return {
        "firmware": versions,
        # MEC: the sysfs block when readable, else the KFD node's decimal copy of the same number
        "mec_firmware": versions.get("mec") if versions.get("mec") is not None else kfd_mec,
        "kfd_fw_version": kfd_mec,
        "vbios_version": reader.text(os.path.join(pci_dir, "vbios_version")),
        "pcie": pcie_links(reader, pci_dir, smi_gpu),
        "ras": ras_counters(reader, pci_dir),
        "xgmi": xgmi(reader, pci_dir),
    }


def add_health(reader, roots, gpus, smi=None):
    """Add each GPU's health facts to it and return the host's: {uptime_seconds, kernel_release, kernel_log}.

    roots: (sysfs_root, dev_root, proc_root). smi: collect_smi's result; a GPU it has no PCIe
    answer for (amd-smi absent, failed or timed out) is read from sysfs.
    """
    sysfs_root, dev_root, proc_root = roots
    smi_by_bdf = dict((item.get("bdf"), item) for item in ((smi or {}).get("gpus") or []) if item.get("bdf"))
    for gpu in gpus:
        gpu.update(gpu_health(reader, sysfs_root, gpu, smi_by_bdf.get(gpu.get("pci_address"))))
    uptime = reader.text(os.path.join(proc_root, "uptime"))
    try:
        uptime_seconds = float(uptime.split()[0]) if uptime else None
    except ValueError:
        uptime_seconds = None
    return {
        "uptime_seconds": uptime_seconds,
        "kernel_release": reader.text(os.path.join(proc_root, "sys/kernel/osrelease")),
        "kernel_log": kernel_log(dev_root),
    }
