"""sglang_fanout: the real main() for each state, on a temporary directory and a loopback server."""
import hashlib
import json
import os
import socket
from unittest import mock

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _fanout_host as F
from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _manifest as M
from ansible_collections.sglang_rocm.fleet.plugins.modules import sglang_fanout

DATA = b"weights" * 1000
MANIFEST = M.build("org/m", "a" * 40, [{"path": "w.bin", "size": len(DATA),
                                        "sha256": hashlib.sha256(DATA).hexdigest(), "git_sha1": None}])
TOKEN = "module-test-token"


def run(args, check_mode=False):
    args = dict(args, _ansible_check_mode=check_mode)
    with patch_module_args(args), mock.patch("sys.stdout.write") as out, pytest.raises(SystemExit) as exc:
        sglang_fanout.main()
    result = json.loads("".join(call.args[0] for call in out.call_args_list))
    result["_rc"] = exc.value.code
    return result


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(name="seed")
def fixture_seed(tmp_path):
    root = tmp_path / "seed"
    root.mkdir()
    (root / "w.bin").write_bytes(DATA)
    yield str(root)
    F.stop_server(str(root))


def test_checked_serving_fetched_stopped_through_main(tmp_path, seed):
    checked = run({"state": "checked", "name": "model", "dir": seed, "manifest": MANIFEST, "host": "gpu01",
                   "address": "127.0.0.1"})
    assert checked["_rc"] == 0 and checked["holds"] and not checked["changed"]
    assert checked["result"] == {"name": "model", "status": "held", "sources": [], "bytes": 0,
                                 "seconds": checked["result"]["seconds"], "error": None}
    assert os.path.isfile(os.path.join(seed, M.STAMP))  # the check wrote the stamp the server reads
    port = free_port()
    served = run({"state": "serving", "name": "model", "dir": seed, "manifest": MANIFEST, "host": "gpu01",
                  "address": "127.0.0.1", "port": port, "token": TOKEN, "timeout": 60})
    assert served["_rc"] == 0 and served["changed"] and served["url"] == "http://127.0.0.1:%d" % port
    assert TOKEN not in json.dumps(served)
    args = {"state": "fetched", "name": "model", "dir": str(tmp_path / "recv"), "manifest": MANIFEST, "host": "gpu02",
            "token": TOKEN, "sources": [{"host": "gpu01", "address": "127.0.0.1", "port": port}]}
    fetched = run(args)
    assert fetched["_rc"] == 0 and fetched["changed"] and fetched["result"]["status"] == "received"
    assert fetched["invocation"]["module_args"]["token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    again = run(args)
    assert again["_rc"] == 0 and not again["changed"] and again["result"]["status"] == "held"
    stopped = run({"state": "stopped", "dir": seed})
    assert stopped["_rc"] == 0 and stopped["changed"] and stopped["pid"] == served["pid"]
    assert not run({"state": "stopped", "dir": seed})["changed"]


def test_a_failed_fetch_fails_the_module_with_the_hosts_result(tmp_path):
    result = run({"state": "fetched", "name": "image", "dir": str(tmp_path / "recv"), "manifest": MANIFEST,
                  "host": "gpu03", "token": TOKEN, "retries": 0, "timeout": 5,
                  "sources": [{"host": "gpu01", "address": "127.0.0.1", "port": free_port()}]})
    assert result["_rc"] == 1 and result["result"]["status"] == "failed"
    assert result["msg"] == result["result"]["error"] == (
        "Host gpu03: every source failed for w.bin (sglang_fanout_retries=0): gpu01: no answer to /status: "
        "connection refused (port closed)")


def test_check_mode_starts_nothing_and_fetches_nothing(tmp_path, seed):
    port = free_port()
    served = run({"state": "serving", "dir": seed, "manifest": MANIFEST, "address": "127.0.0.1", "port": port,
                  "token": TOKEN}, check_mode=True)
    assert served["_rc"] == 0 and served["changed"] and served["pid"] is None
    assert not os.path.exists(os.path.join(seed, F.RUNTIME))
    fetched = run({"state": "fetched", "dir": str(tmp_path / "recv"), "manifest": MANIFEST, "token": TOKEN,
                   "sources": [{"host": "gpu01", "address": "127.0.0.1", "port": port}]}, check_mode=True)
    assert fetched["_rc"] == 0 and fetched["changed"]
    assert fetched["result"]["would_fetch"] == [{"path": "w.bin", "size": len(DATA)}]
    assert not (tmp_path / "recv").exists()


@pytest.mark.parametrize("option,value,message", [
    ("port", 0, "sglang_fanout_port must be between 1 and 65535, got 0"),
    ("degree", 0, "sglang_fanout_degree must be at least 1, got 0"),
    ("retries", -1, "sglang_fanout_retries must be at least 0, got -1"),
    ("timeout", 0, "sglang_fanout_timeout must be at least 1, got 0"),
])
def test_numbers_out_of_range_are_refused_naming_the_variable(tmp_path, option, value, message):
    result = run({"state": "checked", "dir": str(tmp_path), "manifest": MANIFEST, "address": "127.0.0.1",
                  "host": "gpu01", option: value})
    assert result["_rc"] == 1 and result["msg"] == "Host gpu01: " + message


def test_a_manifest_path_that_leaves_the_directory_is_refused(tmp_path):
    bad = {"files": [{"path": "../etc/passwd", "size": 1, "sha256": "0" * 64}]}
    result = run({"state": "checked", "dir": str(tmp_path), "manifest": bad, "address": "127.0.0.1", "host": "gpu01"})
    assert result["_rc"] == 1 and result["msg"].startswith("Host gpu01: file name '../etc/passwd' would leave")
