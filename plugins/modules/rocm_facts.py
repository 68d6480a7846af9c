#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: rocm_facts
short_description: Read an AMD ROCm host's GPUs, driver and kernel settings as facts
version_added: 0.1.0
description:
  - Reads the host's GPU state from the kernel's own interfaces, without ROCm tools on the
    host - the KFD topology in sysfs, C(/sys/module/amdgpu), the DRM and PCI devices,
    C(/dev/kfd) and C(/dev/dri/renderD*), C(/proc/cmdline) and
    C(/proc/sys/kernel/numa_balancing) - and optionally C(amd-smi) JSON.
  - A KFD topology node is a GPU when its C(gpu_id) is not 0; its VRAM comes from
    C(mem_banks/0/properties) (the node's C(local_mem_size) is always 0 in current drivers).
  - Every host path is read under O(sysfs_root), O(dev_root) and O(proc_root), so the module
    also reads a host mounted into a container (for example at C(/host)) or a simulated host.
  - Never changes anything; C(changed) is always false.
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
extends_documentation_fragment:
  - sglang_rocm.fleet.host_roots
attributes:
  check_mode:
    support: full
    description: Reads only, so check mode gathers the same facts.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to show.
  facts:
    support: full
    description: Sets C(ansible_facts.rocm).
  idempotent:
    support: full
    description: Reads only.
notes:
  - Run it as root; KFD answers C(EPERM) for a GPU that the caller's device cgroup does not
    allow, and such reads are listed in RV(ansible_facts.rocm.errors).
  - The preflight role exposes the host-root options as C(sglang_preflight_sysfs_root),
    C(sglang_preflight_dev_root) and C(sglang_preflight_proc_root).
seealso:
  - module: sglang_rocm.fleet.rocm_preflight
"""

EXAMPLES = r"""
- name: Read the GPU state of the host
  sglang_rocm.fleet.rocm_facts:

- name: Read a host mounted at /host from a container
  sglang_rocm.fleet.rocm_facts:
    sysfs_root: /host/sys
    dev_root: /host/dev
    proc_root: /host/proc
    amd_smi: never

- name: Show the GPU targets
  ansible.builtin.debug:
    msg: "{{ ansible_facts.rocm.gpus | map(attribute='gfx') | unique }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to ansible_facts.
  returned: always
  type: dict
  contains:
    rocm:
      description: The host's ROCm state.
      returned: always
      type: dict
      contains:
        schema_version:
          description: Version of this fact's layout.
          type: int
          sample: 1
        roots:
          description: The host-root prefixes the facts were read under.
          type: dict
          sample: {"sysfs_root": "/sys", "dev_root": "/dev", "proc_root": "/proc"}
        amdgpu_loaded:
          description: C(<sysfs_root>/module/amdgpu) exists.
          type: bool
        amdgpu_initstate:
          description: Content of C(/sys/module/amdgpu/initstate) (V(live) when ready), or null.
          type: str
        driver_version:
          description: The amdgpu-dkms version; null for the distribution's inbox driver.
          type: str
          sample: 6.14.14
        driver_srcversion:
          description: C(/sys/module/amdgpu/srcversion), present for every driver build.
          type: str
        kfd_present:
          description: C(<dev_root>/kfd) is a character device.
          type: bool
        kfd_path:
          description: Path of the KFD device node that was checked.
          type: str
        kfd_exists:
          description: C(<dev_root>/kfd) exists, whatever its type.
          type: bool
        kfd_topology:
          description: The KFD topology directory exists.
          type: bool
        gpu_count:
          description: Number of KFD GPU nodes (logical GPUs; 8 per MI300X in CPX mode).
          type: int
          sample: 8
        gpus:
          description: One entry per KFD GPU node, in node order.
          type: list
          elements: dict
          contains:
            node:
              description: KFD node number (CPU nodes come first).
              type: int
              sample: 2
            gpu_id:
              description: KFD gpu_id (a hash, never 0 for a GPU).
              type: int
              sample: 28851
            name:
              description: KFD node name (V(ip discovery) on MI300X, V(aldebaran) on MI200).
              type: str
            gfx_target_version:
              description: Raw KFD gfx_target_version.
              type: int
              sample: 90402
            gfx:
              description: LLVM target derived from gfx_target_version.
              type: str
              sample: gfx942
            vendor_id:
              description: PCI vendor id (4098 for AMD).
              type: int
            device_id:
              description: PCI device id (29857 for MI300X).
              type: int
            pci_address:
              description: PCI address, when known.
              type: str
              sample: "0000:05:00.0"
            render_minor:
              description: DRM render minor of the node.
              type: int
              sample: 128
            render_node:
              description: Path of the render node under O(dev_root).
              type: str
            render_node_present:
              description: The render node exists and is a character device.
              type: bool
            vram_bytes:
              description: VRAM of the node in bytes, or null when unknown.
              type: int
              sample: 206141652992
            vram_used_bytes:
              description: VRAM in use according to KFD, or null.
              type: int
            compute_partition:
              description: Current compute partition (SPX, DPX, TPX, QPX, CPX) or null where there are none.
              type: str
            memory_partition:
              description: Current memory partition (NPS1, NPS2, NPS4, NPS8) or null.
              type: str
            num_xcc:
              description: Compute dies of the node.
              type: int
            simd_count:
              description: SIMDs of the node.
              type: int
            uuid:
              description: GPU- plus the hex of KFD unique_id, as rocminfo prints it.
              type: str
            iommu_group_type:
              description: IOMMU group type of the GPU's PCI function (V(identity) under iommu=pt).
              type: str
            firmware:
              description: Firmware version per block from C(<pci>/fw_version/<block>_fw_version) (hex files), as integers; null for an unreadable block.
              type: dict
              sample: {"mec": 177, "sdma": 22, "smc": 5600000}
            mec_firmware:
              description: The MEC firmware version - the C(fw_version/mec_fw_version) file, else the KFD node's decimal C(fw_version) property.
              type: int
              sample: 177
            kfd_fw_version:
              description: The KFD node's C(fw_version) property (the MEC version in decimal), or null.
              type: int
            vbios_version:
              description: C(<pci>/vbios_version), or null.
              type: str
              sample: 113-M3000100-102
            pcie:
              description:
                - PCIe links. C(endpoint) is the GPU function's own link files, C(upstream) the root port above it
                  (a GPU with an on-package switch shows an internal link at the endpoint); each has current_speed_gts,
                  max_speed_gts, current_width, max_width and address, or is null without link files.
                - C(link) is the one the checks judge - amd-smi's C(metric --pcie) answer when it gave one, else the
                  root port's, else the endpoint's - with C(source) and C(generation) (5 for 32 GT/s).
              type: dict
            ras:
              description:
                - RAS error counters from C(<pci>/ras). C(exposed) is false without a C(ras) directory; C(blocks)
                  maps each block (umc, gfx, sdma, ...) to C(ue) and C(ce) counts, both null with the reason in
                  C(error) when the file is unreadable or reads C(Query currently inaccessible) - never 0.
                - C(bad_pages) counts the retired pages in C(gpu_vram_bad_pages) (null with C(bad_pages_error) when unknown).
              type: dict
            xgmi:
              description: C(hive_id), C(physical_id) and C(error_count) where the driver exposes XGMI files, else null.
              type: dict
        cpu_node_count:
          description: KFD CPU nodes.
          type: int
        unreadable_nodes:
          description: KFD nodes whose files could not be read at all.
          type: list
          elements: int
        pci_scanned:
          description: C(<sysfs_root>/bus/pci/devices) exists, so RV(ansible_facts.rocm.pci_gpus) is meaningful.
          type: bool
        pci_gpus:
          description: AMD GPU functions on the PCI bus (address, device_id, class, driver), bound or not.
          type: list
          elements: dict
        numa_balancing:
          description: Value of kernel.numa_balancing, or null when unreadable.
          type: int
        kernel_cmdline:
          description: The kernel command line.
          type: str
        kernel_args:
          description: The command line's arguments without the boot ones (BOOT_IMAGE, root, initrd, ro, rw, quiet, splash), sorted; null when unreadable.
          type: list
          elements: str
          sample: ["iommu=pt", "pci=realloc=off"]
        uptime_seconds:
          description: Seconds since boot from C(<proc_root>/uptime), or null.
          type: float
        kernel_release:
          description: The running kernel's release from C(<proc_root>/sys/kernel/osrelease), or null.
          type: str
          sample: 6.8.0-79-generic
        kernel_log:
          description:
            - amdgpu messages in the kernel ring buffer C(<dev_root>/kmsg), read non-blocking (needs root).
              Keys path, readable, error (null, V(absent) or why it could not be read), amdgpu_lines,
              resets, page_faults, event_count and events (up to 20 of kind, seconds since boot and line).
          type: dict
        iommu_passthrough:
          description: iommu=pt is on the command line, or every GPU's IOMMU group is identity; null when unknown.
          type: bool
        mem_total_bytes:
          description: Host memory (MemTotal).
          type: int
        dev_mem_present:
          description: C(<dev_root>/mem) exists.
          type: bool
        kfd_processes:
          description: PIDs of processes that hold KFD.
          type: list
          elements: int
        rocm_version:
          description: Host ROCm version, or null when ROCm is not installed on the host.
          type: str
          sample: 7.0.2
        rocm_version_file:
          description: The file the ROCm version was read from.
          type: str
        smi:
          description:
            - What C(amd-smi) (or C(rocm-smi)) reported, keys mode, tool, path, version, gpus and error;
              null when O(amd_smi=never). Each amd-smi GPU has C(pcie_width) and C(pcie_speed_gts) from
              C(amd-smi metric --pcie), null when it gave no answer (then the link is read from sysfs).
          type: dict
        errors:
          description: Files that exist but could not be read, with why (for example V(permission denied)).
          type: list
          elements: dict
          sample: [{"path": "/sys/class/kfd/kfd/topology/nodes/2/properties", "error": "permission denied"}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._rocm import (
    bounded_smi_run,
    collect_smi,
    gather,
    host_root_spec,
    missing_roots,
    root_error,
)


def smi_tools(module, rocm_path, timeout):
    """which/run callables for collect_smi, bound to the module; every call is time-limited."""
    def which(name):
        return module.get_bin_path(name, opt_dirs=[rocm_path + "/bin"])

    return which, bounded_smi_run(module.run_command, module.get_bin_path("timeout"), timeout)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **host_root_spec(),
        ),
        supports_check_mode=True,
    )
    params = module.params
    missing = missing_roots([(name, params[name]) for name in ("sysfs_root", "dev_root", "proc_root")])
    if missing:
        module.fail_json(msg=" ".join(root_error(name, path) for name, path in missing))
    smi = None
    if params["amd_smi"] != "never":
        which, run = smi_tools(module, params["rocm_path"], params["amd_smi_timeout"])
        smi = collect_smi(params["amd_smi"], which, run, params["rocm_path"], timeout=params["amd_smi_timeout"])
    facts = gather(params["sysfs_root"], params["dev_root"], params["proc_root"], params["rocm_path"], smi)
    if params["amd_smi"] == "always" and smi["error"]:
        module.fail_json(msg="amd_smi=always but amd-smi gave no usable answer: %s. Fix: install amd-smi "
                             "(ROCm's amd-smi-lib package) or set amd_smi=auto." % smi["error"], smi=smi)
    module.exit_json(changed=False, ansible_facts={"rocm": facts})


if __name__ == "__main__":
    main()
