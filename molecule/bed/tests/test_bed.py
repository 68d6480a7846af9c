"""Verify the stand-in container on each simulated host: flags, devices, server, benchmark."""
import json

import pytest

testinfra_hosts = ["ansible://simfleet_pair"]
CONTAINER = "molecule-bed-sglang"


@pytest.fixture(name="hostvars")
def fixture_hostvars(host):
    return host.ansible.get_variables()


def docker(host, hostvars, *args):
    return host.check_output(" ".join(["docker", "-H", hostvars["sglang_docker_host"], *args]))


@pytest.fixture(name="config")
def fixture_config(host, hostvars):
    return json.loads(docker(host, hostvars, "inspect", CONTAINER))[0]


def test_not_privileged_and_host_namespaces(config):
    assert config["State"]["Running"]
    assert config["HostConfig"]["Privileged"] is False
    assert config["HostConfig"]["NetworkMode"] == "host"
    assert config["HostConfig"]["IpcMode"] == "host"


def test_devices_are_the_hosts_own(config, hostvars):
    devices = {d["PathInContainer"]: d["PathOnHost"] for d in config["HostConfig"]["Devices"]}
    dev_root = hostvars["sglang_preflight_dev_root"]
    assert devices == {"/dev/kfd": f"{dev_root}/kfd", "/dev/dri": f"{dev_root}/dri", "/dev/mem": f"{dev_root}/mem"}


def test_capabilities_groups_and_seccomp(config):
    caps = {c.upper().removeprefix("CAP_") for c in config["HostConfig"]["CapAdd"]}
    assert {"SYS_ADMIN", "SYS_PTRACE"} <= caps
    assert "seccomp=unconfined" in config["HostConfig"]["SecurityOpt"]
    assert "video" in config["HostConfig"]["GroupAdd"]


def test_device_nodes_inside_the_container(host, hostvars):
    kfd = docker(host, hostvars, "exec", CONTAINER, "stat", "-c", "%F:%t:%T", "/dev/kfd")
    assert kfd == "character special file:1:3"
    render = docker(host, hostvars, "exec", CONTAINER, "ls", "/dev/dri").split()
    assert "renderD128" in render


def test_server_is_healthy_on_the_hosts_loopback(host):
    code = host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:30000/health")
    assert code == "200"


def test_benchmark_completed_every_request(host, hostvars):
    record = json.loads(docker(host, hostvars, "exec", CONTAINER, "cat", "/tmp/molecule-bed-bench.jsonl")
                        .splitlines()[-1])
    assert record["completed"] == 10
    assert record["backend"] == "sglang"


def test_the_model_hub_answers_each_host_through_the_upstream(host, hostvars):
    """The hub beside the registry (simfleet_hub_endpoint) gives the pinned commit and its files."""
    url = f"{hostvars['simfleet_hub_endpoint']}/api/models/{hostvars['simfleet_hub_repo']}/revision/main?blobs=true"
    info = json.loads(host.check_output(f"curl -sSf '{url}'"))
    assert info["sha"] == hostvars["simfleet_hub_commit"]
    shards = [s for s in info["siblings"] if s["rfilename"].endswith(".safetensors")]
    assert shards and all(len(s["lfs"]["sha256"]) == 64 for s in shards)
    assert hostvars["simfleet_registry"].split(":")[0] == hostvars["simfleet_upstream_address"]
