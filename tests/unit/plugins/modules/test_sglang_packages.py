"""sglang_packages: the real main() with injected args. Only the boundary is mocked: the docker
CLI (AnsibleModule.run_command, the fake_docker of conftest.py); the CA bundle is a real file."""

from unittest import mock

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.modules import sglang_packages

BASE = ["/usr/bin/timeout", "--kill-after=5", "600",
        "/usr/bin/docker", "--host", "unix:///var/run/docker.sock", "exec", "-i", "Kimi-linear", "python3", "-"]
PEM = "-----BEGIN CERTIFICATE-----\nMIIBunitTESTpem\n-----END CERTIFICATE-----\n"
PROXY = "http://bob:s3cret@proxy.example:3128"


def row(requirement, installed, satisfied):
    return {"requirement": requirement, "name": requirement.split("=")[0], "key": requirement.split("=")[0],
            "installed": installed, "satisfied": satisfied}


CONVERGED = {"python": "3.12.3", "changed": False, "missing": [],
             "requirements": [row("sentencepiece", "0.2.1", True), row("tiktoken", "0.12.0", True)]}
COLD = {"python": "3.12.3", "changed": False, "missing": ["sentencepiece"],
        "requirements": [row("sentencepiece", None, False), row("tiktoken", "0.12.0", True)]}
INSTALLED = {"changed": True, "missing": ["sentencepiece"], "changes": {"sentencepiece": [None, "0.2.1"]},
             "requirements": [row("sentencepiece", "0.2.1", True), row("tiktoken", "0.12.0", True)],
             "pip_output_tail": "Successfully installed sentencepiece-0.2.1"}
NO_CONTAINER = (1, "", "Error response from daemon: No such container: Kimi-linear\n")


class Docker:
    """Scripted answers of the pip helper, one per call, in order."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.fake = None

    @property
    def calls(self):
        return [(call.argv, call.payload) for call in self.fake.calls] if self.fake else []

    def actions(self):
        return [request["action"] for _argv, request in self.calls]


@pytest.fixture
def run_module(fake_docker, run_main, capsys):
    def run(module_args, docker, check_mode=False, diff=False):
        module_args = dict({"container": "Kimi-linear", "requirements": ["sentencepiece", "tiktoken"],
                            "host": "gpu01"}, **module_args)
        docker.fake = fake_docker(lambda call: docker.answers.pop(0))
        return run_main(sglang_packages.main, module_args, docker.fake, capsys, check_mode=check_mode, diff=diff)
    return run


def test_converged_container_runs_one_probe_and_changes_nothing(run_module):
    docker = Docker(CONVERGED)
    result = run_module({}, docker)
    assert result["_rc"] == 0 and result["changed"] is False
    assert docker.calls == [(BASE, {"action": "probe", "requirements": ["sentencepiece", "tiktoken"],
                                    "extra_args": [], "deadline": 590})]
    assert result["missing"] == [] and result["changes"] == {} and result["container_absent"] is False
    assert "diff" not in result


def test_cold_container_installs_with_the_ca_content_and_hides_proxy_credentials(tmp_path, run_module):
    ca = tmp_path / "ca.pem"
    ca.write_text(PEM)
    answer = dict(INSTALLED, pip_output_tail="ProxyError: " + PROXY + " refused, retried; Successfully installed")
    docker = Docker(COLD, answer)
    result = run_module({"ca_bundle": str(ca), "https_proxy": PROXY, "index_url": "https://mirror/simple"},
                        docker, diff=True)
    assert result["_rc"] == 0 and result["changed"] is True
    assert docker.actions() == ["probe", "install"]
    argv, install = docker.calls[1]
    assert argv == BASE  # nothing of the request on the command line
    assert install["ca_pem"] == PEM and install["ca_bundle_host"] == str(ca)
    assert (install["https_proxy"], install["index_url"], install["dry_run"]) == (PROXY, "https://mirror/simple", False)
    assert result["changes"] == {"sentencepiece": [None, "0.2.1"]}
    assert result["diff"]["after"] == "sentencepiece==0.2.1\n" and result["diff"]["before"] == ""
    assert "s3cret" not in result["_raw"] and "MIIBunitTESTpem" not in result["_raw"]


def test_check_mode_asks_pip_for_a_dry_run(run_module):
    would = {"changed": True, "missing": ["sentencepiece"], "would_install": ["sentencepiece-0.2.1"],
             "changes": {"sentencepiece": [None, "0.2.1"]}, "requirements": COLD["requirements"]}
    docker = Docker(COLD, would)
    result = run_module({}, docker, check_mode=True, diff=True)
    assert result["_rc"] == 0 and result["changed"] is True
    assert docker.calls[1][1]["dry_run"] is True
    assert result["would_install"] == ["sentencepiece-0.2.1"]
    assert result["diff"]["after"] == "sentencepiece==0.2.1\n"


def test_check_mode_before_the_container_exists_predicts_everything(run_module):
    docker = Docker(NO_CONTAINER)
    result = run_module({}, docker, check_mode=True, diff=True)
    assert result["_rc"] == 0 and result["changed"] is True and result["container_absent"] is True
    assert result["would_install"] == ["sentencepiece", "tiktoken"]
    assert result["diff"]["after"] == "sentencepiece\ntiktoken\n"
    assert docker.actions() == ["probe"]
    assert any("check mode assumes it will exist" in w for w in result["_warnings"])


def test_probe_only_reads_what_is_missing(run_module):
    docker = Docker(COLD)
    result = run_module({"install": False}, docker)
    assert result["_rc"] == 0 and result["changed"] is False and result["missing"] == ["sentencepiece"]
    assert docker.actions() == ["probe"]


def test_missing_container_fails_outside_check_mode_naming_host_and_fix(run_module):
    result = run_module({}, Docker(NO_CONTAINER))
    assert result["_rc"] == 1 and result["failed"] is True
    assert result["msg"] == ("Host gpu01: container Kimi-linear on unix:///var/run/docker.sock does not exist: "
                             "run the container role first (sglang_container_name names it)")


def test_helper_errors_come_back_with_the_host_and_masked(run_module):
    error = {"error": "pip index https://pypi.org/simple is unreachable from the container: via " + PROXY,
             "changed": False}
    result = run_module({"https_proxy": PROXY}, Docker(COLD, error))
    assert result["_rc"] == 1
    assert result["msg"].startswith("Host gpu01: the pip helper in container Kimi-linear on "
                                    "unix:///var/run/docker.sock failed: pip index https://pypi.org/simple "
                                    "is unreachable")
    assert "s3cret" not in result["_raw"]


def test_index_credentials_are_nowhere_in_the_result_or_the_error(run_module):
    index = "https://alice:SENTINEL-index@mirror.example/simple"
    extra = "https://SENTINEL-extra@extra.example/simple"
    echo = "Looking in indexes: https://alice:****@mirror.example/simple, https://****@extra.example/simple"
    done = dict(INSTALLED, pip_output_tail=echo + "\nSuccessfully installed sentencepiece-0.2.1")
    result = run_module({"index_url": index, "extra_index_urls": [extra]}, Docker(COLD, done))
    assert result["_rc"] == 0 and result["changed"] is True
    error = {"error": "pip index %s is unreachable: %s; %s; nonnumeric port: 'SENTINEL-index@mirror.example'"
             % (index, echo, extra), "changed": False}
    failed = run_module({"index_url": index, "extra_index_urls": [extra]}, Docker(COLD, error))
    assert failed["_rc"] == 1 and "is unreachable" in failed["msg"]
    for raw in (result["_raw"], failed["_raw"]):
        assert "SENTINEL" not in raw and "alice" not in raw


def test_bad_settings_fail_before_any_docker_call(run_module):
    docker = Docker()
    result = run_module({"requirements": ["tiktoken; rm -rf /"], "extra_args": ["--index-url=x"]}, docker)
    assert result["_rc"] == 1 and docker.calls == []
    assert "sglang_packages_pip entry" in result["msg"] and "sglang_packages_extra_args" in result["msg"]
    assert result["msg"].startswith("Host gpu01: invalid package settings, nothing was installed")


def test_unreadable_ca_bundle_fails_before_the_install(tmp_path, run_module):
    docker = Docker(COLD)
    result = run_module({"ca_bundle": str(tmp_path / "absent.pem")}, docker)
    assert result["_rc"] == 1 and docker.actions() == ["probe"]
    assert "sglang_packages_ca_bundle" in result["msg"] and "absent.pem" in result["msg"]


def test_no_requirements_runs_nothing(run_module):
    docker = Docker()
    result = run_module({"requirements": []}, docker)
    assert result["_rc"] == 0 and result["changed"] is False and docker.calls == []


def test_a_helper_that_outlives_exec_timeout_is_stopped_and_named(run_module):
    docker = Docker((124, "", ""))
    with mock.patch("time.monotonic", side_effect=[100.0, 131.0]):
        result = run_module({"exec_timeout": 30}, docker)
    assert docker.calls[0][0][:3] == ["/usr/bin/timeout", "--kill-after=5", "30"]
    assert result["_rc"] == 1 and result["timed_out"] is True
    assert result["msg"].startswith("Host gpu01: the pip helper in container Kimi-linear on "
                                    "unix:///var/run/docker.sock did not answer within 30 s (exec_timeout)")


def test_the_pip_helper_gets_a_deadline_inside_exec_timeout(run_module):
    docker = Docker(CONVERGED)
    run_module({"exec_timeout": 20}, docker)
    argv, request = docker.calls[0]
    assert argv[:3] == ["/usr/bin/timeout", "--kill-after=5", "20"]
    assert request["deadline"] == 15  # pip is stopped in the container before the docker CLI is
