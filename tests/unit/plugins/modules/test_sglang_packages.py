"""sglang_packages: the real main() with injected args. Only the boundary is mocked: the docker
CLI (AnsibleModule.run_command); the CA bundle is a real file."""

import base64
import json
import re
from unittest import mock

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.sglang_rocm.fleet.plugins.modules import sglang_packages

DOCKER = "/usr/bin/docker"
BASE = [DOCKER, "--host", "unix:///var/run/docker.sock", "exec", "-i", "Kimi-linear", "python3", "-"]
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
    """Scripted answers of `docker exec`, one per call; records argv and the decoded request."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def run_command(self, argv, data=None, environ_update=None, **kwargs):
        assert environ_update == {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
        match = re.search(r"\nraise SystemExit\(main\('([A-Za-z0-9+/=]+)'\)\)\n$", data or "")
        self.calls.append((argv, json.loads(base64.b64decode(match.group(1)))))
        answer = self.answers.pop(0)
        if isinstance(answer, tuple):
            return answer
        return 0, "some pip noise\n" + json.dumps(answer) + "\n", ""

    def actions(self):
        return [request["action"] for _argv, request in self.calls]


def run_module(module_args, docker, capsys, check_mode=False, diff=False):
    module_args = dict({"container": "Kimi-linear", "requirements": ["sentencepiece", "tiktoken"],
                        "host": "gpu01"}, **module_args)
    if check_mode:
        module_args["_ansible_check_mode"] = True
    if diff:
        module_args["_ansible_diff"] = True
    warnings = []

    def run_command(self, argv, **kwargs):
        return docker.run_command(argv, **kwargs)

    def warn(self, warning):
        warnings.append(warning)

    with patch_module_args(module_args), \
            mock.patch.object(basic.AnsibleModule, "warn", warn), \
            mock.patch.object(basic.AnsibleModule, "run_command", run_command), \
            mock.patch.object(basic.AnsibleModule, "get_bin_path", return_value=DOCKER):
        with pytest.raises(SystemExit) as exc:
            sglang_packages.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    result["_rc"] = exc.value.code
    result["_raw"] = out
    result["_warnings"] = warnings
    return result


def test_converged_container_runs_one_probe_and_changes_nothing(capsys):
    docker = Docker(CONVERGED)
    result = run_module({}, docker, capsys)
    assert result["_rc"] == 0 and result["changed"] is False
    assert docker.calls == [(BASE, {"action": "probe", "requirements": ["sentencepiece", "tiktoken"],
                                    "extra_args": []})]
    assert result["missing"] == [] and result["changes"] == {} and result["container_absent"] is False
    assert "diff" not in result


def test_cold_container_installs_with_the_ca_content_and_hides_proxy_credentials(tmp_path, capsys):
    ca = tmp_path / "ca.pem"
    ca.write_text(PEM)
    answer = dict(INSTALLED, pip_output_tail="ProxyError: " + PROXY + " refused, retried; Successfully installed")
    docker = Docker(COLD, answer)
    result = run_module({"ca_bundle": str(ca), "https_proxy": PROXY, "index_url": "https://mirror/simple"},
                        docker, capsys, diff=True)
    assert result["_rc"] == 0 and result["changed"] is True
    assert docker.actions() == ["probe", "install"]
    argv, install = docker.calls[1]
    assert argv == BASE  # nothing of the request on the command line
    assert install["ca_pem"] == PEM and install["ca_bundle_host"] == str(ca)
    assert (install["https_proxy"], install["index_url"], install["dry_run"]) == (PROXY, "https://mirror/simple", False)
    assert result["changes"] == {"sentencepiece": [None, "0.2.1"]}
    assert result["diff"]["after"] == "sentencepiece==0.2.1\n" and result["diff"]["before"] == ""
    assert "s3cret" not in result["_raw"] and "MIIBunitTESTpem" not in result["_raw"]


def test_check_mode_asks_pip_for_a_dry_run(capsys):
    would = {"changed": True, "missing": ["sentencepiece"], "would_install": ["sentencepiece-0.2.1"],
             "changes": {"sentencepiece": [None, "0.2.1"]}, "requirements": COLD["requirements"]}
    docker = Docker(COLD, would)
    result = run_module({}, docker, capsys, check_mode=True, diff=True)
    assert result["_rc"] == 0 and result["changed"] is True
    assert docker.calls[1][1]["dry_run"] is True
    assert result["would_install"] == ["sentencepiece-0.2.1"]
    assert result["diff"]["after"] == "sentencepiece==0.2.1\n"


def test_check_mode_before_the_container_exists_predicts_everything(capsys):
    docker = Docker(NO_CONTAINER)
    result = run_module({}, docker, capsys, check_mode=True, diff=True)
    assert result["_rc"] == 0 and result["changed"] is True and result["container_absent"] is True
    assert result["would_install"] == ["sentencepiece", "tiktoken"]
    assert result["diff"]["after"] == "sentencepiece\ntiktoken\n"
    assert docker.actions() == ["probe"]
    assert any("check mode assumes it will exist" in w for w in result["_warnings"])


def test_probe_only_reads_what_is_missing(capsys):
    docker = Docker(COLD)
    result = run_module({"install": False}, docker, capsys)
    assert result["_rc"] == 0 and result["changed"] is False and result["missing"] == ["sentencepiece"]
    assert docker.actions() == ["probe"]


def test_missing_container_fails_outside_check_mode_naming_host_and_fix(capsys):
    result = run_module({}, Docker(NO_CONTAINER), capsys)
    assert result["_rc"] == 1 and result["failed"] is True
    assert result["msg"] == ("Host gpu01: container Kimi-linear on unix:///var/run/docker.sock does not exist: "
                             "run the container role first (sglang_container_name names it)")


def test_helper_errors_come_back_with_the_host_and_masked(capsys):
    error = {"error": "pip index https://pypi.org/simple is unreachable from the container: via " + PROXY,
             "changed": False}
    result = run_module({"https_proxy": PROXY}, Docker(COLD, error), capsys)
    assert result["_rc"] == 1
    assert result["msg"].startswith("Host gpu01: pip index https://pypi.org/simple is unreachable")
    assert "s3cret" not in result["_raw"]


def test_bad_settings_fail_before_any_docker_call(capsys):
    docker = Docker()
    result = run_module({"requirements": ["tiktoken; rm -rf /"], "extra_args": ["--index-url=x"]}, docker, capsys)
    assert result["_rc"] == 1 and docker.calls == []
    assert "sglang_packages_pip entry" in result["msg"] and "sglang_packages_extra_args" in result["msg"]
    assert result["msg"].startswith("Host gpu01: invalid package settings, nothing was installed")


def test_unreadable_ca_bundle_fails_before_the_install(tmp_path, capsys):
    docker = Docker(COLD)
    result = run_module({"ca_bundle": str(tmp_path / "absent.pem")}, docker, capsys)
    assert result["_rc"] == 1 and docker.actions() == ["probe"]
    assert "sglang_packages_ca_bundle" in result["msg"] and "absent.pem" in result["msg"]


def test_no_requirements_runs_nothing(capsys):
    docker = Docker()
    result = run_module({"requirements": []}, docker, capsys)
    assert result["_rc"] == 0 and result["changed"] is False and docker.calls == []
