"""sglang_server: the real main() with injected args. Only the boundary is mocked: the docker
CLI (AnsibleModule.run_command, the fake_docker of conftest.py), the urllib opener, /proc port
lookups and time."""

import collections
import hashlib
import io
import json
import urllib.error
from unittest import mock

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _server
from ansible_collections.sglang_rocm.fleet.plugins.modules import sglang_server

KEY = "sk-unit-secret-42"
BASE = ["/usr/bin/timeout", "--kill-after=5", "600",
        "/usr/bin/docker", "--host", "unix:///var/run/docker.sock", "exec", "-i", "Kimi-linear", "python3", "-"]


def args(**extra):
    base = {"container": "Kimi-linear", "model_path": "moonshotai/Kimi-Linear-48B-A3B-Instruct", "tp_size": 4,
            "trust_remote_code": True, "enable_metrics": True, "env": {"SGLANG_ROCM_FUSED_DECODE_MLA": "0"}}
    base.update(extra)
    return base


def wanted(module_args):
    """The spec the module will compute for these args (to fake a server already running it)."""
    spec = dict(sglang_server.argument_spec())
    params = {name: option.get("default") for name, option in spec.items()}
    params.update(module_args)
    argv = _server.build_argv(params)
    env = _server.launch_env(params["env"])
    return {"hash": _server.spec_hash(argv, env, params["log_path"]),
            "command": _server.command_line(argv), "env": env}


def running(spec, pid=4242):
    return {"present": True, "alive": True, "pid": pid, "supervisor_pid": pid - 1, "pgid": pid - 1, "rc": None,
            "spec": spec, "members": [[pid - 1, "python3"], [pid, "python3"], [pid + 1, "python3"]], "log_tail": []}


ABSENT = {"present": False, "alive": False, "rc": None, "spec": None, "members": [], "log_tail": []}
# the supervisor started the server 50 ms after the launch (FakeTime's epoch at 1000.0)
LAUNCHED = {"pid": 5151, "supervisor_pid": 5150, "pgid": 5150, "launched_at": 1767225600.05}
STOPPED = {"was_running": True, "signalled": [[4241, "python3"], [4242, "python3"], [4243, "python3"]],
           "killed": [], "remaining": [], "waited": 1.2, "rc": {"rc": -15}}


Request = collections.namedtuple("Request", "method url headers body timeout")


class FakeTime:
    """Monotonic clock and sleep that only move when the code under test sleeps or probes."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def time(self):
        return 1767225600.0 + (self.now - 1000.0)

    def sleep(self, seconds):
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


class Boundary:
    """Scripted answers for docker exec (per agent operation) and HTTP (in order)."""

    def __init__(self, agent=None, http=None, owners=None, http_cost=0.1):
        self.agent = {op: list(answers) for op, answers in (agent or {}).items()}
        self.http = list(http or [])
        self.owners = owners or []
        self.http_cost = http_cost
        self.docker = None  # conftest's FakeDocker, set by run_module
        self.requests = []  # Request
        self.port_checks = []
        self.clock = FakeTime()

    # ---- docker CLI

    def answer(self, call):
        return self.agent[call.argv[-1]].pop(0)

    @property
    def exec_calls(self):
        return self.docker.calls if self.docker else []

    def ops(self):
        return [call.argv[-1] for call in self.exec_calls]

    # ---- HTTP

    def open(self, request, timeout=None):
        body = request.data.decode() if request.data else None
        self.requests.append(Request(request.get_method(), request.full_url, dict(request.header_items()), body, timeout))
        self.clock.now += self.http_cost
        answer = self.http.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, payload = answer
        if status >= 400:
            raise urllib.error.HTTPError(request.full_url, status, "error", {}, io.BytesIO(payload))
        response = mock.MagicMock(status=status)
        response.read.return_value = payload
        response.__enter__.return_value = response
        return response

    def find_port_owners(self, port, host):
        self.port_checks.append((port, host))
        return self.owners, []


REFUSED = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
H503 = (503, b"")
H200 = (200, b"")
INFO = (200, json.dumps({"api_key": KEY, "tp_size": 4, "max_total_num_tokens": 1000, "hf_token": "hf_x",
                         "version": "0.5.7"}).encode())


@pytest.fixture
def run_module(fake_docker, run_main, capsys):
    def run(module_args, boundary, check_mode=False, diff=False):
        opener = mock.MagicMock()
        opener.open.side_effect = boundary.open
        boundary.docker = fake_docker(boundary.answer)
        patches = (mock.patch.object(sglang_server, "build_opener", return_value=opener),
                   mock.patch.object(sglang_server, "find_port_owners", boundary.find_port_owners),
                   mock.patch.object(sglang_server, "time", boundary.clock))
        return run_main(sglang_server.main, module_args, boundary.docker, capsys, check_mode=check_mode,
                        diff=diff, patches=patches)
    return run


def test_fresh_start_launches_once_and_waits_for_health(run_module):
    boundary = Boundary(agent={"status": [ABSENT, running(None, 5151)], "launch": [LAUNCHED]},
                        http=[REFUSED, H503, H200, INFO])
    result = run_module(args(api_key=KEY), boundary)
    assert result["_rc"] == 0 and result["changed"] is True
    assert (result["action"], result["reason"], result["pid"]) == ("started", "no server was running", 5151)
    # docker: status, launch, then one liveness check while the port was closed (503 needs none)
    assert boundary.ops() == ["status", "launch", "status"]
    assert [call.argv for call in boundary.exec_calls] == [BASE + ["status"], BASE + ["launch"], BASE + ["status"]]
    launch = boundary.exec_calls[1].payload
    assert launch["argv"] == [
        "python3", "-m", "sglang.launch_server",
        "--model-path", "moonshotai/Kimi-Linear-48B-A3B-Instruct",
        "--tokenizer-path", "moonshotai/Kimi-Linear-48B-A3B-Instruct",
        "--tp-size", "4", "--host", "127.0.0.1", "--port", "30000",
        "--trust-remote-code", "--enable-metrics", "--config", "/run/sglang-server/config.yaml"]
    assert launch["env"] == {"PYTHONUNBUFFERED": "1", "SGLANG_ROCM_FUSED_DECODE_MLA": "0"}
    assert launch["api_key"] == KEY  # only ever inside the stdin script
    assert (launch["state_dir"], launch["log_path"]) == ("/run/sglang-server", "/var/log/sglang/server.log")
    assert boundary.port_checks == [(30000, "127.0.0.1")]
    # HTTP: three probes then server info, each with the Bearer key, clamped timeouts
    assert [(r.method, r.url) for r in boundary.requests] == [
        ("GET", "http://127.0.0.1:30000/health")] * 3 + [("GET", "http://127.0.0.1:30000/get_server_info")]
    assert all(r.headers["Authorization"] == "Bearer " + KEY for r in boundary.requests)
    assert [r.timeout for r in boundary.requests] == [30.0, 30.0, 30.0, 10.0]
    assert boundary.clock.sleeps == [0.5, 0.5]
    assert result["attempts"] == 3 and result["elapsed"] == pytest.approx(1.3)
    assert result["ready_at"] == "2026-01-01T00:00:01.300+00:00"
    assert result["server_info"] == {"api_key": "********", "tp_size": 4, "max_total_num_tokens": 1000,
                                     "hf_token": "********", "version": "0.5.7"}
    assert result["command"].endswith("--enable-metrics --config /run/sglang-server/config.yaml")
    assert result["url"] == "http://127.0.0.1:30000"
    assert KEY not in result["_raw"]
    assert all(KEY not in " ".join(call.argv) for call in boundary.exec_calls)


def test_a_launch_reports_its_phases_in_order_from_the_launch(run_module):
    boundary = Boundary(agent={"status": [ABSENT] + [running(None, 5151)] * 2, "launch": [LAUNCHED]},
                        http=[REFUSED, REFUSED, H503, H503, H200, INFO], http_cost=0.1)
    result = run_module(args(sleep=0.5), boundary)
    # probes begin at 0, 0.6, 1.2 (the first 503: the port accepts), 1.8, 2.4; ready when the
    # fifth one returns, 2.5 s after the launch
    assert result["phases"] == {
        "launched_at": "2026-01-01T00:00:00.000+00:00",
        "process_started": {"seconds": 0.05, "at": "2026-01-01T00:00:00.050+00:00"},
        "port_open": {"seconds": 1.2, "at": "2026-01-01T00:00:01.200+00:00"},
        "ready": {"seconds": 2.5, "at": "2026-01-01T00:00:02.500+00:00"},
        "running_since": None}
    assert result["ready_at"] == result["phases"]["ready"]["at"]


def test_a_port_that_accepts_but_does_not_answer_counts_as_open(run_module):
    silent = TimeoutError("timed out")  # raised while reading the reply, so not a URLError
    boundary = Boundary(agent={"status": [ABSENT] + [running(None, 5151)] * 2, "launch": [LAUNCHED]},
                        http=[REFUSED, silent, H200, INFO])
    result = run_module(args(sleep=0.5), boundary)
    assert result["phases"]["port_open"]["seconds"] == 0.6
    assert result["phases"]["ready"]["seconds"] == 1.3


def test_a_timeout_after_a_launch_keeps_the_phases_it_saw(run_module):
    boundary = Boundary(agent={"status": [ABSENT] + [running(None, 5151)] * 5, "launch": [LAUNCHED]},
                        http=[REFUSED] * 10)
    result = run_module(args(timeout=1, sleep=0.5), boundary)
    assert result["failed"] is True
    assert result["phases"]["process_started"]["seconds"] == 0.05
    assert (result["phases"]["port_open"], result["phases"]["ready"]) == (None, None)


def test_no_wait_reports_only_the_process_start(run_module):
    boundary = Boundary(agent={"status": [ABSENT], "launch": [LAUNCHED]})
    result = run_module(args(wait=False), boundary)
    assert result["phases"]["process_started"] == {"seconds": 0.05, "at": "2026-01-01T00:00:00.050+00:00"}
    assert (result["phases"]["port_open"], result["phases"]["ready"]) == (None, None)


def test_a_server_left_running_reports_no_phase_only_since_when_it_runs(run_module):
    module_args = args()
    boundary = Boundary(agent={"status": [dict(running(wanted(module_args)), launched_at=1767225000.0)]},
                        http=[H503, H200, INFO])
    result = run_module(module_args, boundary)
    assert result["action"] == "none" and result["changed"] is False
    assert result["phases"] == {"launched_at": None, "process_started": None, "port_open": None, "ready": None,
                                "running_since": "2025-12-31T23:50:00.000+00:00"}


def test_same_spec_alive_and_healthy_is_left_alone(run_module):
    module_args = args()
    boundary = Boundary(agent={"status": [running(wanted(module_args))]}, http=[H200, INFO])
    result = run_module(module_args, boundary, diff=True)
    assert result["changed"] is False and result["action"] == "none" and result["pid"] == 4242
    assert boundary.ops() == ["status"]
    assert len(boundary.requests) == 2 and boundary.port_checks == []
    assert result["diff"]["before"] == result["diff"]["after"]
    assert result["attempts"] == 1 and boundary.clock.sleeps == []


def test_same_spec_still_loading_is_waited_for_without_restart(run_module):
    module_args = args()
    boundary = Boundary(agent={"status": [running(wanted(module_args))]}, http=[H503, H503, H200, INFO])
    result = run_module(module_args, boundary)
    assert result["changed"] is False and result["attempts"] == 3
    assert boundary.ops() == ["status"]


def test_changed_spec_restarts_with_a_diff_of_the_command_lines(run_module):
    old = wanted(args())
    new_args = args(extra_args=["--mem-fraction-static", "0.85"])
    boundary = Boundary(agent={"status": [running(old)], "stop": [STOPPED], "launch": [LAUNCHED]},
                        http=[H200, INFO])
    result = run_module(new_args, boundary, diff=True)
    assert result["changed"] is True and result["action"] == "restarted"
    assert result["reason"] == "the launch spec changed"
    assert boundary.ops() == ["status", "stop", "launch"]
    assert boundary.exec_calls[1].payload["stop_timeout"] == 30.0
    assert boundary.port_checks == [(30000, "127.0.0.1")]  # after the stop, before the launch
    assert result["diff"]["before"]["command"] == old["command"]
    assert result["diff"]["after"]["command"] == old["command"] + " --mem-fraction-static 0.85"
    assert result["stopped"]["signalled"] == STOPPED["signalled"]


def test_restarted_always_restarts(run_module):
    module_args = args(state="restarted")
    boundary = Boundary(agent={"status": [running(wanted(module_args))], "stop": [STOPPED], "launch": [LAUNCHED]},
                        http=[H200, INFO])
    result = run_module(module_args, boundary)
    assert (result["changed"], result["action"], result["reason"]) == (True, "restarted", "state=restarted")
    assert boundary.ops() == ["status", "stop", "launch"]


def test_check_mode_reports_the_restart_without_doing_it(run_module):
    boundary = Boundary(agent={"status": [running(wanted(args()))]})
    result = run_module(args(tp_size=2), boundary, check_mode=True, diff=True)
    assert result["changed"] is True and result["action"] == "restarted"
    assert result["msg"] == "would restart the server: the launch spec changed"
    assert boundary.ops() == ["status"] and boundary.requests == []
    assert "--tp-size 4" in result["diff"]["before"]["command"] and "--tp-size 2" in result["diff"]["after"]["command"]


def test_check_mode_with_the_same_spec_probes_once_and_changes_nothing(run_module):
    module_args = args()
    boundary = Boundary(agent={"status": [running(wanted(module_args))]}, http=[H503])
    result = run_module(module_args, boundary, check_mode=True)
    assert result["changed"] is False and result["ready"] is False
    assert result["last_error"] == "/health: HTTP 503 (server still loading or warming up)"
    assert boundary.ops() == ["status"] and len(boundary.requests) == 1 and boundary.clock.sleeps == []


def test_check_mode_before_the_container_exists_would_start(run_module):
    missing = (1, "", "Error response from daemon: No such container: Kimi-linear\n")
    boundary = Boundary(agent={"status": [missing]})
    result = run_module(args(), boundary, check_mode=True)
    assert result["changed"] is True and result["action"] == "started"
    assert result["_warnings"] == [
        "container Kimi-linear on unix:///var/run/docker.sock does not exist: run the container role first "
        "(sglang_container_name names it); check mode assumes it will exist"]


def test_missing_container_fails_clearly(run_module):
    boundary = Boundary(agent={"status": [(1, "", "Error response from daemon: container abc is not running\n")]})
    result = run_module(args(), boundary)
    assert result["failed"] is True
    assert result["msg"] == ("container Kimi-linear on unix:///var/run/docker.sock is not running: start it "
                             "with the container role first")


def test_crash_during_load_fails_at_once_with_the_servers_words(run_module):
    dead = dict(running(None, 5151), alive=False, rc={"rc": 1, "at": 1.7e9},
                log_tail=["Load weight begin", "\x1b[31mRuntimeError\x1b[0m: HIP out of memory",
                          "Initialization failed. Please see the error messages above."])
    boundary = Boundary(agent={"status": [ABSENT, running(None, 5151), dead], "launch": [LAUNCHED]},
                        http=[REFUSED, REFUSED])
    result = run_module(args(timeout=1800, log_lines=2), boundary)
    assert result["failed"] is True and result["changed"] is True and result["action"] == "started"
    assert result["msg"] == (
        "sglang server in container Kimi-linear died while starting, 0.7s after the module began: exit status 1. "
        "Last 2 lines of /var/log/sglang/server.log:\nRuntimeError: HIP out of memory\n"
        "Initialization failed. Please see the error messages above.")
    assert result["exit_status"] == 1
    assert result["log_tail"] == ["RuntimeError: HIP out of memory",
                                  "Initialization failed. Please see the error messages above."]
    assert result["last_error"] == "/health: connection refused (port closed)"
    assert boundary.ops() == ["status", "launch", "status", "status"]
    assert boundary.exec_calls[3].payload["log_lines"] == 2
    assert result["attempts"] == 2 and boundary.clock.sleeps == [0.5]


def test_secret_values_of_env_and_extra_args_are_masked_wherever_the_result_quotes_them(run_module):
    """An argparse error quotes the command line; the secret values of secret-named env entries
    and secret-looking flags are masked in the message, the log tail and the invocation."""
    dead = dict(running(None, 5151), alive=False, rc={"rc": 2, "at": 1.7e9},
                log_tail=["launch_server: error: unrecognized arguments: --admin-api-key adm-sentinel-1",
                          "env WANDB_KEY=wandb-sentinel-2"])
    boundary = Boundary(agent={"status": [ABSENT, running(None, 5151), dead], "launch": [LAUNCHED]},
                        http=[REFUSED, REFUSED])
    result = run_module(args(extra_args=["--admin-api-key", "adm-sentinel-1"],
                             env={"WANDB_KEY": "wandb-sentinel-2", "MODE": "fast"}), boundary)
    assert result["failed"] is True and "died while starting" in result["msg"]
    assert "--admin-api-key ********" in result["msg"] and "WANDB_KEY=********" in result["msg"]
    text = json.dumps(result)
    assert "adm-sentinel-1" not in text and "wandb-sentinel-2" not in text, text
    assert result["invocation"]["module_args"]["env"]["MODE"] == "fast"


def test_timeout_reports_elapsed_last_error_and_log_tail(run_module):
    tail = dict(running(None, 5151), log_tail=["Capture cuda graph begin. This can take up to several minutes."])
    boundary = Boundary(agent={"status": [ABSENT, tail], "launch": [LAUNCHED]}, http=[H503] * 10, http_cost=0.25)
    result = run_module(args(timeout=2, sleep=0.5), boundary)
    assert result["failed"] is True and result["changed"] is True
    assert result["elapsed"] == 2.0
    assert result["msg"] == (
        "sglang server in container Kimi-linear was not ready after 2.0s (timeout 2.0s); last probe: /health: HTTP 503 "
        "(server still loading or warming up). The server is left running; raise timeout if it only needs longer. "
        "Last 1 lines of /var/log/sglang/server.log:\nCapture cuda graph begin. This can take up to several minutes.")
    assert boundary.ops() == ["status", "launch", "status"]
    assert boundary.exec_calls[2].payload["always_tail"] is True
    # probes at 0, 0.75, 1.5 (each costing 0.25 s); the last sleep is clamped to the deadline
    assert boundary.clock.sleeps == [0.5, 0.5, 0.25]
    assert [r.timeout for r in boundary.requests] == [2.0, 1.25, 0.5]
    assert result["attempts"] == 3


def test_generate_probe_runs_one_real_generation(run_module):
    boundary = Boundary(agent={"status": [ABSENT], "launch": [LAUNCHED]},
                        http=[H200, (200, b'{"text": " Paris", "meta_info": {}}'), INFO])
    result = run_module(args(ready_probe="generate", api_key=KEY), boundary)
    assert result["changed"] is True
    post = boundary.requests[1]
    assert (post.method, post.url) == ("POST", "http://127.0.0.1:30000/generate")
    assert post.headers["Authorization"] == "Bearer " + KEY and post.headers["Content-type"] == "application/json"
    assert json.loads(post.body) == {"text": "The capital city of France is",
                                     "sampling_params": {"max_new_tokens": 1, "temperature": 0}}


def test_stopped_signals_the_group_and_reports(run_module):
    module_args = {"container": "Kimi-linear", "state": "stopped"}
    boundary = Boundary(agent={"status": [running(wanted(args()))], "stop": [STOPPED]})
    result = run_module(module_args, boundary, diff=True)
    assert result["changed"] is True and result["action"] == "stopped"
    assert result["msg"] == "stopped 3 process(es) with SIGTERM in 1.2s; none is left"
    assert result["exit_status"] == -15
    assert result["diff"] == {"before": {"running": True, "command": wanted(args())["command"]},
                              "after": {"running": False, "command": None}}
    assert boundary.ops() == ["status", "stop"] and boundary.requests == []


def test_stopped_when_nothing_runs_changes_nothing(run_module):
    boundary = Boundary(agent={"status": [ABSENT]})
    result = run_module({"container": "Kimi-linear", "state": "stopped"}, boundary)
    assert (result["changed"], result["action"]) == (False, "none")
    assert boundary.ops() == ["status"]


def test_stop_that_leaves_a_worker_fails(run_module):
    stuck = dict(STOPPED, killed=[[4243, "python3"]], remaining=[[4243, "python3"]])
    boundary = Boundary(agent={"status": [running(wanted(args()))], "stop": [stuck]})
    result = run_module({"container": "Kimi-linear", "state": "stopped"}, boundary)
    assert result["failed"] is True and result["changed"] is True
    assert result["msg"].startswith("processes of the server in container Kimi-linear are still alive after "
                                    "SIGKILL: python3 (pid 4243)")


def test_bad_input_fails_before_touching_anything(run_module):
    boundary = Boundary()
    result = run_module(args(tp_size=8, gpu_count=4, extra_args=["--tp", "8"], port=0), boundary)
    assert result["failed"] is True
    assert result["problems"] == [
        "tp_size 8 is larger than the 4 GPU(s) preflight found on this host: lower tp_size (sglang_tp_size) "
        "or fix the host (see the preflight report)",
        "port must be a TCP port between 1 and 65535, got 0",
        "extra_args item '--tp' repeats --tp-size, which the module sets from its tp_size option; remove it "
        "from extra_args and set tp_size instead"]
    assert result["msg"].startswith("invalid input, nothing was launched: tp_size 8 is larger")
    assert boundary.exec_calls == [] and boundary.requests == []


def test_port_taken_by_another_process_is_named_before_launch(run_module):
    owner = {"address": "0.0.0.0", "port": 30000, "pid": 777, "name": "nginx", "cmdline": "nginx -g daemon off;"}
    boundary = Boundary(agent={"status": [ABSENT]}, owners=[owner])
    result = run_module(args(), boundary)
    assert result["failed"] is True
    assert result["msg"] == ("port 30000 is already taken on this host: nginx (pid 777: nginx -g daemon off;) listens "
                             "on 0.0.0.0:30000. Stop that process or choose another port (option port, role "
                             "variable sglang_port)")
    assert result["port_owners"] == [owner]
    assert boundary.ops() == ["status"]


def test_shell_metacharacters_in_the_model_path_are_one_argument(run_module):
    path = "/models/kimi; rm -rf / #$(reboot)`id`|&>"
    boundary = Boundary(agent={"status": [ABSENT], "launch": [LAUNCHED]}, http=[H200, INFO])
    result = run_module(args(model_path=path), boundary)
    argv = boundary.exec_calls[1].payload["argv"]
    assert argv[3:7] == ["--model-path", path, "--tokenizer-path", path]
    assert boundary.exec_calls[1].argv == BASE + ["launch"]
    assert "'/models/kimi; rm -rf / #$(reboot)`id`|&>'" in result["command"]


def test_no_wait_returns_after_the_launch(run_module):
    boundary = Boundary(agent={"status": [ABSENT], "launch": [LAUNCHED]})
    result = run_module(args(wait=False), boundary)
    assert result["changed"] is True and result["pid"] == 5151 and "ready_at" not in result
    assert boundary.ops() == ["status", "launch"] and boundary.requests == []


def test_a_dead_previous_server_is_cleaned_up_and_replaced(run_module):
    old = dict(running(wanted(args()), 4242), alive=False, rc={"rc": -9}, members=[[4243, "python3"]])
    boundary = Boundary(agent={"status": [old], "stop": [dict(STOPPED, signalled=[[4243, "python3"]])],
                               "launch": [LAUNCHED]}, http=[H200, INFO])
    result = run_module(args(), boundary)
    assert result["action"] == "started"
    assert result["reason"] == "the previous server is not running (killed by SIGKILL)"
    assert boundary.ops() == ["status", "stop", "launch"]


def test_timeout_before_the_server_wrote_anything_says_the_log_is_empty(run_module):
    boundary = Boundary(agent={"status": [ABSENT, dict(running(None, 5151), log_tail=[])], "launch": [LAUNCHED]},
                        http=[H503] * 10)
    result = run_module(args(timeout=1, sleep=0.5), boundary)
    assert result["msg"].endswith("raise timeout if it only needs longer. "
                                  "The log /var/log/sglang/server.log is empty so far.")
    assert result["log_tail"] == []


def test_a_rejected_key_fails_at_once(run_module):
    boundary = Boundary(agent={"status": [ABSENT, running(None, 5151)], "launch": [LAUNCHED]},
                        http=[H200, (401, b'{"error": "Unauthorized"}')])
    result = run_module(args(ready_probe="generate", api_key=KEY), boundary)
    assert result["failed"] is True and result["changed"] is True
    assert result["msg"].startswith("sglang server in container Kimi-linear cannot be probed: /generate: HTTP 401 "
                                    "(the server rejects the API key).")
    assert boundary.clock.sleeps == [] and KEY not in result["_raw"]


def test_check_mode_stop_changes_nothing(run_module):
    boundary = Boundary(agent={"status": [running(wanted(args()))]})
    result = run_module({"container": "Kimi-linear", "state": "stopped"}, boundary, check_mode=True)
    assert (result["changed"], result["action"], result["msg"]) == (True, "stopped", "would stop 3 process(es)")
    assert boundary.ops() == ["status"]


def test_agent_errors_are_reported_with_the_container(run_module):
    busy = {"error": "a server started from /run/sglang-server is still running (pids 7); stop it first"}
    boundary = Boundary(agent={"status": [ABSENT], "launch": [busy]})
    result = run_module(args(), boundary)
    assert result["msg"] == ("the launch step in container Kimi-linear on unix:///var/run/docker.sock failed: "
                             "a server started from /run/sglang-server is still running (pids 7); stop it first")


def test_a_container_without_python_is_named(run_module):
    no_python = 'OCI runtime exec failed: exec: "python3": executable file not found in $PATH: unknown\n'
    boundary = Boundary(agent={"status": [(126, "", no_python)]})
    result = run_module(args(), boundary)
    assert result["msg"].startswith("container Kimi-linear on unix:///var/run/docker.sock has no python3; set "
                                    "sglang_server_python to the image's Python: OCI runtime exec failed")


def test_every_agent_call_has_a_time_limit_and_stop_gets_its_wait_on_top(run_module):
    boundary = Boundary(agent={"status": [running(None)], "stop": [STOPPED]})
    result = run_module({"container": "Kimi-linear", "state": "stopped", "exec_timeout": 20,
                         "stop_timeout": 30}, boundary)
    assert result["_rc"] == 0 and result["action"] == "stopped"
    assert [call.argv[:3] for call in boundary.exec_calls] == [
        ["/usr/bin/timeout", "--kill-after=5", "20"], ["/usr/bin/timeout", "--kill-after=5", "51"]]


def test_an_agent_call_that_runs_out_of_time_is_named(run_module):
    boundary = Boundary(agent={"status": [(124, "", "")]})

    def slow(call):
        boundary.clock.now += 600.0
        return boundary.agent[call.argv[-1]].pop(0)
    boundary.answer = slow
    result = run_module(args(), boundary)
    assert result["_rc"] == 1 and result["timed_out"] is True
    assert result["msg"].startswith("the status step in container Kimi-linear on unix:///var/run/docker.sock "
                                    "did not answer within 600 s (exec_timeout)")


# ----------------------------------------------------------------------------- issue 15: identity and bounds


def test_a_raised_timeout_waits_for_the_loading_server_instead_of_restarting_it(run_module):
    # the server role sets SGLANG_WARMUP_TIMEOUT to sglang_server_timeout; the first run timed out
    first = args(timeout=1800, env={"SGLANG_ROCM_FUSED_DECODE_MLA": "0", "SGLANG_WARMUP_TIMEOUT": "1800"})
    second = args(timeout=3600, env={"SGLANG_ROCM_FUSED_DECODE_MLA": "0", "SGLANG_WARMUP_TIMEOUT": "3600"})
    boundary = Boundary(agent={"status": [running(wanted(first))]}, http=[H503, H200, INFO])
    result = run_module(second, boundary, diff=True)
    assert result["_rc"] == 0 and result["changed"] is False and result["action"] == "none"
    assert boundary.ops() == ["status"]  # no stop, no launch
    assert result["spec_hash"] == wanted(first)["hash"]
    assert result["diff"]["before"] == result["diff"]["after"]


def test_the_published_spec_hash_carries_nothing_derived_from_the_api_key(run_module):
    results = []
    for key in (KEY, "sk-other-key-7"):
        boundary = Boundary(agent={"status": [ABSENT, running(None, 5151)], "launch": [LAUNCHED]},
                            http=[H200, INFO])
        results.append(run_module(args(api_key=key), boundary))
        # the key reaches the agent only on stdin, to be compared (status) and recorded (launch)
        assert [call.payload.get("api_key") for call in boundary.exec_calls] == [key, key]
    assert results[0]["spec_hash"] == results[1]["spec_hash"]
    for result, key in zip(results, (KEY, "sk-other-key-7")):
        raw = result["_raw"]
        assert key not in raw
        for name in ("md5", "sha1", "sha224", "sha256", "sha384", "sha512", "blake2b", "blake2s"):
            digest = hashlib.new(name, key.encode()).hexdigest()
            assert digest not in raw and digest[:16] not in raw


def test_a_changed_api_key_still_restarts_the_server(run_module):
    module_args = args(api_key="sk-new-key")
    current = dict(running(wanted(module_args)), key_matches=False)
    boundary = Boundary(agent={"status": [current], "stop": [STOPPED], "launch": [LAUNCHED]}, http=[H200, INFO])
    result = run_module(module_args, boundary)
    assert (result["changed"], result["action"], result["reason"]) == (True, "restarted", "the API key changed")
    assert boundary.ops() == ["status", "stop", "launch"]
    assert boundary.exec_calls[0].payload["api_key"] == "sk-new-key"


def test_the_death_check_backs_off_while_the_model_loads_and_readiness_is_seen_at_once(run_module):
    # 60 s with the port closed, probed every 0.5 s (sleep), then ready
    probes = int(60 / 0.6)
    boundary = Boundary(agent={"status": [ABSENT] + [running(None, 5151)] * probes, "launch": [LAUNCHED]},
                        http=[REFUSED] * probes + [H200, INFO])
    times = []
    answer = boundary.answer

    def timed(call):
        times.append(boundary.clock.now)
        return answer(call)
    boundary.answer = timed
    result = run_module(args(), boundary)
    assert result["_rc"] == 0 and result["attempts"] == probes + 1
    checks = times[2:]
    # each probe costs 0.1 s plus the 0.5 s sleep; the gaps between checks double from 0.5 s to
    # 5 s: 14 docker execs in a minute instead of 100 (one per probe, 0.5 s apart at least)
    assert [round(b - a, 1) for a, b in zip(checks, checks[1:])] == [0.6, 1.2, 2.4, 4.2] + [5.4] * 9
    # ready is seen by the first probe after the server answers: no sleep is longer than `sleep`
    assert max(boundary.clock.sleeps) == 0.5


def test_no_docker_call_runs_past_the_modules_deadline(run_module):
    boundary = Boundary(agent={"status": [ABSENT, running(None, 5151)], "launch": [LAUNCHED]},
                        http=[REFUSED, H200, INFO], http_cost=0.1)
    run_module(args(timeout=45, exec_timeout=600), boundary)
    limits = [int(call.argv[2]) for call in boundary.exec_calls]
    assert limits == [45, 45, 45]


def test_a_wedged_death_check_ends_within_the_deadline_and_names_it(run_module):
    boundary = Boundary(agent={"status": [ABSENT, (124, "", "")], "launch": [LAUNCHED]},
                        http=[REFUSED, REFUSED])
    answer = boundary.answer

    def wedged(call):
        if call.argv[-1] == "status" and len(boundary.exec_calls) > 2:
            boundary.clock.now += float(call.argv[2])  # the docker exec hangs until timeout kills it
        return answer(call)
    boundary.answer = wedged
    result = run_module(args(timeout=20, exec_timeout=600), boundary)
    assert result["_rc"] == 1 and result["timed_out"] is True
    assert boundary.exec_calls[2].argv[:3] == ["/usr/bin/timeout", "--kill-after=5", "20"]
    assert result["msg"].startswith("the status step in container Kimi-linear on unix:///var/run/docker.sock did "
                                    "not answer within 20 s (timeout), so the docker CLI was stopped")


def test_a_stale_record_after_a_container_restart_is_reported_and_nothing_is_signalled(run_module):
    gone = dict(ABSENT, present=True, pid=4242, stale="the recorded server (pid 4242) is gone: the container "
                "restarted (or the host rebooted) since the server was launched (init_start changed)",
                rc={"rc": None, "error": "the recorded server (pid 4242) is gone"})
    boundary = Boundary(agent={"status": [gone]})
    result = run_module({"container": "Kimi-linear", "state": "stopped"}, boundary)
    assert result["_rc"] == 0 and result["changed"] is False and result["action"] == "none"
    assert boundary.ops() == ["status"]  # no stop: nothing of the record is signalled
    assert result["stale"].endswith("(init_start changed); its recorded process ids were not signalled")
    assert result["_warnings"] == [result["stale"]]
