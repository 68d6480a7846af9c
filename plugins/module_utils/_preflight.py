# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)
"""Preflight policy: validate inputs, evaluate every check, plan and apply safe fixes, report.

Pure logic behind the rocm_preflight module, which ships it to each GPU host; no AnsibleModule
here. The fleet report built from the hosts' results is _report_preflight's, on the controller. The checks and their passing values, messages and
fixes follow ../shared/reference/rocm_host.md section 7.
"""

from __future__ import absolute_import, division, print_function

import errno
import json
import os
import re
import tempfile

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._rocm import missing_roots, root_error

__metaclass__ = type

REPORT_SCHEMA_VERSION = 1
GIB = 1 << 30

# Every check, in report order. These names are what sglang_preflight_skip accepts.
CHECKS = (
    "facts_readable", "amdgpu_loaded", "driver_version", "kfd_present", "gpu_count", "gfx",
    "render_nodes", "vram", "partition", "numa_balancing", "iommu", "dev_mem", "docker_daemon",
    "docker_disk", "cache_dir", "cache_disk", "gpu_processes", "env_hygiene", "amd_smi",
)
COMPUTE_PARTITIONS = ("SPX", "DPX", "TPX", "QPX", "CPX")
MEMORY_PARTITIONS = ("NPS1", "NPS2", "NPS4", "NPS8")
# Set in the container's environment these hide GPUs or fake the GPU target.
RISKY_ENV = ("HSA_OVERRIDE_GFX_VERSION", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")
NUMA_KEY = "kernel.numa_balancing"

# Module option -> the variable a user of the preflight role sets, so errors name what to change.
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
}


def _var(option):
    return "%s (option %s)" % (ROLE_VARIABLES[option], option) if option in ROLE_VARIABLES else option


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value):
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Input validation: all problems at once, before anything is read or changed.
# --------------------------------------------------------------------------------------------

def validate_inputs(params, host):
    """Every problem with the preflight's inputs, as messages naming variable, value and fix."""
    errors = []

    def bad(option, seen, expected, fix):
        errors.append("%s on host %s: got %s; expected %s. Fix: %s" % (_var(option), host, seen, expected, fix))

    roots = [(name, params.get(name)) for name in ("sysfs_root", "dev_root", "proc_root")]
    for name, path in missing_roots([(n, p) for n, p in roots if p]):
        errors.append(root_error(name, path, ROLE_VARIABLES[name], host))
    expected_gpus = params.get("expected_gpus")
    if not _is_int(expected_gpus) or expected_gpus < 0:
        bad("expected_gpus", repr(expected_gpus), "an integer >= 0: the GPUs this host must expose",
            "set %s to the host's GPU count (8 on an MI300X platform)." % ROLE_VARIABLES["expected_gpus"])
    tp_size = params.get("tp_size")
    if tp_size is not None and (not _is_int(tp_size) or tp_size < 1):
        bad("tp_size", repr(tp_size), "an integer >= 1 (the server's --tp-size)",
            "set %s to the number of GPUs one server uses, e.g. 4 or 8." % ROLE_VARIABLES["tp_size"])
    for option in ("min_vram_gib", "min_free_disk_gib"):
        number = _number(params.get(option))
        if number is None or number < 0:
            bad(option, repr(params.get(option)), "a number of GiB >= 0",
                "set %s to a non-negative number, e.g. 180." % ROLE_VARIABLES[option])
    gfx = params.get("gfx")
    if not isinstance(gfx, list) or not gfx or not all(isinstance(g, str) and re.match(r"^gfx[0-9a-f]{3,4}$", g) for g in gfx):
        bad("gfx", repr(gfx), "a non-empty list of LLVM GPU targets such as [gfx942]",
            "list the targets your image is built for (the -mi30x images: gfx942).")
    for option, known in (("compute_partitions", COMPUTE_PARTITIONS), ("memory_partitions", MEMORY_PARTITIONS)):
        value = params.get(option)
        unknown = [v for v in value if str(v).upper() not in known] if isinstance(value, list) else None
        if not value or unknown:
            bad(option, repr(value), "a non-empty list drawn from %s" % ", ".join(known),
                "use the partition mode names amd-smi prints, e.g. [%s]." % known[0])
    skip = params.get("skip") or []
    unknown = [name for name in skip if name not in CHECKS]
    if unknown:
        bad("skip", ", ".join(repr(n) for n in unknown), "names of checks: %s" % ", ".join(CHECKS),
            "correct the spelling or remove the entry from %s." % ROLE_VARIABLES["skip"])
    for option in ("cache_dir", "sysctl_file", "rocm_path"):
        value = params.get(option)
        if value is not None and not os.path.isabs(str(value)):
            bad(option, repr(value), "an absolute path on the host", "give %s as an absolute path." % _var(option))
    return errors


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


def check_partition(ctx):
    gpus, settings = ctx["facts"].get("gpus") or [], ctx["settings"]
    compute_ok = [p.upper() for p in settings["compute_partitions"]]
    memory_ok = [p.upper() for p in settings["memory_partitions"]]
    expected = "compute %s, memory %s (%s, %s)" % ("/".join(compute_ok), "/".join(memory_ok),
                                                   ROLE_VARIABLES["compute_partitions"], ROLE_VARIABLES["memory_partitions"])
    known = [gpu for gpu in gpus if gpu.get("compute_partition") or gpu.get("memory_partition")]
    if not known:
        return _na("no partition files (GPUs without compute partitions, e.g. MI200)" if gpus
                   else "no KFD GPU nodes (see gpu_count)", expected)
    modes = {}
    for gpu in known:
        key = (gpu.get("compute_partition") or "?", gpu.get("memory_partition") or "?")
        modes.setdefault(key, set()).add(gpu.get("pci_address") or "node %d" % gpu["node"])
    observed = "; ".join("%s/%s on %s" % (key[0], key[1], _plural(len(addrs), "GPU"))
                         + (" (%s)" % _listing(sorted(addrs), 3) if key[0] not in compute_ok or key[1] not in memory_ok else "")
                         for key, addrs in sorted(modes.items()))
    if all(key[0] in compute_ok and key[1] in memory_ok for key in modes):
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


def check_iommu(ctx):
    facts = ctx["facts"]
    expected = "iommu=pt on the kernel command line (IOMMU passthrough)"
    if facts.get("kernel_cmdline") is None:
        return _check("warn", "%s/cmdline unreadable" % facts["roots"]["proc_root"], expected, "see facts_readable.")
    types = sorted(set(g["iommu_group_type"] for g in facts.get("gpus") or [] if g.get("iommu_group_type")))
    groups = " (GPU IOMMU groups: %s)" % ", ".join(types) if types else ""
    if facts.get("iommu_passthrough"):
        if "iommu=pt" in facts["kernel_cmdline"].split():
            return _check("pass", "iommu=pt on the kernel command line" + groups, expected)
        return _check("pass", "GPU IOMMU groups are identity (passthrough)", expected)
    return _check("fail", "iommu=pt missing from the kernel command line" + groups, expected,
                  "add iommu=pt (Intel CPUs: also intel_iommu=on) to GRUB_CMDLINE_LINUX in /etc/default/grub, run "
                  "update-grub (or grub2-mkconfig -o /boot/grub2/grub.cfg) and reboot; the role never reboots. "
                  "RCCL warns that without it the system can become unstable or hang.")


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


_CHECK_FUNCTIONS = {
    "facts_readable": check_facts_readable, "amdgpu_loaded": check_amdgpu_loaded,
    "driver_version": check_driver_version, "kfd_present": check_kfd_present, "gpu_count": check_gpu_count,
    "gfx": check_gfx, "render_nodes": check_render_nodes, "vram": check_vram, "partition": check_partition,
    "numa_balancing": check_numa_balancing, "iommu": check_iommu, "dev_mem": check_dev_mem,
    "docker_daemon": check_docker_daemon, "docker_disk": check_docker_disk, "cache_dir": check_cache_dir,
    "cache_disk": check_cache_disk, "gpu_processes": check_gpu_processes, "env_hygiene": check_env_hygiene,
    "amd_smi": check_amd_smi,
}


def docker_status(result, docker_host):
    """Normalise a registered community.docker.docker_host_info result (or None)."""
    if result is None:
        return None
    info = result.get("host_info") or {}
    reachable = bool(result.get("can_talk_to_docker")) and bool(info) and not result.get("failed")
    host = docker_host or "unix:///var/run/docker.sock"
    return {
        "host": host,
        "reachable": reachable,
        "version": info.get("ServerVersion"),
        "root_dir": info.get("DockerRootDir"),
        "local": host.startswith("unix://") or host.startswith("/"),
        "error": None if reachable else (result.get("msg") or "docker_host_info returned no host information"),
    }


def docker_info_argv(docker_bin, docker_host, timeout=None, timeout_bin=None):
    """argv of ``docker --host H info --format '{{json .}}'``, under coreutils timeout when given."""
    argv = [docker_bin, "--host", docker_host or "unix:///var/run/docker.sock", "info", "--format", "{{json .}}"]
    if timeout_bin and timeout:
        argv = [timeout_bin, "--kill-after=2", "%ds" % int(timeout)] + argv
    return argv


def docker_status_from_cli(rc, stdout, stderr, docker_host, timeout=None):
    """Normalise the answer of ``docker info --format '{{json .}}'`` like docker_status() does.

    The CLI prints its client half even when the daemon is unreachable (then ServerVersion is
    empty, the reason is on stderr and rc is 1); rc 124 is coreutils timeout giving up.
    """
    host = docker_host or "unix:///var/run/docker.sock"
    info = {}
    try:
        parsed = json.loads(stdout or "{}")
        if isinstance(parsed, dict):
            info = parsed
    except ValueError:
        info = {}
    errors = [str(e) for e in (info.get("ServerErrors") or []) if e]
    reachable = rc == 0 and bool(info.get("ServerVersion")) and not errors
    if reachable:
        error = None
    elif rc == 124:
        error = "the daemon did not answer docker info within %ss" % (timeout,)
    else:
        lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
        error = "; ".join(errors + lines) or "docker info exited %s with no server information" % rc
    return {
        "host": host,
        "reachable": reachable,
        "version": info.get("ServerVersion") or None,
        "root_dir": info.get("DockerRootDir") or None,
        "local": host.startswith("unix://") or host.startswith("/"),
        "error": error,
    }


def probe_docker(which, run, docker_host, timeout):
    """Ask the daemon with the docker CLI; ``which(name)`` finds a binary, ``run(argv, environ_update=)``
    returns (rc, stdout, stderr). Never raises: a missing CLI or a silent daemon is an answer."""
    host = docker_host or "unix:///var/run/docker.sock"
    docker_bin = which("docker")
    if not docker_bin:
        return {"host": host, "reachable": False, "version": None, "root_dir": None,
                "local": host.startswith("unix://") or host.startswith("/"),
                "error": "the docker CLI is not on the host's PATH (install docker.io or docker-ce-cli)"}
    argv = docker_info_argv(docker_bin, host, timeout, which("timeout"))
    rc, out, err = run(argv, environ_update={"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"})
    return docker_status_from_cli(rc, out, err, host, timeout)


def host_summary(facts, docker):
    gpus = facts.get("gpus") or []
    return {
        "gpus": len(gpus),
        "gfx": sorted(set(g["gfx"] for g in gpus if g.get("gfx"))),
        "partitions": sorted(set("%s/%s" % (g["compute_partition"], g["memory_partition"])
                                 for g in gpus if g.get("compute_partition"))),
        "driver": facts.get("driver_version") or ("inbox" if facts.get("amdgpu_loaded") else None),
        "rocm": facts.get("rocm_version"),
        "docker": (docker or {}).get("version"),
    }


def evaluate_checks(facts, settings, host, docker=None, disks=None):
    """Evaluate every check; returns the host report ({host, status, checks: [...], ...}).

    settings: expected_gpus, tp_size, gfx, min_vram_gib, min_free_disk_gib,
    compute_partitions, memory_partitions, skip, cache_dir, container_env, sysctl_file.
    Waived checks (settings["skip"]) are evaluated anyway and reported as skipped with what
    they would have said, so a waiver is never silent.
    """
    ctx = {"facts": facts, "settings": settings, "docker": docker, "disks": disks}
    skip = set(settings.get("skip") or [])
    checks = []
    for name in CHECKS:
        result = _CHECK_FUNCTIONS[name](ctx)
        entry = {"name": name}
        entry.update(result)
        if name in skip:
            entry["waived_status"] = entry["status"]
            entry["status"] = "skipped"
            entry["observed"] = "waived by %s (would be %s): %s" % (
                ROLE_VARIABLES["skip"], entry["waived_status"], entry["observed"])
            entry["fix"] = None
        entry["remediation"] = None
        checks.append(entry)
    return build_report(host, checks, host_summary(facts, docker))


def build_report(host, checks, summary):
    by_status = dict((status, [c["name"] for c in checks if c["status"] == status])
                     for status in ("pass", "warn", "fail", "skipped", "n/a"))
    status = "fail" if by_status["fail"] else "warn" if by_status["warn"] else "pass"
    report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "host": host,
        "status": status,
        "failed": by_status["fail"],
        "warnings": by_status["warn"],
        "skipped": by_status["skipped"],
        "counts": dict((k, len(v)) for k, v in by_status.items()),
        "summary": summary,
        "checks": checks,
        "remediation": [],
    }
    report["message"] = failure_message(report)
    return report


def failure_message(report):
    """One message listing every failed check with its fix ('' when nothing failed)."""
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    if not failed:
        return ""
    lines = ["preflight failed on %s: %s of %d failed" % (report["host"], _plural(len(failed), "check"), len(report["checks"]))]
    for check in failed:
        line = "- %s: %s (expected %s). Fix: %s" % (check["name"], check["observed"], check["expected"], check["fix"])
        if check.get("remediation"):
            line += " [remediation: %s]" % check["remediation"]
        lines.append(line)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Remediation: only what is safe (no reboot, no BIOS, no partition change).
# --------------------------------------------------------------------------------------------

def sysctl_content(old, key, value):
    """sysctl.d file text with `key = value` set once (replacing any spelling of the key)."""
    pattern = re.compile(r"^\s*%s\s*=" % re.escape(key).replace(r"\.", "[./]"))
    lines, found = [], False
    for line in (old or "").splitlines():
        if pattern.match(line):
            if not found:
                lines.append("%s = %s" % (key, value))
                found = True
            continue
        lines.append(line)
    if not found:
        if not lines:
            lines.append("# Managed by sglang_rocm.fleet (preflight role): AMD's MI300X host settings.")
        lines.append("%s = %s" % (key, value))
    return "\n".join(lines) + "\n"


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def plan_remediation(report, facts, settings):
    """The safe fixes for this report's failures: [{check, action, path, before, after, description}]."""
    status = dict((c["name"], c["status"]) for c in report["checks"])
    roots = facts["roots"]
    actions = []
    if status.get("amdgpu_loaded") == "fail" and not facts.get("amdgpu_loaded"):
        actions.append({"check": "amdgpu_loaded", "action": "modprobe", "path": None,
                        "before": "amdgpu not loaded\n", "after": "amdgpu loaded\n",
                        "description": "modprobe amdgpu"})
    if status.get("numa_balancing") == "fail":
        live = os.path.join(roots["proc_root"], "sys/kernel/numa_balancing")
        actions.append({"check": "numa_balancing", "action": "write", "path": live,
                        "before": "%s\n" % facts.get("numa_balancing"), "after": "0\n",
                        "description": "write 0 to %s" % live})
        sysctl_file = settings.get("sysctl_file")
        if sysctl_file:
            old = _read(sysctl_file)
            new = sysctl_content(old, NUMA_KEY, 0)
            if new != old:
                actions.append({"check": "numa_balancing", "action": "file", "path": sysctl_file,
                                "before": old or "", "after": new,
                                "description": "persist %s = 0 in %s" % (NUMA_KEY, sysctl_file)})
    if status.get("cache_dir") == "warn" and settings.get("cache_dir"):
        path = settings["cache_dir"]
        actions.append({"check": "cache_dir", "action": "mkdir", "path": path,
                        "before": "%s absent\n" % path, "after": "%s directory\n" % path,
                        "description": "create %s" % path})
    return actions


def _write_in_place(path, text):
    # procfs files cannot be replaced by rename: write the existing file in place.
    with open(path, "w") as handle:
        handle.write(text)


def _write_atomic(path, text, atomic_move=None):
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(dir=directory or ".", prefix=".sglang-preflight-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        (atomic_move or os.rename)(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def apply_remediation(actions, check_mode, run, atomic_move=None):
    """Carry out (or, in check mode, only describe) the planned fixes.

    run(argv) -> (rc, stdout, stderr) runs modprobe. A fix that fails is reported with its
    error, never raised: the check it meant to fix then still fails with that error attached.
    """
    results = []
    for action in actions:
        result = dict(action, changed=True, check_mode=bool(check_mode), error=None)
        if not check_mode:
            try:
                if action["action"] == "modprobe":
                    rc, out, err = run(["modprobe", "amdgpu"])
                    if rc != 0:
                        result.update(changed=False, error="modprobe amdgpu exited %s: %s" % (
                            rc, " ".join((err or out or "").split())[:300]))
                elif action["action"] == "write":
                    _write_in_place(action["path"], action["after"])
                elif action["action"] == "file":
                    _write_atomic(action["path"], action["after"], atomic_move)
                elif action["action"] == "mkdir":
                    os.makedirs(action["path"], 0o755)
            except (IOError, OSError) as exc:
                result.update(changed=False, error="%s: %s" % (action["description"], exc))
        results.append(result)
    return results


def annotate_remediation(report, results):
    """Attach what remediation did (or would do) to the checks it concerns; rebuild the message."""
    by_check = {}
    for result in results:
        if result["error"]:
            text = "failed: %s" % result["error"]
        elif result["check_mode"]:
            text = "would %s" % result["description"]
        else:
            text = "done: %s" % result["description"]
        by_check.setdefault(result["check"], []).append(text)
    for check in report["checks"]:
        if check["name"] in by_check:
            check["remediation"] = "; ".join(by_check[check["name"]])
    report["remediation"] = [dict((k, r[k]) for k in ("check", "description", "changed", "check_mode", "error"))
                             for r in results]
    report["message"] = failure_message(report)
    return report


def diff_entries(results):
    """Ansible diff dicts for the fixes that changed (or would change) something."""
    return [{"before_header": r["path"] or r["description"], "after_header": r["path"] or r["description"],
             "before": r["before"], "after": r["after"]} for r in results if r["changed"]]
