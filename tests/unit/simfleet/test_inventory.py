"""The bed's inventory and CLI argument handling (no root, nothing started)."""
import glob
import os
from pathlib import Path

import pytest
import yaml

from simfleet import cli, config, inventory, net, upstream
from simfleet.config import Paths
from simfleet.hosts import Host
from simfleet.system import BedError

ROOT = Path(__file__).resolve().parents[3]
PATHS = Paths(state=Path("/var/lib/simfleet"), run=Path("/run/simfleet"), cache=Path("/var/cache/x"))


def host_vars(auth=None, upstream=None):
    hosts = [Host(1, "mi300x-8gpu"), Host(2, "no-kfd"), Host(3, "cpx-partition")]
    inv = yaml.safe_load(inventory.render(inventory.build(PATHS, hosts, auth=auth, upstream=upstream)))
    return inv["all"]["children"]["gpu_hosts"]


def test_every_host_side_path_is_per_host():
    group = host_vars()["hosts"]
    assert list(group) == ["gpu01", "gpu02", "gpu03"]
    per_host = ("sglang_docker_host", "simfleet_state_dir", "ansible_host", "ansible_async_dir", *inventory.HOST_PATHS)
    for key in per_host:
        values = [v[key] for v in group.values()]
        assert len(set(values)) == len(values), key
    gpu01 = group["gpu01"]
    assert gpu01["ansible_host"] == "10.213.77.11"
    assert gpu01["sglang_docker_host"] == "unix:///run/simfleet/gpu01/docker.sock"
    # the registry lives in the upstream namespace, .2, not on the bridge's .1
    assert host_vars()["vars"]["sglang_image"] == "10.213.77.2:5000/lmsysorg/sglang:v0.5.7-rocm700-mi30x"
    assert "sglang_image" not in gpu01
    # the model stage keeps its default source (the bed's hub); a scenario that does not test it
    # sets sglang_model_source: none itself
    assert "sglang_model_source" not in host_vars()["vars"] and "sglang_model_source" not in gpu01
    assert gpu01["ansible_python_interpreter"] == "/usr/bin/python3"
    assert "StrictHostKeyChecking=no" in gpu01["ansible_ssh_common_args"]
    assert "ControlPath=/run/" in gpu01["ansible_ssh_common_args"]
    assert gpu01["sglang_preflight_sysctl_file"].startswith("/var/lib/simfleet/hosts/gpu01/")
    assert "sglang_container_registry_mirror" not in gpu01
    assert group["gpu02"]["simfleet_profile"] == "no-kfd"


def test_every_host_path_default_of_the_roles_is_overridden_per_host():
    """A role default like /var/lib/sglang-rocm/... is one directory for all simulated hosts."""
    group = host_vars()["hosts"]
    absolute = {}
    for defaults in glob.glob(str(ROOT / "roles/*/defaults/main.yml")):
        for var, value in (yaml.safe_load(Path(defaults).read_text()) or {}).items():
            if isinstance(value, str) and (value.startswith("/") or value.startswith("unix://")):
                absolute[var] = os.path.relpath(defaults, ROOT)
    missing = {var: where for var, where in absolute.items() if var not in group["gpu01"]}
    assert not missing, f"add these host-side paths to simfleet.inventory.HOST_PATHS: {missing}"
    for var in absolute:
        assert group["gpu01"][var] != group["gpu02"][var], var


def test_unix_socket_paths_fit_sun_path():
    for index in (1, config.MAX_HOSTS):
        sock = PATHS.host_run(config.host_name(index)) / "exec/containerd/containerd-debug.sock"
        assert len(str(sock)) < 108


def test_registry_auth_vars():
    auth = {"username": "simfleet", "password_file": "/var/lib/simfleet/registry/password",
            "ca_file": "/var/lib/simfleet/registry/tls/ca.crt"}
    group = host_vars(auth)
    assert group["hosts"]["gpu01"]["sglang_container_registry_username"] == "simfleet"
    assert group["hosts"]["gpu01"]["simfleet_registry_password_file"] == auth["password_file"]
    assert group["vars"]["simfleet_registry_tls"] == "10.213.77.2:5443"
    assert "sglang_container_registry_username" not in host_vars()["hosts"]["gpu01"]


def test_host_profiles_in_order_then_default():
    assert cli.host_profiles(3, None, "no-kfd,cpx-partition") == ["no-kfd", "cpx-partition", "mi300x-8gpu"]
    assert cli.host_profiles(None, None, "no-kfd,no-amdgpu") == ["no-kfd", "no-amdgpu"]
    assert cli.host_profiles(2, "mi300x-4gpu", None) == ["mi300x-4gpu", "mi300x-4gpu"]


@pytest.mark.parametrize("args", [(0, None, None), (100, None, None), (1, None, "no-kfd,no-kfd"),
                                  (1, "nope", None)])
def test_host_profiles_rejects_bad_input(args):
    with pytest.raises((BedError, ValueError)):
        cli.host_profiles(*args)


def test_only_tagged_rules_are_ours():
    assert net._has_tag(["-A", "FORWARD", "-i", "sfbr0", "-m", "comment", "--comment", "simfleet", "-j", "ACCEPT"])
    assert not net._has_tag(["-A", "FORWARD", "-m", "comment", "--comment", "simfleet-other", "-j", "ACCEPT"])


def test_the_hub_is_in_the_inventory_beside_the_registry():
    record = {"hub": {"repo": "org/m", "size": 1024, "shards": 2, "seed": 0}, "commit": "a" * 40, "bytes": 2345,
              "token_file": "/var/lib/simfleet/upstream/hub-token", "rate": None}
    group = host_vars(upstream=record)["vars"]
    assert group["simfleet_hub_endpoint"] == "http://10.213.77.2:8080"
    assert group["simfleet_upstream_address"] == "10.213.77.2" == group["simfleet_registry"].split(":")[0]
    assert (group["simfleet_hub_repo"], group["simfleet_hub_commit"], group["simfleet_hub_bytes"]) == ("org/m", "a" * 40, 2345)
    assert group["simfleet_hub_token_file"] == record["token_file"]
    assert "simfleet_hub_token_file" not in host_vars(upstream=dict(record, token_file=None))["vars"]
    assert "simfleet_hub_endpoint" not in host_vars()["vars"]


def test_the_model_stage_points_at_the_beds_hub_at_its_commit():
    record = {"hub": {"repo": "org/m", "size": 1024, "shards": 2, "seed": 0}, "commit": "a" * 40, "bytes": 2345,
              "token_file": None, "rate": None}
    group = host_vars(upstream=record)["vars"]
    assert group["sglang_model_hub_endpoint"] == group["simfleet_hub_endpoint"] == "http://10.213.77.2:8080"
    assert (group["sglang_model_path"], group["sglang_model_revision"]) == ("org/m", "a" * 40)
    assert "sglang_model_hub_token" not in group
    # with a token the hub requires: read from its file on the controller, never the token itself
    group = host_vars(upstream=dict(record, token_file="/var/lib/simfleet/upstream/hub-token"))["vars"]
    assert group["sglang_model_hub_token"] == "{{ lookup('ansible.builtin.file', simfleet_hub_token_file) }}"
    assert not {"sglang_model_path", "sglang_model_revision", "sglang_model_hub_endpoint"} & set(host_vars()["vars"])


def test_the_upstream_namespace_is_the_beds_and_is_swept_by_down():
    assert net._NETNS_RE.match(config.NETNS_PREFIX + "upstream")
    assert net._NETNS_RE.match(config.NETNS_PREFIX + "gpu07")
    assert not net._NETNS_RE.match(config.NETNS_PREFIX + "upstream2")
    assert len(net.veth(net.UPSTREAM)) <= 15   # an interface name


@pytest.mark.parametrize("text,bits", [("200mbit", 200_000_000), ("1.5gbit", 1_500_000_000), ("800kbit", 800_000),
                                       ("64000bit", 64000)])
def test_upstream_rates_in_tc_units(text, bits):
    assert upstream.parse_rate(text) == bits
    args = upstream.tbf_args(bits)
    assert args[:3] == ["tbf", "rate", f"{bits}bit"]
    assert int(args[args.index("burst") + 1]) >= max(65536, bits // 8 // 50)


@pytest.mark.parametrize("text", ["fast", "100", "100MB", "0mbit", "-5mbit"])
def test_a_bad_upstream_rate_is_refused_with_the_expected_form(text):
    with pytest.raises(BedError, match="expected a positive number with bit, kbit, mbit or gbit"):
        upstream.parse_rate(text)
