# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""Agent that the sglang_server module runs INSIDE the container, as ``python3 - OP``.

The module sends this file's source on the stdin of ``docker exec -i``, followed by one line
``raise SystemExit(main("<base64 JSON payload>"))``; so the payload, which may carry the API key,
never appears in an argv, an environment or ``docker inspect``. Each operation prints exactly
one JSON object on stdout.

Operations (payload ``op``):

``status``  read-only: is the managed server alive, with which spec, what did it exit with.
``launch``  start the server detached: a supervisor process calls setsid() (so it leads a new
            session and process group), starts the server as its child with stdout/stderr piped
            through it into the log (the API key is masked on the way), records pid.json, and
            when the server exits records its exit status in rc.json. Before that it links the
            image's prebuilt AITER modules into AITER_JIT_DIR (link_prebuilt_aiter).
``stop``    SIGTERM every process of the server (its session and process group, and every
            process carrying the launch marker in its environment, which catches workers that
            left the group), wait, SIGKILL what is left, and confirm that nothing is left.

Files in the state directory (0700): pid.json, spec.json, rc.json, config.yaml (0600, only
when an API key is set; passed to the server with --config), salt (0600: a random per-container
key that never leaves it) and key.json (0600: the HMAC of the API key under that salt, so that
``status`` can tell whether the key changed while nothing derived from the key is published).
Stdlib only, Python >= 3.6.

Process ids are not trusted alone: pid.json records each process's start time (field 22 of
/proc/PID/stat) and the generation of the container it ran in (boot id, pid namespace, start
time of its PID 1). After a container restart or a reboot the recorded ids may belong to other
processes: they are then neither reported alive nor signalled, and ``stop`` says so (``stale``).
"""

import base64
import errno
import hashlib
import hmac
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import time

MARKER = "SGLANG_FLEET_SERVER_DIR"
MASK = "********"
PID_FILE = "pid.json"
RC_FILE = "rc.json"
SPEC_FILE = "spec.json"
CONFIG_FILE = "config.yaml"
SALT_FILE = "salt"
KEY_FILE = "key.json"
# the container role's secret files; env.NAME holds a secret-looking entry of sglang_container_env
SECRET_ENV_DIR = "/run/sglang-secrets"
SECRET_ENV_PREFIX = "env."


def _path(state_dir, name):
    return os.path.join(state_dir, name)


def read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def write_json(path, data, mode=0o644):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, sort_keys=True)
    os.replace(tmp, path)


def remove(path):
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def proc_stat(pid, proc="/proc"):
    """(state, ppid, pgrp, session, starttime) of a process, or None when it is gone."""
    try:
        with open("%s/%d/stat" % (proc, pid)) as handle:
            data = handle.read()
    except (OSError, ValueError):
        return None
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19])


def proc_comm(pid, proc="/proc"):
    try:
        with open("%s/%d/comm" % (proc, pid)) as handle:
            return handle.read().strip()
    except OSError:
        return "?"


def proc_has_marker(pid, marker, proc="/proc"):
    try:
        with open("%s/%d/environ" % (proc, pid), "rb") as handle:
            return marker in handle.read().split(b"\0")
    except OSError:
        return False


def generation(proc="/proc"):
    """What changes when the container restarts or the host reboots: the boot id, the pid
    namespace and the start time of PID 1 (as this process sees them)."""
    try:
        with open("%s/sys/kernel/random/boot_id" % proc) as handle:
            boot_id = handle.read().strip()
    except OSError:
        boot_id = None
    try:
        pid_ns = os.readlink("%s/self/ns/pid" % proc)
    except OSError:
        pid_ns = None
    init = proc_stat(1, proc)
    return {"boot_id": boot_id, "pid_ns": pid_ns, "init_start": init[4] if init else None}


def stale_reason(record, proc="/proc"):
    """Why the recorded process ids cannot be trusted any more, or None.

    The record is stale when the container restarted or the host rebooted since the launch
    (another generation), or when the recorded session id now leads a session that the recorded
    supervisor did not start (the kernel reuses a number only once nothing uses it as a pid,
    process group or session, so the launch's processes are all gone).
    """
    if not record:
        return None
    recorded = record.get("generation")
    if recorded:
        now = generation(proc)
        changed = [name for name in ("boot_id", "pid_ns", "init_start")
                   if recorded.get(name) is not None and now.get(name) != recorded.get(name)]
        if changed:
            return ("the container restarted (or the host rebooted) since the server was launched "
                    "(%s changed)" % ", ".join(changed))
    sid = record.get("sid")
    if sid and record.get("supervisor_start") is not None:
        leader = proc_stat(sid, proc)
        if leader is not None and leader[4] != record["supervisor_start"]:
            return ("pid %d now belongs to another process (started at tick %d, the recorded "
                    "supervisor at tick %d)" % (sid, leader[4], record["supervisor_start"]))
    return None


def is_alive(pid, starttime, proc="/proc"):
    """True when ``pid`` runs and is the process recorded (same start time), not a zombie."""
    if not pid:
        return False
    stat = proc_stat(pid, proc)
    return stat is not None and stat[0] not in ("Z", "X") and (starttime is None or stat[4] == starttime)


def members(record, state_dir, proc="/proc"):
    """Live processes of a launch: same session or group as the supervisor, or carrying the marker.
    A stale record (see stale_reason) names no session or group: only the marker counts then."""
    marker = ("%s=%s" % (MARKER, state_dir)).encode()
    trusted = record is not None and stale_reason(record, proc) is None
    sid = record.get("sid") if trusted else None
    pgid = record.get("pgid") if trusted else None
    found = []
    me = os.getpid()
    for name in os.listdir(proc):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        stat = proc_stat(pid, proc)
        if stat is None or stat[0] in ("Z", "X"):
            continue
        if (sid and stat[3] == sid) or (pgid and stat[2] == pgid) or proc_has_marker(pid, marker, proc):
            found.append(pid)
    return sorted(found)


def tail(path, lines, max_bytes=1 << 20):
    """Last ``lines`` lines of a file (decoded leniently); [] when it cannot be read."""
    if lines <= 0:
        return []
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            block = 8192
            data = b""
            while size > 0 and data.count(b"\n") <= lines and len(data) < max_bytes:
                step = min(block, size)
                size -= step
                handle.seek(size)
                data = handle.read(step) + data
    except OSError:
        return []
    text = data.decode("utf-8", "replace")
    return text.splitlines()[-lines:]


def secret_env(directory):
    """{NAME: value} of the env.NAME files in DIRECTORY (the container role's secret mount), so a
    secret-looking entry of sglang_container_env reaches the server without being container
    environment (docker inspect shows that). Unreadable or absent files are skipped."""
    env = {}
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return env
    for name in names:
        key = name[len(SECRET_ENV_PREFIX):]
        if not name.startswith(SECRET_ENV_PREFIX) or not key.replace("_", "a").isalnum():
            continue
        try:
            with open(os.path.join(directory, name), "rb") as handle:
                env[key] = handle.read().decode("utf-8", "replace")
        except OSError:
            continue
    return env


def secret_variants(secret):
    """Byte strings under which a secret may show up in a log (raw, repr and JSON escaped)."""
    if not secret:
        return []
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1]}
    return sorted((form.encode("utf-8") for form in forms if form), key=lambda form: (-len(form), form))


def scrub(data, variants):
    for variant in variants:
        data = data.replace(variant, MASK.encode())
    return data


def key_digest(state_dir, api_key, create=False):
    """HMAC-SHA256 of the API key under the container's own random salt (None without a key).
    The salt is made on first use (0600) and never leaves the state directory."""
    if not api_key:
        return None
    path = _path(state_dir, SALT_FILE)
    try:
        with open(path, "rb") as handle:
            salt = handle.read()
    except OSError:
        salt = b""
    if len(salt) < 16:
        if not create:
            return None
        salt = os.urandom(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(salt)
    return hmac.new(salt, api_key.encode("utf-8"), hashlib.sha256).hexdigest()


def key_matches(state_dir, api_key):
    """Whether ``api_key`` is the key the running server was launched with."""
    recorded = (read_json(_path(state_dir, KEY_FILE)) or {}).get("key")
    current = key_digest(state_dir, api_key)
    if recorded is None or current is None:
        return recorded is None and not api_key
    return hmac.compare_digest(recorded, current)


def link_prebuilt_aiter(env, find_spec=importlib.util.find_spec):
    """Link the AITER modules the image prebuilt into AITER_JIT_DIR; returns the names linked.

    With AITER_JIT_DIR set, AITER imports its operator modules (module_*.so) from that directory
    only and builds whatever it does not find there (aiter/jit/core.py: get_user_jit_dir,
    get_module_custom_op), while the image keeps the modules it built at install time in the
    package's own jit/ directory. A link per module, to a path inside the image (the same in
    every container of the image, and the cache directory is per image), lets AITER use them
    instead of compiling them again; a module AITER rebuilds replaces its link with a file.
    """
    target = env.get("AITER_JIT_DIR")
    if not target or not os.path.isdir(target):
        return []
    try:
        spec = find_spec("aiter")  # locates the package without importing it (or torch)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.origin:
        return []
    source = os.path.join(os.path.dirname(spec.origin), "jit")
    if not os.path.isdir(source) or os.path.realpath(source) == os.path.realpath(target):
        return []
    linked = []
    for name in sorted(os.listdir(source)):
        path = os.path.join(target, name)
        if not name.endswith(".so") or os.path.lexists(path):
            continue
        os.symlink(os.path.join(source, name), path)
        linked.append(name)
    return linked


def status(payload, proc="/proc"):
    state_dir = payload["state_dir"]
    record = read_json(_path(state_dir, PID_FILE))
    out = {"present": record is not None, "spec": read_json(_path(state_dir, SPEC_FILE)),
           "rc": read_json(_path(state_dir, RC_FILE)), "log_tail": []}
    stale = stale_reason(record, proc)
    if record is not None and stale is None:
        alive = is_alive(record.get("server"), record.get("server_start"), proc)
        supervisor = is_alive(record.get("supervisor"), record.get("supervisor_start"), proc)
        # The server just died and its supervisor is recording the exit status: give it a moment.
        deadline = time.monotonic() + 2.0
        while not alive and supervisor and out["rc"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
            out["rc"] = read_json(_path(state_dir, RC_FILE))
            supervisor = is_alive(record.get("supervisor"), record.get("supervisor_start"), proc)
        out.update(pid=record.get("server"), supervisor_pid=record.get("supervisor"),
                   pgid=record.get("pgid"), alive=alive, launched_at=record.get("launched_at"))
    elif record is not None:
        out.update(pid=record.get("server"), alive=False, launched_at=record.get("launched_at"),
                   stale="the recorded server (pid %s) is gone: %s" % (record.get("server"), stale))
        if out["rc"] is None:
            out["rc"] = {"rc": None, "error": out["stale"]}
    else:
        out["alive"] = False
    if "api_key" in payload:
        out["key_matches"] = key_matches(state_dir, payload["api_key"])
    group = members(record, state_dir, proc)
    out["members"] = [[pid, proc_comm(pid, proc)] for pid in group]
    if payload.get("log_lines") and (not out["alive"] or payload.get("always_tail")):
        out["log_tail"] = tail(payload["log_path"], int(payload["log_lines"]))
    return out


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def _supervise(payload, handshake_fd):
    """Child side of launch(): never returns (os._exit)."""
    state_dir = payload["state_dir"]
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    log_fd = os.open(payload["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.dup2(devnull, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    env = dict(os.environ)
    hidden = secret_env(payload.get("secret_env_dir") or SECRET_ENV_DIR)
    env.update(hidden)
    env.update(payload.get("env") or {})
    env[MARKER] = state_dir
    variants = secret_variants(payload.get("api_key"))
    for value in hidden.values():
        variants = sorted(set(variants) | set(secret_variants(value)), key=lambda form: (-len(form), form))
    try:
        child = subprocess.Popen(payload["argv"], stdin=devnull, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, env=env, close_fds=True)
    except OSError as exc:
        message = "cannot start %s: %s" % (payload["argv"][0], exc)
        _write_all(log_fd, ("sglang_server supervisor: %s\n" % message).encode())
        write_json(_path(state_dir, RC_FILE), {"rc": 127, "error": message, "at": time.time()})
        _write_all(handshake_fd, json.dumps({"error": message}).encode())
        os._exit(0)
    # The stop operation signals the whole session; the supervisor outlives the server so that
    # it can copy the last log lines and record the exit status.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    record = {"supervisor": os.getpid(), "supervisor_start": proc_stat(os.getpid())[4],
              "server": child.pid, "server_start": (proc_stat(child.pid) or [None] * 5)[4],
              "pgid": os.getpgrp(), "sid": os.getsid(0), "launched_at": time.time(),
              "generation": generation()}
    write_json(_path(state_dir, PID_FILE), record)
    _write_all(handshake_fd, json.dumps(record).encode())
    os.close(handshake_fd)
    _copy_output(child, log_fd, variants, state_dir)
    os._exit(0)


def _copy_output(child, log_fd, variants, state_dir):
    """Copy the server's output to the log line by line (so a secret cannot straddle two
    writes), and record the exit status as soon as the server exits, even while orphaned
    workers still hold the pipe open."""
    source = child.stdout.fileno()
    buf = {"pending": b""}

    def take(chunk):
        lines, sep, buf["pending"] = (buf["pending"] + chunk).rpartition(b"\n")
        if sep:
            _write_all(log_fd, scrub(lines + sep, variants))
        if len(buf["pending"]) > 65536:
            flush()

    def flush():
        if buf["pending"]:
            _write_all(log_fd, scrub(buf["pending"], variants))
            buf["pending"] = b""

    def read(timeout):
        """One read: True for data, False for end of output, None when nothing came."""
        if not select.select([source], [], [], timeout)[0]:
            return None
        chunk = os.read(source, 65536)
        if chunk:
            take(chunk)
            return True
        return False

    code = None
    while True:
        got = read(0.2)
        if code is None and (got is False or child.poll() is not None):
            code = child.wait()
            # What the server wrote before exiting belongs in the log before rc.json appears.
            until = time.monotonic() + 1.0
            while got is not False and time.monotonic() < until:
                got = read(0.05)
                if got is None:
                    break
            flush()
            write_json(_path(state_dir, RC_FILE), {"rc": code, "at": time.time()})
        if got is False:
            flush()
            return


def launch(payload):
    state_dir = payload["state_dir"]
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    os.chmod(state_dir, 0o700)
    log_dir = os.path.dirname(payload["log_path"])
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
    running = members(read_json(_path(state_dir, PID_FILE)), state_dir)
    if running:
        return {"error": "a server started from %s is still running (pids %s); stop it first"
                % (state_dir, ", ".join(str(pid) for pid in running))}
    for name in (PID_FILE, RC_FILE, CONFIG_FILE, KEY_FILE):
        remove(_path(state_dir, name))
    digest = key_digest(state_dir, payload.get("api_key"), create=True)
    if digest:
        write_json(_path(state_dir, KEY_FILE), {"key": digest}, mode=0o600)
    if payload.get("api_key"):
        # JSON string syntax is valid YAML; the file never leaves the container.
        fd = os.open(_path(state_dir, CONFIG_FILE), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("api-key: %s\n" % json.dumps(payload["api_key"]))
    write_json(_path(state_dir, SPEC_FILE), payload.get("spec") or {})
    if os.path.exists(payload["log_path"]):
        os.replace(payload["log_path"], payload["log_path"] + ".1")
    try:
        linked = link_prebuilt_aiter(dict(os.environ, **(payload.get("env") or {})))
    except OSError as exc:
        linked = ["none: %s" % exc]
    if linked:
        with open(payload["log_path"], "a") as log:
            log.write("sglang_server: the image's prebuilt AITER modules linked into AITER_JIT_DIR: %s\n"
                      % ", ".join(linked))
    read_fd, write_fd = os.pipe()
    if os.fork() == 0:
        os.close(read_fd)
        try:
            _supervise(payload, write_fd)
        except BaseException as exc:  # pylint: disable=broad-except
            try:
                _write_all(write_fd, json.dumps({"error": "supervisor failed: %s" % exc}).encode())
            finally:
                os._exit(1)
    os.close(write_fd)
    data = b""
    deadline = time.monotonic() + float(payload.get("handshake_timeout", 30))
    while time.monotonic() < deadline:
        if not select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            break
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        data += chunk
    os.close(read_fd)
    try:
        result = json.loads(data.decode())
    except ValueError:
        return {"error": "the supervisor did not report within %ss" % payload.get("handshake_timeout", 30)}
    if "error" in result:
        return result
    return {"pid": result["server"], "supervisor_pid": result["supervisor"], "pgid": result["pgid"],
            "launched_at": result["launched_at"]}


def _start_times(pids, proc="/proc"):
    """{pid: start time} of the processes that still run."""
    found = {}
    for pid in pids:
        stat = proc_stat(pid, proc)
        if stat is not None:
            found[pid] = stat[4]
    return found


def _signal_all(pids, signum, starts, proc="/proc", kill=os.kill):
    """Signal each pid only while it is still the process seen when it was chosen (same start
    time): a pid that exited and was reused meanwhile is left alone."""
    for pid in pids:
        stat = proc_stat(pid, proc)
        if stat is None or stat[4] != starts.get(pid):
            continue
        try:
            kill(pid, signum)
        except OSError:
            pass


def _wait_gone(record, state_dir, seconds, signum, starts, proc="/proc", kill=os.kill):
    """Poll until no member is left; a member that appears meanwhile (a new pid, or a known pid
    with another start time) gets ``signum`` too. ``starts`` maps each signalled pid to the start
    time it had then."""
    deadline = time.monotonic() + seconds
    left = members(record, state_dir, proc)
    while left and time.monotonic() < deadline:
        now = _start_times(left, proc)
        fresh = [pid for pid in left if pid in now and now[pid] != starts.get(pid)]
        starts.update((pid, now[pid]) for pid in fresh)
        _signal_all(fresh, signum, starts, proc, kill)
        time.sleep(0.1)
        left = members(record, state_dir, proc)
    return left


def stop(payload, proc="/proc", kill=os.kill):
    state_dir = payload["state_dir"]
    record = read_json(_path(state_dir, PID_FILE))
    started = time.monotonic()
    targets = members(record, state_dir, proc)
    starts = _start_times(targets, proc)
    out = {"was_running": bool(targets), "signalled": [[pid, proc_comm(pid, proc)] for pid in targets],
           "killed": [], "remaining": []}
    stale = stale_reason(record, proc)
    if stale:
        out["stale"] = ("the recorded server (pid %s) is gone: %s; its recorded process ids were not "
                        "signalled" % (record.get("server"), stale))
    if targets:
        _signal_all(targets, signal.SIGTERM, starts, proc, kill)
        left = _wait_gone(record, state_dir, float(payload.get("stop_timeout", 30)), signal.SIGTERM,
                          starts, proc, kill)
        if left:
            out["killed"] = [[pid, proc_comm(pid, proc)] for pid in left]
            starts = _start_times(left, proc)
            _signal_all(left, signal.SIGKILL, starts, proc, kill)
            left = _wait_gone(record, state_dir, 10.0, signal.SIGKILL, starts, proc, kill)
        out["remaining"] = [[pid, proc_comm(pid, proc)] for pid in left]
    out["waited"] = round(time.monotonic() - started, 3)
    out["rc"] = read_json(_path(state_dir, RC_FILE))
    if not out["remaining"]:
        for name in (PID_FILE, SPEC_FILE, CONFIG_FILE, KEY_FILE):
            remove(_path(state_dir, name))
    return out


OPERATIONS = {"status": status, "launch": launch, "stop": stop}


def main(encoded):
    payload = json.loads(base64.b64decode(encoded).decode("utf-8"))
    try:
        result = OPERATIONS[payload["op"]](payload)
    except Exception as exc:  # pylint: disable=broad-except
        result = {"error": "%s: %s" % (type(exc).__name__, exc)}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 1 if "error" in result else 0
