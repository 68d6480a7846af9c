"""rocm_facts: the real main() against fake host trees; only run_command and get_bin_path are mocked."""
import sys
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures" / "rocm"))
from rocm_harness import build_host, fixture_text, run_module  # noqa: E402

from ansible_collections.sglang_rocm.fleet.plugins.modules import rocm_facts  # noqa: E402

AMD_SMI = "/opt/rocm/bin/amd-smi"
TIMEOUT = "/usr/bin/timeout"
SMI_BINS = {"amd-smi": AMD_SMI, "timeout": TIMEOUT}
LIMIT = [TIMEOUT, "--kill-after=2", "30"]  # every amd-smi call runs under coreutils timeout


def amd_smi_runner(static="amd_smi_static_rocm7.json"):
    outputs = {
        ("version", "--json"): fixture_text("amd_smi_version_rocm7.json"),
        ("list", "--json"): fixture_text("amd_smi_list_rocm6.json"),
        ("static", "--asic", "--vram", "--json"): fixture_text(static),
        ("metric", "--pcie", "--json"): fixture_text("amd_smi_metric_pcie_rocm7.json"),
    }

    def answer(argv):
        assert argv[:4] == LIMIT + [AMD_SMI]
        return 0, outputs[tuple(argv[4:])], ""
    return mock.Mock(side_effect=answer)


def test_healthy_host_facts_and_never_changed(tmp_path):
    tree = build_host(tmp_path)
    kind, result = run_module(rocm_facts, dict(tree.roots, amd_smi="never"))
    assert kind == "exit" and result["changed"] is False
    rocm = result["ansible_facts"]["rocm"]
    assert rocm["gpu_count"] == 8 and rocm["smi"] is None
    assert {g["gfx"] for g in rocm["gpus"]} == {"gfx942"}


def test_check_mode_gathers_the_same_facts(tmp_path):
    tree = build_host(tmp_path, numa_balancing=1)
    dummy, normal = run_module(rocm_facts, dict(tree.roots, amd_smi="never"))
    kind, checked = run_module(rocm_facts, dict(tree.roots, amd_smi="never", _ansible_check_mode=True))
    assert kind == "exit" and checked == normal and checked["ansible_facts"]["rocm"]["numa_balancing"] == 1


def test_missing_root_fails_naming_option_path_and_fix(tmp_path):
    tree = build_host(tmp_path, gpus=0, amdgpu=False)
    kind, result = run_module(rocm_facts, dict(tree.roots, sysfs_root=str(tmp_path / "host/sys"), amd_smi="never"))
    assert kind == "fail"
    assert result["msg"].startswith("sysfs_root: got '%s/host/sys', which is not an existing directory" % tmp_path)
    assert "Fix: set sysfs_root" in result["msg"]


def test_auto_uses_amd_smi_when_installed(tmp_path):
    tree = build_host(tmp_path)
    runner = amd_smi_runner()
    kind, result = run_module(rocm_facts, dict(tree.roots), run_command=runner, bin_paths=SMI_BINS)
    assert kind == "exit"
    smi = result["ansible_facts"]["rocm"]["smi"]
    assert smi["tool"] == "amd-smi" and len(smi["gpus"]) == 8 and smi["version"]["rocm_version"] == "7.0.2"
    assert [c.args[0][3:] for c in runner.call_args_list] == [
        [AMD_SMI, "version", "--json"], [AMD_SMI, "list", "--json"], [AMD_SMI, "static", "--asic", "--vram", "--json"],
        [AMD_SMI, "metric", "--pcie", "--json"]]


def test_rocm6_list_shape_gives_the_same_gpus(tmp_path):
    tree = build_host(tmp_path, gpus=1)
    dummy, rocm7 = run_module(rocm_facts, dict(tree.roots), run_command=amd_smi_runner(), bin_paths=SMI_BINS)
    dummy, rocm6 = run_module(rocm_facts, dict(tree.roots), run_command=amd_smi_runner("amd_smi_static_rocm6.json"),
                              bin_paths=SMI_BINS)
    assert rocm6["ansible_facts"]["rocm"]["smi"]["gpus"] == rocm7["ansible_facts"]["rocm"]["smi"]["gpus"]


def test_always_without_amd_smi_fails_and_never_runs_nothing(tmp_path):
    tree = build_host(tmp_path, gpus=1)
    kind, result = run_module(rocm_facts, dict(tree.roots, amd_smi="always"))
    assert kind == "fail" and "amd-smi was not found" in result["msg"] and "Fix: install amd-smi" in result["msg"]
    # run_command is a mock that raises if called: amd_smi=never must not run anything
    kind, result = run_module(rocm_facts, dict(tree.roots, amd_smi="never"), bin_paths=SMI_BINS)
    assert kind == "exit" and result["ansible_facts"]["rocm"]["smi"] is None


class HungAmdSmi:
    """amd-smi that never answers: coreutils timeout kills it at the limit (exit 124)."""

    def __init__(self, clock):
        self.clock = clock
        self.calls = []

    def __call__(self, argv):
        self.calls.append(argv)
        self.clock.now += int(argv[2])  # the limit passes
        return 124, "", ""


class Clock:
    def __init__(self):
        self.now = 50.0

    def monotonic(self):
        return self.now


def run_hung(tmp_path, **extra):
    clock = Clock()
    runner = HungAmdSmi(clock)
    with mock.patch("ansible_collections.sglang_rocm.fleet.plugins.module_utils._rocm.time", clock):
        kind, result = run_module(rocm_facts, dict(build_host(tmp_path, gpus=1).roots, amd_smi_timeout=7, **extra),
                                  run_command=runner, bin_paths=SMI_BINS)
    return kind, result, runner


def test_a_hung_amd_smi_is_stopped_at_its_limit_and_is_a_warning_in_auto_mode(tmp_path):
    kind, result, runner = run_hung(tmp_path)
    assert kind == "exit"
    # one call, under `timeout 7`, and amd-smi is not asked again after it hung
    assert runner.calls == [[TIMEOUT, "--kill-after=2", "7", AMD_SMI, "version", "--json"]]
    smi = result["ansible_facts"]["rocm"]["smi"]
    assert smi["error"].startswith("amd-smi did not answer within 7s (`amd-smi version --json`), so it was "
                                   "stopped and not asked again")
    assert result["ansible_facts"]["rocm"]["gpu_count"] == 1  # sysfs facts are still there


def test_a_hung_amd_smi_fails_the_task_with_amd_smi_always(tmp_path):
    kind, result, runner = run_hung(tmp_path, amd_smi="always")
    assert kind == "fail" and len(runner.calls) == 1
    assert result["msg"].startswith("amd_smi=always but amd-smi gave no usable answer: amd-smi did not answer "
                                    "within 7s")


def test_without_coreutils_timeout_amd_smi_is_not_run_unbounded(tmp_path):
    runner = mock.Mock(side_effect=AssertionError("amd-smi must not run without a limit"))
    kind, result = run_module(rocm_facts, dict(build_host(tmp_path, gpus=1).roots), run_command=runner,
                              bin_paths={"amd-smi": AMD_SMI})
    assert kind == "exit" and "coreutils timeout is not on the host's PATH" in \
        result["ansible_facts"]["rocm"]["smi"]["error"]
