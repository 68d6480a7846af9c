"""The bed's Ansible inventory: group `gpu_hosts`, one entry per simulated host.

The hosts share one kernel and one filesystem, so every host-side path here is the host's own
(under its state dir): a role that writes to a path it was not given would make one host's
files visible to all of them.
"""
from __future__ import annotations

import yaml

from . import config
from .config import Paths
from .hosts import HostFiles

# Every host-side path variable of the collection's roles, as a path under the host's state
# dir: a role default such as /var/lib/sglang-rocm/results would be one directory shared by
# all simulated hosts. Add new host-side path variables here.
HOST_PATHS = {
    "sglang_cache_dir": "cache",
    "sglang_preflight_sysfs_root": "sys",
    "sglang_preflight_dev_root": "dev",
    "sglang_preflight_proc_root": "proc",
    "sglang_preflight_rocm_path": "opt/rocm",        # absent, as on a host without host-side ROCm
    "sglang_preflight_sysctl_file": "etc/sysctl.d/90-sglang-rocm.conf",
    "sglang_container_staging_dir": "var/lib/sglang-rocm/images",
    "sglang_container_results_dir": "var/lib/sglang-rocm/results",
    "sglang_container_secrets_dir": "etc/sglang-rocm/secrets",
}


def build(paths: Paths, hosts: list, *, auth: dict | None = None, upstream: dict | None = None) -> dict:
    """upstream: the bed state's record of the model hub (hub params, commit, bytes, token file)."""
    ssh_args = " ".join((
        "-o StrictHostKeyChecking=no",
        "-o UserKnownHostsFile=/dev/null",
        "-o ControlMaster=auto",
        "-o ControlPersist=60s",
        # a host cut off mid-run fails its SSH connection in about 15 s instead of hanging on
        # an established TCP connection until the kernel gives up (README: a lost host)
        "-o ServerAliveInterval=5",
        "-o ServerAliveCountMax=3",
        f"-o ControlPath={paths.control_path_dir}/%C",
    ))
    host_vars = {}
    for host in hosts:
        files = HostFiles(paths, host.name)
        host_vars[host.name] = {
            "ansible_host": host.address,
            "ansible_user": "root",
            "ansible_connection": "ssh",
            "ansible_ssh_private_key_file": str(paths.client_key),
            "ansible_ssh_common_args": ssh_args,
            "ansible_control_path_dir": str(paths.control_path_dir),
            "ansible_python_interpreter": "/usr/bin/python3",
            # sshd gives each host its own $HOME; async_status must look where the job wrote.
            "ansible_async_dir": str(files.home / ".ansible_async"),
            "sglang_docker_host": files.docker_host,
            **{var: str(files.state / rel) for var, rel in HOST_PATHS.items()},
            "simfleet_profile": host.profile,
            "simfleet_state_dir": str(files.state),
        }
        if auth:
            host_vars[host.name]["sglang_container_registry_username"] = auth["username"]
            host_vars[host.name]["simfleet_registry_password_file"] = auth["password_file"]
    group_vars = {
        # A group var, so that a play or an overlay inventory can point the fleet elsewhere.
        "sglang_image": config.IMAGE,
        "simfleet_registry": config.REGISTRY,
        "simfleet_image_repository": f"{config.REGISTRY}/{config.IMAGE_REPOSITORY}",
    }
    if auth:
        group_vars["simfleet_registry_tls"] = config.REGISTRY_TLS
        group_vars["simfleet_registry_ca_file"] = auth["ca_file"]
        group_vars["simfleet_image_tls"] = f"{config.REGISTRY_TLS}/{config.IMAGE_REPOSITORY}:{config.IMAGE_TAG}"
    if upstream:
        # The model hub beside the registry, behind the same (shaped) upstream link.
        group_vars["simfleet_upstream_address"] = config.UPSTREAM
        group_vars["simfleet_hub_endpoint"] = config.HUB_ENDPOINT
        group_vars["simfleet_hub_repo"] = upstream["hub"]["repo"]
        group_vars["simfleet_hub_commit"] = upstream["commit"]
        group_vars["simfleet_hub_bytes"] = upstream["bytes"]
        if upstream.get("token_file"):
            group_vars["simfleet_hub_token_file"] = upstream["token_file"]
        # The model stage's upstream is that hub: sglang_model_source keeps the role's default
        # (hub), the revision is pinned to the hub's commit (a host that holds it asks the hub
        # nothing). A scenario that does not test the model stage sets sglang_model_source: none.
        group_vars.update(model_vars(upstream))
    return {"all": {"children": {"gpu_hosts": {"hosts": host_vars, "vars": group_vars}}}}


def model_vars(upstream: dict) -> dict:
    """The model role's variables for the bed's hub (its repo, its commit, its token if any)."""
    found = {"sglang_model_hub_endpoint": config.HUB_ENDPOINT, "sglang_model_path": upstream["hub"]["repo"],
             "sglang_model_revision": upstream["commit"]}
    if upstream.get("token_file"):
        # read on the controller when a task needs it; the token is never written here
        found["sglang_model_hub_token"] = "{{ lookup('ansible.builtin.file', simfleet_hub_token_file) }}"
    return found


def render(inventory: dict) -> str:
    header = "# Generated by `python3 -m simfleet inventory` (tests/simfleet); do not edit.\n"
    return header + yaml.safe_dump(inventory, sort_keys=False, default_flow_style=False, width=4096)
