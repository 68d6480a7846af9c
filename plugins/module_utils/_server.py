# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""Logic of the sglang_server module, testable without AnsibleModule, Docker or real time.

Pure parts: input validation, argv building, spec hashing, probe interpretation, the deadline
and the wait loop (clock and sleep injected), log tail formatting, secret scrubbing, and the
parsing of /proc for "who holds this port". ServerManager ties them to three boundaries that
the caller injects: ``docker`` (the docker CLI seam, _docker_cli.DockerCli), ``http(method, url,
timeout, headers, body)`` and the clocks.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import os
import re
import shlex
import signal
import socket

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _agent_server
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._address import is_loopback, key_problem, url_host
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._docker_cli import (
    ContainerUnavailable,
    ModuleFailure,
    agent_stdin,
)
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._secrets import mask_text, scrub, secret_values
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._startup import iso_time, server_phases

PROBES = ("health", "health_generate", "generate")
PROBE_PROMPT = "The capital city of France is"

# Flags the module builds itself, with every spelling argparse accepts for them in 0.5.7
# (aliases, and unique prefixes such as --tp for --tp-size), mapped to the owning option.
OWNED_FLAGS = {
    "--model-path": "model_path",
    "--model": "model_path",
    "--tokenizer-path": "tokenizer_path",
    "--tp-size": "tp_size",
    "--tensor-parallel-size": "tp_size",
    "--host": "host",
    "--port": "port",
    "--trust-remote-code": "trust_remote_code",
    "--enable-metrics": "enable_metrics",
    "--api-key": "api_key",
    "--config": "api_key",
}

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_WILDCARDS = ("0.0.0.0", "::", "")


# --------------------------------------------------------------------------- validation


def owned_flag(arg):
    """The module option an extra argument would override, or None.

    Catches exact flags, ``--flag=value`` and abbreviations argparse would expand to an owned
    flag (``--tp`` for ``--tp-size``); longer flags that merely start with an owned one, such
    as ``--enable-metrics-for-all-schedulers``, are not the same flag and pass.
    """
    if not arg.startswith("--") or len(arg) < 4:
        return None
    flag = arg.split("=", 1)[0]
    for owned, option in OWNED_FLAGS.items():
        if owned.startswith(flag):
            return owned, option
    return None


def validate(params, gpu_count=None):
    """Every problem with the inputs, as messages that name the option and the fix."""
    problems = []
    tp_size = params.get("tp_size")
    if not isinstance(tp_size, int) or isinstance(tp_size, bool) or tp_size < 1:
        problems.append("tp_size must be a positive integer, got %r" % (tp_size,))
    elif gpu_count is not None and tp_size > gpu_count:
        problems.append("tp_size %d is larger than the %d GPU(s) preflight found on this host: lower "
                        "tp_size (sglang_tp_size) or fix the host (see the preflight report)" % (tp_size, gpu_count))
    port = params.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        problems.append("port must be a TCP port between 1 and 65535, got %r" % (port,))
    for arg in params.get("extra_args") or []:
        hit = owned_flag(arg)
        if hit:
            problems.append("extra_args item %r repeats %s, which the module sets from its %s option; "
                            "remove it from extra_args and set %s instead" % (arg, hit[0], hit[1], hit[1]))
    for name, value in (params.get("env") or {}).items():
        if not _ENV_NAME.match(str(name)):
            problems.append("env name %r is not a valid environment variable name" % (name,))
        if isinstance(value, (dict, list)) or value is None:
            problems.append("env %s must be a string, number or boolean, got %r" % (name, value))
    reason = key_problem(params.get("api_key"))
    if reason:
        problems.append("api_key cannot be used: %s; use a key without a leading '-'" % reason)
    open_bind = not (is_loopback(params.get("host")) or params.get("api_key") or params.get("allow_unauthenticated"))
    if params.get("state") != "stopped" and open_bind:
        problems.append("host %r is not a loopback address and api_key is empty: the server and its admin API "
                        "would be open to the network; set api_key, bind 127.0.0.1, or on a trusted network "
                        "set allow_unauthenticated=true" % (params.get("host"),))
    for option in ("timeout", "connect_timeout", "sleep"):
        value = params.get(option)
        if value is not None and value <= 0:
            problems.append("%s must be greater than 0, got %r" % (option, value))
    return problems


# --------------------------------------------------------------------------- launch spec


def env_value(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def launch_env(env):
    """The server's environment additions: unbuffered Python output (so the log is live)
    under the user's variables, all values as strings."""
    result = {"PYTHONUNBUFFERED": "1"}
    result.update({str(key): env_value(value) for key, value in (env or {}).items()})
    return result


def config_path(state_dir):
    return os.path.join(state_dir, _agent_server.CONFIG_FILE)


def build_argv(params):
    """Full command line, long flag names only; the API key travels in a --config file."""
    argv = [params["python"], "-m", params["launch_module"],
            "--model-path", params["model_path"],
            "--tokenizer-path", params.get("tokenizer_path") or params["model_path"],
            "--tp-size", str(params["tp_size"]),
            "--host", params["host"],
            "--port", str(params["port"])]
    if params.get("trust_remote_code"):
        argv.append("--trust-remote-code")
    if params.get("enable_metrics"):
        argv.append("--enable-metrics")
    if params.get("api_key"):
        argv.extend(["--config", config_path(params["state_dir"])])
    extra = list(params.get("extra_args") or [])
    if params.get("served_model_name") and not any(
            arg == "--served-model-name" or arg.startswith("--served-model-name=") for arg in extra):
        argv.extend(["--served-model-name", params["served_model_name"]])
    argv.extend(extra)
    return argv


# Environment variables that only say how long to wait, not what to serve: they reach the server
# but are not part of its identity, so raising the wait after a timeout does not restart a server
# that is still loading (the server role sets SGLANG_WARMUP_TIMEOUT to sglang_server_timeout).
BUDGET_ENV = ("SGLANG_WARMUP_TIMEOUT",)


def spec_hash(argv, env, log_path):
    """Identity of a launch, as published: a different command, environment or log path means
    restart. The wait budgets (BUDGET_ENV) are left out, and so is the API key: the agent compares
    a keyed hash of it inside the container (the ``key_matches`` of its status), so nothing
    derived from the key leaves the host."""
    doc = {"argv": argv, "env": {name: value for name, value in env.items() if name not in BUDGET_ENV},
           "log_path": log_path}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode("utf-8")).hexdigest()


def command_line(argv, secrets=()):
    return mask_text(" ".join(shlex.quote(arg) for arg in argv), secrets)


# --------------------------------------------------------------------------- log text


def format_log_tail(lines, count, secrets=(), width=500):
    """Last ``count`` meaningful lines: progress-bar redraws collapsed to their final state,
    colour codes removed, very long lines shortened, secrets masked."""
    out = []
    for line in lines:
        line = mask_text(_ANSI.sub("", line.split("\r")[-1] if "\r" in line.rstrip("\r") else line).rstrip(), secrets)
        if len(line) > width:
            line = line[:width] + " ...[%d more characters]" % (len(line) - width)
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return out[-count:] if count > 0 else []


def describe_exit(rc_record):
    """Human wording of the supervisor's rc.json (None when no exit status was recorded)."""
    if not rc_record:
        return "exit status unknown (the process disappeared without its supervisor recording one)"
    if rc_record.get("error"):
        return rc_record["error"]
    code = rc_record.get("rc")
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "signal %d" % -code
        return "killed by %s" % name
    return "exit status %d" % code


def exit_code(rc_record):
    return rc_record.get("rc") if rc_record else None


# --------------------------------------------------------------------------- time


class Deadline:
    """One monotonic deadline; every wait is clamped to what is left of it."""

    def __init__(self, timeout, clock):
        self.clock = clock
        self.start = clock()
        self.timeout = float(timeout)

    def elapsed(self):
        return self.clock() - self.start

    def remaining(self):
        return max(0.0, self.timeout - self.elapsed())

    def expired(self):
        return self.remaining() <= 0.0

    def clamp(self, seconds):
        return min(float(seconds), self.remaining())


# --------------------------------------------------------------------------- probes


class Verdict:
    """Result of one readiness probe. ``alive`` is True when the server answered at all
    (so there is no need to ask the container whether it is still running); ``connected`` when
    its port accepted the connection (an answer, or a request sent and then no answer)."""

    __slots__ = ("ready", "fatal", "alive", "detail", "connected")

    def __init__(self, ready=False, detail="", alive=False, fatal=False, connected=None):
        self.ready = ready
        self.fatal = fatal
        self.alive = alive
        self.detail = detail
        self.connected = alive if connected is None else connected

    def __repr__(self):
        return "Verdict(ready=%r, fatal=%r, alive=%r, connected=%r, detail=%r)" % (
            self.ready, self.fatal, self.alive, self.connected, self.detail)


def probe_address(host):
    """Where the module reaches a server bound to ``host`` (host networking), as a URL host."""
    return url_host(host)


def interpret(result, path):
    """Meaning of one HTTP answer while waiting: port closed and 503 mean "not yet"."""
    where = "%s" % path
    if result.status is None:
        return Verdict(detail="%s: %s" % (where, result.error), connected=result.connected)
    if result.status == 200:
        return Verdict(ready=True, alive=True, detail="%s: HTTP 200" % where)
    if result.status == 503:
        return Verdict(alive=True, detail="%s: HTTP 503 (server still loading or warming up)" % where)
    if result.status in (401, 403):
        return Verdict(alive=True, fatal=True,
                       detail="%s: HTTP %d (the server rejects the API key)" % (where, result.status))
    body = result.body.decode("utf-8", "replace").strip()[:200] if result.body else ""
    return Verdict(alive=True, detail="%s: HTTP %d %s" % (where, result.status, body))


def interpret_generate(result):
    verdict = interpret(result, "/generate")
    if not verdict.ready:
        return verdict
    try:
        data = json.loads(result.body.decode("utf-8"))
    except ValueError:
        return Verdict(alive=True, detail="/generate: HTTP 200 but the body is not JSON")
    if not isinstance(data, dict) or "text" not in data:
        return Verdict(alive=True, detail="/generate: HTTP 200 without generated text")
    return verdict


# Seconds the one docker call that reads the log tail of a failure may run past the deadline.
TAIL_GRACE = 10.0

# While the port is closed, whether the server is still alive is asked of the container (a docker
# exec): first after DEATH_CHECK_EVERY seconds, then at gaps that double up to DEATH_CHECK_MAX
# while the model loads (a 30-minute load costs a few hundred docker execs, not 3,600). Readiness
# itself (a local HTTP connect) is probed every `sleep` seconds, which can be much shorter, so the
# wait still ends the moment the server answers.
DEATH_CHECK_EVERY = 0.5
DEATH_CHECK_MAX = 5.0


def check_gaps(first, cap):
    """The gaps between two death checks: ``first``, doubled each time, at most ``cap``."""
    gap = float(first)
    while True:
        yield gap
        gap = min(gap * 2, max(float(cap), float(first)))


class WaitOutcome:
    __slots__ = ("status", "attempts", "elapsed", "last_error", "death", "ready_at", "port_open_at", "phases")

    def __init__(self, status, attempts, elapsed, last_error, death=None, ready_at=None, port_open_at=None):
        self.status = status  # ready | died | fatal | timeout
        self.attempts = attempts
        self.elapsed = elapsed
        self.last_error = last_error
        self.death = death
        self.ready_at = ready_at
        # epoch when the first probe that found the port accepting began
        self.port_open_at = port_open_at
        self.phases = None


def wait_until_ready(probe, is_dead, deadline, sleep, interval, wall, check_every=None, check_cap=None):
    """Poll ``probe(timeout)`` until it passes, the server dies, or the deadline passes.

    ``probe`` returns a Verdict; ``is_dead()`` returns None while the server runs, else what it
    knows about the death (it is asked only when the server did not answer, first at once, then
    ``check_every`` seconds later, the gap doubling up to ``check_cap``: it costs a docker exec,
    a probe only a local HTTP connect, so probes can be frequent). ``sleep`` and the deadline's
    clock are injected, so tests need no real time. The outcome keeps the epoch (``wall``) at
    which the first probe that found the port accepting began: the port was open by then.
    """
    attempts = 0
    last_error = "no probe was made"
    last_check = None
    port_open_at = None
    gaps = check_gaps(check_every, check_cap if check_cap is not None else check_every) if check_every else None
    gap = next(gaps) if gaps else None
    while True:
        if attempts and deadline.expired():
            return WaitOutcome("timeout", attempts, deadline.elapsed(), last_error, port_open_at=port_open_at)
        attempts += 1
        began = wall() if port_open_at is None else None
        verdict = probe(max(deadline.remaining(), 0.001))
        if verdict.connected and port_open_at is None:
            port_open_at = began
        if verdict.ready:
            return WaitOutcome("ready", attempts, deadline.elapsed(), None, ready_at=wall(), port_open_at=port_open_at)
        last_error = verdict.detail
        if verdict.fatal:
            return WaitOutcome("fatal", attempts, deadline.elapsed(), last_error, port_open_at=port_open_at)
        if not verdict.alive and (last_check is None or gap is None
                                  or deadline.elapsed() - last_check >= gap - 1e-6):
            if last_check is not None and gaps:
                gap = next(gaps)
            last_check = deadline.elapsed()
            death = is_dead()
            if death is not None:
                return WaitOutcome("died", attempts, deadline.elapsed(), last_error, death=death,
                                   port_open_at=port_open_at)
        if deadline.expired():
            return WaitOutcome("timeout", attempts, deadline.elapsed(), last_error, port_open_at=port_open_at)
        sleep(deadline.clamp(interval))


# --------------------------------------------------------------------------- who holds the port


def _decode_address(hex_addr):
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    address = ipaddress.IPv6Address(words)
    return str(address.ipv4_mapped) if address.ipv4_mapped else str(address)


def parse_proc_net_tcp(text):
    """LISTEN sockets of /proc/net/tcp or tcp6 as (address, port, inode)."""
    sockets = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != "0A":
            continue
        address, port = fields[1].rsplit(":", 1)
        sockets.append((_decode_address(address), int(port, 16), fields[9]))
    return sockets


def addresses_conflict(bind_host, listen_address):
    return bind_host in _WILDCARDS or listen_address in _WILDCARDS or bind_host == listen_address


def _read(path, mode="r"):
    try:
        with open(path, mode) as handle:
            return handle.read()
    except OSError:
        return None


def find_port_owners(port, bind_host, proc_root="/proc"):
    """Processes listening on ``port`` in a way that stops ``bind_host:port`` from binding.

    Returns (owners, problems): owners are dicts with address, port, pid (None when the
    socket's process is not visible) and name/cmdline; problems lists what could not be read.
    """
    listeners = []
    problems = []
    for table in ("tcp", "tcp6"):
        text = _read(os.path.join(proc_root, "net", table))
        if text is None:
            if table == "tcp":
                problems.append("cannot read %s" % os.path.join(proc_root, "net", table))
            continue
        listeners.extend(entry for entry in parse_proc_net_tcp(text)
                         if entry[1] == port and addresses_conflict(bind_host, entry[0]))
    if not listeners:
        return [], problems
    wanted = {"socket:[%s]" % inode: (address, lport) for address, lport, inode in listeners}
    owners = {}
    try:
        pids = [name for name in os.listdir(proc_root) if name.isdigit()]
    except OSError:
        pids = []
    for pid in pids:
        fd_dir = os.path.join(proc_root, pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target in wanted and target not in owners:
                cmdline = (_read(os.path.join(proc_root, pid, "cmdline"), "rb") or b"").replace(b"\0", b" ")
                owners[target] = {"address": wanted[target][0], "port": wanted[target][1], "pid": int(pid),
                                  "name": (_read(os.path.join(proc_root, pid, "comm")) or "?").strip(),
                                  "cmdline": cmdline.decode("utf-8", "replace").strip()[:300]}
    result = list(owners.values())
    for target, (address, lport) in wanted.items():
        if target not in owners:
            result.append({"address": address, "port": lport, "pid": None, "name": None, "cmdline": None})
    return result, problems


def describe_owner(owner):
    where = "%s:%d" % (owner["address"], owner["port"])
    if owner["pid"] is None:
        return "an unidentified process (its socket is not visible here; run as root) listens on %s" % where
    return "%s (pid %d: %s) listens on %s" % (owner["name"], owner["pid"], owner["cmdline"] or "?", where)


# --------------------------------------------------------------------------- container agent


def helper_stdin(payload):
    """Source sent to ``python3 -`` in the container: the agent plus one call with the payload."""
    return agent_stdin(_agent_server, payload)


class ServerError(ModuleFailure):
    """A server failure that is not the docker CLI's (port taken, died, not ready in time)."""


def launch_secrets(params):
    """Every secret the launch carries: the API key, the values of secret-named env entries
    (``WANDB_KEY``) and of secret-looking flags in extra_args (``--admin-api-key X``). They are
    masked in every message, log tail and result, whatever quotes them (an argparse error)."""
    secrets = [params["api_key"]] if params.get("api_key") else []
    return secrets + secret_values({"env": params.get("env") or {}, "extra_args": params.get("extra_args") or []})


class ServerManager:
    """Bring the server in one container to the wanted state (started, stopped, restarted).

    Boundaries are injected: ``docker`` runs the agent in the container (``call_agent`` of
    _docker_cli.DockerCli), ``http(method, url, timeout, headers, data) -> HttpResult``,
    ``port_owners(port, host) -> (owners, problems)``, and the clocks ``clock`` (monotonic),
    ``wall`` (epoch) and ``sleep``.
    """

    def __init__(self, params, docker, http, port_owners, clock, wall, sleep,
                 check_mode=False, diff=False, warn=None):
        self.p = params
        self.docker = docker
        self.http = http
        self.port_owners = port_owners
        self.clock = clock
        self.wall = wall
        self.sleep = sleep
        self.check_mode = check_mode
        self.want_diff = diff
        self.warn = warn or (lambda message: None)
        self.secrets = launch_secrets(params)
        self.url = "http://%s:%d" % (probe_address(params["host"]), params["port"])
        self.deadline = None

    # ---- container agent

    def call_limit(self, wanted=None, grace=0.0):
        """Time limit of one docker call: ``wanted`` (exec_timeout by default), but never past what
        is left of the module's deadline, option ``timeout`` (plus ``grace``, for the one call that
        reads the log tail of a failure), in whole seconds and at least 1. Returns (seconds, the
        option that set them)."""
        wanted = self.p["exec_timeout"] if wanted is None else wanted
        if self.deadline is None:
            return wanted, "exec_timeout"
        left = self.deadline.remaining() + grace
        if left >= wanted:
            return wanted, "exec_timeout"
        return max(1, int(math.ceil(left))), "timeout"

    def agent(self, op, timeout=None, grace=0.0, **extra):
        payload = {"op": op, "state_dir": self.p["state_dir"], "log_path": self.p["log_path"]}
        payload.update(extra)
        limit, limit_name = self.call_limit(timeout, grace)
        return self.docker.call_agent(self.p["container"], self.p["python"], _agent_server, payload,
                                      args=[op], what="the %s step" % op, timeout=limit,
                                      python_name="sglang_server_python", secrets=self.secrets,
                                      limit_name=limit_name)

    def status(self, log_lines=0, always_tail=False, check_key=False, grace=0.0):
        extra = {"api_key": self.p.get("api_key") or ""} if check_key else {}
        return self.agent("status", log_lines=log_lines, always_tail=always_tail, grace=grace, **extra)

    # ---- HTTP

    def _headers(self, json_body=False):
        headers = {"Accept": "application/json"}
        if self.p.get("api_key"):
            headers["Authorization"] = "Bearer %s" % self.p["api_key"]
        if json_body:
            headers["Content-Type"] = "application/json"
        return headers

    def probe(self, remaining):
        timeout = min(float(self.p["connect_timeout"]), remaining)
        kind = self.p["ready_probe"]
        path = "/health_generate" if kind == "health_generate" else "/health"
        verdict = interpret(self.http("GET", self.url + path, timeout, self._headers(), None), path)
        if kind != "generate" or not verdict.ready:
            return verdict
        body = json.dumps({"text": PROBE_PROMPT, "sampling_params": {"max_new_tokens": 1, "temperature": 0}})
        timeout = min(float(self.p["connect_timeout"]), max(self.deadline.remaining(), 0.001))
        return interpret_generate(self.http("POST", self.url + "/generate", timeout,
                                            self._headers(json_body=True), body.encode("utf-8")))

    def server_info(self):
        timeout = min(float(self.p["connect_timeout"]), 10.0)
        result = self.http("GET", self.url + "/get_server_info", timeout, self._headers(), None)
        if result.status != 200:
            self.warn("GET %s/get_server_info gave %s; server_info is empty"
                      % (self.url, result.error or "HTTP %s" % result.status))
            return {}
        try:
            return scrub(json.loads(result.body.decode("utf-8")), self.secrets)
        except ValueError:
            self.warn("GET %s/get_server_info did not return JSON; server_info is empty" % self.url)
            return {}

    # ---- steps

    def desired(self):
        argv = build_argv(self.p)
        env = launch_env(self.p.get("env"))
        return {"argv": argv, "env": env, "command": command_line(argv, self.secrets),
                "hash": spec_hash(argv, env, self.p["log_path"])}

    def check_port(self):
        owners, problems = self.port_owners(self.p["port"], self.p["host"])
        for problem in problems:
            self.warn("port check incomplete: %s" % problem)
        if owners:
            raise ServerError("port %d is already taken on this host: %s. Stop that process or choose "
                              "another port (option port, role variable sglang_port)"
                              % (self.p["port"], "; ".join(describe_owner(owner) for owner in owners)),
                              port_owners=owners)

    def stop(self):
        stop_timeout = float(self.p["stop_timeout"])
        if self.deadline is not None:
            stop_timeout = max(1.0, min(stop_timeout, self.deadline.remaining()))
        # the agent waits up to stop_timeout for SIGTERM to work before its SIGKILL
        result = self.agent("stop", timeout=self.p["exec_timeout"] + int(stop_timeout) + 1,
                            stop_timeout=stop_timeout)
        if result.get("stale"):
            self.warn(result["stale"])
        if result["remaining"]:
            raise ServerError("processes of the server in container %s are still alive after SIGKILL: %s; "
                              "they may hold GPU memory, check them with ps inside the container"
                              % (self.p["container"], ", ".join("%s (pid %s)" % (n, p) for p, n in result["remaining"])),
                              stopped=result, changed=True)
        return result

    def launch(self, spec):
        payload = {"argv": spec["argv"], "env": spec["env"],
                   "spec": {"hash": spec["hash"], "command": spec["command"],
                            "env": scrub(spec["env"], self.secrets)}}
        if self.p.get("api_key"):
            payload["api_key"] = self.p["api_key"]
        return self.agent("launch", **payload)

    def tail(self, lines):
        return format_log_tail(lines or [], self.p["log_lines"], self.secrets)

    def tail_text(self, tail):
        if not tail:
            return "The log %s is empty so far." % self.p["log_path"]
        return "Last %d lines of %s:\n%s" % (len(tail), self.p["log_path"], "\n".join(tail))

    def wait(self, pid, launch=None):
        """Wait until the server is ready; ``launch`` is (epoch of the launch, epoch the process
        started) when this run launched it, so the result (or the failure) carries its phases."""
        def is_dead():
            st = self.status(log_lines=self.p["log_lines"])
            if st.get("alive"):
                return None
            return st

        outcome = wait_until_ready(self.probe, is_dead, self.deadline, self.sleep, self.p["sleep"], self.wall,
                                   check_every=max(float(self.p["sleep"]), DEATH_CHECK_EVERY),
                                   check_cap=DEATH_CHECK_MAX)
        base = {"elapsed": round(outcome.elapsed, 3), "attempts": outcome.attempts, "url": self.url,
                "pid": pid, "log_path": self.p["log_path"], "last_error": outcome.last_error}
        if launch is not None:
            phases = server_phases(launch[0], launch[1], outcome.port_open_at, outcome.ready_at)
            outcome.phases = base["phases"] = phases
        if outcome.status == "ready":
            return outcome
        if outcome.status == "died":
            rc = outcome.death.get("rc")
            tail = self.tail(outcome.death.get("log_tail"))
            message = "sglang server in container %s died while starting, %.1fs after the module began: %s. " % (
                self.p["container"], outcome.elapsed, describe_exit(rc))
            message += self.tail_text(tail)
            raise ServerError(message, exit_status=exit_code(rc), log_tail=tail, **base)
        try:
            tail = self.tail(self.status(log_lines=self.p["log_lines"], always_tail=True,
                                         grace=TAIL_GRACE).get("log_tail"))
        except ModuleFailure:
            tail = []
        if outcome.status == "fatal":
            raise ServerError("sglang server in container %s cannot be probed: %s. %s"
                              % (self.p["container"], outcome.last_error, self.tail_text(tail)), log_tail=tail, **base)
        raise ServerError(
            "sglang server in container %s was not ready after %.1fs (timeout %ss); last probe: %s. "
            "The server is left running; raise timeout if it only needs longer. %s"
            % (self.p["container"], outcome.elapsed, self.p["timeout"], outcome.last_error, self.tail_text(tail)),
            log_tail=tail, **base)

    # ---- the decision

    def _diff(self, current, spec, running_after):
        if not self.want_diff:
            return None
        old = current.get("spec") or {}
        running = bool(current.get("alive"))
        before = {"running": running, "command": old.get("command") if running else None,
                  "env": old.get("env") if running else None}
        after = {"running": running_after,
                 "command": spec["command"] if running_after else None,
                 "env": scrub(spec["env"], self.secrets) if running_after else None}
        return {"before": before, "after": after}

    def run(self):
        self.deadline = Deadline(self.p["timeout"], self.clock)
        state = self.p["state"]
        spec = self.desired() if state != "stopped" else None
        result = {"changed": False, "url": self.url, "state_dir": self.p["state_dir"],
                  "log_path": self.p["log_path"]}
        try:
            current = self.status(check_key=state != "stopped")
        except ContainerUnavailable as exc:
            if not self.check_mode:
                raise
            self.warn("%s; check mode assumes it will exist" % exc.msg)
            current = {"present": False, "alive": False, "members": [], "spec": None}
        if current.get("stale"):
            result["stale"] = current["stale"] + "; its recorded process ids were not signalled"
            self.warn(result["stale"])
        if state == "stopped":
            return self._stopped(current, result)
        result.update(command=spec["command"], spec_hash=spec["hash"])
        old_hash = (current.get("spec") or {}).get("hash")
        # key_matches: the agent's keyed hash of the API key against the one recorded at launch
        same_key = current.get("key_matches", True)
        if state == "started" and current.get("alive") and old_hash == spec["hash"] and same_key:
            return self._unchanged(current, result)
        if current.get("alive"):
            reason = ("state=restarted" if state == "restarted" else
                      "the launch spec changed" if old_hash != spec["hash"] else "the API key changed")
        elif current.get("present"):
            reason = "the previous server is not running (%s)" % describe_exit(current.get("rc"))
        else:
            reason = "no server was running"
        action = "restarted" if current.get("alive") else "started"
        result.update(changed=True, action=action, reason=reason)
        diff = self._diff(current, spec, True)
        if diff:
            result["diff"] = diff
        if not current.get("members"):
            self.check_port()
        if self.check_mode:
            result["msg"] = "would %s the server: %s" % ("restart" if action == "restarted" else "start", reason)
            return result
        try:
            if current.get("members"):
                result["stopped"] = self.stop()
                self.check_port()
            began = self.wall()
            launched = self.launch(spec)
            result["pid"] = launched["pid"]
            launch = (began, launched.get("launched_at"))
            if not self.p["wait"]:
                result.update(elapsed=round(self.deadline.elapsed(), 3), phases=server_phases(*launch),
                              msg="%s the server (not waiting): %s" % (action, reason))
                return result
            outcome = self.wait(launched["pid"], launch)
        except ModuleFailure as exc:
            # Whatever happened after a stop or a launch, the host did change.
            if "stopped" in result or "pid" in result:
                for key in ("changed", "action", "reason", "command", "spec_hash", "stopped", "diff"):
                    if key in result:
                        exc.result.setdefault(key, result[key])
            raise
        result.update(elapsed=round(outcome.elapsed, 3), attempts=outcome.attempts,
                      ready_at=iso_time(outcome.ready_at), server_info=self.server_info(), phases=outcome.phases,
                      msg="%s the server (%s); ready after %.1fs" % (action, reason, outcome.elapsed))
        return result

    def _unchanged(self, current, result):
        result.update(action="none", pid=current.get("pid"))
        # the running server stays as it is, wait budgets included: after == before
        diff = self._diff(current, dict(self.desired(), **(current.get("spec") or {})), True)
        if diff:
            result["diff"] = diff
        if self.check_mode:
            verdict = self.probe(self.deadline.remaining())
            result.update(ready=verdict.ready, last_error=None if verdict.ready else verdict.detail,
                          msg="the server runs with the same spec; %s" % ("ready" if verdict.ready else "not ready yet"))
            return result
        outcome = self.wait(current.get("pid"))
        # left running: no phase of this run, only when the running server was started
        result.update(elapsed=round(outcome.elapsed, 3), attempts=outcome.attempts,
                      ready_at=iso_time(outcome.ready_at), server_info=self.server_info(),
                      phases=server_phases(None, running_since=current.get("launched_at")),
                      msg="the server already runs with the same spec and is ready")
        return result

    def _stopped(self, current, result):
        result["command"] = (current.get("spec") or {}).get("command")
        if not current.get("members"):
            result.update(action="none", msg="no server process was running")
            return result
        result.update(changed=True, action="stopped")
        if self.want_diff:
            result["diff"] = {"before": {"running": True, "command": result["command"]},
                              "after": {"running": False, "command": None}}
        if self.check_mode:
            result["msg"] = "would stop %d process(es)" % len(current["members"])
            return result
        stopped = self.stop()
        result["stopped"] = stopped
        result["exit_status"] = exit_code(stopped.get("rc"))
        result["msg"] = ("stopped %d process(es) with SIGTERM%s in %.1fs; none is left"
                         % (len(stopped["signalled"]),
                            " (%d needed SIGKILL)" % len(stopped["killed"]) if stopped["killed"] else "",
                            stopped["waited"]))
        result["elapsed"] = round(self.deadline.elapsed(), 3)
        return result
