# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""The transient file server of a fan-out: it runs detached on a host, stdlib only.

The sglang_fanout module (``state: serving``) copies this file and ``_manifest.py`` into the
transfer's private runtime directory and starts ``python3 fanout_server.py CONFIG`` in a new
session. CONFIG (0600) holds the token, the directory, the manifest, the address and port, the
number of transfers served at once and the deadline; the server reads it and deletes it, so the
token lives only in the server's memory, never in an argv, an environment or a log.

What it answers, only to a request carrying ``Authorization: Bearer <token>`` (any other request
gets 403 and an empty body, whatever its path):
  GET /status            {"name", "verified": [paths it holds verified], "busy", "slots"}
  GET|HEAD /files/<path> a file of the manifest that this host holds verified, with Range
                         support (206); 404 for anything else; 503 when ``slots`` transfers
                         are already running (the fetcher tries another source or waits).
"Verified" is the manifest's stamp: a file counts when its size, mtime and inode are those
recorded when it last matched its hash. Nothing outside the manifest is ever opened, and no
path is built from the request except by looking it up in the manifest.

After binding it writes ``server.json`` (pid, start time, address, port, deadline); it exits by
itself at the deadline, or on SIGTERM.
"""

from __future__ import annotations

import hmac
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

try:
    from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _manifest as M
except ImportError:  # the detached copy runs next to its own copy of _manifest.py
    import _manifest as M  # type: ignore[no-redef]

RECORD = "server.json"
CHUNK = 1024 * 1024
IDLE_TIMEOUT = 60  # seconds a connection may stay silent before the server drops it


def proc_start_time(pid, proc="/proc"):
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot), or None."""
    try:
        with open("%s/%d/stat" % (proc, pid)) as handle:
            data = handle.read()
    except (OSError, ValueError):
        return None
    return int(data[data.rindex(")") + 2:].split()[19])


def parse_range(header, size):
    """(start, end) inclusive for ``bytes=N-`` or ``bytes=N-M``; None for no range; ValueError
    when it cannot be satisfied."""
    if not header:
        return None
    unit, _sep, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        raise ValueError("only one byte range is served")
    first, _dash, last = spec.strip().partition("-")
    if not first.isdigit() or (last and not last.isdigit()):
        raise ValueError("malformed range %r" % header)
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError("range %r outside a file of %d bytes" % (header, size))
    return start, end


class Holdings:
    """The manifest's files this host holds verified, read from the stamp on every question (a
    receiver's fetcher adds to the stamp while the server runs)."""

    def __init__(self, root, manifest):
        self.root = root
        self.manifest = manifest
        self.entries = {entry["path"]: entry for entry in manifest["files"]}

    def verified(self, path):
        entry = self.entries.get(path)
        if entry is None:
            return None
        remembered = M.read_stamp(self.root)["files"].get(path)
        full = os.path.join(self.root, path)
        try:
            if remembered and not os.path.islink(full) and remembered == M.stamp_entry(full, entry):
                return entry
        except OSError:
            pass
        return None

    def listing(self):
        stamp = M.read_stamp(self.root)["files"]
        held = []
        for path, entry in self.entries.items():
            full = os.path.join(self.root, path)
            try:
                if path in stamp and not os.path.islink(full) and stamp[path] == M.stamp_entry(full, entry):
                    held.append(path)
            except OSError:
                continue
        return sorted(held)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    server_version = "sglang-fanout"
    sys_version = ""

    def _authorized(self):
        expected = "Bearer " + self.server.token
        given = self.headers.get("Authorization") or ""
        return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))

    def _reply(self, status, body=b"", content_type="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self):
        self._reply(403)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if not self._authorized():
            return self._refuse()
        if self.path == "/status":
            body = json.dumps({"name": self.server.name, "verified": self.server.holdings.listing(),
                               "busy": self.server.busy, "slots": self.server.slots}).encode()
            return self._reply(200, body)
        if not self.path.startswith("/files/"):
            return self._reply(404)
        entry = self.server.holdings.verified(unquote(self.path[len("/files/"):]))
        if entry is None:
            return self._reply(404)
        if not self.server.take_slot():
            return self._reply(503, headers=[("Retry-After", "1")])
        try:
            self._send_file(entry)
        finally:
            self.server.give_slot()

    do_HEAD = do_GET

    def do_POST(self):  # noqa: N802
        if not self._authorized():
            return self._refuse()
        self._reply(405)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST

    def _send_file(self, entry):
        path = os.path.join(self.server.root, entry["path"])
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            try:
                span = parse_range(self.headers.get("Range"), size)
            except ValueError:
                return self._reply(416, headers=[("Content-Range", "bytes */%d" % size)])
            start, end = span if span else (0, size - 1)
            length = max(0, end - start + 1)
            self.send_response(206 if span else 200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            if span:
                self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
            self.end_headers()
            if self.command == "HEAD":
                return None
            handle.seek(start)
            left = length
            while left > 0:
                block = handle.read(min(CHUNK, left))
                if not block:
                    break
                self.wfile.write(block)
                left -= len(block)
        return None

    def log_message(self, fmt, *args):
        # the request line and status only: the token travels in a header, which is never logged
        sys.stderr.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), fmt % args))


class FanoutServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, config):
        self.address_family = socket.AF_INET6 if ":" in config["address"] else socket.AF_INET
        super().__init__((config["address"], int(config["port"])), Handler)
        self.token = config["token"]
        self.name = config.get("name", "transfer")
        self.root = config["dir"]
        self.holdings = Holdings(self.root, config["manifest"])
        self.slots = int(config.get("slots", 2))
        self.busy = 0
        self._lock = threading.Lock()

    def take_slot(self):
        with self._lock:
            if self.busy >= self.slots:
                return False
            self.busy += 1
            return True

    def give_slot(self):
        with self._lock:
            self.busy -= 1


def write_record(path, record):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle, sort_keys=True)
    os.replace(tmp, path)


def serve(config_path):
    """Read and delete the config, bind, record, serve until the deadline or SIGTERM."""
    with open(config_path) as handle:
        config = json.load(handle)
    os.unlink(config_path)
    runtime = os.path.dirname(os.path.abspath(config_path))
    server = FanoutServer(config)
    pid = os.getpid()
    write_record(os.path.join(runtime, RECORD), {
        "pid": pid, "start_time": proc_start_time(pid), "address": config["address"],
        "port": int(config["port"]), "deadline": config["deadline"], "name": server.name})
    stop = threading.Event()

    def shutdown(*_args):
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    timer = threading.Timer(max(0.0, float(config["deadline"]) - time.time()), shutdown)
    timer.daemon = True
    timer.start()
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        timer.cancel()
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(serve(sys.argv[1]))
