"""Helpers for the stand-in server's unit tests: launch it on 127.0.0.1, talk HTTP.

The server runs as a subprocess of this interpreter (the controller venv, which
needs aiohttp), in its own session so a test can always clean up its whole
process group. Knob values are small so every test takes well under a second.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

SERVER_DIR = Path(__file__).resolve().parents[2] / "standin" / "server"
sys.path.insert(0, str(SERVER_DIR))

FAST = {"STANDIN_LOAD_SECONDS": "0.1", "STANDIN_WARMUP_SECONDS": "0.1", "STANDIN_TTFT_MS": "5",
        "STANDIN_TPOT_MS": "1", "STANDIN_DRAIN_POLL_SECONDS": "0.05"}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout=15.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")


class Server:
    """One stand-in process; `log` is everything it wrote to stdout and stderr."""

    def __init__(self, proc, port, log_path):
        self.proc, self.port, self.log_path = proc, port, log_path
        self.base = f"http://127.0.0.1:{port}"

    @property
    def log(self):
        return self.log_path.read_text(errors="replace")

    def request(self, method, path, body=None, headers=None, timeout=10):
        """Return (status, headers, body bytes); HTTP errors are results, not exceptions."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", **(headers or {})} if data else (headers or {})
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def health(self):
        """Status of GET /health, or None while the port is closed."""
        try:
            return self.get("/health", timeout=2)[0]
        except (urllib.error.URLError, ConnectionError):
            return None

    def wait_ready(self, timeout=15.0):
        wait_for(lambda: self.health() == 200 or self.proc.poll() is not None, timeout)
        assert self.proc.poll() is None, f"server exited {self.proc.returncode}:\n{self.log}"

    def wait_exit(self, timeout=15.0):
        return wait_for(lambda: self.proc.poll() is not None, timeout) and self.proc.returncode

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def group_members(pgid):
    """{pid: argv[0]} of the live processes of a process group."""
    members = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                argv0 = cmdline.read().split(b"\0")[0].decode()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members[int(entry)] = argv0
    return members


def sse_events(raw):
    """The `data:` payloads of an event stream, in order, `[DONE]` kept as a string."""
    events = []
    for line in raw.decode().splitlines():
        if line.startswith("data: "):
            payload = line[len("data: "):]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def make_devices(root, render_nodes=4, kfd=True):
    """Fake /dev/kfd and /dev/dri/renderD128..: the stand-in only checks they exist."""
    (root / "dri").mkdir(parents=True, exist_ok=True)
    if kfd:
        (root / "kfd").touch()
    for i in range(render_nodes):
        (root / "dri" / f"renderD{128 + i}").touch()
    (root / "dri" / "card0").touch()  # not a render node: must not count
    return {"STANDIN_KFD_PATH": str(root / "kfd"), "STANDIN_DRI_DIR": str(root / "dri")}


def start_server(workdir, *args, env=None, port=None, model="/models/standin", wait=True,
                 render_nodes=4):
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    full_env = {**os.environ, **FAST, **make_devices(workdir / "dev", render_nodes),
                "PYTHONPATH": str(SERVER_DIR), **(env or {})}
    argv = [sys.executable, "-m", "standin_server", "--model-path", model, "--port", str(port), *args]
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Server(proc, port, log_path)
    if wait:
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
    return server
