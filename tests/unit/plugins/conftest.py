"""The boundaries the plugin unit tests share: a fake Docker Engine API on a unix socket (under
community.docker's client) and a fake docker CLI at AnsibleModule.run_command, with a runner of a
module's real main()."""

import base64
import collections
import contextlib
import json
import os
import re
import socketserver
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler
from unittest import mock
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

# `make compat` runs these tests against community.docker 5.x: COMMUNITY_DOCKER_PATH names that
# collection's directory (tests/scripts/community_docker5.sh), and only it may serve
# ansible_collections.community.docker; the venv's ansible package brings 4.x, and with both on
# sys.path Python would merge the two namespace packages into one.
if os.environ.get("COMMUNITY_DOCKER_PATH"):
    _community_docker = types.ModuleType("ansible_collections.community.docker")
    _community_docker.__path__ = [os.environ["COMMUNITY_DOCKER_PATH"]]
    sys.modules[_community_docker.__name__] = _community_docker


class FakeEngine:
    """Answers /version, /containers/json, /images/json and /distribution/<ref>/json; records
    every request (path, query) and the headers of each in ``headers``."""

    api_version = "1.41"

    def __init__(self, path):
        self.path = path
        self.url = "unix://" + path
        self.requests = []
        self.containers = []
        self.images = []
        self.fail_with = None  # (status, message) for the list endpoints
        self.manifests = {}  # reference -> (status, body) for /distribution/<ref>/json
        self.headers = []

    def answer(self, path, query):
        self.requests.append((path, query))
        if path == "/version":
            return 200, {"ApiVersion": self.api_version, "Version": "26.1.5"}
        endpoint = path.split("/", 2)[-1] if path.startswith("/v") else path
        if self.fail_with and endpoint in ("containers/json", "images/json"):
            return self.fail_with[0], {"message": self.fail_with[1]}
        if endpoint == "containers/json":
            return 200, self.containers
        if endpoint == "images/json":
            return 200, self.images
        if endpoint.startswith("distribution/") and endpoint.endswith("/json"):
            reference = endpoint[len("distribution/"):-len("/json")]
            return self.manifests.get(reference, (404, {"message": "manifest unknown"}))
        return 404, {"message": "page not found"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        self.server.engine.headers.append(dict(self.headers.items()))
        status, body = self.server.engine.answer(unquote(url.path), parse_qs(url.query))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def address_string(self):
        return "unix"

    def log_message(self, *args):
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def fake_engine(tmp_path):
    # AF_UNIX paths are limited to ~107 bytes; pytest's tmp_path can be longer
    path = os.path.join("/tmp", "sf-engine-%d-%s.sock" % (os.getpid(), tmp_path.name[-20:]))
    engine = FakeEngine(path)
    server = _Server(path, _Handler)
    server.engine = engine
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield engine
    server.shutdown()
    server.server_close()
    os.unlink(path)


# ---------------------------------------------------------------- the docker CLI at run_command

AGENT_CALL = re.compile(r"\nraise SystemExit\(main\('([A-Za-z0-9+/=]+)'\)\)\n$")
Exec = collections.namedtuple("Exec", "argv payload")


class FakeDocker:
    """`docker exec` as AnsibleModule.run_command sees it: every call must carry the C locale;
    agent calls (the agent's source on stdin) are recorded with their decoded payload.

    ``answer(call)`` gives a dict (printed as the agent's last JSON line, after some noise, with
    exit status 1 when it holds an error) or an (rc, stdout, stderr) tuple as it is.
    """

    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    def run_command(self, argv, data=None, environ_update=None, **kwargs):
        assert environ_update == {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
        match = AGENT_CALL.search(data or "")
        call = Exec(list(argv), json.loads(base64.b64decode(match.group(1))) if match else None)
        self.calls.append(call)
        answer = self.answer(call)
        if isinstance(answer, tuple):
            return answer
        return (1 if "error" in answer else 0), "agent noise\n" + json.dumps(answer) + "\n", ""


def _run_main(main, module_args, docker, capsys, check_mode=False, diff=False, patches=()):
    """Run a module's real main() with ``docker`` (a FakeDocker) at run_command and binaries found
    in /usr/bin; returns the result with _rc, _raw (the printed JSON) and _warnings."""
    module_args = dict(module_args)
    if check_mode:
        module_args["_ansible_check_mode"] = True
    if diff:
        module_args["_ansible_diff"] = True
    # ansible-core 2.19 drops module warnings from the result once controller code has been
    # imported in the same process (other tests do that), so record them at the source.
    warnings = []

    def run_command(self, argv, **kwargs):
        return docker.run_command(argv, **kwargs)

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return "/usr/bin/" + name

    with contextlib.ExitStack() as stack:
        stack.enter_context(patch_module_args(module_args))
        stack.enter_context(mock.patch.object(basic.AnsibleModule, "warn", lambda self, text: warnings.append(text)))
        stack.enter_context(mock.patch.object(basic.AnsibleModule, "run_command", run_command))
        stack.enter_context(mock.patch.object(basic.AnsibleModule, "get_bin_path", get_bin_path))
        for patch in patches:
            stack.enter_context(patch)
        with pytest.raises(SystemExit) as exc:
            main()
    out = capsys.readouterr().out
    result = json.loads(out)
    result.update(_rc=exc.value.code, _raw=out, _warnings=warnings)
    return result


@pytest.fixture
def fake_docker():
    return FakeDocker


@pytest.fixture
def run_main():
    return _run_main
