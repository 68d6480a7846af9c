"""A fake Docker Engine API on a unix socket: the boundary under community.docker's client."""

import json
import os
import socketserver
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

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
