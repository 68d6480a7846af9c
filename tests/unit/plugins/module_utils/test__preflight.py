"""module_utils/_preflight.py: input validation, every check's verdict, safe fixes."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures" / "rocm"))
from rocm_harness import build_host  # noqa: E402

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _docker_cli, _preflight, _preflight_checks, _rocm  # noqa: E402

GIB = 1 << 30


def settings(**overrides):
    base = dict(expected_gpus=8, tp_size=4, gfx=["gfx942"], min_vram_gib=180, min_free_disk_gib=100,
                compute_partitions=["SPX"], memory_partitions=["NPS1"], skip=[], cache_dir=None,
                container_env={}, sysctl_file="/etc/sysctl.d/90-sglang-rocm.conf", pcie_min_speed_gts=32,
                pcie_min_width=16, max_bad_pages=64, max_ce_per_day=100, kernel_params=["pci=realloc=off"])
    base.update(overrides)
    return base


def evaluate(tree, docker=None, disks=None, **overrides):
    facts = _rocm.gather(tree.sysfs_root, tree.dev_root, tree.proc_root)
    return _preflight.evaluate_checks(facts, settings(**overrides), "gpu01", docker, disks)


def check(report, name):
    return next(c for c in report["checks"] if c["name"] == name)


def params(tree, **overrides):
    base = dict(tree.roots, rocm_path="/opt/rocm", **settings())
    base.update(overrides)
    return base


# ---------------------------------------------------------------- input validation

def test_valid_inputs_have_no_errors(tmp_path):
    assert _preflight.validate_inputs(params(build_host(tmp_path, gpus=0)), "gpu01") == []


@pytest.mark.parametrize("change, variable, seen", [
    ({"expected_gpus": -1}, "sglang_preflight_expected_gpus", "got -1"),
    ({"expected_gpus": "eight"}, "sglang_preflight_expected_gpus", "got 'eight'"),
    ({"expected_gpus": True}, "sglang_preflight_expected_gpus", "got True"),
    ({"tp_size": 0}, "sglang_tp_size", "got 0"),
    ({"min_vram_gib": -5}, "sglang_preflight_min_vram_gib", "got -5"),
    ({"skip": ["numa"]}, "sglang_preflight_skip", "got 'numa'"),
    ({"gfx": ["942"]}, "sglang_preflight_gfx", "got ['942']"),
    ({"compute_partitions": ["XPS"]}, "sglang_preflight_compute_partitions", "got ['XPS']"),
    ({"cache_dir": "relative/cache"}, "sglang_cache_dir", "got 'relative/cache'"),
    ({"sysfs_root": "/nonexistent/sys"}, "sglang_preflight_sysfs_root", "got '/nonexistent/sys'"),
    ({"pcie_min_speed_gts": "gen5"}, "sglang_preflight_pcie_min_speed_gts", "got 'gen5'"),
    ({"pcie_min_width": -16}, "sglang_preflight_pcie_min_width", "got -16"),
    ({"max_bad_pages": 1.5}, "sglang_preflight_max_bad_pages", "got 1.5"),
    ({"max_ce_per_day": -1}, "sglang_preflight_max_ce_per_day", "got -1"),
    ({"kernel_params": ["pci=realloc=off amd_iommu=on"]}, "sglang_preflight_kernel_params",
     "got ['pci=realloc=off amd_iommu=on']"),
])
def test_each_bad_input_names_variable_host_value_expectation_and_fix(tmp_path, change, variable, seen):
    errors = _preflight.validate_inputs(params(build_host(tmp_path, gpus=0), **change), "gpu07")
    assert len(errors) == 1
    assert errors[0].startswith(variable) and "on host gpu07" in errors[0]
    assert seen in errors[0] and "expected" in errors[0] and "Fix: " in errors[0]


def test_every_bad_input_is_reported_at_once(tmp_path):
    errors = _preflight.validate_inputs(params(build_host(tmp_path, gpus=0), expected_gpus=-1, skip=["nope"],
                                               proc_root=str(tmp_path / "missing")), "gpu01")
    assert [e.split(" ")[0] for e in errors] == ["sglang_preflight_proc_root", "sglang_preflight_expected_gpus",
                                                 "sglang_preflight_skip"]


# ---------------------------------------------------------------- verdicts per host kind

def test_healthy_host_passes_every_host_check(tmp_path):
    report = evaluate(build_host(tmp_path, health={}))
    assert report["status"] == "pass" and report["failed"] == [] and report["warnings"] == []
    assert [c["name"] for c in report["checks"]] == list(_preflight.CHECKS)
    assert {c["name"] for c in report["checks"] if c["status"] == "n/a"} == {
        "docker_daemon", "docker_disk", "cache_dir", "cache_disk", "amd_smi"}
    assert report["message"] == "" and all(c["fix"] is None for c in report["checks"])
    assert report["summary"]["gfx"] == ["gfx942"] and report["summary"]["gpus"] == 8


def test_gfx90a_host_fails_on_target_and_vram(tmp_path):
    report = evaluate(build_host(tmp_path, kind="mi250"))
    assert report["failed"] == ["gfx", "vram"]
    assert check(report, "gfx")["observed"] == "nodes 2-9 are gfx90a (gfx_target_version 90010)"
    assert "built for gfx942 only" in check(report, "gfx")["fix"]
    assert check(report, "partition")["status"] == "n/a"


def test_host_without_amdgpu_fails_three_checks_and_the_rest_are_not_applicable(tmp_path):
    report = evaluate(build_host(tmp_path, amdgpu=False))
    assert report["failed"] == ["amdgpu_loaded", "kfd_present", "gpu_count"]
    assert {c["name"] for c in report["checks"] if c["status"] == "n/a"} >= {
        "driver_version", "gfx", "render_nodes", "vram", "partition", "gpu_processes"}
    assert "modprobe amdgpu" in check(report, "amdgpu_loaded")["fix"]
    observed = check(report, "gpu_count")["observed"]
    assert "8 AMD GPUs on PCI, without a KFD node: 0000:05:00.0" in observed


def test_missing_gpus_are_named_by_pci_address(tmp_path):
    tree = build_host(tmp_path, gpus=8)
    nodes = Path(tree.sysfs_root) / "class/kfd/kfd/topology/nodes"
    for node in (8, 9):  # the last two GPUs lost their KFD nodes
        for path in sorted((nodes / str(node)).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (nodes / str(node)).rmdir()
    gpu_count = check(evaluate(tree), "gpu_count")
    assert gpu_count["status"] == "fail"
    assert "without a KFD node: 0000:c6:00.0, 0000:e5:00.0" in gpu_count["observed"]
    assert "2 missing of 8 expected" in gpu_count["observed"]


def test_fewer_gpus_than_tp_size_always_fails(tmp_path):
    report = evaluate(build_host(tmp_path, gpus=2), expected_gpus=0, tp_size=4)
    assert report["failed"] == ["gpu_count"]
    assert "sglang_tp_size 4 needs 4" in check(report, "gpu_count")["observed"]
    assert evaluate(build_host(tmp_path / "b", gpus=4), expected_gpus=4, tp_size=4)["failed"] == []


def test_missing_render_node_names_the_device_path(tmp_path):
    report = evaluate(build_host(tmp_path, missing_render=(136,)))
    assert report["failed"] == ["render_nodes"]
    assert check(report, "render_nodes")["observed"] == "missing: %s/dev/dri/renderD136 (node 3)" % tmp_path


def test_cpx_nps4_fails_partition_and_vram_with_the_amd_smi_fix(tmp_path):
    report = evaluate(build_host(tmp_path, partition=("CPX", "NPS4")))
    assert report["failed"] == ["vram", "partition"]
    partition = check(report, "partition")
    assert partition["observed"].startswith("CPX/NPS4 on 8 GPUs (0000:05:00.0")
    assert "amd-smi set --memory-partition NPS1" in partition["fix"] and "never done automatically" in partition["fix"]
    assert "partitioned" in check(report, "vram")["fix"]


def unreadable_partition_file(tree, bdf, key):
    """The partition file of one GPU made unreadable for real (a directory: EISDIR), as root
    cannot be denied a read by its mode."""
    path = tree.sys("bus/pci/devices/%s/current_%s_partition" % (bdf, key))
    path.unlink()
    path.mkdir()
    return str(path)


def test_unreadable_partition_files_of_a_gfx942_gpu_warn_naming_gpu_file_and_error(tmp_path):
    tree = build_host(tmp_path)
    compute = unreadable_partition_file(tree, "0000:05:00.0", "compute")
    report = evaluate(tree)
    partition = check(report, "partition")
    assert partition["status"] == "warn" and "partition" in report["warnings"]
    assert "gfx942 GPU 0000:05:00.0 (node 2): %s: is a directory" % compute in partition["observed"]
    assert "could not be checked" in partition["fix"]


def test_every_partition_file_unreadable_is_a_warning_not_a_gpu_without_partitions(tmp_path):
    tree = build_host(tmp_path, gpus=2)
    paths = [unreadable_partition_file(tree, bdf, key) for bdf in ("0000:05:00.0", "0000:26:00.0")
             for key in ("compute", "memory")]
    partition = check(evaluate(tree, expected_gpus=2, tp_size=2), "partition")
    assert partition["status"] == "warn"
    assert "GPUs without compute partitions" not in partition["observed"]
    assert partition["observed"].startswith("partition file unreadable: gfx942 GPU 0000:05:00.0 (node 2): %s: is a directory"
                                            % paths[0])
    assert "and 1 more" in partition["observed"]


def test_gfx90a_without_partition_files_is_still_not_applicable(tmp_path):
    partition = check(evaluate(build_host(tmp_path, kind="mi250")), "partition")
    assert partition["status"] == "n/a" and "GPUs without compute partitions" in partition["observed"]


def test_numa_balancing_and_iommu(tmp_path):
    report = evaluate(build_host(tmp_path, numa_balancing=1, cmdline="ro quiet"))
    assert report["failed"] == ["numa_balancing", "iommu"]
    assert check(report, "numa_balancing")["observed"].startswith("kernel.numa_balancing = 1")
    assert "sglang_preflight_remediate: true" in check(report, "numa_balancing")["fix"]
    assert "reboot" in check(report, "iommu")["fix"]


def test_inbox_driver_and_missing_dev_mem_only_warn(tmp_path):
    report = evaluate(build_host(tmp_path, dkms=None, dev_mem=False))
    assert report["status"] == "warn" and report["warnings"] == ["driver_version", "dev_mem"]


def test_permission_denied_fails_facts_readable(tmp_path):
    facts = _rocm.gather(*build_host(tmp_path).roots.values())
    facts["errors"] = [{"path": "/sys/class/kfd/kfd/topology/nodes/3/properties", "error": "operation not permitted"}]
    facts["unreadable_nodes"] = [3]
    report = _preflight.evaluate_checks(facts, settings(), "gpu01")
    assert "facts_readable" in report["failed"]
    assert "become: true" in check(report, "facts_readable")["fix"]


def test_risky_container_environment_warns(tmp_path):
    report = evaluate(build_host(tmp_path), container_env={"HSA_OVERRIDE_GFX_VERSION": "9.4.2", "FOO": "1"})
    assert report["warnings"] == ["env_hygiene"]
    assert check(report, "env_hygiene")["observed"] == "set: HSA_OVERRIDE_GFX_VERSION=9.4.2"


def test_waived_check_is_reported_as_skipped_never_silently(tmp_path):
    report = evaluate(build_host(tmp_path, numa_balancing=1), skip=["numa_balancing"])
    numa = check(report, "numa_balancing")
    assert report["status"] == "pass" and report["skipped"] == ["numa_balancing"]
    assert numa["status"] == "skipped" and numa["waived_status"] == "fail"
    assert numa["observed"].startswith("waived by sglang_preflight_skip (would be fail): kernel.numa_balancing = 1")


# ---------------------------------------------------------------- docker and disks

def docker_result(reachable=True, root_dir="/var/lib/docker"):
    if not reachable:
        return {"failed": False, "can_talk_to_docker": False,
                "msg": "Error connecting: Error while fetching server API version: ('Connection aborted.', "
                       "FileNotFoundError(2, 'No such file or directory'))"}
    return {"changed": False, "can_talk_to_docker": True,
            "host_info": {"ServerVersion": "28.2.2", "DockerRootDir": root_dir}}


def test_unreachable_daemon_fails_and_its_disk_is_not_applicable(tmp_path):
    docker = _preflight.docker_status(docker_result(False), "unix:///run/docker.sock")
    report = evaluate(build_host(tmp_path), docker=docker)
    assert report["failed"] == ["docker_daemon"]
    assert "no answer at unix:///run/docker.sock: Error connecting" in check(report, "docker_daemon")["observed"]
    assert check(report, "docker_disk")["status"] == "n/a"


def test_disk_thresholds_on_docker_root_and_cache(tmp_path):
    docker = _preflight.docker_status(docker_result(root_dir=str(tmp_path)), "unix:///run/docker.sock")
    disks = {"docker_root": {"path": str(tmp_path), "measured_at": str(tmp_path), "exists": True, "is_dir": True,
                             "free_bytes": 50 * GIB, "total_bytes": 500 * GIB, "device": 7, "error": None},
             "cache_dir": {"path": "/srv/cache", "measured_at": "/srv", "exists": False, "is_dir": False,
                           "free_bytes": 300 * GIB, "total_bytes": 500 * GIB, "device": 7, "error": None}}
    report = evaluate(build_host(tmp_path / "h"), docker=docker, disks=disks, cache_dir="/srv/cache")
    assert report["failed"] == ["docker_disk"] and report["warnings"] == ["cache_dir"]
    assert check(report, "docker_disk")["observed"] == "50.0 GiB free of 500.0 GiB on %s" % tmp_path
    assert "docker system prune" in check(report, "docker_disk")["fix"]
    cache = check(report, "cache_disk")
    assert cache["status"] == "pass" and "(measured at /srv)" in cache["observed"]
    assert cache["observed"].endswith("(same filesystem as the Docker data root)")


def test_remote_daemon_disk_is_not_measured_here():
    docker = _preflight.docker_status(docker_result(), "tcp://10.0.0.5:2376")
    assert docker["local"] is False
    assert _preflight_checks.check_docker_disk({"docker": docker, "settings": settings(), "disks": {}})["status"] == "n/a"


def test_failure_message_lists_every_failed_check_with_its_fix(tmp_path):
    report = evaluate(build_host(tmp_path, kind="mi250", numa_balancing=1))
    lines = report["message"].splitlines()
    assert lines[0] == "preflight failed on gpu01: 3 checks of %d failed" % len(_preflight_checks.CHECKS)
    assert [line.split(":")[0] for line in lines[1:]] == ["- gfx", "- vram", "- numa_balancing"]
    assert all("(expected " in line and "Fix: " in line for line in lines[1:])


# ---------------------------------------------------------------- remediation

@pytest.mark.parametrize("old, new", [
    (None, "# Managed by sglang_rocm.fleet (preflight role): AMD's MI300X host settings.\nkernel.numa_balancing = 0\n"),
    ("vm.swappiness = 10\n", "vm.swappiness = 10\nkernel.numa_balancing = 0\n"),
    ("kernel/numa_balancing=1\nvm.swappiness = 10\n kernel.numa_balancing = 1\n",
     "kernel.numa_balancing = 0\nvm.swappiness = 10\n"),
])
def test_sysctl_content_sets_the_key_once(old, new):
    assert _preflight.sysctl_content(old, "kernel.numa_balancing", 0) == new
    assert _preflight.sysctl_content(new, "kernel.numa_balancing", 0) == new


def plan(tree, tmp_path, **overrides):
    facts = _rocm.gather(*tree.roots.values())
    conf = settings(sysctl_file=str(tmp_path / "etc/sysctl.d/90-sglang-rocm.conf"), **overrides)
    report = _preflight.evaluate_checks(facts, conf, "gpu01", None,
                                        {"cache_dir": _rocm.disk_space(conf["cache_dir"])} if conf["cache_dir"] else None)
    return _preflight.plan_remediation(report, facts, conf)


def test_plan_fixes_only_failed_checks_and_only_safe_ones(tmp_path):
    assert plan(build_host(tmp_path / "ok"), tmp_path) == []
    actions = plan(build_host(tmp_path / "bad", amdgpu=False, numa_balancing=1, partition=("CPX", "NPS4")), tmp_path,
                   cache_dir=str(tmp_path / "cache"))
    assert [(a["check"], a["action"]) for a in actions] == [
        ("amdgpu_loaded", "modprobe"), ("numa_balancing", "write"), ("numa_balancing", "file"), ("cache_dir", "mkdir")]


def test_waived_check_is_not_fixed(tmp_path):
    assert plan(build_host(tmp_path, numa_balancing=1), tmp_path, skip=["numa_balancing"]) == []


def test_apply_in_check_mode_changes_nothing(tmp_path):
    tree = build_host(tmp_path / "h", numa_balancing=1)
    actions = plan(tree, tmp_path)
    results = _preflight.apply_remediation(actions, True, run=None)
    assert [r["changed"] for r in results] == [True, True]
    assert Path(tree.proc_root, "sys/kernel/numa_balancing").read_text() == "1\n"
    assert not (tmp_path / "etc").exists()
    diff = _preflight.diff_entries(results)
    assert diff[0]["before"] == "1\n" and diff[0]["after"] == "0\n"


def test_apply_writes_live_value_and_persists_it_then_has_nothing_left_to_do(tmp_path):
    tree = build_host(tmp_path / "h", numa_balancing=1)
    results = _preflight.apply_remediation(plan(tree, tmp_path), False, run=None)
    assert all(r["changed"] and r["error"] is None for r in results)
    assert Path(tree.proc_root, "sys/kernel/numa_balancing").read_text() == "0\n"
    assert (tmp_path / "etc/sysctl.d/90-sglang-rocm.conf").read_text().endswith("kernel.numa_balancing = 0\n")
    assert plan(tree, tmp_path) == []


def test_failed_modprobe_is_reported_with_its_error(tmp_path):
    calls = []

    def run(argv):
        calls.append(argv)
        return 1, "", "modprobe: FATAL: Module amdgpu not found in directory /lib/modules/6.8.0\n"

    tree = build_host(tmp_path, amdgpu=False)
    results = _preflight.apply_remediation(plan(tree, tmp_path), False, run)
    assert calls == [["modprobe", "amdgpu"]]
    assert results[0]["changed"] is False and "Module amdgpu not found" in results[0]["error"]
    facts = _rocm.gather(*tree.roots.values())
    report = _preflight.annotate_remediation(_preflight.evaluate_checks(facts, settings(), "gpu01"), results)
    assert check(report, "amdgpu_loaded")["remediation"].startswith("failed: modprobe amdgpu exited 1")
    assert "[remediation: failed: modprobe amdgpu exited 1" in report["message"]


def test_docker_info_answers_are_normalised():
    ok = _preflight.docker_status_from_cli(0, '{"ServerVersion": "28.2.2", "DockerRootDir": "/var/lib/docker"}', "",
                                           "unix:///var/run/docker.sock")
    assert ok == {"host": "unix:///var/run/docker.sock", "reachable": True, "version": "28.2.2",
                  "root_dir": "/var/lib/docker", "local": True, "error": None}
    remote = _preflight.docker_status_from_cli(0, '{"ServerVersion": "28.2.2", "DockerRootDir": "/d"}', "",
                                               "tcp://10.0.0.1:2376")
    assert remote["reachable"] and not remote["local"]
    # the CLI prints its client half (empty server fields) when the daemon does not answer
    down = _preflight.docker_status_from_cli(1, '{"ServerVersion": "", "DockerRootDir": ""}',
                                             "Cannot connect to the Docker daemon at unix:///x.sock.\n", "unix:///x.sock")
    assert not down["reachable"] and down["root_dir"] is None
    assert down["error"] == "Cannot connect to the Docker daemon at unix:///x.sock."
    errors = _preflight.docker_status_from_cli(0, '{"ServerVersion": "", "ServerErrors": ["permission denied"]}', "",
                                               None)
    assert errors["error"] == "permission denied" and errors["host"] == "unix:///var/run/docker.sock"
    slow = _preflight.docker_status_from_cli(124, "", "", "unix:///x.sock", timeout=10)
    assert slow["error"] == "the daemon did not answer docker info within 10s"
    garbage = _preflight.docker_status_from_cli(0, "not json", "", "unix:///x.sock")
    assert not garbage["reachable"] and "no server information" in garbage["error"]


class _RecordingCli:
    """The docker CLI seam's command(), answering ``done`` and recording each call."""

    def __init__(self, done):
        self.done, self.calls = done, []

    def command(self, args, timeout=None):
        self.calls.append((args, timeout))
        return self.done


def test_probe_docker_asks_through_the_seam_and_reads_its_timeout():
    cli = _RecordingCli(_docker_cli.Completed(124, "", "", True, 10.0))
    status = _preflight.probe_docker(cli, "unix:///d.sock", 10)
    assert cli.calls == [(["info", "--format", "{{json .}}"], 10)]
    assert status["error"] == "the daemon did not answer docker info within 10s" and not status["reachable"]
    missing = _preflight.probe_docker(None, "unix:///d.sock", 10, missing="docker")
    assert "docker CLI is not on the host's PATH" in missing["error"]


def test_probe_image_reads_the_short_id_of_the_image_the_host_holds():
    cli = _RecordingCli(_docker_cli.Completed(0, "sha256:" + "6ef053024a65" + "0" * 52 + "\n", "", False, 0.1))
    status = _preflight.probe_image(cli, "registry:5000/lmsysorg/sglang:v1", 10)
    assert cli.calls == [(["image", "inspect", "--format", "{{.Id}}", "--", "registry:5000/lmsysorg/sglang:v1"], 10)]
    assert status == {"ref": "registry:5000/lmsysorg/sglang:v1", "present": True, "id": "6ef053024a65", "error": None}


def test_probe_image_an_image_not_yet_on_the_host_is_absent_not_an_error():
    cli = _RecordingCli(_docker_cli.Completed(1, "", "Error response from daemon: No such image: x:y\n", False, 0.1))
    assert _preflight.probe_image(cli, "x:y", 10) == {"ref": "x:y", "present": False, "id": None, "error": None}


def test_probe_image_a_daemon_that_does_not_answer_leaves_the_id_unknown():
    status = _preflight.probe_image(_RecordingCli(_docker_cli.Completed(124, "", "", True, 10.0)), "x:y", 10)
    assert status["present"] is None and status["id"] is None
    assert status["error"] == "docker image inspect did not answer within 10s"
    odd = _preflight.image_status_from_cli(0, "not an id", "", "x:y")
    assert odd["id"] is None and "not an id" in odd["error"]
