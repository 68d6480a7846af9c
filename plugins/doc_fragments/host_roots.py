# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations


class ModuleDocFragment:
    # Where a module reads the host's GPU state: the roots of sysfs, /dev and procfs, the host
    # ROCm install and amd-smi. Shared by rocm_facts and rocm_preflight, whose argument specs
    # take these options from module_utils/_rocm.py host_root_spec().
    DOCUMENTATION = r"""
options:
  sysfs_root:
    description: Where the host's sysfs is mounted.
    type: path
    default: /sys
  dev_root:
    description: Where the host's C(/dev) is mounted.
    type: path
    default: /dev
  proc_root:
    description: Where the host's procfs is mounted; the live NUMA balancing fix of
      M(sglang_rocm.fleet.rocm_preflight) writes under it.
    type: path
    default: /proc
  rocm_path:
    description:
      - Host ROCm installation, read for its version only (the SGLang image ships its own ROCm).
      - Sibling C(rocm-*) directories and C(core-*) sub-directories are searched too.
    type: path
    default: /opt/rocm
  amd_smi:
    description:
      - V(auto) uses C(amd-smi) JSON when C(amd-smi) is installed (falling back to the legacy
        C(rocm-smi) when only that is), V(always) requires C(amd-smi) and fails without it,
        V(never) does not run it.
      - Both output shapes are accepted, the ROCm 6 top-level list and the ROCm 7 object
        holding a C(gpu_data) list, as are warning lines printed before the JSON.
    type: str
    choices: [auto, always, never]
    default: auto
  amd_smi_timeout:
    description:
      - Seconds one C(amd-smi) (or C(rocm-smi)) call may take; it runs under coreutils C(timeout)
        and is killed 2 seconds after SIGTERM. A tool that does not answer in time is reported
        like a missing one (a warning with O(amd_smi=auto), a failure with O(amd_smi=always))
        and is not asked again in the same run.
    type: int
    default: 30
"""
