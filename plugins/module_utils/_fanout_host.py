# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""One host's side of a fan-out (the sglang_fanout module): check, serve, fetch, stop.

Everything a transfer keeps on the host lives in ``<dir>/.sglang-fanout/`` (0700): the server's
record, its code and log while it runs, and ``partial/`` (files being received, under a name
derived from their path). A file reaches its final name only after it matched its hash, by a
rename in the same filesystem, so no half file is ever under the final name; the manifest's
stamp records it at once, which is what the server reads to offer it to others.
"""

from __future__ import annotations

import errno
import hashlib
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import quote

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _fanout_server
from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _http
from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _manifest as M
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._agent_server import is_alive, read_json, remove
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._server import describe_owner, find_port_owners

RUNTIME = ".sglang-fanout"
PARTIAL = "partial"
SERVER_CODE = "fanout_server.py"
CONFIG = "config.json"
LOG = "server.log"
STATUSES = ("held", "received", "failed")


class FanoutError(Exception):
    """The host cannot take part as asked; the message names the host and the fix."""


class DiskFull(FanoutError):
    """No room for what must be received: retrying elsewhere cannot help."""


def runtime_dir(root):
    return os.path.join(root, RUNTIME)


def result(name, status, sources=(), received=0, seconds=0.0, error=None, **extra):
    """The per-host record of a transfer (the fact sglang_fanout_result)."""
    if status not in STATUSES:
        raise ValueError("status %r is not one of %s" % (status, ", ".join(STATUSES)))
    return dict({"name": name, "status": status, "sources": list(sources), "bytes": received,
                 "seconds": round(seconds, 3), "error": error}, **extra)


def check_manifest(manifest, name):
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise FanoutError("sglang_fanout_manifest of %s is not a manifest (a dict with a files "
                          "list, as _manifest.py builds it)" % name)
    for entry in manifest["files"]:
        path = M.safe_relpath(entry.get("path"))
        if path == RUNTIME or path.startswith(RUNTIME + "/"):
            raise FanoutError("%s: the manifest lists %s, inside the fan-out's own runtime directory"
                              % (name, path))
        if not (entry.get("sha256") or entry.get("git_sha1")):
            raise FanoutError("%s: %s has no hash in the manifest; it cannot be verified" % (name, path))
    return manifest


def free_bytes(path, statvfs=os.statvfs):
    """Bytes an unprivileged writer may still use on the filesystem of ``path`` (or of its
    nearest existing parent)."""
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    info = statvfs(path or "/")
    return info.f_bavail * info.f_frsize


def describe_bytes(count):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return ("%d %s" % (count, unit)) if unit == "B" else ("%.1f %s" % (count, unit))
        count /= 1024.0
    return str(count)


# --------------------------------------------------------------------------- checked


def bindable(address):
    """None when this host can bind ``address`` (it is one of its own), else why not."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
    except (OSError, UnicodeError) as exc:
        return getattr(exc, "strerror", None) or str(exc)
    return None


def check(root, manifest, name, host, address, port, check_mode):
    """Does this host hold a verified copy? Refreshes the stamp (bookkeeping, not a change)."""
    check_manifest(manifest, name)
    if not address:
        raise FanoutError("Host %s: no address for the %s fan-out; set sglang_fanout_address (or "
                          "ansible_host) to the address the other hosts reach this one at" % (host, name))
    problem = bindable(address)
    if problem:
        raise FanoutError("Host %s: sglang_fanout_address %s is not an address of this host (%s); set "
                          "it to one of the host's own addresses, the one the other hosts reach"
                          % (host, address, problem))
    started = time.monotonic()
    tree = M.check_tree(root, manifest)
    if not check_mode and (tree["stamp"] or os.path.exists(os.path.join(root, M.STAMP))):
        M.write_stamp(root, manifest, tree["stamp"])
    holds = not tree["missing"] and not tree["bad"]
    need = M.total_bytes(manifest) - tree["ok_bytes"]
    seconds = time.monotonic() - started
    if holds:
        record = result(name, "held", seconds=seconds)
    else:
        # what the host's result stays if it is not sent anything (the fetch overwrites it)
        record = result(name, "failed", seconds=seconds,
                        error="Host %s did not receive %s: %d of %d files missing or bad and the "
                              "transfer did not complete" % (host, name, len(tree["missing"]) + len(tree["bad"]),
                                                             len(manifest["files"])))
    return {"changed": False, "name": name, "holds": holds, "missing": tree["missing"], "bad": tree["bad"],
            "ok_bytes": tree["ok_bytes"], "need_bytes": need, "address": address, "port": port,
            "result": record}


# --------------------------------------------------------------------------- serving / stopped


def _mkdir(path, mode):
    os.makedirs(path, mode=mode, exist_ok=True)
    os.chmod(path, mode)


def _write_private(path, text):
    remove(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def stop_server(root, wait=5.0, kill=os.kill, sleep=time.sleep):
    """Stop the server recorded for ``root``, only if the recorded pid is still that process (same
    start time). Returns {"stopped": bool, "pid", "stale": reason or None}; removes the record."""
    runtime = runtime_dir(root)
    record = read_json(os.path.join(runtime, _fanout_server.RECORD)) or {}
    pid, start = record.get("pid"), record.get("start_time")
    out = {"stopped": False, "pid": pid, "stale": None}
    if pid and start is not None and is_alive(pid, start):
        kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait
        while is_alive(pid, start) and time.monotonic() < deadline:
            sleep(0.05)
        if is_alive(pid, start):
            kill(pid, signal.SIGKILL)
        out["stopped"] = True
    elif pid:
        out["stale"] = ("the recorded server (pid %s) is gone; the pid was not signalled, as it may "
                        "now belong to another process" % pid)
    for name in (_fanout_server.RECORD, SERVER_CODE, "_manifest.py", CONFIG, LOG):
        remove(os.path.join(runtime, name))
    try:
        os.rmdir(runtime)  # only when nothing is left (a partial download is kept for resuming)
    except OSError:
        pass
    return out


def start_server(root, manifest, token, address, port, slots, lifetime, name, host,
                 check_mode=False, wait=10.0, sleep=time.sleep):
    """Start the detached server of ``root``; returns what the module reports."""
    check_manifest(manifest, name)
    if not token:
        raise FanoutError("Host %s: no token for the %s fan-out server (the fanout_plan action "
                          "draws one per transfer)" % (host, name))
    url = url_of(address, port)
    if check_mode:
        return {"changed": True, "url": url, "pid": None}
    previous = stop_server(root)
    runtime = runtime_dir(root)
    _mkdir(runtime, 0o700)
    code = os.path.join(runtime, SERVER_CODE)
    _write_private(code, inspect.getsource(_fanout_server))
    _write_private(os.path.join(runtime, "_manifest.py"), inspect.getsource(M))
    config = os.path.join(runtime, CONFIG)
    deadline = time.time() + lifetime
    _write_private(config, json.dumps({"token": token, "dir": os.path.abspath(root), "manifest": manifest,
                                       "address": address, "port": port, "slots": slots,
                                       "deadline": deadline, "name": name}))
    log_path = os.path.join(runtime, LOG)
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen([sys.executable, "-B", code, config], cwd=runtime, stdin=devnull, stdout=log,
                                stderr=log, close_fds=True, start_new_session=True)
    record_path = os.path.join(runtime, _fanout_server.RECORD)
    give_up = time.monotonic() + wait
    while time.monotonic() < give_up:
        record = read_json(record_path)
        if record and record.get("pid") == proc.pid:
            return {"changed": True, "url": url, "pid": proc.pid, "start_time": record.get("start_time"),
                    "deadline": deadline, "replaced": previous if previous["stopped"] else None}
        if proc.poll() is not None:
            break
        sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    remove(config)
    with open(log_path, "rb") as handle:
        tail = handle.read()[-2000:].decode("utf-8", "replace").strip()
    why = tail.splitlines()[-1] if tail else "no output"
    if "Address already in use" in tail:
        owners, _problems = find_port_owners(port, address)
        why = "port %d is taken: %s" % (port, "; ".join(describe_owner(o) for o in owners) or "by another process")
        raise FanoutError("Host %s: the %s fan-out server could not listen on %s: %s. Free the port or "
                          "set sglang_fanout_port to a free one" % (host, name, url, why))
    raise FanoutError("Host %s: the %s fan-out server did not start on %s: %s" % (host, name, url, why))


# --------------------------------------------------------------------------- fetched


def url_of(address, port):
    """The base URL of a fan-out server."""
    return "http://%s:%d" % ("[%s]" % address if ":" in address else address, int(port))


class Source:
    def __init__(self, host, address, port):
        self.host = host
        self.url = url_of(address, port)
        self.failures = 0
        self.errors = []

    def fail(self, reason):
        self.failures += 1
        self.errors.append(reason)

    def describe(self):
        return "%s: %s" % (self.host, self.errors[-1] if self.errors else "never had the file")


class Fetcher:
    """Fetch every missing or bad file of ``manifest`` into ``root`` from ``sources`` (ordered).

    Each file comes from the first source that holds it verified and has a free slot; while no
    source holds it yet, the fetcher waits (sources still receiving it). A source that does not
    answer, cuts a transfer or sends bytes that do not match the hash fails once; after
    ``retries`` + 1 failures it is not asked again. A partial file is resumed with Range from
    whichever source comes next. Everything ends at ``timeout`` seconds.
    """

    def __init__(self, root, manifest, sources, token, name="transfer", host="", retries=3, timeout=3600,
                 stall_timeout=30, private=False, clock=time.monotonic, sleep=time.sleep, http=_http,
                 statvfs=os.statvfs, poll=0.5, max_poll=5.0):
        self.root = root
        self.manifest = check_manifest(manifest, name)
        self.sources = [Source(s["host"], s["address"], s["port"]) for s in sources]
        self.headers = {"Authorization": "Bearer %s" % token}
        self.name = name
        self.host = host or socket.gethostname()
        self.retries = retries
        self.timeout = timeout
        self.stall_timeout = stall_timeout
        self.file_mode, self.dir_mode = (0o600, 0o700) if private else (0o644, 0o755)
        self.clock = clock
        self.sleep = sleep
        self.http = http
        self.statvfs = statvfs
        self.poll = poll
        self.max_poll = max_poll
        self.started = None
        self.deadline = None
        self.used = []
        self.received = 0
        self.stamp = {}

    # ---- helpers
    def left(self):
        return self.deadline - self.clock()

    def partial_path(self, entry):
        key = hashlib.sha256(entry["path"].encode("utf-8")).hexdigest()[:32]
        return os.path.join(runtime_dir(self.root), PARTIAL, key + ".part")

    def final_path(self, entry):
        final = os.path.join(self.root, entry["path"])
        parent = os.path.realpath(os.path.dirname(final))
        if parent != os.path.realpath(self.root) and not parent.startswith(os.path.realpath(self.root) + os.sep):
            raise FanoutError("Host %s: %s would be written outside %s (a symlink in its path); remove the "
                              "symlink" % (self.host, entry["path"], self.root))
        return final

    def outcome(self, status, error=None, would=None):
        extra = {"would_fetch": would} if would is not None else {}
        extra["failures"] = {s.host: s.errors for s in self.sources if s.errors}
        return result(self.name, status, sources=list(dict.fromkeys(self.used)), received=self.received,
                      seconds=self.clock() - self.started, error=error, **extra)

    def fail(self, message):
        return self.outcome("failed", "Host %s: %s" % (self.host, message))

    # ---- the run
    def run(self, check_mode=False):
        self.started = self.clock()
        self.deadline = self.started + self.timeout
        tree = M.check_tree(self.root, self.manifest)
        self.stamp = dict(tree["stamp"])
        todo = [e for e in self.manifest["files"] if e["path"] not in set(tree["ok"])]
        if not todo:
            if not check_mode and os.path.isdir(self.root):
                M.write_stamp(self.root, self.manifest, self.stamp)
            return self.outcome("held"), False
        if check_mode:
            would = [{"path": e["path"], "size": e["size"]} for e in todo]
            self.received = sum(e["size"] for e in todo)
            return self.outcome("received", would=would), True
        if not self.sources:
            return self.fail("no host holds a verified copy of %s to fetch it from (%d files missing or bad)"
                             % (self.name, len(todo))), False
        try:
            self.check_space(todo)
            if not os.path.isdir(self.root):
                _mkdir(self.root, self.dir_mode)
            os.makedirs(os.path.join(runtime_dir(self.root), PARTIAL), mode=0o700, exist_ok=True)
            os.chmod(runtime_dir(self.root), 0o700)
            M.write_stamp(self.root, self.manifest, self.stamp)
            for entry in todo:
                self.fetch(entry)
        except FanoutError as exc:
            return self.fail(str(exc)), bool(self.received)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return self.fail(self.disk_full_message(exc)), bool(self.received)
            return self.fail("cannot write into %s: %s" % (self.root, exc)), bool(self.received)
        try:
            os.rmdir(os.path.join(runtime_dir(self.root), PARTIAL))
            os.rmdir(runtime_dir(self.root))
        except OSError:
            pass  # a running server's files are still there; it removes them when stopped
        return self.outcome("received"), True

    def check_space(self, todo):
        need = 0
        for entry in todo:
            try:
                have = os.path.getsize(self.partial_path(entry))
            except OSError:
                have = 0
            need += entry["size"] - (have if have <= entry["size"] else 0)
        free = free_bytes(self.root, self.statvfs)
        if free < need:
            raise DiskFull("disk full: %s needs %s more for %d file%s but only %s are free on the "
                           "filesystem of %s; free space there (or point the directory elsewhere) and "
                           "run again" % (self.name, describe_bytes(need), len(todo), "" if len(todo) == 1 else "s",
                                          describe_bytes(free), self.root))

    def disk_full_message(self, exc):
        return ("disk full writing %s into %s (%s, %s free); free space there and run again: the "
                "partial file is kept and the next run resumes it"
                % (self.name, self.root, exc.strerror, describe_bytes(free_bytes(self.root, self.statvfs))))

    def fetch(self, entry):
        wait = self.poll
        while True:
            if self.left() <= 0:
                raise FanoutError("%s not received within sglang_fanout_timeout (%ss); the sources: %s"
                                  % (entry["path"], self.timeout, "; ".join(s.describe() for s in self.sources)))
            live = [s for s in self.sources if s.failures <= self.retries]
            if not live:
                raise FanoutError("every source failed for %s (sglang_fanout_retries=%d): %s"
                                  % (entry["path"], self.retries, "; ".join(s.describe() for s in self.sources)))
            source = self.pick(live, entry)
            if source is None:
                self.sleep(max(0.0, min(wait, self.left())))
                wait = min(wait * 1.5, self.max_poll)
                continue
            done = self.download(source, entry)
            if done == "ok":
                self.used.append(source.host)
                return
            if done == "busy":
                self.sleep(max(0.0, min(self.poll, self.left())))
            wait = self.poll

    def pick(self, live, entry):
        """The first live source that holds ``entry`` verified and has a free slot."""
        for source in live:
            answer = self.http.request(source.url + "/status", headers=self.headers,
                                       timeout=max(0.1, min(self.stall_timeout, self.left())))
            if answer.status == 403:
                source.failures = self.retries + 1
                source.errors.append("refused the transfer's token (403)")
                continue
            if not answer.ok:
                source.fail("no answer to /status: %s" % (answer.error or "HTTP %s" % answer.status))
                continue
            try:
                status = json.loads(answer.body.decode("utf-8"))
                held = set(status["verified"])
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                source.fail("its /status is not the fan-out server's answer")
                continue
            if entry["path"] in held and status.get("busy", 0) < status.get("slots", 1):
                return source
        return None

    def download(self, source, entry):
        """"ok" once the file is in place, verified; "busy" when the source cannot serve it now;
        "failed" when it failed (counted against it)."""
        partial = self.partial_path(entry)
        final = self.final_path(entry)
        try:
            offset = os.path.getsize(partial)
        except OSError:
            offset = 0
        if offset > entry["size"]:
            remove(partial)
            offset = 0
        state = {"file": None, "offset": offset}

        def start(answer):
            if answer.status == 206 and state["offset"]:
                first = (answer.headers.get("Content-Range") or "").replace("bytes ", "").split("-")[0]
                if first != str(state["offset"]):
                    return False
                state["file"] = open(partial, "ab")
            elif answer.status == 200:
                state["offset"] = 0
                state["file"] = open(partial, "wb")
            else:
                return False
            os.chmod(partial, 0o600)
            return True

        def sink(block):
            state["file"].write(block)

        headers = dict(self.headers)
        if offset and offset < entry["size"]:
            headers["Range"] = "bytes=%d-" % offset
        if offset < entry["size"] or entry["size"] == 0:
            url = "%s/files/%s" % (source.url, quote(entry["path"], safe="/"))
            try:
                answer, count = self.http.stream(url, sink,
                                                 timeout=max(0.1, min(self.stall_timeout, self.left())),
                                                 headers=headers, start=start)
            finally:
                if state["file"] is not None:
                    state["file"].close()
            self.received += count
            if answer.status in (503, 404):
                return "busy"  # all its slots taken, or no longer offered: not the source's fault
            if answer.status == 403:
                source.failures = self.retries + 1
                source.errors.append("refused the transfer's token (403)")
                return "failed"
            if answer.status == 416:
                remove(partial)
            if answer.error or answer.status not in (200, 206) or state["file"] is None:
                source.fail("%s: %s after %d bytes" % (entry["path"], answer.error or "HTTP %s" % answer.status, count))
                return "failed"
            if state["offset"] + count != entry["size"]:
                source.fail("%s: the transfer ended after %d of %d bytes"
                            % (entry["path"], state["offset"] + count, entry["size"]))
                return "failed"
        reason = M.verify_file(partial, entry)
        if reason:
            remove(partial)
            source.fail("sent %s with %s; refused" % (entry["path"], reason))
            return "failed"
        os.makedirs(os.path.dirname(final), mode=self.dir_mode, exist_ok=True)
        os.chmod(partial, self.file_mode)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, final)
        self.stamp[entry["path"]] = M.stamp_entry(final, entry)
        M.write_stamp(self.root, self.manifest, self.stamp)
        return "ok"
