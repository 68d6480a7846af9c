"""_http.request against real sockets on loopback: what the probe loop sees in each case."""

import http.server
import socket
import threading

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _http


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        code = {"/health": 503, "/ok": 200}.get(self.path, 404)
        body = b'{"auth": "%s"}' % (self.headers.get("Authorization") or "").encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass


@pytest.fixture(name="server")
def fixture_server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_statuses_and_bodies_never_raise(server, monkeypatch):
    # a proxy in the environment must not capture probes of this host
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:%d" % free_port())
    ok = _http.request(server + "/ok", headers={"Authorization": "Bearer k"}, timeout=5)
    assert (ok.status, ok.body, ok.error, ok.ok) == (200, b'{"auth": "Bearer k"}', None, True)
    starting = _http.request(server + "/health", timeout=5)
    assert (starting.status, starting.error, starting.ok) == (503, None, False)
    assert ok.connected and starting.connected


def test_closed_port_is_connection_refused():
    result = _http.request("http://127.0.0.1:%d/health" % free_port(), timeout=5)
    assert (result.status, result.error) == (None, "connection refused (port closed)")
    assert result.connected is False


def test_a_silent_server_times_out_within_the_given_time():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        result = _http.request("http://127.0.0.1:%d/health" % listener.getsockname()[1], timeout=0.2)
    assert (result.status, result.error) == (None, "no answer within 0.2s")
    # the port accepted the connection: only the answer is missing
    assert result.connected is True
