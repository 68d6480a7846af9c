"""sglang_model: the real main() on real directories. Only the boundary is mocked: the docker CLI
(AnsibleModule.run_command, conftest's fake_docker), whose transient container does what the
model agent does to the mounted staging directory (files land in the download dir) and answers
as the agent would; the hashing, verifying, moving and bookkeeping are the module's own."""

import hashlib
import json
import os
import re
import stat

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _manifest, _model
from ansible_collections.sglang_rocm.fleet.plugins.modules import sglang_model

REPO = "org/tiny-model"
COMMIT = "c" * 40
IMAGE_ID = "sha256:" + "1" * 64
TOKEN = "hf_SENTINELtoken123"
FILES = {
    "config.json": (b'{"model_type": "tiny"}\n', False),
    "tokenizer.json": (b'{"vocab": {}}\n', False),
    "model-00001-of-00002.safetensors": (b"\x01" * 3000, True),
    "model-00002-of-00002.safetensors": (b"\x02" * 2000, True),
}
NO_STAGE_CONTAINER = (1, "", "Error response from daemon: No such container: sglang-model-stage\n")


def git_sha1(data):
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


class Hub:
    """The hub as the agent sees it, and the docker CLI that runs the agent: answers each call
    the module makes, writes what a download would write, and records the calls."""

    def __init__(self, files=None, commit=COMMIT):
        self.files = dict(files or FILES)
        self.commit = commit
        self.serve = {}  # path -> bytes served instead of the real content (a corrupt source)
        self.error = None  # an agent error answer for every agent call
        self.stop_after = None  # files a download writes before its deadline
        self.container_image = IMAGE_ID
        self.image_missing = False
        self.token_seen = []
        self.fake = None

    def info(self):
        siblings = []
        for name, (data, lfs) in sorted(self.files.items()):
            entry = {"rfilename": name, "size": len(data), "blobId": git_sha1(data)}
            if lfs:
                entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            siblings.append(entry)
        return {"id": REPO, "sha": self.commit, "siblings": siblings}

    def answer(self, call):
        argv = call.argv
        if "inspect" in argv:
            return (0, self.container_image + "\n", "") if self.container_image else (1, "", "Error: No such object")
        if "rm" in argv:
            return NO_STAGE_CONTAINER
        if self.image_missing:
            return (125, "", "docker: Error response from daemon: No such image: x\n")
        self.check_token(argv)
        if self.error:
            return self.error
        if call.payload["op"] == "resolve":
            return {"info": self.info(), "huggingface_hub": "0.36.2"}
        statuses, downloaded = [], 0
        for number, entry in enumerate(call.payload["files"]):
            if self.stop_after is not None and number >= self.stop_after:
                return {"error": "the stage's time budget ran out after 10 s", "kind": "deadline"}
            data = self.serve.get(entry["path"], self.files[entry["path"]][0])
            target = os.path.join(call.payload["local_dir"], entry["path"])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(data)
            downloaded += len(data)
            statuses.append({"path": entry["path"], "status": "fetched", "bytes": len(data)})
        return {"files": statuses, "bytes_downloaded": downloaded}

    def check_token(self, argv):
        volumes = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--volume"]
        for volume in volumes:
            source, target, mode = volume.split(":")
            if target == _model.TOKEN_MOUNT:
                path = os.path.join(source, _model.TOKEN_FILE)
                assert mode == "ro" and stat.S_IMODE(os.stat(path).st_mode) == 0o600
                with open(path) as handle:
                    self.token_seen.append((source, handle.read()))

    @property
    def runs(self):
        return [call for call in self.fake.calls if call.payload is not None]

    def ops(self):
        return [call.payload["op"] for call in self.runs]


@pytest.fixture
def model_dir(tmp_path):
    return tmp_path / "models"


@pytest.fixture
def run(fake_docker, run_main, capsys, model_dir):
    def run(hub, check_mode=False, free=None, **args):
        module_args = dict({"repo": REPO, "model_dir": str(model_dir), "image": "lmsysorg/sglang:v0.5.7",
                            "container": "Kimi-linear", "host": "gpu01"}, **args)
        hub.fake = fake_docker(hub.answer)
        patches = []
        if free is not None:
            from unittest import mock
            patches.append(mock.patch.object(_model, "free_bytes", lambda path: free))
        return run_main(sglang_model.main, module_args, hub.fake, capsys, check_mode=check_mode, patches=patches)
    return run


def final(model_dir, path=""):
    return model_dir / REPO / path


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


# ---------------------------------------------------------------- from the hub


def test_a_fresh_host_gets_every_file_verified_in_place_and_the_token_only_as_a_mounted_file(run, model_dir):
    hub = Hub()
    result = run(hub, hub_token=TOKEN)
    assert result["_rc"] == 0, result.get("msg")
    assert result["changed"] is True and result["revision"] == COMMIT and result["resolved"] is True
    assert hub.ops() == ["resolve", "download"]
    for name, (data, _lfs) in FILES.items():
        assert read(final(model_dir, name)) == data
    assert {f["path"]: f["status"] for f in result["files"]} == {name: "fetched" for name in FILES}
    assert result["bytes_downloaded"] == result["bytes_placed"] == result["bytes_total"] == 5000 + 23 + 14
    assert result["served_path"] == "/models/" + REPO
    assert _manifest.load(read(final(model_dir, _manifest.MANIFEST)).decode()) == result["manifest"]
    assert set(json.loads(read(final(model_dir, _manifest.STAMP)))["files"]) == set(FILES)
    # the download dir is gone; the progress file's place is reported
    assert not (model_dir / ".staging" / REPO / "download").exists()
    assert result["progress_file"] == str(model_dir / ".staging" / REPO / "progress.json")
    # the token: a 0600 file mounted read-only, named by HF_TOKEN_PATH, removed afterwards, nowhere else
    assert [content for _dir, content in hub.token_seen] == [TOKEN, TOKEN]
    assert not any(os.path.exists(directory) for directory, _content in hub.token_seen)
    for call in hub.fake.calls:
        assert TOKEN not in " ".join(call.argv)
    assert TOKEN not in result["_raw"]
    download = hub.runs[1].argv
    assert "HF_TOKEN_PATH=/run/sglang-model-secrets/hf_token" in download
    assert "HF_ENDPOINT=https://huggingface.co" in download
    assert "%s:%s:rw" % (model_dir / ".staging" / REPO, model_dir / ".staging" / REPO) in download


def test_the_transient_container_runs_the_sglang_containers_image_on_the_host_network(run):
    hub = Hub()
    run(hub)
    resolve = hub.runs[0].argv
    assert resolve[:3] == ["/usr/bin/timeout", "--kill-after=5", "300"]
    assert resolve[3:12] == ["/usr/bin/docker", "--host", "unix:///var/run/docker.sock", "run", "--rm", "-i",
                             "--pull", "never", "--name"]
    assert resolve[-4:] == ["--entrypoint", "python3", IMAGE_ID, "-"]
    assert resolve[resolve.index("--network") + 1] == "host"
    assert "--volume" not in resolve  # resolving writes nothing on the host
    name = resolve[resolve.index("--name") + 1]
    assert re.match(r"^sglang-model-stage-[0-9a-f]{12}$", name)
    assert hub.fake.calls[0].argv[-3:] == ["rm", "--force", name]  # what a killed run left goes first
    calls = [call.argv[call.argv.index("--host") + 2] for call in hub.fake.calls]
    assert calls == ["rm", "inspect", "run", "rm", "run"]


def test_without_the_sglang_container_the_image_variable_is_used(run):
    hub = Hub()
    hub.container_image = None
    result = run(hub)
    assert result["_rc"] == 0
    assert hub.runs[0].argv[-2] == "lmsysorg/sglang:v0.5.7"


def test_a_verified_copy_downloads_nothing_and_a_pinned_commit_needs_no_hub(run, model_dir):
    assert run(Hub())["changed"] is True
    again = Hub()
    result = run(again)
    assert result["_rc"] == 0 and result["changed"] is False
    assert again.ops() == ["resolve"]  # main may have moved: asked, nothing fetched
    assert {f["status"] for f in result["files"]} == {"ok"}
    pinned = Hub()
    result = run(pinned, revision=COMMIT)
    assert result["changed"] is False and result["resolved"] is False and pinned.fake.calls == []


def test_a_corrupted_file_is_detected_and_replaced(run, model_dir):
    run(Hub())
    shard = final(model_dir, "model-00002-of-00002.safetensors")
    shard.write_bytes(b"\x00" * 2000)  # same size, other content
    hub = Hub()
    result = run(hub, revision=COMMIT)
    assert result["_rc"] == 0 and result["changed"] is True
    assert [entry["path"] for entry in hub.runs[0].payload["files"]] == ["model-00002-of-00002.safetensors"]
    assert read(shard) == FILES["model-00002-of-00002.safetensors"][0]
    status = {f["path"]: f["status"] for f in result["files"]}
    assert status["model-00002-of-00002.safetensors"] == "replaced" and status["config.json"] == "ok"


def test_a_missing_file_is_fetched_again_and_full_verification_finds_what_the_stamp_cannot(run, model_dir):
    run(Hub())
    os.unlink(final(model_dir, "config.json"))
    shard = final(model_dir, "model-00001-of-00002.safetensors")
    before = os.stat(shard)
    shard.write_bytes(b"\x09" * 3000)
    os.utime(shard, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size, mtime, inode
    hub = Hub()
    result = run(hub, revision=COMMIT)
    assert [e["path"] for e in hub.runs[0].payload["files"]] == ["config.json"]  # stat trusts the stamp
    hub = Hub()
    result = run(hub, revision=COMMIT, verify="full")
    assert result["_rc"] == 0
    assert [e["path"] for e in hub.runs[0].payload["files"]] == ["model-00001-of-00002.safetensors"]
    assert read(shard) == b"\x01" * 3000


def test_a_file_whose_hash_does_not_match_is_refused_named_and_not_kept(run, model_dir):
    hub = Hub()
    hub.serve["model-00001-of-00002.safetensors"] = b"\x07" * 3000
    result = run(hub)
    assert result["_rc"] == 1
    good = hashlib.sha256(b"\x01" * 3000).hexdigest()
    assert result["msg"].startswith("Host gpu01: 1 file(s) of %s@%s were not placed: "
                                    "model-00001-of-00002.safetensors (refused and deleted: sha256 " % (REPO, COMMIT))
    assert "expected %s" % good in result["msg"]
    assert not final(model_dir, "model-00001-of-00002.safetensors").exists()
    assert not (model_dir / ".staging" / REPO / "download" / "model-00001-of-00002.safetensors").exists()
    # the others are in place, stamped; the next run fetches only the refused one
    assert read(final(model_dir, "model-00002-of-00002.safetensors")) == b"\x02" * 2000
    retry = Hub()
    assert run(retry, revision=COMMIT)["_rc"] == 0
    assert [e["path"] for e in retry.runs[0].payload["files"]] == ["model-00001-of-00002.safetensors"]


@pytest.mark.parametrize("kind, names", [
    ("revision_not_found", "sglang_model_revision"),
    ("repo_not_found", "sglang_model_path"),
    ("token_refused", "sglang_model_hub_token"),
    ("unreachable", "sglang_model_hub_endpoint"),
    ("no_hub_library", "sglang_model_source: local"),
    ("disk_full", "sglang_model_dir"),
])
def test_hub_faults_name_the_variable_that_fixes_them_and_change_nothing(run, model_dir, kind, names):
    hub = Hub()
    hub.error = {"error": "HfHubHTTPError: 401 Client Error for token %s" % TOKEN, "kind": kind}
    result = run(hub, revision="no-such-branch", hub_token=TOKEN)
    assert result["_rc"] == 1 and result["kind"] == kind
    assert result["msg"].startswith("Host gpu01: ") and names in result["msg"]
    assert TOKEN not in result["_raw"] and "********" in result["msg"]
    assert not final(model_dir).exists()


def test_an_unreachable_hub_keeps_a_verified_copy_of_a_branch_with_a_warning(run, model_dir):
    run(Hub())
    hub = Hub()
    hub.error = {"error": "LocalEntryNotFoundError: connection refused", "kind": "unreachable"}
    result = run(hub)
    assert result["_rc"] == 0 and result["changed"] is False and result["revision"] == COMMIT
    assert any("is kept" in warning for warning in result["_warnings"])


def test_a_full_disk_is_refused_before_anything_is_fetched(run, model_dir):
    hub = Hub()
    result = run(hub, free=1000)
    assert result["_rc"] == 1 and result["kind"] == "disk_full"
    assert "not enough free space for %s: 5037 bytes to fetch into %s" % (
        REPO, model_dir / ".staging" / REPO / "download") in result["msg"]
    assert "sglang_model_dir" in result["msg"] and "1000 bytes free" in result["msg"]
    assert hub.ops() == ["resolve"]


def test_a_transfer_cut_by_the_deadline_keeps_what_it_fetched_and_the_next_run_completes(run, model_dir):
    hub = Hub()
    hub.stop_after = 2
    result = run(hub)
    assert result["_rc"] == 1 and result["kind"] == "deadline"
    assert "sglang_model_timeout" in result["msg"] and "resumes" in result["msg"]
    placed = sorted(f["path"] for f in result["files"] if f["status"] == "fetched")
    assert placed == ["config.json", "model-00001-of-00002.safetensors"]
    assert read(final(model_dir, "config.json")) == FILES["config.json"][0]
    rest = Hub()
    assert run(rest, revision=COMMIT)["_rc"] == 0
    assert [e["path"] for e in rest.runs[0].payload["files"]] == ["model-00002-of-00002.safetensors", "tokenizer.json"]


def test_a_complete_file_an_interrupted_run_left_is_verified_and_moved_without_a_download(run, model_dir):
    left = model_dir / ".staging" / REPO / "download" / "config.json"
    left.parent.mkdir(parents=True)
    left.write_bytes(FILES["config.json"][0])
    hub = Hub()
    result = run(hub)
    assert result["_rc"] == 0
    assert "config.json" not in [e["path"] for e in hub.runs[1].payload["files"]]
    assert {f["path"]: f.get("how") for f in result["files"]}["config.json"] == "salvaged"


def test_files_the_revision_does_not_list_are_removed_from_the_copy(run, model_dir):
    run(Hub())
    stale = final(model_dir, "old/pytorch_model.bin")
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    result = run(Hub(), revision=COMMIT)
    assert result["changed"] is True and result["removed"] == ["old/pytorch_model.bin"]
    assert not stale.parent.exists()


def test_check_mode_says_what_it_would_fetch_and_writes_nothing(run, model_dir):
    run(Hub())
    os.unlink(final(model_dir, "tokenizer.json"))
    hub = Hub()
    result = run(hub, check_mode=True)
    assert result["_rc"] == 0 and result["changed"] is True
    assert result["would_fetch"] == ["tokenizer.json"] and result["would_fetch_bytes"] == 14
    assert hub.ops() == ["resolve"] and not final(model_dir, "tokenizer.json").exists()
    fresh = Hub()
    fresh.image_missing = True
    result = run(fresh, check_mode=True, model_dir=str(model_dir / "elsewhere"))
    assert result["_rc"] == 0 and result["changed"] is True and result["would_fetch"] is None
    assert any("No such image" in w or "is not on" in w for w in result["_warnings"])


def test_outside_check_mode_a_missing_image_names_the_container_stage(run):
    hub = Hub()
    hub.image_missing = True
    result = run(hub)
    assert result["_rc"] == 1 and result["kind"] == "image_missing"
    assert "run the container stage first" in result["msg"] and "sglang_image" in result["msg"]


@pytest.mark.parametrize("args, says", [
    ({"repo": "../etc"}, "sglang_model_path"),
    ({"hub_endpoint": "https://user:pw@hub.example"}, "sglang_model_hub_endpoint"),
    ({"revision": "a b"}, "sglang_model_revision"),
    ({"model_dir": "/"}, "sglang_model_dir"),
])
def test_bad_settings_fail_before_any_docker_call(run, args, says):
    hub = Hub()
    result = run(hub, **args)
    assert result["_rc"] == 1 and hub.fake.calls == []
    assert result["msg"].startswith("Host gpu01: invalid model settings, nothing was changed: ") and says in result["msg"]
    assert "user:pw" not in result["_raw"]


# ---------------------------------------------------------------- from a local directory


@pytest.fixture
def local_copy(tmp_path):
    root = tmp_path / "airgap" / "tiny"
    for name, (data, _lfs) in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / ".cache" / "huggingface").mkdir(parents=True)
    (root / ".cache" / "huggingface" / "x.metadata").write_text("tool state")
    return root


def test_a_local_copy_is_hardlinked_into_place_verified_and_stable(run, model_dir, local_copy):
    hub = Hub()
    result = run(hub, source="local", local_dir=str(local_copy))
    assert result["_rc"] == 0 and result["changed"] is True and hub.fake.calls == []
    assert re.match(r"^local:[0-9a-f]{64}$", result["revision"])
    assert sorted(f["path"] for f in result["manifest"]["files"]) == sorted(FILES)
    shard = "model-00001-of-00002.safetensors"
    assert os.stat(final(model_dir, shard)).st_ino == os.stat(local_copy / shard).st_ino
    assert {f.get("how") for f in result["files"]} == {"linked"}
    again = run(Hub(), source="local", local_dir=str(local_copy))
    assert again["changed"] is False and again["revision"] == result["revision"]


def test_a_changed_local_file_changes_the_revision_and_is_placed_again(run, model_dir, local_copy):
    first = run(Hub(), source="local", local_dir=str(local_copy))
    os.unlink(local_copy / "config.json")
    (local_copy / "config.json").write_bytes(b'{"model_type": "tiny", "v": 2}\n')
    result = run(Hub(), source="local", local_dir=str(local_copy))
    assert result["_rc"] == 0 and result["changed"] is True and result["revision"] != first["revision"]
    assert {f["path"]: f["status"] for f in result["files"]}["config.json"] == "replaced"
    assert read(final(model_dir, "config.json")) == b'{"model_type": "tiny", "v": 2}\n'


def test_a_local_dir_that_does_not_exist_is_named(run, tmp_path):
    result = run(Hub(), source="local", local_dir=str(tmp_path / "nowhere"))
    assert result["_rc"] == 1 and "sglang_model_local_dir %s is not a directory" % (tmp_path / "nowhere") in result["msg"]


# ---------------------------------------------------------------- verify and probe


def test_verify_after_a_transfer_writes_the_stamp_and_names_every_missing_or_bad_file(run, model_dir):
    manifest = run(Hub())["manifest"]
    other = model_dir / "other-host"
    copy = other / REPO
    copy.mkdir(parents=True)
    for name, (data, _lfs) in FILES.items():
        (copy / name).write_bytes(data)
    (copy / "stray.txt").write_text("x")
    result = run(Hub(), mode="verify", manifest=manifest, model_dir=str(other))
    assert result["_rc"] == 0 and result["changed"] is True and result["removed"] == ["stray.txt"]
    assert json.loads(read(copy / _manifest.STAMP))["revision"] == COMMIT
    assert run(Hub(), mode="verify", manifest=manifest, model_dir=str(other))["changed"] is False
    (copy / "tokenizer.json").write_bytes(b"{}")
    os.unlink(copy / "config.json")
    predicted = run(Hub(), mode="verify", manifest=manifest, model_dir=str(other), check_mode=True)
    assert predicted["_rc"] == 0 and predicted["changed"] is True
    failed = run(Hub(), mode="verify", manifest=manifest, model_dir=str(other))
    assert failed["_rc"] == 1
    assert "2 file(s) of %s@%s are missing or do not match" % (REPO, COMMIT) in failed["msg"]
    assert "config.json (missing)" in failed["msg"] and "tokenizer.json (size 2, expected 14)" in failed["msg"]


def test_probe_reads_whether_the_host_holds_a_verified_copy_without_hashing(run, model_dir, monkeypatch):
    empty = run(Hub(), mode="probe")
    assert empty["_rc"] == 0 and empty["held"] is False and empty["revision"] is None
    run(Hub())
    monkeypatch.setattr(_manifest, "hash_file", lambda *a, **k: pytest.fail("probe hashed a file"))
    held = run(Hub(), mode="probe")
    assert held["held"] is True and held["revision"] == COMMIT and held["changed"] is False
    os.utime(final(model_dir, "config.json"), ns=(1, 1))
    changed = run(Hub(), mode="probe")
    assert changed["held"] is False and changed["unverified"] == ["config.json"]
