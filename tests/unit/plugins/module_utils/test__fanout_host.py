"""module_utils/_fanout_host.py and _fanout_server.py: a real server on loopback, real fetches.

The server is the detached process the module starts (its own copy of the code, a 0600 config it
deletes); the misbehaving sources (one that dies mid-transfer, one that stalls) are small servers
in this process. Only the free-space probe is replaced, for the full-disk test that must not fill
a disk.
"""
import hashlib
import json
import os
import signal
import socket
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _fanout_host as F
from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _fanout_server as S
from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _manifest as M

TOKEN = "t0ken-for-the-test-only"
BIG = bytes(range(256)) * 4096  # 1 MiB
FILES = {"model-00001.safetensors": BIG, "config.json": b'{"a": 1}\n', "sub/tokenizer.model": b"tok" * 100}


def git_sha1(data):
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def manifest_of(files):
    entries = []
    for path, data in files.items():
        lfs = path.endswith(".safetensors")
        entries.append({"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest() if lfs else None,
                        "git_sha1": None if lfs else git_sha1(data)})
    return M.build("org/m", "a" * 40, entries)


MANIFEST = manifest_of(FILES)


def write_tree(root, files=None, stamp=True):
    files = FILES if files is None else files
    for path, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
        with open(os.path.join(root, path), "wb") as handle:
            handle.write(data)
    if stamp:
        M.write_stamp(str(root), MANIFEST, M.check_tree(str(root), MANIFEST)["stamp"])
    return str(root)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def source(host, port):
    return {"host": host, "address": "127.0.0.1", "port": port}


def get(port, path, token=TOKEN, headers=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), headers=dict(headers or {}))
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=5) as resp:
            return resp.status, resp.read(), dict(resp.headers.items())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers.items())


@pytest.fixture(name="serve")
def fixture_serve():
    roots = []

    def start(root, manifest=None, slots=2, lifetime=60, port=None):
        manifest = MANIFEST if manifest is None else manifest
        port = port or free_port()
        out = F.start_server(str(root), manifest, TOKEN, "127.0.0.1", port, slots, lifetime, "model", "gpu01")
        roots.append(str(root))
        return port, out

    yield start
    for root in roots:
        F.stop_server(root)


def fetcher(root, sources, **kwargs):
    kwargs.setdefault("poll", 0.02)
    kwargs.setdefault("timeout", 30)
    return F.Fetcher(str(root), kwargs.pop("manifest", MANIFEST), sources, kwargs.pop("token", TOKEN), name="model",
                     host="gpu02", **kwargs)


def test_a_receiver_fetches_everything_from_a_real_server_and_a_second_run_fetches_nothing(tmp_path, serve):
    port, started = serve(write_tree(tmp_path / "seed"))
    assert started["changed"] and started["url"] == "http://127.0.0.1:%d" % port
    record, changed = fetcher(tmp_path / "recv", [source("gpu01", port)]).run()
    assert changed and record["status"] == "received" and record["error"] is None
    assert record["sources"] == ["gpu01"] and record["bytes"] == sum(len(d) for d in FILES.values())
    for path, data in FILES.items():
        assert (tmp_path / "recv" / path).read_bytes() == data
    assert not (tmp_path / "recv" / F.RUNTIME).exists()  # nothing of the transfer is left
    # the stamp says verified, so the receiver now serves them (pipelined) and a re-run holds
    assert M.check_tree(str(tmp_path / "recv"), MANIFEST)["ok"] == sorted(FILES)
    record, changed = fetcher(tmp_path / "recv", [source("gpu01", port)]).run()
    assert not changed and record["status"] == "held" and record["bytes"] == 0 and record["sources"] == []


def test_check_mode_names_what_it_would_fetch_and_fetches_nothing(tmp_path):
    (tmp_path / "recv").mkdir()
    record, changed = fetcher(tmp_path / "recv", [source("gpu01", 1)]).run(check_mode=True)
    assert changed and record["status"] == "received" and record["bytes"] == sum(len(d) for d in FILES.values())
    assert sorted(f["path"] for f in record["would_fetch"]) == sorted(FILES)
    assert os.listdir(tmp_path / "recv") == []


@pytest.fixture(name="seed_server", scope="module")
def fixture_seed_server(tmp_path_factory):
    """One server for the tests that only read from it: a verified tree plus a file outside the
    manifest and a file changed since it was verified."""
    root = tmp_path_factory.mktemp("seed")
    write_tree(root)
    (root / "secret.txt").write_bytes(b"not in the manifest")
    (root / "config.json").write_bytes(b'{"a": 2}\n')  # changed since verified: not offered
    port = free_port()
    started = F.start_server(str(root), MANIFEST, TOKEN, "127.0.0.1", port, 2, 120, "model", "gpu01")
    yield root, port, started
    F.stop_server(str(root))


def test_every_request_without_the_token_gets_403_and_an_empty_body(seed_server):
    _root, port, _started = seed_server
    for token in (None, "", "wrong", TOKEN + "x", TOKEN.upper(), TOKEN[:-1]):
        for path in ("/status", "/files/sub/tokenizer.model", "/files/../../etc/passwd", "/", "/nothing"):
            assert get(port, path, token=token)[:2] == (403, b""), (token, path)
    req = urllib.request.Request("http://127.0.0.1:%d/status" % port, method="POST", data=b"x")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=5)
    assert exc.value.code == 403


def test_with_the_token_only_verified_manifest_files_are_listed_and_served(seed_server):
    _root, port, _started = seed_server
    status, body, _headers = get(port, "/status")
    assert status == 200
    assert json.loads(body) == {"name": "model", "verified": ["model-00001.safetensors", "sub/tokenizer.model"],
                                "busy": 0, "slots": 2}
    for path in ("/files/secret.txt", "/files/config.json", "/files/../seed/secret.txt", "/files/%2e%2e/x",
                 "/files/" + M.STAMP, "/files/" + F.RUNTIME + "/" + S.RECORD, "/files/sub", "/status/x"):
        assert get(port, path)[0] == 404, path
    status, body, headers = get(port, "/files/sub/tokenizer.model")
    assert (status, body, headers["Accept-Ranges"]) == (200, FILES["sub/tokenizer.model"], "bytes")


def test_range_requests_are_served_and_an_impossible_range_is_416(seed_server):
    _root, port, _started = seed_server
    status, body, headers = get(port, "/files/model-00001.safetensors", headers={"Range": "bytes=1000-"})
    assert status == 206 and body == BIG[1000:] and headers["Content-Range"] == "bytes 1000-%d/%d" % (len(BIG) - 1, len(BIG))
    status, body, _headers = get(port, "/files/model-00001.safetensors", headers={"Range": "bytes=10-19"})
    assert (status, body) == (206, BIG[10:20])
    status, _body, headers = get(port, "/files/model-00001.safetensors", headers={"Range": "bytes=%d-" % len(BIG)})
    assert status == 416 and headers["Content-Range"] == "bytes */%d" % len(BIG)


def test_the_token_is_in_no_argv_environment_or_file_of_the_server(seed_server):
    root, port, started = seed_server
    pid = started["pid"]
    with open("/proc/%d/cmdline" % pid, "rb") as handle:
        argv = handle.read()
    with open("/proc/%d/environ" % pid, "rb") as handle:
        environ = handle.read()
    assert TOKEN.encode() not in argv and TOKEN.encode() not in environ
    runtime = root / F.RUNTIME
    assert oct(runtime.stat().st_mode & 0o777) == "0o700"
    assert F.CONFIG not in os.listdir(runtime)  # read and deleted by the server
    get(port, "/status")
    get(port, "/files/config.json", token="wrong")
    for name in os.listdir(runtime):
        assert TOKEN.encode() not in (runtime / name).read_bytes(), name
    record = json.loads((runtime / S.RECORD).read_text())
    assert record["pid"] == pid and record["start_time"] == S.proc_start_time(pid) and record["port"] == port


def test_a_partial_file_is_resumed_with_range(tmp_path, serve):
    port, _started = serve(write_tree(tmp_path / "seed"))
    recv = tmp_path / "recv"
    job = fetcher(recv, [source("gpu01", port)])
    entry = next(e for e in MANIFEST["files"] if e["path"] == "model-00001.safetensors")
    os.makedirs(os.path.dirname(job.partial_path(entry)))
    with open(job.partial_path(entry), "wb") as handle:
        handle.write(BIG[:300000])
    record, _changed = job.run()
    assert record["status"] == "received"
    small = sum(len(d) for p, d in FILES.items() if p != "model-00001.safetensors")
    assert record["bytes"] == len(BIG) - 300000 + small
    assert (recv / "model-00001.safetensors").read_bytes() == BIG


def test_a_bad_hash_is_refused_named_and_the_next_source_takes_over(tmp_path, serve):
    bad_root = write_tree(tmp_path / "bad")
    # corrupt in place, keeping size, inode and mtime: the stamp still says verified
    path = tmp_path / "bad" / "model-00001.safetensors"
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\xff" * 10)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    bad_port, _started = serve(bad_root)
    good_port, _started = serve(write_tree(tmp_path / "good"))
    record, _changed = fetcher(tmp_path / "recv", [source("gpu07", bad_port), source("gpu01", good_port)], retries=0).run()
    assert record["status"] == "received" and "gpu01" in record["sources"]
    assert (tmp_path / "recv" / "model-00001.safetensors").read_bytes() == BIG
    (failure,) = record["failures"]["gpu07"]
    assert failure.startswith("sent model-00001.safetensors with sha256 ") and failure.endswith(
        ", expected %s; refused" % hashlib.sha256(BIG).hexdigest())


def test_bad_bytes_from_the_only_source_fail_the_host_naming_file_source_and_hash(tmp_path, serve):
    root = write_tree(tmp_path / "bad")
    path = tmp_path / "bad" / "config.json"
    before = path.stat()
    path.write_bytes(b'{"a": 9}\n')
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    port, _started = serve(root)
    record, _changed = fetcher(tmp_path / "recv", [source("gpu01", port)], retries=1).run()
    assert record["status"] == "failed"
    assert record["error"].startswith("Host gpu02: every source failed for config.json (sglang_fanout_retries=1): "
                                      "gpu01: sent config.json with git blob sha1 ")
    assert not (tmp_path / "recv" / "config.json").exists()  # never a bad file under the final name


class Misbehaving(BaseHTTPRequestHandler):
    """A source that lists every file as verified, then sends half of one and dies or stalls."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        if self.path == "/status":
            body = json.dumps({"verified": sorted(FILES), "busy": 0, "slots": 2}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        data = FILES[self.path[len("/files/"):]]
        self.server.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:len(data) // 2])
        self.wfile.flush()
        if self.server.stall:
            time.sleep(self.server.stall)
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, *args):
        pass


@pytest.fixture(name="misbehaving")
def fixture_misbehaving():
    servers = []

    def start(stall=0.0):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
        server.daemon_threads = True
        server.requests, server.stall = [], stall
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_source_that_dies_mid_transfer_is_replaced_and_the_partial_file_resumed(tmp_path, serve, misbehaving):
    dying = misbehaving()
    port, _started = serve(write_tree(tmp_path / "seed"))
    job = fetcher(tmp_path / "recv", [source("gpu01", dying.server_address[1]), source("gpu03", port)], retries=0)
    record, _changed = job.run()
    assert record["status"] == "received" and record["sources"] == ["gpu03"]
    assert dying.requests == ["/files/config.json"]  # the first file, cut; then gpu01 is not asked again
    assert record["failures"]["gpu01"][0].startswith("config.json: ")
    # half of config.json came from the dying source and was kept: the rest came with Range
    assert record["bytes"] == sum(len(d) for d in FILES.values())
    for path, data in FILES.items():
        assert (tmp_path / "recv" / path).read_bytes() == data


def test_a_source_that_stops_answering_is_left_after_the_stall_timeout(tmp_path, serve, misbehaving):
    stalled = misbehaving(stall=5.0)
    port, _started = serve(write_tree(tmp_path / "seed"))
    started = time.monotonic()
    sources = [source("gpu01", stalled.server_address[1]), source("gpu03", port)]
    record, _changed = fetcher(tmp_path / "recv", sources, retries=0, stall_timeout=0.3).run()
    assert record["status"] == "received" and record["sources"] == ["gpu03"]
    assert "no answer within 0.3s" in record["failures"]["gpu01"][0]
    assert time.monotonic() - started < 3


def test_a_lost_seed_is_replaced_by_another_source(tmp_path, serve):
    port, _started = serve(write_tree(tmp_path / "peer"))
    record, _changed = fetcher(tmp_path / "recv", [source("gpu01", free_port()), source("gpu03", port)], retries=0).run()
    assert record["status"] == "received" and record["sources"] == ["gpu03"]
    assert record["failures"]["gpu01"] == ["no answer to /status: connection refused (port closed)"]


def test_a_wrong_token_is_refused_and_named(tmp_path, serve):
    port, _started = serve(write_tree(tmp_path / "seed"))
    record, _changed = fetcher(tmp_path / "recv", [source("gpu01", port)], token="stolen").run()
    assert record["status"] == "failed"
    assert record["error"] == ("Host gpu02: every source failed for config.json (sglang_fanout_retries=3): "
                               "gpu01: refused the transfer's token (403)")
    assert "stolen" not in json.dumps(record)


def test_the_receiver_waits_for_a_source_that_is_still_receiving(tmp_path, serve):
    peer = tmp_path / "peer"
    peer.mkdir()
    port, _started = serve(str(peer))

    def arrive():
        time.sleep(0.4)
        write_tree(peer)
    threading.Thread(target=arrive, daemon=True).start()
    started = time.monotonic()
    record, _changed = fetcher(tmp_path / "recv", [source("gpu01", port)], max_poll=0.1).run()
    assert record["status"] == "received" and record["sources"] == ["gpu01"]
    assert time.monotonic() - started >= 0.4 and not record["failures"]


def test_waiting_ends_at_the_timeout_naming_the_file_and_the_sources(tmp_path, serve):
    peer = tmp_path / "peer"
    peer.mkdir()
    port, _started = serve(str(peer))
    record, _changed = fetcher(tmp_path / "recv", [source("gpu01", port)], timeout=0.3).run()
    assert record["status"] == "failed"
    assert record["error"] == ("Host gpu02: config.json not received within sglang_fanout_timeout (0.3s); the "
                               "sources: gpu01: never had the file")


def test_no_source_at_all_fails_at_once(tmp_path):
    record, changed = fetcher(tmp_path / "recv", []).run()
    assert not changed and record["status"] == "failed"
    assert record["error"] == ("Host gpu02: no host holds a verified copy of model to fetch it from (3 files "
                               "missing or bad)")


def test_a_full_disk_is_named_before_anything_is_fetched(tmp_path, serve):
    port, _started = serve(write_tree(tmp_path / "seed"))

    class Tiny:
        f_bavail, f_frsize = 100, 4096  # 400 KiB free

    record, changed = fetcher(tmp_path / "recv", [source("gpu01", port)], statvfs=lambda path: Tiny).run()
    assert not changed and record["status"] == "failed" and record["bytes"] == 0
    assert record["error"] == (
        "Host gpu02: disk full: model needs 1.0 MiB more for 3 files but only 400.0 KiB are free on the "
        "filesystem of %s; free space there (or point the directory elsewhere) and run again" % (tmp_path / "recv"))


def test_a_disk_that_fills_during_the_transfer_is_named_and_nothing_reaches_its_final_name(tmp_path, serve):
    port, _started = serve(write_tree(tmp_path / "seed"))
    job = fetcher(tmp_path / "recv", [source("gpu01", port)])
    entry = MANIFEST["files"][0]
    os.makedirs(os.path.dirname(job.partial_path(entry)))
    os.symlink("/dev/full", job.partial_path(entry))  # every write: ENOSPC, from the kernel
    record, _changed = job.run()
    assert record["status"] == "failed"
    assert record["error"].startswith("Host gpu02: disk full writing model into %s (No space left on device, "
                                      % (tmp_path / "recv"))
    assert "the partial file is kept and the next run resumes it" in record["error"]
    assert not (tmp_path / "recv" / entry["path"]).exists()


def test_a_source_serves_at_most_degree_transfers_at_once(tmp_path, serve):
    huge = b"\x07" * (64 << 20)  # more than the socket buffers hold: the transfer stays open
    files = {"model-00001.safetensors": huge, "config.json": FILES["config.json"]}
    manifest = manifest_of(files)
    root = tmp_path / "seed"
    root.mkdir()
    for path, data in files.items():
        (root / path).write_bytes(data)
    M.write_stamp(str(root), manifest, M.check_tree(str(root), manifest)["stamp"])
    port, _started = serve(root, manifest=manifest, slots=1)
    held = socket.create_connection(("127.0.0.1", port))
    held.sendall(("GET /files/model-00001.safetensors HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                  % TOKEN).encode())
    held.recv(64)
    try:
        status, _body, headers = get(port, "/files/config.json")
        assert (status, headers.get("Retry-After")) == (503, "1")
        assert json.loads(get(port, "/status")[1])["busy"] == 1
    finally:
        held.close()
    deadline = time.monotonic() + 5
    while get(port, "/files/config.json")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get(port, "/files/config.json")[0] == 200


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_the_server_exits_by_itself_at_its_deadline(tmp_path, serve):
    port, _started = serve(write_tree(tmp_path / "seed"), lifetime=1)
    assert listening(port)
    deadline = time.monotonic() + 10
    while listening(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not listening(port)


def test_stop_ends_the_recorded_server_and_a_second_stop_changes_nothing(tmp_path, serve):
    root = write_tree(tmp_path / "seed")
    port, started = serve(root)
    out = F.stop_server(root)
    assert out == {"stopped": True, "pid": started["pid"], "stale": None}
    assert not listening(port)
    assert not (tmp_path / "seed" / F.RUNTIME).exists()
    assert F.stop_server(root) == {"stopped": False, "pid": None, "stale": None}


def test_a_recorded_pid_now_used_by_another_process_is_never_signalled(tmp_path):
    runtime = tmp_path / F.RUNTIME
    runtime.mkdir()
    me = os.getpid()
    (runtime / S.RECORD).write_text(json.dumps({"pid": me, "start_time": S.proc_start_time(me) + 1}))
    sent = []
    out = F.stop_server(str(tmp_path), kill=lambda pid, sig: sent.append((pid, sig)))
    assert sent == [] and out["stopped"] is False and "was not signalled" in out["stale"]
    assert not runtime.exists()


def test_a_server_that_cannot_listen_names_the_port_and_who_holds_it(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        with pytest.raises(F.FanoutError) as exc:
            F.start_server(write_tree(tmp_path / "seed"), MANIFEST, TOKEN, "127.0.0.1", port, 2, 60, "model", "gpu01")
    assert str(exc.value).startswith("Host gpu01: the model fan-out server could not listen on http://127.0.0.1:%d: "
                                     "port %d is taken: " % (port, port))
    assert "pid %d" % os.getpid() in str(exc.value) and "set sglang_fanout_port to a free one" in str(exc.value)
    assert F.CONFIG not in os.listdir(tmp_path / "seed" / F.RUNTIME)


def test_check_holds_and_an_address_that_is_not_this_hosts_is_refused(tmp_path):
    root = write_tree(tmp_path / "seed")
    out = F.check(root, MANIFEST, "model", "gpu01", "127.0.0.1", 30080, False)
    assert out["holds"] and out["result"]["status"] == "held" and out["need_bytes"] == 0
    out = F.check(str(tmp_path / "empty"), MANIFEST, "model", "gpu02", "127.0.0.1", 30080, False)
    assert not out["holds"] and out["result"]["status"] == "failed" and len(out["missing"]) == 3
    assert not (tmp_path / "empty").exists()
    with pytest.raises(F.FanoutError, match="^Host gpu01: sglang_fanout_address 192.0.2.7 is not an address of this host"):
        F.check(root, MANIFEST, "model", "gpu01", "192.0.2.7", 30080, False)


@pytest.mark.parametrize("path", [F.RUNTIME + "/x", F.RUNTIME])
def test_a_manifest_may_not_reach_into_the_runtime_directory(path):
    with pytest.raises(F.FanoutError, match="inside the fan-out's own runtime directory"):
        F.check_manifest(M.build("r", "x", [{"path": path, "size": 1, "sha256": "0" * 64, "git_sha1": None}]), "model")


def test_range_parsing():
    assert S.parse_range(None, 10) is None
    assert S.parse_range("bytes=3-", 10) == (3, 9) and S.parse_range("bytes=3-100", 10) == (3, 9)
    for bad in ("bytes=10-", "bytes=a-", "items=1-", "bytes=1-2,4-5", "bytes=5-2"):
        with pytest.raises(ValueError):
            S.parse_range(bad, 10)


def test_sigterm_stops_the_server(tmp_path, serve):
    port, started = serve(write_tree(tmp_path / "seed"))
    os.kill(started["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 5
    while listening(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not listening(port)
