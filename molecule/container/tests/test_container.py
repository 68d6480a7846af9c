"""Verify the container and packages roles on three simulated hosts through `docker inspect`.

gpu01: cookbook profile (privileged off in this sandbox), image through the registry mirror,
HF token as a secret file. gpu02: hardened profile. gpu03: cookbook profile from a tarball.
The side effect left per-host evidence of which containers a changed flag recreated.
The image fan-out: a small image pulled once (gpu01) and spread to gpu02 and gpu03; the side
effect filled gpu03's disk and freed it again.
"""
import hashlib
import json
import os
import pathlib
import re
import urllib.request

import pytest
import yaml

testinfra_hosts = ["ansible://simfleet_container"]
LABEL = "io.sglang-rocm.fleet."
VARS = yaml.safe_load((pathlib.Path(__file__).resolve().parents[1] / "vars" / "main.yml").read_text())
SENTINELS = VARS["molecule_sentinels"]
TOKEN = SENTINELS["hf_token"]


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(name="hostvars")
def fixture_hostvars(host):
    return host.ansible.get_variables()


@pytest.fixture(name="name")
def fixture_name(hostvars):
    return hostvars.get("molecule_container_name", "molecule-container")


def docker(host, hostvars, *args):
    return host.check_output(" ".join(["docker", "-H", hostvars["sglang_docker_host"], *args]))


@pytest.fixture(name="config")
def fixture_config(host, hostvars, name):
    return json.loads(docker(host, hostvars, "inspect", name))[0]


@pytest.fixture(name="evidence")
def fixture_evidence(host, hostvars):
    return json.loads(host.file(hostvars["simfleet_state_dir"] + "/molecule-container-evidence.json").content_string)


def devices(config):
    return {d["PathInContainer"]: d["PathOnHost"] for d in config["HostConfig"]["Devices"]}


def env(config):
    return dict(item.split("=", 1) for item in config["Config"]["Env"])


def is_host(host, *names):
    return host.backend.get_hostname() in names


JIT_CACHES = {"triton": "TRITON_CACHE_DIR", "aiter-jit": "AITER_JIT_DIR", "aiter": "AITER_ROOT_DIR",
              "inductor": "TORCHINDUCTOR_CACHE_DIR"}


def jit_root(config, hostvars):
    """The image's kernel caches on the host: no preflight facts in this scenario, so 'unknown'."""
    return "%s/jit/%s/unknown" % (hostvars["sglang_cache_dir"], config["Image"].split(":", 1)[1][:12])


def jit_binds(config, hostvars):
    return ["%s/%s:/var/cache/sglang-jit/%s:rw" % (jit_root(config, hostvars), name, name) for name in JIT_CACHES]


def test_running_labelled_and_kept_alive(config):
    assert config["State"]["Running"]
    labels = config["Config"]["Labels"]
    assert labels[LABEL + "managed"] == "true"
    assert len(labels[LABEL + "config-hash"]) == 64
    assert config["Config"]["Cmd"] == ["/bin/bash"]
    assert config["Config"]["Tty"] is True and config["Config"]["OpenStdin"] is True
    assert config["HostConfig"]["IpcMode"] == "host" and config["HostConfig"]["NetworkMode"] == "host"
    assert "seccomp=unconfined" in config["HostConfig"]["SecurityOpt"]
    assert config["HostConfig"]["Privileged"] is False  # refused by this kernel; see the unit tests


def test_cookbook_flags(host, config, hostvars):
    if not is_host(host, "gpu01", "gpu03"):
        pytest.skip("cookbook hosts only")
    dev_root = hostvars["sglang_preflight_dev_root"]
    assert config["Config"]["Labels"][LABEL + "profile"] == "cookbook"
    assert sorted(config["HostConfig"]["CapAdd"]) == ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]
    assert devices(config) == {"/dev/kfd": dev_root + "/kfd", "/dev/dri": dev_root + "/dri",
                               "/dev/mem": dev_root + "/mem"}
    assert config["HostConfig"]["GroupAdd"] == ["video"]
    assert "/:/work:rw" in config["HostConfig"]["Binds"] or "/:/work" in config["HostConfig"]["Binds"]
    assert env(config)["SHELL"] == "/bin/bash"


def test_hardened_flags(host, config, hostvars):
    if not is_host(host, "gpu02"):
        pytest.skip("hardened host only")
    hc = config["HostConfig"]
    assert config["Config"]["Labels"][LABEL + "profile"] == "hardened"
    assert hc["CapAdd"] == ["CAP_SYS_PTRACE"]
    assert set(devices(config)) == {"/dev/kfd", "/dev/dri"}
    video = host.check_output("getent group video | cut -d: -f3")
    assert video in hc["GroupAdd"] and all(g.isdigit() for g in hc["GroupAdd"])
    # only the cache, the results directory and the secret files, never the host root
    cache, results = hostvars["sglang_cache_dir"], hostvars["sglang_container_results_dir"]
    secrets = hostvars["sglang_container_secrets_dir"]
    assert sorted(hc["Binds"]) == sorted(["%s:%s:rw" % (cache, cache), "%s:%s:rw" % (results, results),
                                          "%s:/run/sglang-secrets:ro" % secrets] + jit_binds(config, hostvars))
    assert hc["ShmSize"] == 16 * 1024 ** 3
    assert {u["Name"] for u in hc["Ulimits"]} == {"memlock", "stack"}


def test_cache_is_mounted_and_used(config, hostvars):
    cache = hostvars["sglang_cache_dir"]
    assert "%s:%s:rw" % (cache, cache) in config["HostConfig"]["Binds"]
    assert env(config)["HF_HOME"] == cache + "/huggingface"


def test_kernel_caches_are_per_image_directories_mounted_where_each_tool_looks(host, config, hostvars):
    # the image's own directories, made before the container started (whatever its source)
    for name, variable in JIT_CACHES.items():
        assert host.file("%s/%s" % (jit_root(config, hostvars), name)).is_directory
        assert env(config)[variable] == "/var/cache/sglang-jit/" + name
    assert set(jit_binds(config, hostvars)) <= set(config["HostConfig"]["Binds"])


def test_image_source(host, config, hostvars):
    image = config["Config"]["Image"]
    registry = hostvars["simfleet_registry"]
    assert image == registry + "/lmsysorg/sglang:v0.5.7-rocm700-mi30x"
    info = json.loads(docker(host, hostvars, "image", "inspect", image))[0]
    assert info["Id"] == config["Image"]
    if is_host(host, "gpu03"):
        assert not info["RepoDigests"]  # loaded from the tarball, never pulled
    else:
        assert info["RepoDigests"]


def test_hf_token_is_a_read_only_file_never_in_inspect(host, config, hostvars, name):
    if not is_host(host, "gpu01"):
        pytest.skip("the host with a token")
    secrets = hostvars["sglang_container_secrets_dir"]
    assert TOKEN not in json.dumps(config)
    assert env(config)["HF_TOKEN_PATH"] == "/run/sglang-secrets/hf_token"
    assert "%s:/run/sglang-secrets:ro" % secrets in config["HostConfig"]["Binds"]
    token_file = host.file(secrets + "/hf_token")
    assert token_file.mode == 0o600 and host.file(secrets).mode == 0o700
    # compared by hash: the secret itself is never printed, not even to the verifier's log
    assert docker(host, hostvars, "exec", name, "sha256sum", "/run/sglang-secrets/hf_token").split()[0] == sha256(TOKEN)


def test_secret_looking_container_env_is_a_file_not_environment(host, config, hostvars, name):
    secrets = hostvars["sglang_container_secrets_dir"]
    assert "MOLECULE_API_TOKEN" not in env(config) and env(config)["MOLECULE_MARKER"] == "1"
    assert "%s:/run/sglang-secrets:ro" % secrets in config["HostConfig"]["Binds"]
    assert host.file(secrets + "/env.MOLECULE_API_TOKEN").mode == 0o600
    seen = docker(host, hostvars, "exec", name, "sha256sum", "/run/sglang-secrets/env.MOLECULE_API_TOKEN")
    assert seen.split()[0] == sha256(SENTINELS["container_env"])


def test_no_sentinel_in_vvv_output_argv_docker_inspect_or_results(host, config, hostvars, name):
    """The secrets' sentinel values appear nowhere: not in the -vvv output of any molecule step
    (check, converge, idempotence, side effect, cleanup), not in the argv of any process on the
    host or in its container, not in docker inspect, not in any file of the results directories."""
    sentinels = sorted(SENTINELS.values())
    log = pathlib.Path(os.environ["ANSIBLE_LOG_PATH"]).read_text(errors="replace")
    # the log is the -vvv output (module arguments and raw module output included) of runs that
    # installed packages through the private indexes
    assert '"invocation"' in log and "Install the missing packages in the container" in log
    assert '"pip_output_tail"' in log
    assert [s for s in sentinels if s in log] == []
    argv_host = host.check_output("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\000' ' '")
    argv_container = docker(host, hostvars, "exec", name, "sh", "-c",
                            "'cat /proc/[0-9]*/cmdline 2>/dev/null | tr \"\\000\" \" \"'")
    assert "/bin/bash" in argv_container
    assert [s for s in sentinels if s in argv_host + argv_container] == []
    assert [s for s in sentinels if s in json.dumps(config)] == []
    # the common prefix, so that no sentinel is ever on this check's own command line
    for results in (hostvars.get("sglang_container_results_dir"), hostvars.get("sglang_results_dir")):
        if results:
            found = host.run("grep -rlF -- SENTINEL- %s" % results)
            assert found.rc in (1, 2) and found.stdout == "", found.stdout


def test_packages_import_inside_the_container(host, hostvars, name):
    out = docker(host, hostvars, "exec", name, "python3", "-c",
                 "'import sentencepiece, tiktoken; print(\"ok\")'")
    assert out == "ok"


def test_changed_flag_recreated_only_the_touched_containers(host, evidence):
    if is_host(host, "gpu01"):
        assert evidence["before"] != evidence["after"] and "/dev/mem" not in evidence["devices"]
    elif is_host(host, "gpu02"):
        assert evidence["before"] != evidence["after"]
        assert not any(item.startswith("MOLECULE_MARKER=") for item in evidence["env"])
    else:
        assert evidence["before"] == evidence["after"]
    assert evidence["loaded_again"] is False and evidence["pulled_again"] is False


# ---------------------------------------------------------------- the image fan-out (small image)

def fanout_image(hostvars):
    return VARS["molecule_fanout_image"].replace("{{ simfleet_registry }}", hostvars["simfleet_registry"])


def state_json(host, hostvars, name):
    return json.loads(host.file("%s/%s" % (hostvars["simfleet_state_dir"], name)).content_string)


def registry_image_id(hostvars):
    """The small image's ID as the registry has it: the digest of its config blob."""
    repository, tag = fanout_image(hostvars).split("/", 1)[1].rsplit(":", 1)
    req = urllib.request.Request("http://%s/v2/%s/manifests/%s" % (hostvars["simfleet_registry"], repository, tag),
                                 headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                                                    "application/vnd.oci.image.manifest.v1+json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as resp:
        return json.load(resp)["config"]["digest"]


def test_the_small_image_crossed_the_registry_link_once(host, hostvars):
    """Counted by each host's daemon (docker events: pull) from the scenario's start: one pull on the
    seed, none elsewhere, none on the second run, none in the side effect's run with a failed host."""
    seed = is_host(host, "gpu01")
    assert state_json(host, hostvars, "molecule-fanout-evidence.json")["pulls"] == (1 if seed else 0)
    assert state_json(host, hostvars, "molecule-fanout-fault.json")["pulls"] == (1 if seed else 0)


def test_every_host_got_the_image_the_registry_has(host, hostvars):
    wanted = registry_image_id(hostvars)
    assert state_json(host, hostvars, "molecule-fanout-evidence.json")["id"] == wanted
    if is_host(host, "gpu03"):
        # the side effect's full disk: nothing was loaded, nothing half-loaded
        assert host.run("docker -H %s image inspect %s" % (hostvars["sglang_docker_host"], fanout_image(hostvars))).rc != 0
        return
    info = json.loads(docker(host, hostvars, "image", "inspect", fanout_image(hostvars)))[0]
    assert info["Id"] == wanted
    # the seed pulled it (a registry digest); the others loaded it from a peer's archive (none)
    assert bool(info["RepoDigests"]) == is_host(host, "gpu01")
    container = json.loads(docker(host, hostvars, "inspect", VARS["molecule_fanout_container"]))[0]
    assert container["Image"] == wanted and container["State"]["Running"]


def test_receivers_got_the_image_from_a_peer_and_no_archive_is_left(host, hostvars):
    transfer = state_json(host, hostvars, "molecule-fanout-evidence.json")["transfer"]
    if is_host(host, "gpu01"):
        assert transfer["status"] == "held" and transfer["sources"] == []
    else:
        assert transfer["status"] == "received" and transfer["error"] is None
        assert transfer["sources"] == ["gpu01"] and transfer["bytes"] > 1024 * 1024
    staging = hostvars["sglang_container_staging_dir"]
    assert host.run("ls -A %s" % staging).stdout.split() == []


def test_a_host_that_could_not_receive_was_named_and_the_others_went_on(host, hostvars):
    fault = state_json(host, hostvars, "molecule-fanout-fault.json")
    if is_host(host, "gpu03"):
        assert fault["failure"].startswith("Host gpu03: the image %s did not reach this host: disk full: image "
                                           "needs " % fanout_image(hostvars))
        assert "KiB are free on the filesystem of %s" % hostvars["sglang_container_staging_dir"] in fault["failure"]
        assert "Nothing was loaded here and the other hosts go on." in fault["failure"]
        assert fault["result"]["status"] == "failed"
    else:
        assert fault["failure"] is None
        assert fault["result"]["status"] == ("held" if is_host(host, "gpu01") else "received")


def test_the_fanout_token_is_in_no_log_and_no_file(host, hostvars):
    """The token is fresh per transfer: look for any unmasked value of a token option or the plan's
    result in the -vvv log of every step, and for the Authorization header anywhere on the host."""
    log = pathlib.Path(os.environ["ANSIBLE_LOG_PATH"]).read_text(errors="replace")
    assert "Plan who fetches from whom, image" in log and "Fetch from the peers, image" in log
    assert re.findall(r'"token": "(?!VALUE_SPECIFIED_IN_NO_LOG_PARAMETER)[^"]+"', log) == []
    assert "Bearer " not in log
    places = (hostvars["sglang_container_staging_dir"], hostvars.get("ansible_async_dir", "/nonexistent"))
    found = host.run("grep -rlF 'Bearer ' %s %s" % places)
    assert found.stdout == ""
