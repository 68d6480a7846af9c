# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# PRIVATE: this module_utils file is for sglang_rocm.fleet's own modules only; it is not a
# public API and may change without notice.
"""The docker CLI as argv lists, for the few jobs community.docker has no module for.

Commands are always lists (never a shell string), always name the daemon with --host, and run
with a C locale so error texts can be recognised.
"""

from __future__ import annotations

import base64
import inspect
import json

C_LOCALE = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}


def exec_argv(docker_bin, docker_host, container, command, interactive=False, env=None):
    """argv of ``docker --host H exec [-i] [--env K=V ...] CONTAINER COMMAND...``.

    ``env`` is for non-secrets only: values passed this way are visible in the host's process
    table while the docker client runs and in /proc/<pid>/environ inside the container.
    """
    argv = [docker_bin, "--host", docker_host, "exec"]
    if interactive:
        argv.append("-i")
    for key in sorted(env or {}):
        argv.extend(["--env", "%s=%s" % (key, env[key])])
    argv.append(container)
    argv.extend(command)
    return argv


def agent_stdin(agent, payload):
    """Source for ``docker exec -i CONTAINER python3 -``: the agent module's own source plus one
    ``main(<base64 JSON payload>)`` call. The payload (secrets included) travels only on stdin,
    never on a command line or in an environment."""
    encoded = base64.b64encode(json.dumps(payload).encode("utf-8")).decode("ascii")
    return "%s\nraise SystemExit(main(%r))\n" % (inspect.getsource(agent), encoded)


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


class DockerCli:
    """Thin wrapper over AnsibleModule.run_command for one docker daemon."""

    def __init__(self, module, docker_host, docker_bin=None):
        self.module = module
        self.docker_host = docker_host
        self.bin = docker_bin or module.get_bin_path("docker", required=True)

    def exec(self, container, command, data=None, env=None):
        """Run COMMAND in CONTAINER; ``data`` is fed to its stdin. Returns (rc, stdout, stderr)."""
        argv = exec_argv(self.bin, self.docker_host, container, command,
                         interactive=data is not None, env=env)
        return self.module.run_command(argv, data=data, environ_update=dict(C_LOCALE))
