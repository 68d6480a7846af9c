"""module_utils/_manifest.py: a pinned revision's files, checked by sha256 or git blob sha1."""
import hashlib
import json
import os

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _manifest

COMMIT = "a" * 40


def git_sha1(data):
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def hub_info(files):
    siblings = []
    for name, data, lfs in files:
        entry = {"rfilename": name, "size": len(data), "blobId": git_sha1(data)}
        if lfs:
            entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        siblings.append(entry)
    return {"id": "org/m", "sha": COMMIT, "siblings": siblings}


FILES = [("config.json", b'{"a": 1}\n', False), ("model-00001-of-00001.safetensors", b"\x01" * 1000, True)]


def test_a_manifest_from_the_hub_answer_keeps_sha256_for_lfs_and_the_blob_id_otherwise():
    manifest = _manifest.from_hub_info(hub_info(FILES), "org/m")
    assert manifest["revision"] == COMMIT and _manifest.total_bytes(manifest) == 1009
    config, shard = manifest["files"]
    assert config == {"path": "config.json", "size": 9, "sha256": None, "git_sha1": git_sha1(FILES[0][1])}
    assert shard["sha256"] == hashlib.sha256(b"\x01" * 1000).hexdigest() and shard["git_sha1"] is None
    assert _manifest.load(json.dumps(manifest)) == manifest


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../b", "", "a//b", "./a", "a\\b", _manifest.STAMP,
                                  _manifest.MANIFEST, "sub/" + _manifest.MANIFEST])
def test_names_that_would_leave_the_model_directory_are_refused(name):
    with pytest.raises(_manifest.ManifestError):
        _manifest.from_hub_info(hub_info([(name, b"x", False)]), "org/m")


@pytest.mark.parametrize("change, says", [
    (lambda i: i.update(sha="main"), "40-hex commit"),
    (lambda i: i.update(siblings=[]), "no files"),
    (lambda i: i["siblings"][0].pop("size"), "no size"),
    (lambda i: i["siblings"][0].pop("blobId"), "neither lfs.sha256 nor blobId"),
    (lambda i: i["siblings"].append(dict(i["siblings"][0])), "twice"),
])
def test_a_hub_answer_that_cannot_be_verified_is_refused_with_the_reason(change, says):
    info = hub_info(FILES)
    change(info)
    with pytest.raises(_manifest.ManifestError, match=says):
        _manifest.from_hub_info(info, "org/m")


def test_check_tree_finds_missing_corrupt_and_good_files_and_the_stamp_skips_rehashing(tmp_path, monkeypatch):
    manifest = _manifest.from_hub_info(hub_info(FILES), "org/m")
    for name, data, _lfs in FILES:
        (tmp_path / name).write_bytes(data)
    first = _manifest.check_tree(str(tmp_path), manifest)
    assert first["ok"] == ["config.json", "model-00001-of-00001.safetensors"] and first["ok_bytes"] == 1009
    (tmp_path / _manifest.STAMP).write_text(_manifest.stamp_text(manifest, first["stamp"]))
    calls = []
    monkeypatch.setattr(_manifest, "verify_file", lambda path, entry: calls.append(path))
    assert _manifest.check_tree(str(tmp_path), manifest)["ok"] == first["ok"] and calls == []
    monkeypatch.undo()
    # same size, other bytes, new mtime: detected; a missing file is named
    shard = tmp_path / "model-00001-of-00001.safetensors"
    shard.write_bytes(b"\x02" * 1000)
    os.utime(shard, ns=(1, 1))
    (tmp_path / "config.json").unlink()
    again = _manifest.check_tree(str(tmp_path), manifest)
    assert again["missing"] == ["config.json"]
    assert again["bad"][0]["path"] == "model-00001-of-00001.safetensors"
    assert again["bad"][0]["reason"].startswith("sha256 ")


def test_full_rehashes_even_with_a_matching_stamp(tmp_path):
    manifest = _manifest.from_hub_info(hub_info(FILES[1:]), "org/m")
    shard = tmp_path / FILES[1][0]
    shard.write_bytes(FILES[1][1])
    first = _manifest.check_tree(str(tmp_path), manifest)
    (tmp_path / _manifest.STAMP).write_text(_manifest.stamp_text(manifest, first["stamp"]))
    st = os.stat(shard)
    with open(shard, "r+b") as fh:  # bit rot: same size, stat put back
        fh.write(b"\x03")
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _manifest.check_tree(str(tmp_path), manifest)["ok"] == [FILES[1][0]]
    assert _manifest.check_tree(str(tmp_path), manifest, full=True)["bad"][0]["path"] == FILES[1][0]


def test_git_blob_sha1_matches_git():
    assert git_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_write_stamp_replaces_the_stamp_atomically_and_only_when_it_changes(tmp_path):
    manifest = _manifest.from_hub_info(hub_info(FILES), "org/m")
    for name, data, _lfs in FILES:
        (tmp_path / name).write_bytes(data)
    files = _manifest.check_tree(str(tmp_path), manifest)["stamp"]
    assert files["config.json"] == _manifest.stamp_entry(str(tmp_path / "config.json"), manifest["files"][0])
    assert _manifest.write_stamp(str(tmp_path), manifest, files) is True
    assert _manifest.write_stamp(str(tmp_path), manifest, files) is False
    assert sorted(os.listdir(tmp_path)) == sorted([_manifest.STAMP] + [name for name, _d, _l in FILES])
    assert _manifest.read_stamp(str(tmp_path))["files"] == json.loads(json.dumps(files))
