"""image_manifest: the real main() and community.docker's real client against a fake Engine API
on a unix socket (tests/unit/plugins/conftest.py)."""

import json

import pytest
from unittest import mock

from ansible.module_utils.testing import patch_module_args

from ansible_collections.sglang_rocm.fleet.plugins.modules import image_manifest

DIGEST = "sha256:" + "cd" * 32
REF = "registry.sim:5000/lmsysorg/sglang:v0.5.7-rocm700-mi30x"


def run(module_args, check_mode=False):
    if check_mode:
        module_args = dict(module_args, _ansible_check_mode=True)
    with patch_module_args(module_args), mock.patch("sys.stdout.write") as out, \
            pytest.raises(SystemExit) as exc:
        image_manifest.main()
    raw = "".join(call.args[0] for call in out.call_args_list)
    result = json.loads(raw)
    result["_rc"] = exc.value.code
    result["_raw"] = raw
    return result


@pytest.mark.parametrize("check_mode", [False, True])
def test_found_and_missing_images_are_answers(fake_engine, check_mode):
    fake_engine.manifests = {REF: (200, {"Descriptor": {"digest": DIGEST}, "Platforms": []})}
    result = run({"references": [REF, REF.replace("v0.5.7", "v9")], "docker_host": fake_engine.url},
                 check_mode=check_mode)
    assert result["_rc"] == 0 and result["changed"] is False
    assert [(i["found"], i["status"], i["digest"]) for i in result["images"]] == [
        (True, 200, DIGEST), (False, 404, None)]
    assert result["images"][1]["message"] == "manifest unknown"


def test_the_password_is_sent_in_the_header_and_never_returned(fake_engine):
    result = run({"references": [REF], "docker_host": fake_engine.url,
                  "registry_username": "ci", "registry_password": "pw-unit-77"})
    assert result["_rc"] == 0
    assert "X-Registry-Auth" in fake_engine.headers[-1]
    assert "pw-unit-77" not in result["_raw"]


def test_no_references_contact_no_daemon(tmp_path):
    result = run({"references": [], "docker_host": "unix://%s/absent.sock" % tmp_path})
    assert result["_rc"] == 0 and result["images"] == []


def test_an_unreachable_daemon_fails_with_host_daemon_and_fix(tmp_path):
    sock = "unix://%s/absent.sock" % tmp_path
    result = run({"references": [REF], "docker_host": sock, "host": "gpu01"})
    assert result["_rc"] == 1 and result["failed"] is True
    assert result["msg"].startswith("Host gpu01: cannot read the image manifests from the Docker daemon at %s" % sock)
    assert "Error connecting" in result["msg"] and "systemctl start docker" in result["msg"]
