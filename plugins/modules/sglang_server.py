#!/usr/bin/python
# Copyright: contributors to sglang_rocm.fleet
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sglang_server
short_description: Launch, wait for, stop and restart an SGLang server inside a running container
version_added: 0.1.0
description:
  - Runs on the GPU host. Starts C(python3 -m sglang.launch_server) inside a running container
    (host networking) through the docker CLI, detached under C(setsid) by a small supervisor that
    records the server's process group, its launch spec and its exit status in O(state_dir).
  - Waits synchronously for readiness on one monotonic deadline (O(timeout)); every probe is
    clamped to what is left of it. A closed port or HTTP 503 means "not yet". If the server
    process exits while the module waits, the module fails with the exit status and the
    last O(log_lines) lines of its log, instead of waiting for the timeout. While the port is
    closed, whether the server still runs is asked of the container (one C(docker exec)) after
    0.5 s, then at gaps that double up to 5 s; readiness itself is probed every O(sleep) seconds.
  - Idempotent. When a server with the same launch spec (command line, environment, API key,
    log path) is alive, it is left alone and the module only waits until it is ready.
    A changed spec restarts it and the diff shows the old and new command lines. Wait budgets
    are not part of the spec, so raising O(timeout) (and C(SGLANG_WARMUP_TIMEOUT) in O(env)) after
    a timeout waits for the server that is still loading instead of restarting it.
  - The API key is compared inside the container, as an HMAC under a random salt that never
    leaves the container (files C(salt) and C(key.json) in O(state_dir)); nothing derived from
    the key is returned, so RV(spec_hash) cannot be matched against a list of likely keys.
  - Process ids are checked against their recorded start times and the container's generation
    (boot id, pid namespace, start of its PID 1), so after a container restart the recorded ids
    are neither reported alive nor signalled, and the module warns that the server is gone.
  - The API key never appears on a command line, in an environment, in C(docker inspect) or in
    the log. The module sends it over the stdin of C(docker exec); inside the container it is
    written to a 0600 YAML file passed with C(--config). The supervisor masks it in the server's
    output before writing the log.
  - Stopping signals every process of the server, including tensor-parallel workers that
    hold GPU memory. This covers the session and process group of the supervisor, plus every
    process carrying the launch marker variable C(SGLANG_FLEET_SERVER_DIR) in its environment.
    The module sends SIGTERM, waits up to O(stop_timeout), sends SIGKILL to whatever is left,
    and confirms that nothing remains.
author:
  - sglang_rocm.fleet contributors (!UNKNOWN)
requirements:
  - Host networking for the container, and a Python 3 interpreter (O(python)) inside it, which
    runs the server and the module's agent.
options:
  state:
    description:
      - V(started) launches the server unless one with the same spec is alive, then waits
        until it is ready.
      - V(restarted) always stops any running server and launches a new one.
      - V(stopped) stops every process of the server and confirms that none is left.
    type: str
    choices: [started, stopped, restarted]
    default: started
  model_path:
    description:
      - Model given to C(--model-path), as a hub id or a path inside the container.
      - Required unless O(state=stopped).
      - Passed as a single argument, never through a shell, so any character is safe.
    type: str
  tokenizer_path:
    description: Tokenizer given to C(--tokenizer-path). Defaults to O(model_path).
    type: str
  served_model_name:
    description:
      - Name the server answers to in its API (C(--served-model-name)); by default SGLang uses
        O(model_path). The server role sets it to the repo id when it serves the staged copy
        (C(/models/<repo id>)), so clients keep asking for the repo id.
      - A C(--served-model-name) in O(extra_args) wins over it.
    type: str
  tp_size:
    description: Tensor-parallel size (C(--tp-size)). Must be a positive integer and at most O(gpu_count).
    type: int
    default: 1
  gpu_count:
    description:
      - Number of GPUs found on the host, for example C(ansible_facts.rocm.gpu_count) from
        P(sglang_rocm.fleet.rocm_facts#module).
      - When it is set, a larger O(tp_size) is refused before anything is launched.
    type: int
  port:
    description:
      - Port the server listens on (C(--port)).
      - Before a launch the module checks that no other process on the host listens on it,
        and names that process if one does.
    type: int
    default: 30000
  host:
    description:
      - Address the server binds (C(--host)); the recipe's loopback address by default.
      - The module probes this address; a wildcard (C(0.0.0.0), C(::)) through the loopback
        address of the same family (C(127.0.0.1), C(::1)).
      - Any address but 127.0.0.0/8, C(::1) and C(localhost) is refused without O(api_key),
        unless O(allow_unauthenticated) is true.
    type: str
    default: 127.0.0.1
  allow_unauthenticated:
    description:
      - Serve on a non-loopback O(host) without O(api_key), for a trusted, isolated network only;
        the server's whole API, admin endpoints included, is then open to that network.
    type: bool
    default: false
  trust_remote_code:
    description: Pass C(--trust-remote-code).
    type: bool
    default: false
  enable_metrics:
    description: Pass C(--enable-metrics) so that C(/metrics) exists.
    type: bool
    default: false
  api_key:
    description:
      - API key that the server enforces with Bearer authentication. Probes send it.
      - It is written to a 0600 file in O(state_dir) and passed with C(--config). It is never on a
        command line or in an environment.
      - A key that starts with C(-) is refused, because the server reads C(--config) with argparse, which
        takes such a value for an option.
    type: str
  env:
    description:
      - Environment added to the server's launch. The supervisor sets it for the server process,
        so it is not visible in C(docker inspect) or on the host.
      - It is visible in C(/proc/<pid>/environ) inside the container, so it is for non-secrets.
        Values of sensitive names, such as C(*_TOKEN), are masked in the results.
      - Values become strings; booleans become C(1) or C(0). C(PYTHONUNBUFFERED=1) is added
        unless set here, so that the log is written as it happens.
    type: dict
    default: {}
  extra_args:
    description:
      - Further C(sglang.launch_server) arguments, one list item per argument.
      - The module refuses flags that it builds from its own options, including their aliases and
        abbreviations, for example C(--tp) or C(--model).
    type: list
    elements: str
    default: []
  launch_module:
    description: Python module that starts the server (C(python3 -m <launch_module>)).
    type: str
    default: sglang.launch_server
  log_path:
    description:
      - Server log inside the container (stdout and stderr). The previous log is kept as C(<log_path>.1).
    type: path
    default: /var/log/sglang/server.log
  state_dir:
    description:
      - Directory inside the container for the supervisor's records (C(pid.json), C(spec.json),
        C(rc.json), C(config.yaml) and C(key.json) while a key is set, and the container's
        C(salt)). Use one directory per server.
    type: path
    default: /run/sglang-server
  timeout:
    description:
      - Overall deadline in seconds for the whole run, covering stop, launch and the wait for
        readiness. Model loading and ROCm kernel compilation can take tens of minutes.
      - On timeout the server is left running, so a re-run with the same spec waits for it again.
      - Every C(docker exec) the module runs is limited to what is left of this deadline (and
        to O(exec_timeout)); only the last one, which reads the log tail of a failure, may take up
        to 10 seconds more.
    type: float
    default: 1800
  connect_timeout:
    description:
      - Timeout in seconds of each HTTP probe.
      - It must stay above SGLang's own 20 s health-generation limit (C(SGLANG_HEALTH_CHECK_TIMEOUT)).
    type: float
    default: 30
  sleep:
    description: Seconds between two probes.
    type: float
    default: 0.5
  ready_probe:
    description:
      - V(health) waits for C(GET /health) to return 200. In SGLang 0.5.7 this already runs a
        one-token generation.
      - V(health_generate) waits for C(GET /health_generate) to return 200.
      - V(generate) waits for C(/health), then requires one real short generation with C(POST /generate).
    type: str
    choices: [health, health_generate, generate]
    default: health
  log_lines:
    description: Number of lines of the server log to return when the server dies or the wait times out.
    type: int
    default: 40
  stop_timeout:
    description: Seconds to wait after SIGTERM before the remaining processes get SIGKILL.
    type: float
    default: 30
  wait:
    description: Wait for readiness after a launch. V(false) returns as soon as the server process runs.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module runs only read-only steps. It reads the supervisor's records in
        the container, checks the port, and probes the server once when the server runs with the
        same spec. It reports what it would do, without launching, stopping or waiting.
      - A container that does not exist yet counts as "would start" and produces a warning.
  diff_mode:
    support: full
    details:
      - The diff shows whether a server runs, its command line and its environment, before and after.
  idempotent:
    description: When run twice with the same parameters, the second run changes nothing.
    support: full
    details:
      - V(restarted) restarts every time, by definition.
  platform:
    platforms: posix
extends_documentation_fragment:
  - sglang_rocm.fleet.docker_exec
  - ansible.builtin.action_common_attributes
notes:
  - The module does not use Ansible's async polling. Readiness is seen at most O(sleep) seconds
    after it happens.
  - A server that dies while the module waits is reported at the next probe. A closed port makes
    the module ask the container for the server's exit status.
seealso:
  - module: sglang_rocm.fleet.rocm_facts
"""

EXAMPLES = r"""
- name: Serve Kimi Linear on 4 GPUs and wait until it answers
  sglang_rocm.fleet.sglang_server:
    container: Kimi-linear
    model_path: moonshotai/Kimi-Linear-48B-A3B-Instruct
    tp_size: 4
    gpu_count: "{{ ansible_facts.rocm.gpu_count }}"
    trust_remote_code: true
    enable_metrics: true
    env:
      SGLANG_ROCM_FUSED_DECODE_MLA: "0"
      SGLANG_WARMUP_TIMEOUT: "1800"
    api_key: "{{ vault_sglang_api_key }}"
    timeout: 1800
  register: server

- name: Show where it listens
  ansible.builtin.debug:
    msg: "{{ server.url }} (pid {{ server.pid }}), ready at {{ server.ready_at }}"

- name: Restart with a real generation as the readiness check
  sglang_rocm.fleet.sglang_server:
    container: Kimi-linear
    model_path: moonshotai/Kimi-Linear-48B-A3B-Instruct
    tp_size: 4
    state: restarted
    ready_probe: generate

- name: Stop the server and every worker process
  sglang_rocm.fleet.sglang_server:
    container: Kimi-linear
    state: stopped
"""

RETURN = r"""
action:
  description: What the module did, or would do in check mode.
  returned: always
  type: str
  sample: started
  choices: [none, started, restarted, stopped]
reason:
  description: Why the server was (or would be) started or restarted.
  returned: when action is started or restarted
  type: str
  sample: the launch spec changed
elapsed:
  description:
    - Seconds from the start of the module's run until the server was ready (or, on failure, until it gave up).
  returned: when the module waited, and on failure
  type: float
  sample: 83.412
attempts:
  description: Number of readiness probes made.
  returned: when the module waited
  type: int
  sample: 42
pid:
  description: PID of the server process inside the container.
  returned: when a server runs
  type: int
  sample: 1234
url:
  description: Base URL the module probes (the server as seen from the host).
  returned: always
  type: str
  sample: http://127.0.0.1:30000
command:
  description:
    - The server's command line. The API key is never part of it (it sits in the --config file)
      and any secret is masked.
  returned: always, except when O(state=stopped) and no server ran
  type: str
  sample: python3 -m sglang.launch_server --model-path m --tokenizer-path m --tp-size 4 --host 127.0.0.1 --port 30000
spec_hash:
  description:
    - SHA-256 of the launch spec that decides whether a running server is the one wanted. It
      covers the command line, the environment without its wait budgets (C(SGLANG_WARMUP_TIMEOUT))
      and the log path; it holds nothing derived from the API key.
  returned: unless O(state=stopped)
  type: str
server_info:
  description:
    - C(GET /get_server_info) after readiness, with secrets masked. These are C(api_key) and any
      key named like a token, secret, password or key.
  returned: when the server is ready
  type: dict
  sample: {"api_key": "********", "tp_size": 4, "version": "0.5.7"}
ready_at:
  description: UTC time when readiness was observed (ISO 8601, milliseconds).
  returned: when the server is ready
  type: str
  sample: "2026-01-05T10:31:02.417+00:00"
phases:
  description:
    - Startup phases of the server this run launched, each as C(seconds) from the launch (the
      moment the module asked the container to start the server) and C(at), the UTC time
      (ISO 8601), or V(null) when the phase was not reached or not observed.
    - For a server left running (RV(action=none)) every phase is V(null) and RV(phases.running_since)
      says when that server was started; no time of this run is reported as a startup time.
    - The server role folds them, with the image and model stages' timings, into the host fact
      C(sglang_server_startup) (see docs/startup.md).
  returned: when a server was launched or left running, not in check mode; on failure after a launch
  type: dict
  contains:
    launched_at:
      description: UTC time of the launch, V(null) when the server was left running.
      type: str
    process_started:
      description: The server process existed (the supervisor in the container started it).
      type: dict
      sample: {"seconds": 0.042, "at": "2026-01-05T10:29:40.031+00:00"}
    port_open:
      description:
        - The server's port accepted a connection (SGLang binds it after loading the weights and
          before its warm-up; V(/health) still answers 503 then).
        - Seen at the start of the first probe that connected, so at most O(sleep) late.
      type: dict
    ready:
      description: The readiness probe (O(ready_probe)) passed.
      type: dict
    running_since:
      description: For a server left running, the UTC time it was started; V(null) after a launch.
      type: str
  sample: {"launched_at": "2026-01-05T10:29:39.989+00:00",
           "process_started": {"seconds": 0.042, "at": "2026-01-05T10:29:40.031+00:00"},
           "port_open": {"seconds": 71.205, "at": "2026-01-05T10:30:51.194+00:00"},
           "ready": {"seconds": 82.428, "at": "2026-01-05T10:31:02.417+00:00"},
           "running_since": null}
ready:
  description: In check mode, whether the running server answered its readiness probe.
  returned: in check mode when a server with the same spec runs
  type: bool
stopped:
  description: What stopping did.
  returned: when processes were stopped
  type: dict
  contains:
    signalled:
      description: Processes that got SIGTERM, as [pid, name] pairs.
      type: list
      elements: list
    killed:
      description: Processes still alive after O(stop_timeout) that got SIGKILL.
      type: list
      elements: list
    remaining:
      description: Processes still alive at the end (the module fails when there are any).
      type: list
      elements: list
    waited:
      description: Seconds the stop took.
      type: float
    rc:
      description: The supervisor's record of the server's exit status, if any.
      type: dict
exit_status:
  description: Exit status of the server (negative for a signal), when it died or was stopped.
  returned: on failure when the server died, and after a stop
  type: int
log_tail:
  description: Last O(log_lines) lines of the server log, with secrets masked.
  returned: on failure
  type: list
  elements: str
last_error:
  description: What the last unsuccessful probe saw.
  returned: on failure, and in check mode when not ready
  type: str
  sample: "/health: HTTP 503 (server still loading or warming up)"
log_path:
  description: Server log inside the container.
  returned: always
  type: str
state_dir:
  description: Directory of the supervisor's records inside the container.
  returned: always
  type: str
stale:
  description:
    - The recorded server is gone and its recorded process ids now may belong to other processes
      (the container restarted or the host rebooted since the launch, or the recorded session id
      was reused); they were not signalled.
  returned: when the records in O(state_dir) are stale
  type: str
port_owners:
  description: Processes that hold the port, when the port is taken.
  returned: on failure because the port is taken
  type: list
  elements: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._docker_cli import (
    DockerCli,
    exec_argument_spec,
    run_and_exit,
)
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._http import build_opener, request
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._server import (
    ServerManager,
    find_port_owners,
    launch_secrets,
    validate,
)


def argument_spec():
    return dict(
        exec_argument_spec(),
        state=dict(type="str", default="started", choices=["started", "stopped", "restarted"]),
        model_path=dict(type="str"),
        tokenizer_path=dict(type="str", no_log=False),
        served_model_name=dict(type="str"),
        tp_size=dict(type="int", default=1),
        gpu_count=dict(type="int"),
        port=dict(type="int", default=30000),
        host=dict(type="str", default="127.0.0.1"),
        allow_unauthenticated=dict(type="bool", default=False),
        trust_remote_code=dict(type="bool", default=False),
        enable_metrics=dict(type="bool", default=False),
        api_key=dict(type="str", no_log=True),
        env=dict(type="dict", default={}),
        extra_args=dict(type="list", elements="str", default=[]),
        launch_module=dict(type="str", default="sglang.launch_server"),
        log_path=dict(type="path", default="/var/log/sglang/server.log"),
        state_dir=dict(type="path", default="/run/sglang-server"),
        timeout=dict(type="float", default=1800),
        connect_timeout=dict(type="float", default=30),
        sleep=dict(type="float", default=0.5),
        ready_probe=dict(type="str", default="health", choices=["health", "health_generate", "generate"]),
        log_lines=dict(type="int", default=40),
        stop_timeout=dict(type="float", default=30),
        wait=dict(type="bool", default=True),
    )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[("state", "started", ["model_path"]), ("state", "restarted", ["model_path"])],
        supports_check_mode=True,
    )
    params = module.params
    # masked by Ansible too, in the invocation and everywhere else in the result
    module.no_log_values.update(launch_secrets(params))
    problems = validate(params, params["gpu_count"])
    if problems:
        module.fail_json(msg="invalid input, nothing was launched: " + "; ".join(problems), problems=problems)

    docker = DockerCli(module, params["docker_host"], params["exec_timeout"], clock=time.monotonic)
    opener = build_opener()

    def http(method, url, timeout, headers, data):
        return request(url, method=method, timeout=timeout, headers=headers, data=data, opener=opener)

    manager = ServerManager(params, docker, http, find_port_owners,
                            clock=time.monotonic, wall=time.time, sleep=time.sleep,
                            check_mode=module.check_mode, diff=module._diff, warn=module.warn)
    run_and_exit(module, manager)


if __name__ == "__main__":
    main()
