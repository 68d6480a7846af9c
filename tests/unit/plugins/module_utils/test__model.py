"""_model: the model stage's inputs, layout, seed choice and the local source's manifest (the
module's run is tested through main() in tests/unit/plugins/modules/test_sglang_model.py)."""

import hashlib
import os

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _manifest, _model

GOOD = {"sglang_model_source": "hub", "sglang_model_path": "moonshotai/Kimi-Linear-48B-A3B-Instruct",
        "sglang_model_revision": "main", "sglang_model_hub_endpoint": "https://huggingface.co",
        "sglang_model_dir": "/var/cache/sglang/models", "sglang_model_verify": "stat",
        "sglang_tokenizer_path": "moonshotai/Kimi-Linear-48B-A3B-Instruct"}


def variables(values):
    return [problem[0] for problem in _model.input_problems(values)]


def test_the_defaults_pass():
    assert _model.input_problems(GOOD) == []
    assert variables(dict(GOOD, sglang_model_revision="a" * 40, sglang_model_path="gpt2",
                          sglang_tokenizer_path="gpt2")) == []
    assert variables(dict(GOOD, sglang_model_source="local", sglang_model_local_dir="/mnt/m")) == []


@pytest.mark.parametrize("name, value", [
    ("sglang_model_source", "s3"),
    ("sglang_model_path", "/models/kimi"),
    ("sglang_model_path", "org/../etc"),
    ("sglang_model_path", "org/name/extra"),
    ("sglang_model_path", ".staging/x"),
    ("sglang_model_revision", "main branch"),
    ("sglang_model_revision", "../x"),
    ("sglang_model_revision", ""),
    ("sglang_model_hub_endpoint", "huggingface.co"),
    ("sglang_model_hub_endpoint", "https://user:pw@hub.example"),
    ("sglang_model_dir", "relative/models"),
    ("sglang_model_dir", "/"),
    ("sglang_model_dir", "/a:b"),
    ("sglang_model_verify", "sometimes"),
    ("sglang_tokenizer_path", "other-org/tokenizer"),
])
def test_each_bad_input_is_named(name, value):
    values = dict(GOOD, **{name: value})
    if name == "sglang_model_path":
        values["sglang_tokenizer_path"] = value  # its default follows the model path
    problems = _model.input_problems(values)
    assert [problem[0] for problem in problems] == [name]
    assert "pw" not in str(problems)


def test_none_reads_nothing_else_and_local_needs_an_absolute_directory():
    assert variables(dict(GOOD, sglang_model_source="none", sglang_model_path="/models/x")) == []
    assert variables(dict(GOOD, sglang_model_source="local", sglang_model_local_dir="")) == ["sglang_model_local_dir"]
    # the hub's settings do not matter for a local source, a path-like tokenizer always works
    assert variables(dict(GOOD, sglang_model_source="local", sglang_model_local_dir="/m",
                          sglang_model_hub_endpoint="x", sglang_tokenizer_path="/opt/tok")) == []


def test_layout_keeps_transfers_out_of_the_served_directory():
    paths = _model.layout("/var/cache/sglang/models/", "org/name")
    assert paths["final"] == "/var/cache/sglang/models/org/name"
    assert paths["download"] == "/var/cache/sglang/models/.staging/org/name/download"
    assert paths["progress"] == "/var/cache/sglang/models/.staging/org/name/progress.json"
    assert _model.served_path("org/name") == "/models/org/name"


def test_the_seed_holds_the_revision_else_it_is_the_first_host():
    probes = {"a": {"held": False}, "b": {"held": True, "revision": "1" * 40}, "c": {"held": True, "revision": "2" * 40}}
    assert _model.choose_seed(["a", "b", "c"], probes, "main") == {"seed": "b", "holders": ["b", "c"]}
    assert _model.choose_seed(["a", "b", "c"], probes, "2" * 40) == {"seed": "c", "holders": ["c"]}
    assert _model.choose_seed(["a", "b", "c"], probes, "3" * 40) == {"seed": "a", "holders": []}
    assert _model.choose_seed(["a"], {}, "main") == {"seed": "a", "holders": []}


def write(root, rel, data=b"x"):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_extra_files_spare_the_bookkeeping_and_another_staged_model_nested_inside(tmp_path):
    manifest = _manifest.build("org", "c" * 40, [{"path": "config.json", "size": 1, "sha256": "0" * 64, "git_sha1": None}])
    for rel in ("config.json", _manifest.STAMP, _manifest.MANIFEST, "old/shard.bin", "notes.txt",
                "name/" + _manifest.MANIFEST, "name/weights.bin"):
        write(tmp_path, rel)
    assert _model.extra_files(str(tmp_path), manifest) == ["notes.txt", "old/shard.bin"]


def test_unstamped_reads_stat_only(tmp_path, monkeypatch):
    data = b"hello"
    entry = {"path": "a.bin", "size": 5, "sha256": hashlib.sha256(data).hexdigest(), "git_sha1": None}
    manifest = _manifest.build("org/m", "c" * 40, [entry])
    path = write(tmp_path, "a.bin", data)
    assert _model.unstamped(str(tmp_path), manifest) == ["a.bin"]  # never verified
    (tmp_path / _manifest.STAMP).write_text(_manifest.stamp_text(manifest, {"a.bin": _manifest.stamp_entry(str(path), entry)}))
    monkeypatch.setattr(_manifest, "hash_file", lambda *a, **k: pytest.fail("unstamped hashed a file"))
    assert _model.unstamped(str(tmp_path), manifest) == []
    os.utime(path, ns=(1, 1))
    assert _model.unstamped(str(tmp_path), manifest) == ["a.bin"]


def test_a_local_manifest_hashes_each_file_once_and_skips_tools_bookkeeping(tmp_path, monkeypatch):
    root = tmp_path / "m"
    write(root, "config.json", b"{}")
    write(root, "sub/model.safetensors", b"\x01" * 100)
    write(root, ".cache/huggingface/x.metadata", b"tool")
    write(root, ".git/HEAD", b"ref")
    write(root, _manifest.STAMP, b"{}")
    (root / "link.json").symlink_to(root / "config.json")
    manifest, remember = _model.local_manifest("org/m", str(root), {})
    assert [f["path"] for f in manifest["files"]] == ["config.json", "link.json", "sub/model.safetensors"]
    assert manifest["files"][2]["sha256"] == hashlib.sha256(b"\x01" * 100).hexdigest()
    assert manifest["revision"].startswith("local:")
    calls = []
    real = _manifest.hash_file
    monkeypatch.setattr(_manifest, "hash_file", lambda path, *a: calls.append(path) or real(path, *a))
    again, _remember = _model.local_manifest("org/m", str(root), remember)
    assert again == manifest and calls == []
    write(root, "config.json", b'{"a": 1}')
    changed, _remember = _model.local_manifest("org/m", str(root), remember)
    # the file and the link to it changed; the shard is not read again
    assert calls == [str(root / "config.json"), str(root / "link.json")]
    assert changed["revision"] != manifest["revision"]
    _model.local_manifest("org/m", str(root), remember, full=True)
    assert len(calls) == 5
