# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""The docker CLI seam: every ``docker`` command the collection's modules run on a host.

- Commands are argv lists (never a shell string), always name the daemon with ``--host`` and run
  with the C locale, so the daemon's error texts can be recognised.
- Every call has a time limit: coreutils ``timeout --kill-after=5 N`` leads the argv. That keeps
  AnsibleModule.run_command as the one boundary (it feeds stdin and sets the environment, and
  the unit tests mock it), the limit shows in every returned command, and SIGKILL follows when
  the docker CLI ignores SIGTERM. A call ran out of time when timeout's exit status says so
  (124, or 137 after the SIGKILL) and the limit has passed; a command in the container that
  exits 124 or is OOM-killed (137) before the limit is not mistaken for it. Killing the docker
  CLI does not stop what it started in the container; sglang_bench also runs ``timeout`` there.
- One protocol for the in-container agents (``_agent_pip``, ``_agent_server``, ``_agent_model``):
  the agent module's source plus one ``main(<base64 JSON payload>)`` call on the stdin of
  ``docker exec -i CONTAINER PYTHON -`` (or of ``docker run --rm -i ... IMAGE`` with PYTHON as
  the entrypoint, for a transient container), and the answer is the last JSON object line it
  prints.
- One error hierarchy under ModuleFailure, which the modules report with fail_json.
"""

from __future__ import annotations

import base64
import collections
import inspect
import json
import time

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._secrets import is_secret_name, mask_text, scrub

C_LOCALE = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
KILL_AFTER = 5  # seconds between timeout's SIGTERM and its SIGKILL
TIMED_OUT_STATUSES = (124, 137)  # coreutils timeout: SIGTERM worked / SIGKILL was needed
DEFAULT_HOST = "unix:///var/run/docker.sock"
DEFAULT_EXEC_TIMEOUT = 600


def exec_argument_spec():
    """The options every module that works inside the container through the docker CLI takes
    (doc fragment sglang_rocm.fleet.docker_exec)."""
    return dict(
        container=dict(type="str", required=True),
        docker_host=dict(type="str", default=DEFAULT_HOST),
        python=dict(type="str", default="python3"),
        exec_timeout=dict(type="int", default=DEFAULT_EXEC_TIMEOUT),
    )


# --------------------------------------------------------------------------- argv


def timed(command, seconds, timeout_bin="timeout", kill_after=KILL_AFTER):
    """COMMAND under coreutils timeout: SIGTERM after SECONDS, SIGKILL KILL_AFTER seconds later."""
    return [timeout_bin, "--kill-after=%d" % kill_after, str(int(seconds))] + list(command)


def env_args(env):
    """Split an exec environment into docker argv (``--env``) and the values to hand the CLI.

    Secret-looking variables (OPENAI_API_KEY, HF_TOKEN, ...) are passed by name only; the docker
    CLI copies their values from its own environment, so they never appear in an argv.
    """
    argv, hidden = [], {}
    for name in sorted(env or {}):
        value = env[name]
        if value is None:
            continue
        if is_secret_name(name):
            argv += ["--env", name]
            hidden[name] = str(value)
        else:
            argv += ["--env", "%s=%s" % (name, value)]
    return argv, hidden


def exec_argv(docker_bin, docker_host, container, command, timeout, interactive=False,
              env_argv=(), timeout_bin="timeout", kill_after=KILL_AFTER):
    """``timeout ... N docker --host H exec [-i] [--env ...] CONTAINER COMMAND...``."""
    argv = [docker_bin, "--host", docker_host or DEFAULT_HOST, "exec"]
    if interactive:
        argv.append("-i")
    argv.extend(env_argv)
    argv.append(container)
    argv.extend(command)
    return timed(argv, timeout, timeout_bin, kill_after)


def run_argv(docker_bin, docker_host, image, command, timeout, name=None, mounts=(), env_argv=(),
             network=None, labels=None, entrypoint=None, timeout_bin="timeout", kill_after=KILL_AFTER):
    """``timeout ... N docker --host H run --rm -i --pull never [--name] [--label ...]
    [--network] [--volume SRC:DST:MODE ...] [--env ...] [--entrypoint E] IMAGE COMMAND...``:
    a transient container fed on stdin, from an image already on the host (never a pull)."""
    argv = [docker_bin, "--host", docker_host or DEFAULT_HOST, "run", "--rm", "-i", "--pull", "never"]
    if name:
        argv += ["--name", name]
    for key in sorted(labels or {}):
        argv += ["--label", "%s=%s" % (key, labels[key])]
    if network:
        argv += ["--network", network]
    for source, target, mode in mounts:
        argv += ["--volume", "%s:%s:%s" % (source, target, mode)]
    argv.extend(env_argv)
    if entrypoint:
        argv += ["--entrypoint", entrypoint]
    argv.append(image)
    argv.extend(command)
    return timed(argv, timeout, timeout_bin, kill_after)


# --------------------------------------------------------------------------- agent protocol


def agent_stdin(agent, payload):
    """Source for ``docker exec -i CONTAINER python3 -``: the agent module's own source plus one
    ``main(<base64 JSON payload>)`` call. The payload (secrets included) travels only on stdin,
    never on a command line or in an environment."""
    encoded = base64.b64encode(json.dumps(payload).encode("utf-8")).decode("ascii")
    return "%s\nraise SystemExit(main(%r))\n" % (inspect.getsource(agent), encoded)


def agent_answer(stdout):
    """The agent's answer: the last line of stdout that is a JSON object, else None (whatever
    else the container printed before it, pip's noise for example, is ignored)."""
    for line in reversed((stdout or "").strip().splitlines()):
        try:
            answer = json.loads(line)
        except ValueError:
            continue
        if isinstance(answer, dict):
            return answer
    return None


def container_problem(stderr):
    """Recognise the daemon's answer when the container cannot run an exec; None otherwise."""
    text = stderr or ""
    if "No such container" in text:
        return "missing"
    if "is not running" in text or "is paused" in text or "is restarting" in text:
        return "not running"
    if "Cannot connect to the Docker daemon" in text or "error during connect" in text:
        return "daemon unreachable"
    return None


# --------------------------------------------------------------------------- errors


class ModuleFailure(Exception):
    """A failure the module reports with fail_json: ``msg`` plus result fields."""

    def __init__(self, msg, **result):
        super().__init__(msg)
        self.msg = msg
        self.result = result


def run_and_exit(module, manager):
    """The end of a module's main(): run the manager, report its result or its ModuleFailure."""
    try:
        result = manager.run()
    except ModuleFailure as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    module.exit_json(**result)


class DaemonUnreachable(ModuleFailure):
    """The docker CLI could not reach the daemon."""


class ContainerUnavailable(ModuleFailure):
    """The container cannot run an exec."""


class ContainerMissing(ContainerUnavailable):
    """The container does not exist (yet)."""


class ContainerNotRunning(ContainerUnavailable):
    """The container exists but is stopped, paused or restarting."""


class AgentFailed(ModuleFailure):
    """The agent could not run, or ran and answered with an error."""


class AgentTimedOut(ModuleFailure):
    """The call ran out of time and the docker CLI was stopped."""


class ImageMissing(ModuleFailure):
    """``docker run --pull never`` found no such image on the host."""


# --------------------------------------------------------------------------- running


Completed = collections.namedtuple("Completed", "rc stdout stderr timed_out elapsed")


class DockerCli:
    """The docker CLI of one host, for one daemon, with one time limit per call by default."""

    def __init__(self, module, docker_host, timeout, clock=None, docker_bin=None, timeout_bin=None):
        self.module = module
        self.docker_host = docker_host
        self.timeout = timeout
        self.clock = clock or time.monotonic
        self.bin = docker_bin or module.get_bin_path("docker", required=True)
        self.timeout_bin = timeout_bin or module.get_bin_path("timeout", required=True)

    def argv(self, container, command, interactive=False, env_argv=(), timeout=None,
             kill_after=KILL_AFTER):
        return exec_argv(self.bin, self.docker_host, container, command,
                         self.timeout if timeout is None else timeout, interactive=interactive,
                         env_argv=env_argv, timeout_bin=self.timeout_bin, kill_after=kill_after)

    def run(self, argv, data=None, env=None, limit=None):
        """Run a prepared argv with the C locale (plus ``env``, the values of variables the
        docker CLI forwards by name). ``limit`` is the argv's time limit, to recognise it."""
        start = self.clock()
        rc, out, err = self.module.run_command(argv, data=data, environ_update=dict(C_LOCALE, **(env or {})))
        elapsed = self.clock() - start
        timed_out = limit is not None and rc in TIMED_OUT_STATUSES and elapsed >= limit
        return Completed(rc, out, err, timed_out, elapsed)

    def command(self, args, timeout=None):
        """Run ``docker --host H ARGS...`` (a daemon command, not an exec) under the time limit."""
        limit = self.timeout if timeout is None else timeout
        argv = timed([self.bin, "--host", self.docker_host or DEFAULT_HOST] + list(args), limit, self.timeout_bin)
        return self.run(argv, limit=limit)

    def exec(self, container, command, data=None, timeout=None):
        """Run COMMAND in CONTAINER; ``data`` is fed to its stdin."""
        limit = self.timeout if timeout is None else timeout
        argv = self.argv(container, command, interactive=data is not None, timeout=limit)
        return self.run(argv, data=data, limit=limit)

    def call_agent(self, container, python, agent, payload, args=(), what="the agent",
                   timeout=None, python_name="python", secrets=(), limit_name="exec_timeout"):
        """Send AGENT with PAYLOAD to ``PYTHON - ARGS...`` in CONTAINER and return its answer.

        Raises ContainerMissing, ContainerNotRunning, DaemonUnreachable, AgentTimedOut or
        AgentFailed, whose messages name ``what`` ran, the container, the daemon and the fix
        (``python_name`` is what sets the interpreter, ``limit_name`` what set the time limit);
        ``secrets`` are masked in every text.
        """
        where = "container %s on %s" % (container, self.docker_host)
        limit = self.timeout if timeout is None else timeout
        done = self.exec(container, [python, "-"] + list(args), data=agent_stdin(agent, payload), timeout=limit)
        return self._agent_answer(done, where, what, limit, limit_name, python, python_name, secrets)

    def run_agent(self, image, python, agent, payload, what="the agent", timeout=None, name=None,
                  mounts=(), env=None, network=None, labels=None, python_name="python",
                  image_name="image", secrets=(), limit_name="timeout"):
        """Send AGENT with PAYLOAD to ``PYTHON -`` in a transient container of IMAGE
        (``docker run --rm -i --pull never``, see run_argv) and return its answer.

        Raises ImageMissing (``image_name`` is what sets the image), DaemonUnreachable,
        AgentTimedOut or AgentFailed, like call_agent. The CLI forwards the time limit's SIGTERM
        to the agent (docker run proxies signals); a container left by a SIGKILL is removed by
        the caller through its ``name``.
        """
        where = "a transient container of %s on %s" % (image, self.docker_host)
        limit = self.timeout if timeout is None else timeout
        env_argv, hidden = env_args(env)
        argv = run_argv(self.bin, self.docker_host, image, ["-"], limit, name=name, mounts=mounts,
                        env_argv=env_argv, network=network, labels=labels, entrypoint=python,
                        timeout_bin=self.timeout_bin)
        done = self.run(argv, data=agent_stdin(agent, payload), env=hidden, limit=limit)
        if done.rc == 125 and agent_answer(done.stdout) is None and "No such image" in (done.stderr or ""):
            raise ImageMissing("image %s is not on %s: run the container stage first, which pulls or "
                               "loads it (%s names it)" % (image, self.docker_host, image_name))
        return self._agent_answer(done, where, what, limit, limit_name, python, python_name, secrets)

    def _agent_answer(self, done, where, what, limit, limit_name, python, python_name, secrets):
        text = mask_text((done.stderr or done.stdout or "").strip(), secrets)
        if done.timed_out:
            raise AgentTimedOut(
                "%s in %s did not answer within %s s (%s), so the docker CLI was stopped; "
                "what it started in the container may still be running. Raise %s if it "
                "only needs longer%s" % (what, where, limit, limit_name, limit_name,
                                         ": " + text[-2000:] if text else ""),
                timed_out=True)
        answer = agent_answer(done.stdout)
        if answer is not None:
            if "error" in answer:
                rest = scrub({k: v for k, v in answer.items() if k != "error"}, secrets)
                raise AgentFailed("%s in %s failed: %s" % (what, where, mask_text(str(answer["error"]), secrets)),
                                  **rest)
            return answer
        problem = container_problem(text)
        if problem == "missing":
            raise ContainerMissing("%s does not exist: run the container role first "
                                   "(sglang_container_name names it)" % where, detail=text)
        if problem == "not running":
            raise ContainerNotRunning("%s is not running: start it with the container role first" % where,
                                      detail=text)
        if problem == "daemon unreachable":
            raise DaemonUnreachable("cannot reach the Docker daemon at %s (sglang_docker_host): %s"
                                    % (self.docker_host, text))
        if "executable file not found" in text or "No such file or directory" in text:
            raise AgentFailed("%s has no %s; set %s to the image's Python: %s"
                              % (where, python, python_name, text))
        raise AgentFailed("%s in %s failed (rc %s): %s" % (what, where, done.rc, text[-2000:] or "no output"))
