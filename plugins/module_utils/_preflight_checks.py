# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""The preflight checks, and REGISTRY: the one list of them.

A check is a function ``ctx -> {status, observed, expected, fix}`` plus one REGISTRY entry
(its name, the function, and the row docs/preflight.md shows for it). Everything else that
names checks comes from REGISTRY: the report order, the rocm_preflight module's ``skip``
choices; and tests/scripts/preflight_registry.py generates or checks the module's
DOCUMENTATION, the preflight role's argument spec and docs/preflight.md against it.

The checks and their passing values, messages and fixes follow ../shared/reference/rocm_host.md
section 7. Pure logic: no AnsibleModule here.
"""

from __future__ import absolute_import, division, print_function

import os
from collections import namedtuple

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._firmware_rules import evaluate as firmware_rules

__metaclass__ = type

GIB = 1 << 30
# Set in the container's environment these hide GPUs or fake the GPU target.
RISKY_ENV = ("HSA_OVERRIDE_GFX_VERSION", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")
NUMA_KEY = "kernel.numa_balancing"

# Module option -> the variable a user of the preflight role sets, so messages name what to change.
ROLE_VARIABLES = {
    "sysfs_root": "sglang_preflight_sysfs_root",
    "dev_root": "sglang_preflight_dev_root",
    "proc_root": "sglang_preflight_proc_root",
    "rocm_path": "sglang_preflight_rocm_path",
    "expected_gpus": "sglang_preflight_expected_gpus",
    "tp_size": "sglang_tp_size",
    "gfx": "sglang_preflight_gfx",
    "min_vram_gib": "sglang_preflight_min_vram_gib",
    "min_free_disk_gib": "sglang_preflight_min_free_disk_gib",
    "compute_partitions": "sglang_preflight_compute_partitions",
    "memory_partitions": "sglang_preflight_memory_partitions",
    "skip": "sglang_preflight_skip",
    "cache_dir": "sglang_cache_dir",
    "sysctl_file": "sglang_preflight_sysctl_file",
    "pcie_min_speed_gts": "sglang_preflight_pcie_min_speed_gts",
    "pcie_min_width": "sglang_preflight_pcie_min_width",
    "max_bad_pages": "sglang_preflight_max_bad_pages",
    "max_ce_per_day": "sglang_preflight_max_ce_per_day",
    "kernel_params": "sglang_preflight_kernel_params",
}
# MI300-class PCI device ids (MI300A/X, MI308X, MI325X): Gen5 x16 parts.
MI300_DEVICE_IDS = (0x74A0, 0x74A1, 0x74A2, 0x74A5)
GRUB_FIX = ("edit GRUB_CMDLINE_LINUX in /etc/default/grub to read: %s - then run update-grub (or "
            "grub2-mkconfig -o /boot/grub2/grub.cfg) and reboot; the role never reboots.")


# --------------------------------------------------------------------------------------------
# Formatting helpers
# --------------------------------------------------------------------------------------------

def gib(nbytes):
    return "%.1f GiB" % (nbytes / float(GIB))


def ranges(numbers):
    """[2, 3, 4, 7] -> '2-4, 7'."""
    numbers = sorted(set(numbers))
    parts, start = [], None
    for index, number in enumerate(numbers):
        if start is None:
            start = number
        if index + 1 == len(numbers) or numbers[index + 1] != number + 1:
            parts.append(str(start) if start == number else "%d-%d" % (start, number))
            start = None
    return ", ".join(parts)


def _nodes(gpus):
    nodes = [gpu["node"] for gpu in gpus]
    return ("node %s" if len(nodes) == 1 else "nodes %s") % ranges(nodes)


def _listing(items, limit=8):
    items = list(items)
    text = ", ".join(str(i) for i in items[:limit])
    return text + (" and %d more" % (len(items) - limit) if len(items) > limit else "")


def _plural(count, word):
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def _check(status, observed, expected, fix=None):
    return {"status": status, "observed": observed, "expected": expected, "fix": fix if status in ("warn", "fail") else None}


def _na(observed, expected):
    return _check("n/a", observed, expected)


# --------------------------------------------------------------------------------------------
# The checks. Each takes a context dict and returns {status, observed, expected, fix}.
# --------------------------------------------------------------------------------------------

def _permission_error(error):
    return error.get("error") in ("permission denied", "operation not permitted")


def check_facts_readable(ctx):
    facts = ctx["facts"]
    errors = facts.get("errors") or []
    denied = [e["path"] for e in errors if _permission_error(e)]
    expected = "every host file the checks read is readable"
    if denied or facts.get("unreadable_nodes"):
        observed = "permission denied on %s: %s" % (_plural(len(denied), "file"), _listing(denied, 3))
        if facts.get("unreadable_nodes"):
            observed += "; KFD topology %s unreadable" % ("nodes " + ranges(facts["unreadable_nodes"]))
        return _check("fail", observed, expected,
                      "run the preflight as root (become: true); from a container, mount the host's /sys and /dev "
                      "into a --privileged container: KFD returns EPERM for a GPU the container's device cgroup does "
                      "not allow, so such GPUs look missing.")
    if errors:
        listed = _listing(("%s (%s)" % (e["path"], e["error"]) for e in errors), 3)
        return _check("warn", "%s unreadable: %s" % (_plural(len(errors), "file"), listed), expected,
                      "check the listed files: the checks that use them may be incomplete.")
    return _check("pass", "all readable", expected)


def check_amdgpu_loaded(ctx):
    facts = ctx["facts"]
    expected = "amdgpu kernel module loaded (initstate live)"
    module_dir = os.path.join(facts["roots"]["sysfs_root"], "module/amdgpu")
    if not facts.get("amdgpu_loaded"):
        blacklisted = "modprobe.blacklist=amdgpu" in (facts.get("kernel_cmdline") or "")
        observed = "%s does not exist: amdgpu is not loaded%s" % (
            module_dir, " (modprobe.blacklist=amdgpu is on the kernel command line)" if blacklisted else "")
        return _check("fail", observed, expected,
                      "load it with `modprobe amdgpu` (sglang_preflight_remediate: true does this)%s; if it fails, "
                      "read `dmesg | grep -i amdgpu`." % (", as expected after boot with the blacklist" if blacklisted else ""))
    state = facts.get("amdgpu_initstate")
    if state not in (None, "live"):
        return _check("fail", "amdgpu initstate is %r" % state, expected,
                      "driver initialisation did not finish: read `dmesg | grep -i amdgpu`, then reload the module.")
    return _check("pass", "loaded (initstate %s)" % (state or "unknown"), expected)


def check_driver_version(ctx):
    facts = ctx["facts"]
    expected = "AMD's amdgpu-dkms driver (it has a module version file)"
    if not facts.get("amdgpu_loaded"):
        return _na("amdgpu not loaded (see amdgpu_loaded)", expected)
    if facts.get("driver_version"):
        return _check("pass", "amdgpu-dkms %s" % facts["driver_version"], expected)
    return _check("warn", "inbox (distribution) amdgpu driver: no module version file (srcversion %s)"
                  % (facts.get("driver_srcversion") or "unknown"), expected,
                  "install amdgpu-dkms from AMD's repository (AMD GPU driver 30.10 or later for ROCm 7.0 images) and "
                  "reboot; an inbox driver that lags the container's ROCm faults under load.")


def check_kfd_present(ctx):
    facts = ctx["facts"]
    path = facts.get("kfd_path")
    expected = "%s is a character device" % path
    if facts.get("kfd_present"):
        return _check("pass", "%s is a character device" % path, expected)
    if facts.get("kfd_exists"):
        return _check("fail", "%s exists but is not a character device" % path, expected,
                      "remove whatever replaced the device node and reload amdgpu (udev recreates it).")
    if not facts.get("amdgpu_loaded"):
        return _check("fail", "%s missing (amdgpu is not loaded)" % path, expected,
                      "load amdgpu (see amdgpu_loaded); /dev/kfd appears with it.")
    return _check("fail", "%s missing although amdgpu is loaded" % path, expected,
                  "amdgpu runs without KFD: the kernel needs CONFIG_HSA_AMD=y, or driver init failed; "
                  "read `dmesg | grep -i kfd`.")


def check_gpu_count(ctx):
    facts, settings = ctx["facts"], ctx["settings"]
    gpus, want, tp_size = facts.get("gpus") or [], settings["expected_gpus"], settings.get("tp_size")
    count = len(gpus)
    needs = ["%d (%s)" % (want, ROLE_VARIABLES["expected_gpus"])]
    if tp_size:
        needs.append("%d (%s)" % (tp_size, ROLE_VARIABLES["tp_size"]))
    expected = "at least " + " and ".join(needs) + " KFD GPU nodes"
    observed = "%s" % _plural(count, "KFD GPU node") + (" (%s)" % _nodes(gpus) if gpus else "")
    pci = facts.get("pci_gpus") or []
    orphans = sorted(set(p["address"] for p in pci) - set(g.get("pci_address") for g in gpus))
    if facts.get("pci_scanned"):
        observed += "; %s on PCI" % _plural(len(pci), "AMD GPU")
        if orphans:
            observed += ", without a KFD node: %s" % _listing(orphans, 4)
    if facts.get("unreadable_nodes"):
        observed += "; unreadable KFD nodes %s" % ranges(facts["unreadable_nodes"])
    short = count < want
    short_tp = bool(tp_size) and count < tp_size
    if not (short or short_tp):
        if orphans:
            return _check("warn", observed, expected,
                          "some AMD GPUs on PCI have no KFD node: read `dmesg | grep -i amdgpu` for GPUs that failed to initialise.")
        return _check("pass", observed, expected)
    parts = []
    if short:
        parts.append("%d missing of %d expected" % (want - count, want))
    if short_tp:
        parts.append("%s %d needs %d" % (ROLE_VARIABLES["tp_size"], tp_size, tp_size))
    observed += " (%s)" % "; ".join(parts)
    if not facts.get("amdgpu_loaded"):
        fix = "load amdgpu first (see amdgpu_loaded): without it no GPU has a KFD node."
    elif not facts.get("kfd_topology"):
        fix = "enable KFD first (see kfd_present): without it no GPU has a KFD node."
    else:
        fix = ("find the missing GPUs: `dmesg | grep -i amdgpu` for init failures, BIOS Above-4G decoding and SR-IOV, "
               "`pci=realloc=off` on the kernel command line, reseated OAMs; for a smaller host lower %s" % ROLE_VARIABLES["expected_gpus"])
        fix += " and %s." % ROLE_VARIABLES["tp_size"] if short_tp else "."
    return _check("fail", observed, expected, fix)


def check_gfx(ctx):
    gpus, allowed = ctx["facts"].get("gpus") or [], ctx["settings"]["gfx"]
    expected = "%s (%s)" % (" or ".join(allowed), ROLE_VARIABLES["gfx"])
    if not gpus:
        return _na("no KFD GPU nodes (see gpu_count)", expected)
    groups = {}
    for gpu in gpus:
        groups.setdefault((gpu.get("gfx") or "unknown", gpu.get("gfx_target_version")), []).append(gpu)
    described = []
    for (gfx, version), members in sorted(groups.items(), key=lambda kv: kv[1][0]["node"]):
        if gfx == "unknown":
            described.append("%s report no gfx_target_version" % _nodes(members))
        else:
            verb = "is" if len(members) == 1 else "are"
            described.append("%s %s %s (gfx_target_version %s)" % (_nodes(members), verb, gfx, version))
    bad = sorted(set(key[0] for key in groups if key[0] not in allowed))
    if not bad:
        return _check("pass", "; ".join(described), expected)
    return _check("fail", "; ".join(described), expected,
                  "the image is built for %s only: run this host with an SGLang ROCm image built for %s and list "
                  "that target in %s for this host." % (" and ".join(allowed), " and ".join(bad), ROLE_VARIABLES["gfx"]))


def check_render_nodes(ctx):
    facts = ctx["facts"]
    gpus = facts.get("gpus") or []
    expected = "a render node %s/dri/renderD<drm_render_minor> for every GPU" % facts["roots"]["dev_root"]
    if not gpus:
        return _na("no KFD GPU nodes (see gpu_count)", expected)
    missing = [gpu for gpu in gpus if not gpu.get("render_node_present")]
    if not missing:
        minors = sorted(gpu["render_minor"] for gpu in gpus)
        span = "renderD%d" % minors[0] if len(minors) == 1 else "renderD%d..renderD%d" % (minors[0], minors[-1])
        return _check("pass", "all %s present (%s)" % (_plural(len(gpus), "render node"), span), expected)
    described = ["%s (node %d)" % (gpu["render_node"], gpu["node"]) if gpu.get("render_node")
                 else "node %d reports no drm_render_minor" % gpu["node"] for gpu in missing]
    return _check("fail", "missing: %s" % _listing(described, 4), expected,
                  "without its render node a GPU is invisible to `docker run --device=/dev/dri`: check udev and "
                  "`ls -l /dev/dri`, and `dmesg | grep -i drm` for 'Skip xcp node ... out of drm node resource'.")


def check_vram(ctx):
    gpus, minimum = ctx["facts"].get("gpus") or [], float(ctx["settings"]["min_vram_gib"])
    expected = "at least %g GiB per GPU (%s)" % (minimum, ROLE_VARIABLES["min_vram_gib"])
    if not gpus:
        return _na("no KFD GPU nodes (see gpu_count)", expected)
    unknown = [gpu for gpu in gpus if not gpu.get("vram_bytes")]
    low = [gpu for gpu in gpus if gpu.get("vram_bytes") and gpu["vram_bytes"] < minimum * GIB]
    sizes = {}
    for gpu in gpus:
        if gpu.get("vram_bytes"):
            sizes.setdefault(gpu["vram_bytes"], []).append(gpu)
    observed = "; ".join("%s: %s" % (_nodes(members), gib(size)) for size, members in sorted(sizes.items()))
    if unknown:
        observed = (observed + "; " if observed else "") + "%s: size unknown" % _nodes(unknown)
    if low:
        partitioned = any(gpu.get("compute_partition") not in (None, "SPX") for gpu in low)
        fix = ("the GPUs are partitioned, which splits VRAM between logical GPUs: return them to SPX/NPS1 (see partition)."
               if partitioned else
               "these GPUs have less memory than the model plan needs: use larger GPUs or a smaller model, or lower "
               "%s if the model fits." % ROLE_VARIABLES["min_vram_gib"])
        return _check("fail", observed, expected, fix)
    if unknown:
        return _check("warn", observed, expected, "mem_banks/0/properties and mem_info_vram_total were unreadable; "
                                                  "see facts_readable.")
    return _check("pass", observed, expected)


# GPUs that have compute and memory partitions, so their partition files must be there
PARTITIONED_GFX = ("gfx942",)


def _partition_unreadable(facts, gpus):
    """One text per partition file of a partitioned GPU (gfx942) that could not be read: which
    GPU, which file and the error (missing, when the driver has no such file)."""
    sysfs = facts.get("roots", {}).get("sysfs_root", "/sys")
    errors = dict((e.get("path"), e.get("error")) for e in facts.get("errors") or [])
    found, seen = [], set()
    for gpu in gpus:
        if gpu.get("gfx") not in PARTITIONED_GFX or not gpu.get("pci_address"):
            continue
        for key in ("compute", "memory"):
            path = os.path.join(sysfs, "bus/pci/devices", gpu["pci_address"], "current_%s_partition" % key)
            if gpu.get("%s_partition" % key) or path in seen:
                continue  # logical GPUs of one physical GPU share its PCI function's files
            seen.add(path)
            error = errors.get(path) or "missing"
            found.append("%s GPU %s (node %s): %s: %s" % (gpu["gfx"], gpu["pci_address"], gpu.get("node"), path, error))
    return found


def check_partition(ctx):
    gpus, settings = ctx["facts"].get("gpus") or [], ctx["settings"]
    compute_ok = [p.upper() for p in settings["compute_partitions"]]
    memory_ok = [p.upper() for p in settings["memory_partitions"]]
    expected = "compute %s, memory %s (%s, %s)" % ("/".join(compute_ok), "/".join(memory_ok),
                                                   ROLE_VARIABLES["compute_partitions"], ROLE_VARIABLES["memory_partitions"])
    known = [gpu for gpu in gpus if gpu.get("compute_partition") or gpu.get("memory_partition")]
    unreadable = _partition_unreadable(ctx["facts"], gpus)
    unread_note = "partition file unreadable: %s" % _listing(unreadable, 3) if unreadable else ""
    unread_fix = ("the partition mode of these GPUs could not be checked: read the file as root (`cat` it), "
                  "and check `amd-smi partition` and `dmesg | grep -i amdgpu`; a driver without partition "
                  "files is too old for MI300 partition modes.")
    if not known:
        if unreadable:
            return _check("warn", unread_note, expected, unread_fix)
        return _na("no partition files (GPUs without compute partitions, e.g. MI200)" if gpus
                   else "no KFD GPU nodes (see gpu_count)", expected)
    modes = {}
    for gpu in known:
        key = (gpu.get("compute_partition") or "?", gpu.get("memory_partition") or "?")
        modes.setdefault(key, set()).add(gpu.get("pci_address") or "node %d" % gpu["node"])
    observed = "; ".join("%s/%s on %s" % (key[0], key[1], _plural(len(addrs), "GPU"))
                         + (" (%s)" % _listing(sorted(addrs), 3) if key[0] not in compute_ok or key[1] not in memory_ok else "")
                         for key, addrs in sorted(modes.items()))
    if unreadable:
        observed += "; " + unread_note
    # "?" is a file that could not be read: a warning (unread_note), not a wrong mode
    if all(key[0] in compute_ok + ["?"] and key[1] in memory_ok + ["?"] for key in modes):
        if unreadable:
            return _check("warn", observed, expected, unread_fix)
        return _check("pass", observed, expected)
    return _check("fail", observed, expected,
                  "stop all GPU work, then `amd-smi set --memory-partition %s` and `amd-smi set --compute-partition %s` "
                  "(ROCm 7: then `amd-smi reset -r`); never done automatically. SPX with NPS4 is not a valid combination."
                  % (memory_ok[0], compute_ok[0]))


def check_numa_balancing(ctx):
    facts = ctx["facts"]
    path = os.path.join(facts["roots"]["proc_root"], "sys/kernel/numa_balancing")
    value = facts.get("numa_balancing")
    expected = "%s = 0" % NUMA_KEY
    if value is None:
        if any(e["path"] == path for e in facts.get("errors") or []):
            return _check("warn", "%s unreadable" % path, expected, "see facts_readable.")
        return _check("pass", "%s absent: kernel without NUMA balancing" % path, expected)
    if value == 0:
        return _check("pass", "%s = 0" % NUMA_KEY, expected)
    return _check("fail", "%s = %s (%s)" % (NUMA_KEY, value, path), expected,
                  "`sysctl -w kernel.numa_balancing=0` and persist it in %s (sglang_preflight_remediate: true does "
                  "both); AMD recommends 0 on MI300X: RCCL warns, and GPUs can stall while the kernel rebalances."
                  % (ctx["settings"].get("sysctl_file") or "/etc/sysctl.d/"))


def grub_line(cmdline, missing):
    """The GRUB_CMDLINE_LINUX line to write: today's arguments (without the boot ones) plus the missing ones."""
    kept = [arg for arg in (cmdline or "").split()
            if not arg.startswith(("BOOT_IMAGE=", "root=", "initrd=")) and arg not in ("ro", "rw")]
    return 'GRUB_CMDLINE_LINUX="%s"' % " ".join(kept + [arg for arg in missing if arg not in kept])


def check_iommu(ctx):
    facts, settings = ctx["facts"], ctx["settings"]
    wanted = list(settings.get("kernel_params") or [])
    expected = "iommu=pt on the kernel command line (IOMMU passthrough)"
    if wanted:
        expected += ", and %s (%s)" % (" ".join(wanted), ROLE_VARIABLES["kernel_params"])
    if facts.get("kernel_cmdline") is None:
        return _check("warn", "%s/cmdline unreadable" % facts["roots"]["proc_root"], expected, "see facts_readable.")
    args = facts["kernel_cmdline"].split()
    missing = [arg for arg in wanted if arg not in args]
    types = sorted(set(g["iommu_group_type"] for g in facts.get("gpus") or [] if g.get("iommu_group_type")))
    groups = " (GPU IOMMU groups: %s)" % ", ".join(types) if types else ""
    lacking = "; missing %s" % " ".join(missing) if missing else ""
    if facts.get("iommu_passthrough"):
        observed = ("iommu=pt on the kernel command line" + groups if "iommu=pt" in args
                    else "GPU IOMMU groups are identity (passthrough)") + lacking
        if not missing:
            return _check("pass", observed, expected)
        return _check("warn", observed, expected,
                      "AMD's system acceptance guide requires %s (pci=realloc=off: GPUs whose SR-IOV BARs the BIOS did "
                      "not allocate go missing without it): " % " and ".join(missing)
                      + GRUB_FIX % grub_line(facts["kernel_cmdline"], missing))
    return _check("fail", "iommu=pt missing from the kernel command line" + groups + lacking, expected,
                  "add iommu=pt (Intel CPUs: also intel_iommu=on) and %s: " % (" ".join(missing) or "nothing else")
                  + GRUB_FIX % grub_line(facts["kernel_cmdline"], ["iommu=pt"] + missing)
                  + " RCCL warns that without iommu=pt the system can become unstable or hang.")


def check_dev_mem(ctx):
    facts = ctx["facts"]
    path = os.path.join(facts["roots"]["dev_root"], "mem")
    expected = "%s present (the recipe passes --device=/dev/mem)" % path
    if facts.get("dev_mem_present"):
        return _check("pass", "%s present" % path, expected)
    return _check("warn", "%s missing" % path, expected,
                  "use a kernel with CONFIG_DEVMEM, or leave /dev/mem out of the container's devices: "
                  "`docker run --device` fails on a missing node.")


def check_docker_daemon(ctx):
    docker = ctx.get("docker")
    expected = "the Docker daemon answers at sglang_docker_host"
    if docker is None:
        return _na("not checked", expected)
    if docker.get("reachable"):
        return _check("pass", "Docker %s at %s (data root %s)" % (docker.get("version") or "?", docker.get("host"),
                                                                  docker.get("root_dir") or "?"), expected)
    error = " ".join(str(docker.get("error") or "no answer").split())
    return _check("fail", "no answer at %s: %s" % (docker.get("host"), error[:300]), expected,
                  "start and enable the daemon (`systemctl enable --now docker`), or set sglang_docker_host to "
                  "where it listens.")


def _disk(ctx, key, label):
    minimum = float(ctx["settings"]["min_free_disk_gib"])
    disk = (ctx.get("disks") or {}).get(key)
    expected = "at least %g GiB free (%s)" % (minimum, ROLE_VARIABLES["min_free_disk_gib"])
    if disk is None:
        return None, expected
    if disk.get("error") or disk.get("free_bytes") is None:
        return _check("warn", "cannot measure %s: %s" % (disk["path"], disk.get("error")), expected,
                      "check that the path is readable by the preflight user."), expected
    where = disk["path"] + ("" if disk["measured_at"] == disk["path"] else " (measured at %s)" % disk["measured_at"])
    observed = "%s free of %s on %s%s" % (gib(disk["free_bytes"]), gib(disk["total_bytes"]), where, label)
    if disk["free_bytes"] >= minimum * GIB:
        return _check("pass", observed, expected), expected
    return _check("fail", observed, expected, None), expected


def check_docker_disk(ctx):
    docker = ctx.get("docker")
    result, expected = _disk(ctx, "docker_root", "")
    if docker is None or not docker.get("reachable"):
        return _na("Docker data root unknown: the daemon did not answer (see docker_daemon)", expected)
    if not docker.get("local"):
        return _na("the daemon at %s is remote: its data root is not on this host" % docker.get("host"), expected)
    if result is None:
        return _na("the daemon reported no data root", expected)
    if result["status"] == "fail":
        result["fix"] = ("free space there (`docker system prune` removes unused images) or move Docker's data-root "
                         "to a larger disk; the SGLang ROCm image alone takes tens of GB.")
    return result


def check_cache_dir(ctx):
    cache_dir = ctx["settings"].get("cache_dir")
    expected = "sglang_cache_dir is a directory"
    if not cache_dir:
        return _na("not checked (no cache directory given)", expected)
    disk = (ctx.get("disks") or {}).get("cache_dir") or {}
    if disk.get("is_dir"):
        return _check("pass", "%s exists" % cache_dir, expected)
    if disk.get("exists"):
        return _check("fail", "%s exists but is not a directory" % cache_dir, expected,
                      "remove or rename that file, or point sglang_cache_dir elsewhere.")
    return _check("warn", "%s does not exist" % cache_dir, expected,
                  "create it (sglang_preflight_remediate: true does), or point sglang_cache_dir at an existing directory.")


def check_cache_disk(ctx):
    result, expected = _disk(ctx, "cache_dir", "")
    if result is None:
        return _na("not checked (no cache directory given)", expected)
    disks = ctx.get("disks") or {}
    docker_root, cache = disks.get("docker_root") or {}, disks.get("cache_dir") or {}
    if docker_root.get("device") is not None and docker_root.get("device") == cache.get("device"):
        result["observed"] += " (same filesystem as the Docker data root)"
    if result["status"] == "fail":
        result["fix"] = ("point sglang_cache_dir at a filesystem with more free space: the model weights and the "
                         "kernel (AITER JIT) cache live there.")
    return result


def check_gpu_processes(ctx):
    facts = ctx["facts"]
    expected = "no process holds the GPUs"
    if not facts.get("kfd_present"):
        return _na("no /dev/kfd (see kfd_present)", expected)
    pids = facts.get("kfd_processes") or []
    busy = [gpu for gpu in facts.get("gpus") or [] if (gpu.get("vram_used_bytes") or 0) > GIB]
    if not pids and not busy:
        return _check("pass", "no KFD processes", expected)
    parts = []
    if pids:
        parts.append("%s hold /dev/kfd (pids %s)" % (_plural(len(pids), "process"), _listing(pids, 6)))
    if busy:
        parts.append("%s use VRAM (%s)" % (_nodes(busy), ", ".join(gib(g["vram_used_bytes"]) for g in busy[:4])))
    return _check("warn", "; ".join(parts), expected,
                  "stop leftover GPU workloads (`docker ps`, `amd-smi process`) before serving: memory they hold makes "
                  "the server run out of VRAM.")


def check_env_hygiene(ctx):
    env = ctx["settings"].get("container_env") or {}
    expected = "none of %s in the container's environment" % ", ".join(RISKY_ENV)
    found = sorted(key for key in env if key in RISKY_ENV)
    if not found:
        return _check("pass", "none set", expected)
    return _check("warn", "set: %s" % ", ".join("%s=%s" % (k, env[k]) for k in found), expected,
                  "remove them from sglang_container_env and sglang_env: HSA_OVERRIDE_GFX_VERSION is a hack for "
                  "unsupported consumer GPUs and breaks HSA init on current runtimes; *_VISIBLE_DEVICES hides GPUs "
                  "that --tp-size needs.")


def check_amd_smi(ctx):
    facts = ctx["facts"]
    smi = facts.get("smi") or {}
    mode = smi.get("mode") or "never"
    expected = "amd-smi answers (optional unless sglang_preflight_amd_smi is always)"
    if mode == "never":
        return _na("not consulted (sglang_preflight_amd_smi: never)", expected)
    if smi.get("error"):
        return _check("fail" if mode == "always" else "warn", smi["error"][:400], expected,
                      "install amd-smi (the amd-smi-lib package of ROCm) or set sglang_preflight_amd_smi: auto"
                      if not smi.get("tool") else
                      "run the same command by hand; a driver/amd-smi version mismatch is the usual cause.")
    if not smi.get("tool"):
        return _check("pass", "not installed (optional: the image ships its own ROCm)", expected)
    version = smi.get("version") or {}
    about = ", ".join(part for part in (
        "ROCm %s" % version["rocm_version"] if version.get("rocm_version") else "",
        "amdgpu %s" % version["amdgpu_version"] if version.get("amdgpu_version") else "") if part)
    observed = "%s %s%s lists %s" % (smi["tool"], version.get("version") or version.get("tool_version") or "",
                                     " (%s)" % about if about else "", _plural(len(smi.get("gpus") or []), "GPU"))
    if len(smi.get("gpus") or []) != facts.get("gpu_count"):
        return _check("warn", observed + ", KFD exposes %d" % facts.get("gpu_count", 0), expected,
                      "compare `amd-smi list` with the KFD topology; a GPU that amd-smi sees without a KFD node "
                      "failed to initialise (see `dmesg | grep -i amdgpu`).")
    return _check("pass", observed, expected)


def _gpu_label(gpu):
    return "%s (node %d)" % (gpu.get("pci_address") or "?", gpu["node"])


def _physical(gpus):
    """One GPU per PCI function: partitions of one GPU share its link and counters."""
    seen, result = set(), []
    for gpu in gpus:
        key = gpu.get("pci_address") or gpu["node"]
        if key not in seen:
            seen.add(key)
            result.append(gpu)
    return result


def _link_text(link):
    speed = link.get("current_speed_gts")
    return "%s x%s" % ("%g GT/s" % speed if speed else "? GT/s", link.get("current_width") or "?")


def check_pcie_link(ctx):
    gpus, settings = _physical(ctx["facts"].get("gpus") or []), ctx["settings"]
    min_speed, min_width = settings.get("pcie_min_speed_gts") or 0, settings.get("pcie_min_width") or 0
    expected = "every GPU's link at its max; MI300-class at least %g GT/s x%d (%s, %s)" % (
        min_speed, min_width, ROLE_VARIABLES["pcie_min_speed_gts"], ROLE_VARIABLES["pcie_min_width"])
    if not gpus:
        return _na("no KFD GPU nodes (see gpu_count)", expected)
    links = [(gpu, (gpu.get("pcie") or {}).get("link")) for gpu in gpus]
    if all(link is None for _gpu, link in links):
        return _na("no PCIe link files (current_link_speed) for any GPU", expected)
    slow, degraded, unknown = [], [], []
    for gpu, link in links:
        if link is None or not link.get("current_speed_gts") or not link.get("current_width"):
            unknown.append(gpu)
            continue
        text = "%s %s via %s" % (_gpu_label(gpu), _link_text(link), link.get("source"))
        if gpu.get("device_id") in MI300_DEVICE_IDS and (
                link["current_speed_gts"] < min_speed or link["current_width"] < min_width):
            slow.append("%s, below %g GT/s x%d" % (text, min_speed, min_width))
        elif (link.get("max_speed_gts") and link["current_speed_gts"] < link["max_speed_gts"]) or (
                link.get("max_width") and link["current_width"] < link["max_width"]):
            degraded.append("%s, max %g GT/s x%s" % (text, link.get("max_speed_gts") or 0, link.get("max_width") or "?"))
    parts = []
    if slow:
        parts.append(_listing(slow, 4))
    if degraded:
        parts.append("below max: " + _listing(degraded, 4))
    if unknown:
        parts.append("link unknown (unreadable) on %s" % _listing((_gpu_label(g) for g in unknown), 4))
    fix = ("reseat the GPU/OAM and check the riser/retimer and the BIOS PCIe speed setting (Gen5 auto); "
           "`lspci -vvv -s <address>` shows LnkSta against LnkCap. A link below Gen5 x16 halves host-to-GPU "
           "bandwidth (model loading, KV offload).")
    if slow:
        return _check("fail", "; ".join(parts), expected, fix)
    if degraded or unknown:
        return _check("warn", "; ".join(parts), expected, fix if degraded else "see facts_readable; a link that cannot "
                      "be read is never taken as good.")
    first = links[0][1]
    return _check("pass", "%s at %s (%s)" % (_plural(len(gpus), "GPU"), _link_text(first), first.get("source")), expected)


def _ras_state(gpus):
    """(exposed GPUs, per-GPU totals [(gpu, ue, ce, unknown blocks)])."""
    exposed = [gpu for gpu in gpus if (gpu.get("ras") or {}).get("exposed")]
    totals = []
    for gpu in exposed:
        blocks = gpu["ras"]["blocks"]
        unknown = sorted(name for name, block in blocks.items() if block.get("error"))
        ue = sum(block["ue"] for block in blocks.values() if block.get("ue") is not None)
        ce = sum(block["ce"] for block in blocks.values() if block.get("ce") is not None)
        totals.append((gpu, ue, ce, unknown))
    return exposed, totals


def check_ecc_uncorrectable(ctx):
    gpus, limit = _physical(ctx["facts"].get("gpus") or []), ctx["settings"].get("max_bad_pages") or 0
    expected = "no uncorrectable ECC errors and at most %d retired pages per GPU (%s)" % (limit, ROLE_VARIABLES["max_bad_pages"])
    exposed, totals = _ras_state(gpus)
    if not exposed:
        return _na("no RAS counters exposed (<pci>/ras)" if gpus else "no KFD GPU nodes (see gpu_count)", expected)
    bad, unknown = [], []
    for gpu, ue, _ce, unknown_blocks in totals:
        ras = gpu["ras"]
        blocks = ", ".join("%s ue %d" % (name, b["ue"]) for name, b in sorted(ras["blocks"].items()) if b.get("ue"))
        if ue:
            bad.append("%s: %s" % (_gpu_label(gpu), blocks))
        if ras.get("bad_pages") is not None and ras["bad_pages"] > limit:
            bad.append("%s: %d retired pages (threshold %d)" % (_gpu_label(gpu), ras["bad_pages"], limit))
        if unknown_blocks or ras.get("bad_pages_error"):
            unknown.append("%s (%s)" % (_gpu_label(gpu), ", ".join(
                ["%s: %s" % (n, ras["blocks"][n]["error"]) for n in unknown_blocks]
                + (["bad pages: %s" % ras["bad_pages_error"]] if ras.get("bad_pages_error") else []))))
    parts = ([_listing(bad, 4)] if bad else []) + (["unknown on %s" % _listing(unknown, 3)] if unknown else [])
    if bad:
        return _check("fail", "; ".join(parts), expected,
                      "take the host out of service and have the GPU checked (`amd-smi bad-pages`, `amd-smi metric --ecc`); "
                      "uncorrectable errors corrupt results or crash the server, and AMD replaces GPUs past the "
                      "driver's bad-page threshold.")
    if unknown:
        return _check("warn", "; ".join(parts), expected,
                      "the counters could not be read (GPU in reset, or not root): see facts_readable; unknown is "
                      "never taken as zero.")
    return _check("pass", "%s: 0 uncorrectable, %s" % (_plural(len(exposed), "GPU"), "no retired pages" if not any(
        (g["ras"].get("bad_pages") or 0) for g in exposed) else "retired pages within the threshold"), expected)


def check_ecc_correctable(ctx):
    facts, limit = ctx["facts"], ctx["settings"].get("max_ce_per_day") or 0
    gpus = _physical(facts.get("gpus") or [])
    expected = "at most %g correctable ECC errors per GPU per day of uptime (%s)" % (limit, ROLE_VARIABLES["max_ce_per_day"])
    exposed, totals = _ras_state(gpus)
    if not exposed:
        return _na("no RAS counters exposed (<pci>/ras)" if gpus else "no KFD GPU nodes (see gpu_count)", expected)
    uptime = facts.get("uptime_seconds")
    if not uptime:
        return _check("warn", "uptime unknown (%s/uptime unreadable)" % facts["roots"]["proc_root"], expected,
                      "see facts_readable.")
    days = max(uptime / 86400.0, 1.0 / 24)  # at least an hour: a fresh boot does not turn 1 error into a storm
    high = ["%s: %d in %.1f days (%.0f/day)" % (_gpu_label(g), ce, uptime / 86400.0, ce / days)
            for g, _ue, ce, _u in totals if ce / days > limit]
    unknown = [_gpu_label(g) for g, _ue, _ce, u in totals if u]
    if high:
        return _check("warn", _listing(high, 4), expected,
                      "watch the GPU: a rising correctable rate often precedes uncorrectable errors and page "
                      "retirement; `amd-smi metric --ecc-blocks` shows which block.")
    if unknown:
        return _check("warn", "counters unknown on %s" % _listing(unknown, 4), expected, "see facts_readable.")
    worst = max(ce for _g, _ue, ce, _u in totals)
    return _check("pass", "at most %d correctable errors per GPU in %.1f days" % (worst, uptime / 86400.0), expected)


def check_kernel_log(ctx):
    log = ctx["facts"].get("kernel_log") or {}
    expected = "no amdgpu GPU reset or page fault in %s since boot" % (log.get("path") or "kmsg")
    if not ctx["facts"].get("amdgpu_loaded"):
        return _na("amdgpu not loaded (see amdgpu_loaded)", expected)
    if not log.get("readable"):
        return _check("warn", "%s unreadable: %s" % (log.get("path"), log.get("error")), expected,
                      "run the preflight as root (become: true): the kernel log needs it; unread is never clean.")
    events = log.get("events") or []
    if not events:
        return _check("pass", "%d amdgpu messages, no reset or page fault" % log.get("amdgpu_lines", 0), expected)
    lines = ["[%.1f] %s" % (e["seconds"], e["line"]) for e in events[:5]]
    more = " (and %d more)" % (log["event_count"] - 5) if log.get("event_count", 0) > 5 else ""
    return _check("fail", "%d resets, %d page faults: %s%s" % (log.get("resets", 0), log.get("page_faults", 0),
                                                               " | ".join(lines), more), expected,
                  "find the cause before serving (`dmesg -T | grep -i amdgpu`): a GPU that reset or faulted since boot "
                  "tends to again under load; reboot to clear the log once fixed.")


def check_firmware_settings(ctx):
    facts, user_env = ctx["facts"], ctx["settings"].get("container_env") or {}
    expected = "no firmware condition that needs a setting (rules in _firmware_rules.py)"
    if not facts.get("gpus"):
        return _na("no KFD GPU nodes (see gpu_count)", expected)
    applied = firmware_rules(facts)
    if not applied:
        return _check("pass", "no firmware rule applies", expected)
    parts = []
    for entry in applied:
        settings = []
        for key, value in sorted(entry["env"].items()):
            if key in user_env and str(user_env[key]) != value:
                settings.append("%s=%s from sglang_env wins over %s" % (key, user_env[key], value))
            else:
                settings.append("%s=%s applied" % (key, value))
        parts.append("%s %s on %s, below %d: %s (%s)" % (
            entry["label"], "/".join(str(v) for v in entry["values"]), _nodes([{"node": n} for n in entry["gpus"]]),
            entry["below"], ", ".join(settings), entry["why"]))
    return _check("warn", "; ".join(parts), expected,
                  "update the GPU firmware (AMD's firmware bundle for the platform) to lift the setting; until then "
                  "the server role sets it on this host only (the sglang_firmware_env fact).")


class Check(namedtuple("Check", ("name", "evaluate", "fails_when", "safe_fix"))):
    """One preflight check.

    name: what the report, the module's ``skip`` and ``sglang_preflight_skip`` call it.
    evaluate: ``ctx -> {status, observed, expected, fix}``; ctx has facts, settings, docker, disks.
    fails_when: docs/preflight.md's "fails (or warns) when" cell, Markdown, one line.
    safe_fix: what ``sglang_preflight_remediate: true`` does about it (plan_remediation in
    _preflight.py), "never (why)" when the fix is deliberately left to the operator, "-" for none.
    """

    __slots__ = ()


NO_FIX = "-"

# Every check, in report order. Add a check here (and run tests/scripts/preflight_registry.py --write).
REGISTRY = (
    Check("facts_readable", check_facts_readable,
          "files exist but cannot be read (permission denied fails: KFD hides GPUs from an unprivileged container)",
          NO_FIX),
    Check("amdgpu_loaded", check_amdgpu_loaded,
          "`/sys/module/amdgpu` is missing or its initstate is not `live`", "`modprobe amdgpu`"),
    Check("driver_version", check_driver_version,
          "warns for the inbox driver (no `/sys/module/amdgpu/version`)", NO_FIX),
    Check("kfd_present", check_kfd_present, "`/dev/kfd` is missing or not a character device", NO_FIX),
    Check("gpu_count", check_gpu_count,
          "fewer KFD GPU nodes than `sglang_preflight_expected_gpus` or than `sglang_tp_size`; names the PCI GPUs "
          "without a KFD node", NO_FIX),
    Check("gfx", check_gfx,
          "a GPU's target is not in `sglang_preflight_gfx` (the `-mi30x` image is gfx942 only)", NO_FIX),
    Check("render_nodes", check_render_nodes, "a GPU's `/dev/dri/renderD<minor>` is missing", NO_FIX),
    Check("vram", check_vram, "a GPU has less than `sglang_preflight_min_vram_gib`", NO_FIX),
    Check("partition", check_partition,
          "compute/memory partition not in `sglang_preflight_compute_partitions` / `_memory_partitions`; "
          "warns when a gfx942 GPU's partition file cannot be read (which GPU, which file, the error)",
          "never (needs all GPU work stopped)"),
    Check("numa_balancing", check_numa_balancing, "`kernel.numa_balancing` is not 0",
          "write 0 live and persist it in `sglang_preflight_sysctl_file`"),
    Check("iommu", check_iommu,
          "`iommu=pt` is not on the kernel command line (and the GPUs' IOMMU groups are not identity); warns, with the "
          "GRUB line to write, when an argument of `sglang_preflight_kernel_params` is missing",
          "never (GRUB edit + reboot)"),
    Check("dev_mem", check_dev_mem,
          "warns when `/dev/mem` is missing (the recipe passes `--device=/dev/mem`)", NO_FIX),
    Check("docker_daemon", check_docker_daemon, "the daemon at `sglang_docker_host` does not answer", NO_FIX),
    Check("docker_disk", check_docker_disk,
          "less than `sglang_preflight_min_free_disk_gib` free on the Docker data root", NO_FIX),
    Check("cache_dir", check_cache_dir, "warns when `sglang_cache_dir` does not exist", "create it"),
    Check("cache_disk", check_cache_disk,
          "less than `sglang_preflight_min_free_disk_gib` free where `sglang_cache_dir` lives", NO_FIX),
    Check("gpu_processes", check_gpu_processes,
          "warns when processes hold `/dev/kfd` or GPUs have VRAM in use", NO_FIX),
    Check("env_hygiene", check_env_hygiene,
          "warns when the container environment sets `HSA_OVERRIDE_GFX_VERSION` or `*_VISIBLE_DEVICES`", NO_FIX),
    Check("amd_smi", check_amd_smi,
          "amd-smi errors (warn; fail with `sglang_preflight_amd_smi: always`) or disagrees with KFD", NO_FIX),
    Check("pcie_link", check_pcie_link,
          "an MI300-class GPU's link is below `sglang_preflight_pcie_min_speed_gts` x `_pcie_min_width` (fail); "
          "any GPU's link is below its max, or unreadable (warn)", "never (hardware)"),
    Check("ecc_uncorrectable", check_ecc_uncorrectable,
          "a GPU has uncorrectable ECC errors or more retired pages than `sglang_preflight_max_bad_pages` (fail); "
          "a counter is unreadable or inaccessible (warn)", NO_FIX),
    Check("ecc_correctable", check_ecc_correctable,
          "warns when a GPU's correctable ECC errors per day of uptime exceed `sglang_preflight_max_ce_per_day`",
          NO_FIX),
    Check("kernel_log", check_kernel_log,
          "the kernel log holds amdgpu GPU resets or page faults (fail, with the lines); unreadable (warn)", NO_FIX),
    Check("firmware_settings", check_firmware_settings,
          "warns when a firmware rule applies (MEC < 177 on gfx942: `HSA_NO_SCRATCH_RECLAIM=1`), saying what the "
          "server will set", "never (the server role applies the setting on that host)"),
)
CHECKS = tuple(check.name for check in REGISTRY)
