"""image_archive: the real main() on real tarballs shaped like `docker save` output."""

import hashlib
import io
import json
import tarfile

import pytest
from unittest import mock

from ansible.module_utils.testing import patch_module_args

from ansible_collections.sglang_rocm.fleet.plugins.modules import image_archive

IMAGE = "lmsysorg/sglang:v0.5.7-rocm700-mi30x"


def save_tar(path, repo_tags, mode="w", oci_name=None):
    """A minimal docker-save layout: a layer, manifest.json (and index.json for OCI)."""
    with tarfile.open(str(path), mode) as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add("abc/layer.tar", b"x" * 2048)
        add("manifest.json", json.dumps([{"Config": "c.json", "RepoTags": repo_tags,
                                          "Layers": ["abc/layer.tar"]}]).encode())
        if oci_name:
            add("index.json", json.dumps({"manifests": [
                {"annotations": {"io.containerd.image.name": oci_name}}]}).encode())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(module_args):
    with patch_module_args(module_args), mock.patch("sys.stdout.write") as out, \
            pytest.raises(SystemExit) as exc:
        image_archive.main()
    result = json.loads("".join(call.args[0] for call in out.call_args_list))
    result["_rc"] = exc.value.code
    return result


def test_matching_archive_passes(tmp_path):
    path = tmp_path / "img.tar"
    sha = save_tar(path, [IMAGE])
    result = run({"path": str(path), "sha256": "sha256:" + sha.upper(), "image": IMAGE})
    assert result["_rc"] == 0 and result["changed"] is False
    assert result["sha256"] == sha and result["repo_tags"] == [IMAGE]


def test_checksum_mismatch_fails_and_says_nothing_was_loaded(tmp_path):
    path = tmp_path / "img.tar"
    sha = save_tar(path, [IMAGE])
    result = run({"path": str(path), "sha256": "0" * 64, "image": IMAGE, "host": "gpu-2"})
    assert result["_rc"] == 1 and result["sha256"] == sha
    assert result["msg"].startswith("Host gpu-2: image archive %s has sha256 %s" % (path, sha))
    assert "Nothing was loaded" in result["msg"]


def test_archive_with_another_image_is_refused(tmp_path):
    path = tmp_path / "img.tar.gz"
    sha = save_tar(path, ["other/image:1"], mode="w:gz")
    result = run({"path": str(path), "sha256": sha, "image": IMAGE})
    assert result["_rc"] == 1 and "carries other/image:1, not %s" % IMAGE in result["msg"]


def test_oci_names_are_familiarised(tmp_path):
    path = tmp_path / "img.tar"
    sha = save_tar(path, [], oci_name="docker.io/library/ubuntu:22.04")
    assert run({"path": str(path), "sha256": sha, "image": "ubuntu:22.04"})["repo_tags"] == ["ubuntu:22.04"]


def test_missing_file_bad_sha_and_not_a_tarball(tmp_path):
    assert "does not exist" in run({"path": str(tmp_path / "nope.tar"), "sha256": "a" * 64})["msg"]
    assert "is not a sha256" in run({"path": str(tmp_path / "nope.tar"), "sha256": "xyz"})["msg"]
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    sha = hashlib.sha256(junk.read_bytes()).hexdigest()
    assert "not a readable image tarball" in run({"path": str(junk), "sha256": sha})["msg"]
