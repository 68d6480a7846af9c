"""The model stage end to end: the model role and the sglang_model module through ansible-playbook
on this machine (local connection), the REAL huggingface_hub of the stand-in image in a transient
container of it, and a small hub on loopback that speaks what huggingface_hub 0.36 asks for.

The hub is a throwaway stdlib HTTP server in this file (the bed's own fake hub is elsewhere):
``GET /api/models/{repo}/revision/{rev}`` (with ``?blobs=true``: size, blobId, lfs.sha256),
``HEAD``/``GET /{repo}/resolve/{commit}/{file}`` with X-Repo-Commit, ETag and Content-Length,
``Range: bytes=N-`` answered with 206, X-Error-Code RevisionNotFound / RepoNotFound, a 401 for a
refused token, a file served with other bytes than listed, and a reply that stalls mid-file.

Needs the bed's Docker engine ($DOCKER_HOST, else tests/scripts/engine.sh) and the stand-in image
($STANDIN_IMAGE, else what tests/standin/build.py prints); the transient container uses the
engine's host network, where the hub listens on 127.0.0.1.
"""

import hashlib
import json
import os
import re
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.sglang_rocm.fleet.plugins.modules import sglang_model

REPO_ROOT = Path(__file__).resolve().parents[2]
REPO = "fixture-org/tiny-model"
COMMIT = hashlib.sha1(b"tiny-model@1").hexdigest()
TOKEN = "hf_fixtureSENTINEL42"
BIG = "model-00002-of-00002.safetensors"
FILES = {
    "config.json": (b'{"model_type": "standin", "architectures": ["StandinForCausalLM"]}\n', False),
    "tokenizer_config.json": (b'{"model_max_length": 4096}\n', False),
    "model-00001-of-00002.safetensors": (os.urandom(200_000), True),
    BIG: (os.urandom(24 * 1024 * 1024), True),  # more than huggingface_hub's 10 MB write chunk
}


def git_sha1(data):
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def etag(name):
    data, lfs = FILES[name]
    return hashlib.sha256(data).hexdigest() if lfs else git_sha1(data)


class Hub:
    """What the handler serves, and what it saw."""

    def __init__(self):
        self.requests = []  # (method, path, Range header, Authorization header)
        self.corrupt = {}  # file -> bytes served in place of the listed ones
        self.stall = {}  # file -> bytes sent at full speed before the reply stalls, connection open
        self.token = None  # when set, the only token accepted


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", headers=None):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status, code=None, message=None):
        headers = {"Content-Type": "application/json"}
        if code:
            headers["X-Error-Code"] = code
        if message:
            headers["X-Error-Message"] = message
        self._send(status, json.dumps({"error": message or code or "error"}).encode(), headers)

    def _route(self):
        hub = self.server.hub
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        hub.requests.append((self.command, path, self.headers.get("Range"), self.headers.get("Authorization")))
        if hub.token and self.headers.get("Authorization") != "Bearer " + hub.token:
            return self._error(401, message="Invalid credentials in Authorization header")
        api = re.match(r"^/api/models/(.+)/revision/([^/]+)$", path)
        if api:
            repo, revision = api.groups()
            if repo != REPO:
                return self._error(401, "RepoNotFound", "Repository not found")
            if revision not in ("main", COMMIT):
                return self._error(404, "RevisionNotFound", "Invalid rev id: %s" % revision)
            siblings = []
            for name, (data, lfs) in sorted(FILES.items()):
                entry = {"rfilename": name, "size": len(data), "blobId": git_sha1(data)}
                if lfs:
                    entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                siblings.append(entry)
            body = json.dumps({"id": REPO, "modelId": REPO, "sha": COMMIT, "siblings": siblings}).encode()
            return self._send(200, body, {"Content-Type": "application/json"})
        resolve = re.match(r"^/(.+)/resolve/([^/]+)/(.+)$", path)
        if not resolve or resolve.group(1) != REPO:
            return self._error(404, "RepoNotFound", "Repository not found")
        _repo, revision, name = resolve.groups()
        if revision not in ("main", COMMIT):
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        if name not in FILES:
            return self._error(404, "EntryNotFound", "Entry not found")
        data = hub.corrupt.get(name, FILES[name][0])
        start = 0
        match = re.match(r"^bytes=(\d+)-$", self.headers.get("Range") or "")
        if match and self.command == "GET":
            start = int(match.group(1))
        headers = {"X-Repo-Commit": COMMIT, "ETag": '"%s"' % etag(name), "Accept-Ranges": "bytes"}
        if self.command == "HEAD":
            return self._send(200, data, headers)
        status = 206 if start else 200
        if start:
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, len(data) - 1, len(data))
        body = data[start:]
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        stall = hub.stall.get(name)
        step = 1024 * 1024 if stall is not None else len(body) or 1
        try:
            for offset in range(0, len(body), step):
                if stall is not None and offset >= stall:
                    # send nothing more, keep the connection open: only the client's deadline
                    # ends this transfer, however fast or slow the machine is
                    for _tick in range(900):
                        if name not in hub.stall:
                            break
                        time.sleep(0.1)
                    return
                self.wfile.write(body[offset:offset + step])
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = _route
    do_HEAD = _route


@pytest.fixture
def hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.hub = Hub()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    server.hub.url = "http://127.0.0.1:%d" % server.server_address[1]
    yield server.hub
    server.shutdown()
    server.server_close()


def docker_host():
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    return subprocess.run([str(REPO_ROOT / "tests/scripts/engine.sh"), "host"], capture_output=True,
                          text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def image():
    ref = os.environ.get("STANDIN_IMAGE")
    if not ref:
        ref = subprocess.run(["python3", str(REPO_ROOT / "tests/standin/build.py"), "--docker-host", docker_host()],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return ref


PLAY = """
- name: The model stage on this machine
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: sglang_rocm.fleet.model
"""
STAGE = "Stage the model on the seed host"


@pytest.fixture
def model_dir(tmp_path):
    return tmp_path / "models"


@pytest.fixture
def playbook(tmp_path, hub, image, model_dir):
    """The model role through ansible-playbook: (rc, {task name: localhost's result})."""
    play = tmp_path / "model.yml"
    play.write_text(PLAY)

    def run(**extra):
        variables = {"sglang_model_path": REPO, "sglang_model_hub_endpoint": hub.url, "sglang_image": image,
                     "sglang_container_name": "no-such-container", "sglang_docker_host": docker_host(),
                     "sglang_model_dir": str(model_dir), "sglang_results_dir": str(tmp_path / "results"),
                     "sglang_model_timeout": 120, "sglang_model_poll": 1}
        variables.update(extra)
        (tmp_path / "vars.json").write_text(json.dumps(variables))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO_ROOT / ".build"), ANSIBLE_STDOUT_CALLBACK="json",
                   ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
                   ANSIBLE_ASYNC_DIR=str(tmp_path / "async"))
        done = subprocess.run(["ansible-playbook", str(play), "-e", "@" + str(tmp_path / "vars.json")],
                              capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=600, check=False)
        out = json.loads(done.stdout[done.stdout.index("{"):])
        tasks = {}
        for one in out["plays"]:
            for task in one["tasks"]:
                tasks[task["task"]["name"].split(" : ", 1)[-1]] = task["hosts"].get("localhost", {})
        return done.returncode, tasks
    return run


@pytest.fixture
def module(hub, image, model_dir, capsys):
    """The sglang_model module's real main() in this process, with the real docker CLI."""
    def run(check=False, **extra):
        args = {"repo": REPO, "model_dir": str(model_dir), "hub_endpoint": hub.url, "image": image,
                "docker_host": docker_host(), "timeout": 120, "host": "controller"}
        args.update(extra)
        if check:
            args["_ansible_check_mode"] = True
        with patch_module_args(args), pytest.raises(SystemExit) as exc:
            sglang_model.main()
        result = json.loads(capsys.readouterr().out)
        result["_rc"] = exc.value.code
        return result
    return run


def fetched(hub, name=None):
    return [(path, rng) for method, path, rng, _auth in hub.requests
            if method == "GET" and "/resolve/" in path and (name is None or path.endswith("/" + name))]


def test_the_role_stages_once_verifies_and_a_second_run_changes_nothing(playbook, hub, model_dir):
    hub.token = TOKEN
    rc, tasks = playbook(sglang_model_hub_token=TOKEN)
    result = tasks[STAGE]
    assert rc == 0, result.get("msg")
    assert result["changed"] is True and result["revision"] == COMMIT
    copy = model_dir / REPO
    for name, (data, _lfs) in FILES.items():
        assert (copy / name).read_bytes() == data
    assert json.loads((copy / ".sglang-manifest.json").read_text())["revision"] == COMMIT
    assert result["bytes_downloaded"] == sum(len(data) for data, _lfs in FILES.values())
    progress_file = model_dir / ".staging" / REPO / "progress.json"
    progress = json.loads(progress_file.read_text())
    assert progress["bytes_done"] == progress["bytes_total"] == result["bytes_total"]
    assert "progress (bytes done/total, current file) in %s" % progress_file in tasks["Say where the transfer can be followed"]["msg"]
    assert all(auth == "Bearer " + TOKEN for _m, _p, _r, auth in hub.requests)
    assert TOKEN not in json.dumps(tasks)
    hub.requests.clear()
    rc, tasks = playbook(sglang_model_hub_token=TOKEN)
    assert rc == 0 and tasks[STAGE]["changed"] is False
    assert [(m, p) for m, p, _r, _a in hub.requests] == [("GET", "/api/models/%s/revision/main" % REPO)]


def test_a_corrupted_shard_is_replaced_and_only_it_is_fetched(module, hub, model_dir):
    assert module()["_rc"] == 0
    shard = model_dir / REPO / BIG
    shard.write_bytes(b"\x00" * len(FILES[BIG][0]))
    hub.requests.clear()
    result = module(revision=COMMIT)
    assert result["_rc"] == 0 and result["changed"] is True
    assert shard.read_bytes() == FILES[BIG][0]
    assert [path for path, _rng in fetched(hub)] == ["/%s/resolve/%s/%s" % (REPO, COMMIT, BIG)]


def test_an_interrupted_transfer_resumes_where_it_stopped(module, hub, model_dir):
    # huggingface_hub writes 10 MiB chunks: the reply stalls after 12 MiB, so one chunk is on disk
    # and the deadline, not the machine's speed, ends the transfer
    hub.stall[BIG] = 12 * 1024 * 1024
    result = module(timeout=26)
    hub.stall.clear()
    assert result["_rc"] == 1 and result["kind"] == "deadline", result.get("msg")
    assert "sglang_model_timeout" in result["msg"] and "resumes" in result["msg"]
    assert not (model_dir / REPO / BIG).exists() and (model_dir / REPO / "config.json").exists()
    hub.requests.clear()
    result = module(revision=COMMIT)
    assert result["_rc"] == 0, result.get("msg")
    (_path, rng), = fetched(hub, BIG)
    assert rng and int(rng[len("bytes="):-1]) >= 10 * 1024 * 1024
    # the shard's missing part (plus any small file the first call had not placed yet), not all of it
    small = sum(len(data) for name, (data, _lfs) in FILES.items() if name != BIG)
    assert result["bytes_downloaded"] <= len(FILES[BIG][0]) - 10 * 1024 * 1024 + small
    assert (model_dir / REPO / BIG).read_bytes() == FILES[BIG][0]


def test_a_file_the_hub_serves_corrupt_is_refused_named_and_not_kept(module, hub, model_dir):
    hub.corrupt["config.json"] = b"{" * len(FILES["config.json"][0])
    result = module()
    assert result["_rc"] == 1
    assert "config.json (refused and deleted: git blob sha1 " in result["msg"]
    assert not (model_dir / REPO / "config.json").exists()
    assert (model_dir / REPO / BIG).read_bytes() == FILES[BIG][0]


@pytest.mark.parametrize("extra, kind, names", [
    ({"revision": "no-such-branch"}, "revision_not_found", "sglang_model_revision"),
    ({"repo": "fixture-org/absent"}, "repo_not_found", "sglang_model_path"),
    ({"hub_token": "hf_wrongSENTINEL"}, "token_refused", "sglang_model_hub_token"),
])
def test_hub_faults_are_named_by_the_variable_that_fixes_them(module, hub, extra, kind, names):
    hub.token = TOKEN
    result = module(**dict({"hub_token": TOKEN}, **extra))
    assert result["_rc"] == 1 and result["kind"] == kind and names in result["msg"]
    assert "SENTINEL" not in json.dumps(result)


def test_check_mode_says_what_it_would_fetch_and_fetches_nothing(module, hub, model_dir):
    result = module(check=True)
    assert result["_rc"] == 0 and result["changed"] is True
    assert sorted(result["would_fetch"]) == sorted(FILES)
    assert fetched(hub) == [] and not (model_dir / REPO).exists()
