"""The bed's fake model hub, driven by the REAL huggingface_hub client (0.36.2, as in the image).

Each test runs snapshot_download, hf_hub_download or HfApi.model_info against a hub in a
thread on 127.0.0.1, so what the hub answers is checked by the code that will read it.
"""
import hashlib
import http.client
import json
import os
import struct
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

# Before the client is imported: no telemetry, no progress bars, no token from this machine.
os.environ.update(HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
                  HF_HUB_DISABLE_IMPLICIT_TOKEN="1")
import huggingface_hub  # noqa: E402
from huggingface_hub import HfApi, hf_hub_download, snapshot_download  # noqa: E402
from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError,  # noqa: E402
                                    RevisionNotFoundError)
from huggingface_hub.file_download import get_hf_file_metadata, hf_hub_url  # noqa: E402

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _manifest  # noqa: E402
from simfleet import hub  # noqa: E402

TESTS = Path(__file__).resolve().parents[2]
REPO_ID = "org/tiny-model"
# huggingface_hub writes a download in 10 MiB chunks: a resume test needs a shard larger than
# that, cut after the first chunk reached the disk.
CHUNK = 10 * 1024 * 1024
SIZE = 24 * 1024 * 1024


def test_the_client_is_the_version_the_image_has():
    lock = (TESTS / "standin/requirements.lock").read_text().split()
    assert f"huggingface_hub=={huggingface_hub.__version__}" in lock


@pytest.fixture(name="repo", scope="module")
def fixture_repo(tmp_path_factory):
    return hub.generate(tmp_path_factory.mktemp("hub") / "repo", REPO_ID, size=SIZE, shards=2, seed=7)


@pytest.fixture(name="served")
def fixture_served(repo):
    with hub.Hub(repo) as running:
        yield running


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_safetensors(path):
    data = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    header.pop("__metadata__", None)
    return header, len(data) - 8 - length


# ------------------------------------------------------------------------------- the repo

def test_the_repo_is_deterministic_and_its_size_is_the_knob(repo, tmp_path):
    again = hub.generate(tmp_path / "again", REPO_ID, size=SIZE, shards=2, seed=7)
    assert again.commit == repo.commit and again.files == repo.files
    assert hub.generate(tmp_path / "bigger", REPO_ID, size=SIZE + 4096, shards=2, seed=7).commit != repo.commit
    shards = [f for f in repo.files.values() if f.name.endswith(".safetensors")]
    assert [f.name for f in shards] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert all(f.lfs for f in shards) and not repo.files["config.json"].lfs
    assert SIZE <= sum(f.size for f in shards) < SIZE + 2 * 4096   # data plus two small headers
    assert {"config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            hub.INDEX} <= set(repo.files)


def test_shards_are_real_safetensors_and_the_index_maps_every_tensor(repo):
    index = json.loads(repo.path(hub.INDEX).read_text())
    seen = {}
    for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
        header, data_len = read_safetensors(repo.path(name))
        spans = sorted(t["data_offsets"] for t in header.values())
        assert spans[0][0] == 0 and spans[-1][1] == data_len          # no gap, nothing after
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        for tensor, meta in header.items():
            assert meta["dtype"] == "BF16"
            assert meta["shape"][0] * meta["shape"][1] * 2 == meta["data_offsets"][1] - meta["data_offsets"][0]
            seen[tensor] = name
    assert index["weight_map"] == seen
    assert index["metadata"]["total_size"] == sum(read_safetensors(repo.path(n))[1] for n in set(seen.values()))


def test_the_tokenizer_files_are_the_stand_in_images(repo):
    from standin_server import assets  # the module make_assets.py writes the image's files with

    for name, text in assets.tokenizer_files().items():
        if name != "config.json":
            assert repo.path(name).read_text() == text
    config = json.loads(repo.path("config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["num_hidden_layers"] == 2


# ----------------------------------------------------------------------- the real client

def test_model_info_with_files_metadata_gives_what_the_manifest_needs(repo, served):
    info = HfApi(endpoint=served.url).model_info(REPO_ID, revision="main", files_metadata=True)
    assert info.sha == repo.commit and len(info.sha) == 40
    by_name = {s.rfilename: s for s in info.siblings}
    assert set(by_name) == set(repo.files)
    shard = by_name["model-00001-of-00002.safetensors"]
    assert shard.lfs.sha256 == sha256(repo.path(shard.rfilename)) and shard.lfs.size == shard.size
    assert by_name["config.json"].lfs is None
    assert by_name["config.json"].blob_id == hub.git_blob_sha1(repo.path("config.json").read_bytes())
    # the raw answer, as the collection's module reads it, makes a manifest every file passes
    with urllib.request.urlopen(f"{served.url}/api/models/{REPO_ID}/revision/main?blobs=true", timeout=5) as answer:
        manifest = _manifest.from_hub_info(json.load(answer), REPO_ID)
    assert manifest["revision"] == repo.commit
    assert all(_manifest.verify_file(repo.path(e["path"]), e) is None for e in manifest["files"])
    # without ?blobs=true: names only, still a non-empty list
    plain = HfApi(endpoint=served.url).model_info(REPO_ID, revision=repo.commit)
    assert plain.sha == repo.commit and plain.siblings and plain.siblings[0].size is None


def test_file_metadata_from_head_plain_and_lfs(repo, served):
    config = get_hf_file_metadata(hf_hub_url(REPO_ID, "config.json", revision="main", endpoint=served.url))
    assert (config.commit_hash, config.etag, config.size) == (
        repo.commit, repo.files["config.json"].git_sha1, repo.files["config.json"].size)
    name = "model-00002-of-00002.safetensors"
    shard = get_hf_file_metadata(hf_hub_url(REPO_ID, name, revision="main", endpoint=served.url))
    assert (shard.commit_hash, shard.etag, shard.size) == (repo.commit, repo.files[name].sha256, repo.files[name].size)
    assert shard.location.endswith(f"/_lfs/{repo.files[name].sha256}")


def test_snapshot_download_gets_every_file_at_the_commit(repo, served, tmp_path):
    folder = Path(snapshot_download(REPO_ID, revision="main", cache_dir=tmp_path, endpoint=served.url))
    assert folder.name == repo.commit
    assert sorted(p.name for p in folder.iterdir()) == sorted(repo.files)
    for name in repo.files:
        assert (folder / name).read_bytes() == repo.path(name).read_bytes(), name
    assert served.stats()["body_bytes"] == repo.total_bytes


def test_a_dropped_get_resumes_with_a_range_request(repo, served, tmp_path):
    name = "model-00001-of-00002.safetensors"
    size = repo.files[name].size
    served.knobs.drop_after, served.knobs.drops = CHUNK + (1 << 20), 1
    with pytest.raises(Exception) as broken:
        hf_hub_download(REPO_ID, name, revision="main", cache_dir=tmp_path, endpoint=served.url)
    assert "Connection broken" in str(broken.value)
    partial = list(tmp_path.rglob("*.incomplete"))
    assert [p.stat().st_size for p in partial] == [CHUNK]
    path = hf_hub_download(REPO_ID, name, revision="main", cache_dir=tmp_path, endpoint=served.url)
    assert sha256(path) == repo.files[name].sha256
    gets = [r for r in served.stats()["requests"] if r["method"] == "GET" and r["path"].startswith("/_lfs/")]
    assert [(r["status"], r["range"], r["bytes"]) for r in gets] == [
        (200, None, CHUNK + (1 << 20)), (206, f"bytes={CHUNK}-", size - CHUNK)]
    assert served.stats()["dropped"] == 1


def test_a_revision_that_does_not_exist(served, tmp_path):
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(REPO_ID, revision="no-such-branch", cache_dir=tmp_path, endpoint=served.url)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO_ID, "config.json", revision="0" * 40, cache_dir=tmp_path, endpoint=served.url)


def test_a_repo_or_a_file_that_does_not_exist(served, tmp_path):
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=served.url).model_info("org/no-such-model", files_metadata=True)
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("org/no-such-model", cache_dir=tmp_path, endpoint=served.url)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO_ID, "no-such-file.bin", cache_dir=tmp_path, endpoint=served.url)


def test_a_required_token(repo, served, tmp_path):
    served.knobs.token = "hf_right"
    with pytest.raises(HfHubHTTPError) as refused:
        snapshot_download(REPO_ID, cache_dir=tmp_path, endpoint=served.url, token="hf_wrong")
    assert refused.value.response.status_code == 401
    assert "Invalid credentials in Authorization header" in str(refused.value)
    with pytest.raises(HfHubHTTPError) as wrong_head:
        hf_hub_download(REPO_ID, "config.json", cache_dir=tmp_path, endpoint=served.url, token="hf_wrong")
    assert wrong_head.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError) as anonymous:  # a private repo, asked without a token
        HfApi(endpoint=served.url).model_info(REPO_ID, token=False)
    assert anonymous.value.response.status_code == 401
    folder = snapshot_download(REPO_ID, cache_dir=tmp_path, endpoint=served.url, token="hf_right")
    assert Path(folder).name == repo.commit
    assert "hf_right" not in json.dumps(served.stats())


def test_hf_endpoint_from_the_environment_as_the_staging_process_sets_it(repo, served, tmp_path):
    """huggingface_hub reads HF_ENDPOINT at import: a fresh process, as the model stage runs it."""
    code = ("import sys; from huggingface_hub import snapshot_download; "
            "print(snapshot_download(sys.argv[1], revision='main', local_dir=sys.argv[2]))")
    env = dict(os.environ, HF_ENDPOINT=served.url, HF_HOME=str(tmp_path / "home"))
    out = subprocess.run([sys.executable, "-c", code, REPO_ID, str(tmp_path / "model")], env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert Path(out.strip()) == tmp_path / "model"
    assert sha256(tmp_path / "model" / "model-00002-of-00002.safetensors") == \
        repo.files["model-00002-of-00002.safetensors"].sha256


# ------------------------------------------------------------------ ranges, knobs, counters

def get(url, **headers):
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_ranges(repo, served):
    name = "model-00002-of-00002.safetensors"
    url = f"{served.url}/_lfs/{repo.files[name].sha256}"
    data = repo.path(name).read_bytes()
    status, headers, body = get(url, Range="bytes=100-199")
    assert (status, headers["Content-Range"], body) == (206, f"bytes 100-199/{len(data)}", data[100:200])
    status, headers, body = get(url, Range=f"bytes={len(data) - 5}-")
    assert (status, body) == (206, data[-5:])
    status, headers, _body = get(url, Range=f"bytes={len(data)}-")
    assert (status, headers["Content-Range"]) == (416, f"bytes */{len(data)}")
    status, headers, body = get(f"{served.url}/{REPO_ID}/resolve/main/config.json", Range="bytes=2-")
    assert (status, headers["X-Repo-Commit"], body) == (206, repo.commit, repo.path("config.json").read_bytes()[2:])


def test_knobs_and_counters_over_http(served):
    request = urllib.request.Request(f"{served.url}/_hub/knobs", data=json.dumps({"drops": 2, "drop_after": 5}).encode(),
                                     method="POST")
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert json.load(answer) == {"drops": 2, "drop_after": 5, "token_required": False}
    with pytest.raises(http.client.IncompleteRead):  # the cut: 5 bytes, then the end
        get(f"{served.url}/{REPO_ID}/resolve/main/config.json")
    stats = json.loads(get(f"{served.url}/_hub/stats")[2])
    assert stats["dropped"] == 1 and stats["knobs"]["drops"] == 1 and stats["body_bytes"] == 5
    # each request names who asked (a test tells the hosts' requests apart by it)
    assert [r["client"] for r in stats["requests"] if r["path"].endswith("/config.json")] == ["127.0.0.1"]
    with urllib.request.urlopen(urllib.request.Request(f"{served.url}/_hub/reset", data=b"", method="POST"), timeout=5):
        pass
    assert json.loads(get(f"{served.url}/_hub/stats")[2])["requests"] == []


def test_generate_from_the_command_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "simfleet.hub", "generate", "--dir", str(tmp_path), "--repo", REPO_ID,
                          "--size", "64KiB", "--shards", "2"], capture_output=True, text=True, timeout=60, check=True,
                         env=dict(os.environ, PYTHONPATH=str(TESTS))).stdout
    summary = json.loads(out)
    assert summary["repo"] == REPO_ID and len(summary["commit"]) == 40 and summary["files"] == 8


@pytest.mark.parametrize("text,expected", [("123", 123), ("64KiB", 65536), ("32MiB", 32 << 20), ("1G", 1 << 30)])
def test_sizes(text, expected):
    assert hub.parse_size(text) == expected


def test_a_bad_size_is_refused():
    with pytest.raises(ValueError, match="expected bytes"):
        hub.parse_size("lots")
