"""rocm_preflight: the real main() on fake host trees; run_command (modprobe) and get_bin_path are the boundary."""
import sys
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures" / "rocm"))
from rocm_harness import build_host, run_module  # noqa: E402

from ansible_collections.sglang_rocm.fleet.plugins.modules import rocm_preflight  # noqa: E402


def args(tree, tmp_path, **extra):
    base = dict(tree.roots, host="gpu01", amd_smi="never", tp_size=4, min_free_disk_gib=0.001, docker_probe=False,
                cache_dir=str(tmp_path / "cache"), sysctl_file=str(tmp_path / "sysctl.d/90-sglang-rocm.conf"))
    base.update(extra)
    return base


def test_healthy_host_report_is_also_set_as_a_fact(tmp_path):
    tree = build_host(tmp_path)
    (tmp_path / "cache").mkdir()
    kind, result = run_module(rocm_preflight, args(tree, tmp_path))
    assert kind == "exit" and result["changed"] is False
    report = result["report"]
    assert report["host"] == "gpu01" and report["status"] == "pass"
    assert result["ansible_facts"]["sglang_preflight_report"] == report
    assert result["ansible_facts"]["rocm"]["gpu_count"] == 8


def test_remediation_fixes_numa_balancing_and_the_cache_dir_then_changes_nothing(tmp_path):
    tree = build_host(tmp_path, numa_balancing=1)
    live = Path(tree.proc_root, "sys/kernel/numa_balancing")
    kind, first = run_module(rocm_preflight, args(tree, tmp_path, remediate=True, _ansible_diff=True))
    assert kind == "exit" and first["changed"] is True
    assert first["report"]["status"] == "pass"  # evaluated again after the fixes
    assert live.read_text() == "0\n"
    assert (tmp_path / "sysctl.d/90-sglang-rocm.conf").read_text().endswith("kernel.numa_balancing = 0\n")
    assert (tmp_path / "cache").is_dir()
    assert [d["before_header"] for d in first["diff"]] == [
        str(live), str(tmp_path / "sysctl.d/90-sglang-rocm.conf"), str(tmp_path / "cache")]
    numa = next(c for c in first["report"]["checks"] if c["name"] == "numa_balancing")
    assert numa["status"] == "pass" and numa["remediation"].startswith("done: write 0 to")
    kind, second = run_module(rocm_preflight, args(tree, tmp_path, remediate=True))
    assert kind == "exit" and second["changed"] is False and second["report"]["remediation"] == []


def test_check_mode_reports_the_fixes_and_changes_nothing(tmp_path):
    tree = build_host(tmp_path, numa_balancing=1)
    kind, result = run_module(rocm_preflight, args(tree, tmp_path, remediate=True, _ansible_check_mode=True,
                                                   _ansible_diff=True))
    assert kind == "exit" and result["changed"] is True
    assert result["report"]["status"] == "fail" and result["report"]["failed"] == ["numa_balancing"]
    assert "[remediation: would write 0 to" in result["report"]["message"]
    assert result["diff"][0]["before"] == "1\n" and result["diff"][0]["after"] == "0\n"
    assert Path(tree.proc_root, "sys/kernel/numa_balancing").read_text() == "1\n"
    assert not (tmp_path / "sysctl.d").exists() and not (tmp_path / "cache").exists()


def test_modprobe_is_run_through_run_command_and_its_failure_reported(tmp_path):
    tree = build_host(tmp_path, amdgpu=False)
    (tmp_path / "cache").mkdir()
    runner = mock.Mock(return_value=(1, "", "modprobe: FATAL: Module amdgpu not found in directory /lib/modules/6.8.0"))
    kind, result = run_module(rocm_preflight, args(tree, tmp_path, remediate=True), run_command=runner,
                              bin_paths={"modprobe": "/usr/sbin/modprobe", "timeout": "/usr/bin/timeout"})
    runner.assert_called_once_with(["/usr/bin/timeout", "--kill-after=5", "120", "/usr/sbin/modprobe", "amdgpu"])
    assert kind == "exit" and result["changed"] is False
    assert result["report"]["failed"] == ["amdgpu_loaded", "kfd_present", "gpu_count"]
    assert "failed: modprobe amdgpu exited 1: modprobe: FATAL" in result["report"]["message"]


def test_without_a_registered_result_the_module_asks_the_daemon_itself(tmp_path):
    tree = build_host(tmp_path)
    (tmp_path / "cache").mkdir()
    info = '{"ServerVersion": "20.10.24", "DockerRootDir": "%s", "ServerErrors": null}' % tmp_path
    runner = mock.Mock(return_value=(0, info, ""))
    kind, result = run_module(rocm_preflight, args(tree, tmp_path, docker_probe=True, docker_timeout=7,
                                                   docker_host="unix:///run/d.sock"),
                              run_command=runner, bin_paths={"docker": "/usr/bin/docker", "timeout": "/usr/bin/timeout"})
    # through the docker CLI seam: its coreutils timeout, its C locale
    runner.assert_called_once_with(["/usr/bin/timeout", "--kill-after=5", "7", "/usr/bin/docker", "--host",
                                    "unix:///run/d.sock", "info", "--format", "{{json .}}"], data=None,
                                   environ_update={"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"})
    checks = dict((c["name"], c) for c in result["report"]["checks"])
    assert kind == "exit" and result["report"]["status"] == "pass"
    assert checks["docker_daemon"]["observed"].startswith("Docker 20.10.24 at unix:///run/d.sock")
    assert checks["docker_disk"]["status"] == "pass"


def test_a_silent_daemon_or_a_missing_cli_is_a_failed_check_not_a_failed_task(tmp_path):
    tree = build_host(tmp_path)
    (tmp_path / "cache").mkdir()
    down = mock.Mock(return_value=(1, '{"ServerVersion": ""}', "Cannot connect to the Docker daemon at "
                                   "unix:///var/run/docker.sock. Is the docker daemon running?\n"))
    kind, result = run_module(rocm_preflight, args(tree, tmp_path, docker_probe=True), run_command=down,
                              bin_paths={"docker": "/usr/bin/docker", "timeout": "/usr/bin/timeout"})
    checks = dict((c["name"], c) for c in result["report"]["checks"])
    assert kind == "exit" and result["report"]["failed"] == ["docker_daemon"]
    assert "Cannot connect to the Docker daemon" in checks["docker_daemon"]["observed"]
    assert checks["docker_disk"]["status"] == "n/a"
    kind, result = run_module(rocm_preflight, args(tree, tmp_path, docker_probe=True))
    checks = dict((c["name"], c) for c in result["report"]["checks"])
    assert kind == "exit" and "docker CLI is not on the host's PATH" in checks["docker_daemon"]["observed"]


def test_invalid_inputs_fail_before_anything_changes(tmp_path):
    tree = build_host(tmp_path, numa_balancing=1)
    kind, result = run_module(rocm_preflight, args(tree, tmp_path, remediate=True, expected_gpus=-2,
                                                   dev_root=str(tmp_path / "nope")))
    assert kind == "fail"
    assert result["msg"].startswith("preflight inputs are invalid, nothing was checked or changed:")
    assert [e.split(" ")[0] for e in result["errors"]] == ["sglang_preflight_dev_root", "sglang_preflight_expected_gpus"]
    assert Path(tree.proc_root, "sys/kernel/numa_balancing").read_text() == "1\n"


def test_unknown_skip_name_is_refused(tmp_path):
    kind, result = run_module(rocm_preflight, args(build_host(tmp_path, gpus=1), tmp_path, skip=["numa"]))
    assert kind == "fail" and "numa" in result["msg"] and "numa_balancing" in result["msg"]


def test_docker_result_feeds_the_docker_checks(tmp_path):
    tree = build_host(tmp_path)
    (tmp_path / "cache").mkdir()
    registered = {"changed": False, "failed": False, "can_talk_to_docker": True,
                  "host_info": {"ServerVersion": "20.10.24", "DockerRootDir": str(tmp_path)}}
    kind, result = run_module(rocm_preflight, args(tree, tmp_path, docker=registered, docker_host="unix:///run/d.sock"))
    checks = dict((c["name"], c) for c in result["report"]["checks"])
    assert kind == "exit" and checks["docker_daemon"]["status"] == "pass"
    assert checks["docker_daemon"]["observed"].startswith("Docker 20.10.24 at unix:///run/d.sock")
    assert checks["docker_disk"]["status"] == "pass" and str(tmp_path) in checks["docker_disk"]["observed"]
    down = {"failed": False, "can_talk_to_docker": False, "msg": "Error connecting: permission denied"}
    kind, result = run_module(rocm_preflight, args(tree, tmp_path, docker=down))
    assert result["report"]["failed"] == ["docker_daemon"]


def test_a_wedged_daemon_ends_at_docker_timeout_with_a_failed_check(tmp_path):
    tree = build_host(tmp_path)
    (tmp_path / "cache").mkdir()
    clock = {"now": 10.0}

    def wedged(argv, **kwargs):
        clock["now"] += int(argv[2])  # docker info hangs until timeout stops it
        return 124, "", ""
    with mock.patch("ansible_collections.sglang_rocm.fleet.plugins.module_utils._docker_cli.time.monotonic",
                    lambda: clock["now"]):
        kind, result = run_module(rocm_preflight, args(tree, tmp_path, docker_probe=True, docker_timeout=4),
                                  run_command=mock.Mock(side_effect=wedged),
                                  bin_paths={"docker": "/usr/bin/docker", "timeout": "/usr/bin/timeout"})
    checks = dict((c["name"], c) for c in result["report"]["checks"])
    assert kind == "exit" and "docker_daemon" in result["report"]["failed"]
    assert "the daemon did not answer docker info within 4s" in checks["docker_daemon"]["observed"]


def test_without_coreutils_timeout_docker_info_is_not_run_unbounded(tmp_path):
    tree = build_host(tmp_path)
    (tmp_path / "cache").mkdir()
    kind, result = run_module(rocm_preflight, args(tree, tmp_path, docker_probe=True),
                              bin_paths={"docker": "/usr/bin/docker"})
    checks = dict((c["name"], c) for c in result["report"]["checks"])
    assert kind == "exit" and "coreutils timeout is not on the host's PATH" in checks["docker_daemon"]["observed"]


def test_a_hung_modprobe_ends_at_its_limit_as_a_failed_fix(tmp_path):
    tree = build_host(tmp_path, amdgpu=False)
    (tmp_path / "cache").mkdir()
    runner = mock.Mock(return_value=(124, "", ""))
    kind, result = run_module(rocm_preflight, args(tree, tmp_path, remediate=True), run_command=runner,
                              bin_paths={"modprobe": "/usr/sbin/modprobe", "timeout": "/usr/bin/timeout"})
    assert kind == "exit" and result["changed"] is False
    assert "failed: modprobe amdgpu exited 124: modprobe amdgpu did not finish within 120s and was stopped" \
        in result["report"]["message"]
