#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang_rocm.fleet contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: rocm_preflight
short_description: Check an AMD ROCm host for SGLang serving, and fix what is safe to fix
version_added: 0.1.0
description:
  - Gathers the same facts as M(sglang_rocm.fleet.rocm_facts), adds free disk space on the
    Docker data root and the cache directory, and evaluates every preflight check in one
    pass - the amdgpu driver and C(/dev/kfd), the GPUs (count, target, render nodes, VRAM,
    partition modes), NUMA balancing, IOMMU passthrough and kernel arguments, PCIe links, ECC
    counters, the kernel log, firmware rules, the Docker daemon, free disk and more;
    O(skip)'s choices name them all.
  - Returns a report with one entry per check (status V(pass), V(warn), V(fail), V(skipped)
    for a check waived in O(skip), or V(n/a)), the host's status and one message listing
    every failed check with its fix. The module itself never fails because a check failed;
    the preflight role fails the host after all hosts have been evaluated.
  - With O(remediate=true) it fixes, for failed checks only, what is safe without a reboot
    or BIOS change - sets kernel.numa_balancing to 0 (live, under O(proc_root), and persisted
    in O(sysctl_file)), runs C(modprobe amdgpu), and creates O(cache_dir) - then gathers and
    evaluates again, so the report shows the state after the fixes. Partition modes, kernel
    command line and BIOS settings are reported with their fix, never changed.
  - Inputs are validated before anything is read or changed; every problem is reported at
    once, naming the preflight role's variable, the host, what was given, what was expected
    and how to fix it.
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
options:
  host:
    description: Name of the host in the report (the role passes C(inventory_hostname)); defaults to the host name.
    type: str
  expected_gpus:
    description: The host fails with fewer KFD GPU nodes than this (an integer >= 0).
    type: int
    default: 8
  tp_size:
    description: The server's tensor-parallel size; the host fails with fewer GPUs than this.
    type: int
  gfx:
    description: GPU targets the image is built for; a GPU of any other target fails the host.
    type: list
    elements: str
    default: [gfx942]
  min_vram_gib:
    description: Minimum VRAM per GPU, in GiB (an MI300X reports about 192).
    type: float
    default: 180
  min_free_disk_gib:
    description: Minimum free space, in GiB, on the Docker data root and on O(cache_dir).
    type: float
    default: 200
  compute_partitions:
    description: Accepted compute partition modes (checked only on GPUs that have partitions).
    type: list
    elements: str
    default: [SPX]
  memory_partitions:
    description: Accepted memory partition modes.
    type: list
    elements: str
    default: [NPS1]
  skip:
    description:
      - Checks an operator waives on purpose. They are still evaluated and reported as
        V(skipped) with what they found, never dropped silently.
    type: list
    elements: str
    default: []
    choices: [facts_readable, amdgpu_loaded, driver_version, kfd_present, gpu_count, gfx, render_nodes, vram,
              partition, numa_balancing, iommu, dev_mem, docker_daemon, docker_disk, cache_dir, cache_disk,
              gpu_processes, env_hygiene, amd_smi, pcie_link, ecc_uncorrectable, ecc_correctable, kernel_log,
              firmware_settings]
  docker:
    description:
      - A registered result of M(community.docker.docker_host_info) for this host (run with
        C(failed_when=false)), for a caller that already has one. Keys used are
        C(can_talk_to_docker), C(host_info.DockerRootDir), C(host_info.ServerVersion) and C(msg).
      - Omitted, the module asks the daemon itself (see O(docker_probe)).
    type: dict
  docker_probe:
    description:
      - When O(docker) is omitted, run C(docker --host <docker_host> info) on the host, under
        C(timeout) for O(docker_timeout) seconds. A daemon that does not answer, or a missing
        docker CLI, is a failed C(docker_daemon) check, not a failed task.
      - V(false) leaves the Docker checks V(n/a).
    type: bool
    default: true
  docker_timeout:
    description: Seconds to wait for the daemon's answer to C(docker info).
    type: int
    default: 10
  docker_host:
    description:
      - The daemon to check, as the docker CLI's C(--host) takes it. Its data root is measured only
        for a local (unix socket) daemon.
    type: str
    default: unix:///var/run/docker.sock
  image:
    description:
      - The image the hosts will serve (C(sglang_image)). When the daemon answers and already
        holds it, its short image ID is one of the versions the fleet compares (drift by
        majority, fact C(image)); a host that does not hold it yet is not compared.
      - Asked with C(docker image inspect) under O(docker_timeout), only when O(docker_probe) runs.
    type: str
  cache_dir:
    description: Host directory for the model and kernel caches. Omitted, the cache checks are V(n/a).
    type: path
  container_env:
    description: Environment the container and server will get, checked for variables that hide or fake GPUs.
    type: dict
    default: {}
  remediate:
    description: Fix what is safe to fix for the checks that failed (see the description).
    type: bool
    default: false
  sysctl_file:
    description: The sysctl.d file that persists kernel.numa_balancing=0 when O(remediate=true).
    type: path
    default: /etc/sysctl.d/90-sglang-rocm.conf
  pcie_min_speed_gts:
    description: Slowest PCIe link, in GT/s per lane, an MI300-class GPU may have (32 is Gen5); 0 turns the floor off.
    type: float
    default: 32
  pcie_min_width:
    description: Fewest PCIe lanes an MI300-class GPU may have; 0 turns the floor off.
    type: int
    default: 16
  max_bad_pages:
    description: Retired VRAM pages a GPU may have before the C(ecc_uncorrectable) check fails.
    type: int
    default: 64
  max_ce_per_day:
    description: Correctable ECC errors per GPU per day of uptime above which C(ecc_correctable) warns.
    type: float
    default: 100
  kernel_params:
    description: Kernel arguments besides C(iommu=pt) that the C(iommu) check warns about when missing.
    type: list
    elements: str
    default: [pci=realloc=off, amd_iommu=on]
extends_documentation_fragment:
  - sglang_rocm.fleet.host_roots
attributes:
  check_mode:
    support: full
    description: Evaluates every check and reports the fixes it would make, changing nothing.
  diff_mode:
    support: full
    description: Shows the NUMA balancing value, the sysctl file, the module and directory before and after each fix.
  facts:
    support: full
    description: Sets C(ansible_facts.rocm) and C(ansible_facts.sglang_preflight_report).
  idempotent:
    support: full
    description: A fix is planned only for a failing check, so once fixed a second run changes nothing.
notes:
  - C(changed) is true only when a fix was made (or, in check mode, would be).
  - The fixes write the live value under O(proc_root) in place (procfs files cannot be replaced),
    so a host mounted at C(/host) is fixed too; in a test bed the fake file is written, never the
    machine's own kernel setting.
seealso:
  - module: sglang_rocm.fleet.rocm_facts
  - module: community.docker.docker_host_info
"""

EXAMPLES = r"""
- name: Check the host for SGLang serving on 8 MI300X (the Docker daemon is asked too)
  sglang_rocm.fleet.rocm_preflight:
    host: "{{ inventory_hostname }}"
    docker_host: unix:///var/run/docker.sock
    cache_dir: /var/cache/sglang
    tp_size: 8
    skip: [driver_version]

- name: Check and fix NUMA balancing, the amdgpu module and the cache directory
  sglang_rocm.fleet.rocm_preflight:
    host: "{{ inventory_hostname }}"
    cache_dir: /var/cache/sglang
    remediate: true

- name: Fail the host with every problem and its fix
  ansible.builtin.fail:
    msg: "{{ ansible_facts.sglang_preflight_report.message }}"
  when: ansible_facts.sglang_preflight_report.status == 'fail'
"""

RETURN = r"""
report:
  description: The host report (also set as the C(sglang_preflight_report) fact).
  returned: always
  type: dict
  contains:
    schema_version:
      description: Version of the report layout.
      type: int
      sample: 1
    host:
      description: The host's name.
      type: str
    status:
      description: V(fail) if any check failed, else V(warn) if any warned, else V(pass).
      type: str
      sample: fail
    failed:
      description: Names of the failed checks.
      type: list
      elements: str
      sample: [numa_balancing]
    warnings:
      description: Names of the checks that warned.
      type: list
      elements: str
    skipped:
      description: Names of the waived checks.
      type: list
      elements: str
    counts:
      description: Number of checks per status.
      type: dict
      sample: {"pass": 15, "warn": 1, "fail": 1, "skipped": 0, "n/a": 2}
    summary:
      description: GPU count, GPU targets, partition modes, driver, host ROCm and Docker versions.
      type: dict
    checks:
      description: One entry per check, in a fixed order.
      type: list
      elements: dict
      contains:
        name:
          description: Check name (the names O(skip) accepts).
          type: str
        status:
          description: V(pass), V(warn), V(fail), V(skipped) or V(n/a).
          type: str
        observed:
          description: What was found, with paths and values.
          type: str
        expected:
          description: What passes, naming the variable that sets it.
          type: str
        fix:
          description: How to fix it (warn and fail only).
          type: str
        remediation:
          description: What the fix did or would do, or null.
          type: str
        waived_status:
          description: For a skipped check, the status it would have had.
          type: str
          returned: when the check is waived
    remediation:
      description: The fixes made or planned (check, description, changed, check_mode, error).
      type: list
      elements: dict
    message:
      description: Every failed check with what was seen, what was expected and the fix; empty when none failed.
      type: str
    versions:
      description:
        - The host's versioned facts the fleet summary compares with the majority of the hosts with the
          same GPU (C(device)) - driver, fw.<block> per firmware block, vbios, kernel,
          kernel_args, rocm, docker; a fact that could not be read is left out.
      type: dict
      sample: {"device": "0x74a1", "facts": {"driver": "6.14.14", "fw.mec": "177", "vbios": "113-M3000100-102"}}
    firmware_env:
      description: The environment the firmware rules require on this host (empty when none applies).
      type: dict
      sample: {"HSA_NO_SCRATCH_RECLAIM": "1"}
    firmware_rules:
      description: The firmware rules that apply - rule, label, fact, below, gpus (KFD nodes), values, env, why and sources.
      type: list
      elements: dict
ansible_facts:
  description: Facts to add to ansible_facts.
  returned: always
  type: dict
  contains:
    rocm:
      description: The host's ROCm facts, as returned by M(sglang_rocm.fleet.rocm_facts).
      type: dict
    sglang_preflight_report:
      description: The same dict as RV(report).
      type: dict
    sglang_firmware_env:
      description:
        - The environment the firmware rules require on this host (RV(report.firmware_env)); the
          server role merges it under C(sglang_env), so a value the user set wins.
      type: dict
      sample: {"HSA_NO_SCRATCH_RECLAIM": "1"}
"""

import platform

from ansible.module_utils.basic import AnsibleModule

REMEDIATION_TIMEOUT = 120  # seconds a fix's command (modprobe amdgpu) may take

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._preflight import (
    annotate_remediation,
    apply_remediation,
    diff_entries,
    docker_status,
    evaluate_checks,
    plan_remediation,
    probe_docker,
    probe_image,
    validate_inputs,
)
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._preflight_checks import CHECKS
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._docker_cli import DockerCli
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._rocm import (
    bounded_smi_run,
    collect_smi,
    disk_space,
    gather,
    host_root_spec,
)

SETTINGS = ("expected_gpus", "tp_size", "gfx", "min_vram_gib", "min_free_disk_gib", "compute_partitions",
            "memory_partitions", "skip", "cache_dir", "container_env", "sysctl_file", "pcie_min_speed_gts",
            "pcie_min_width", "max_bad_pages", "max_ce_per_day", "kernel_params")


def measure(params, docker):
    """Free space where the image and the caches will live."""
    disks = {}
    if docker and docker["reachable"] and docker["local"] and docker["root_dir"]:
        disks["docker_root"] = disk_space(docker["root_dir"])
    if params["cache_dir"]:
        disks["cache_dir"] = disk_space(params["cache_dir"])
    return disks


def main():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str"),
            **host_root_spec(),
            expected_gpus=dict(type="int", default=8),
            tp_size=dict(type="int"),
            gfx=dict(type="list", elements="str", default=["gfx942"]),
            min_vram_gib=dict(type="float", default=180),
            min_free_disk_gib=dict(type="float", default=200),
            compute_partitions=dict(type="list", elements="str", default=["SPX"]),
            memory_partitions=dict(type="list", elements="str", default=["NPS1"]),
            skip=dict(type="list", elements="str", default=[], choices=list(CHECKS)),
            docker=dict(type="dict"),
            docker_probe=dict(type="bool", default=True),
            docker_timeout=dict(type="int", default=10),
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
            image=dict(type="str"),
            cache_dir=dict(type="path"),
            container_env=dict(type="dict", default={}),
            remediate=dict(type="bool", default=False),
            sysctl_file=dict(type="path", default="/etc/sysctl.d/90-sglang-rocm.conf"),
            pcie_min_speed_gts=dict(type="float", default=32),
            pcie_min_width=dict(type="int", default=16),
            max_bad_pages=dict(type="int", default=64),
            max_ce_per_day=dict(type="float", default=100),
            kernel_params=dict(type="list", elements="str", default=["pci=realloc=off", "amd_iommu=on"]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    host = params["host"] or platform.node()
    problems = validate_inputs(params, host)
    if problems:
        module.fail_json(msg="preflight inputs are invalid, nothing was checked or changed:\n" + "\n".join(problems),
                         errors=problems)

    def which(name):
        return module.get_bin_path(name, opt_dirs=[params["rocm_path"] + "/bin", "/usr/sbin", "/sbin"])

    def run(argv):
        """A remediation command (modprobe) under coreutils timeout: a module load that hangs on a
        broken GPU ends after REMEDIATION_TIMEOUT seconds as a failed fix, not a stalled play."""
        binary, timeout_bin = which(argv[0]), module.get_bin_path("timeout")
        if not binary:
            return 127, "", "%s not found on PATH" % argv[0]
        if not timeout_bin:
            return 127, "", "coreutils timeout is not on the host's PATH, so %s is not run without a time limit" % argv[0]
        rc, out, err = module.run_command([timeout_bin, "--kill-after=5", str(REMEDIATION_TIMEOUT), binary] + list(argv[1:]))
        if rc in (124, 137):
            err = "%s did not finish within %ds and was stopped. %s" % (" ".join(argv), REMEDIATION_TIMEOUT, err or "")
        return rc, out, err

    smi = None
    if params["amd_smi"] != "never":
        smi_run = bounded_smi_run(module.run_command, module.get_bin_path("timeout"), params["amd_smi_timeout"])
        smi = collect_smi(params["amd_smi"], which, smi_run, params["rocm_path"], timeout=params["amd_smi_timeout"])
    settings = dict((key, params[key]) for key in SETTINGS)
    docker = docker_status(params["docker"], params["docker_host"])
    if docker is None and params["docker_probe"]:
        docker_bin, timeout_bin = module.get_bin_path("docker"), module.get_bin_path("timeout")
        cli = None
        if docker_bin and timeout_bin:
            cli = DockerCli(module, params["docker_host"], params["docker_timeout"], docker_bin=docker_bin,
                            timeout_bin=timeout_bin)
        docker = probe_docker(cli, params["docker_host"], params["docker_timeout"],
                              missing=None if cli else "docker" if not docker_bin else "timeout")
        if cli and docker["reachable"] and params["image"]:
            docker["image"] = probe_image(cli, params["image"], params["docker_timeout"])

    def check():
        facts = gather(params["sysfs_root"], params["dev_root"], params["proc_root"], params["rocm_path"], smi)
        return facts, evaluate_checks(facts, settings, host, docker, measure(params, docker))

    facts, report = check()
    results = []
    if params["remediate"]:
        results = apply_remediation(plan_remediation(report, facts, settings), module.check_mode, run, module.atomic_move)
        if any(r["changed"] for r in results) and not module.check_mode:
            facts, report = check()  # report the state after the fixes
        report = annotate_remediation(report, results)
    outcome = dict(changed=any(r["changed"] for r in results), report=report,
                   ansible_facts={"rocm": facts, "sglang_preflight_report": report,
                                  "sglang_firmware_env": report["firmware_env"]})
    if module._diff:
        outcome["diff"] = diff_entries(results)
    module.exit_json(**outcome)


if __name__ == "__main__":
    main()
