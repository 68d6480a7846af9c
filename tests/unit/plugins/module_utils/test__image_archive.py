"""_image_archive: the checks behind the image_archive module, without AnsibleModule."""

import hashlib

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _image_archive as A


def test_references_are_shown_as_docker_shows_them():
    assert A.familiar("docker.io/library/ubuntu:22.04") == "ubuntu:22.04"
    assert A.familiar("docker.io/lmsysorg/sglang:v1") == "lmsysorg/sglang:v1"
    assert A.familiar("registry.sim:5000/library/x:1") == "registry.sim:5000/library/x:1"


def test_a_wrong_checksum_names_the_host_and_returns_the_real_one(tmp_path):
    path = tmp_path / "img.tar"
    path.write_bytes(b"layer" * 1000)
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    assert A.file_sha256(str(path), chunk=7) == actual
    with pytest.raises(A.ArchiveError) as exc:
        A.verify(str(path), "sha256:" + "0" * 64, "", "gpu07")
    assert exc.value.msg.startswith("Host gpu07: image archive %s has sha256 %s" % (path, actual))
    assert exc.value.result == {"sha256": actual}
