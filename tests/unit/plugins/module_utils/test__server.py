"""Pure logic of the sglang_server module: no Docker, no network, no real time."""

import base64
import itertools
import json
import os
import re

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _server
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._http import HttpResult


def params(**extra):
    base = {"state": "started", "model_path": "/models/kimi", "tokenizer_path": None, "tp_size": 4,
            "port": 30000, "host": "127.0.0.1", "trust_remote_code": True, "enable_metrics": True,
            "api_key": None, "env": {}, "extra_args": [], "python": "python3",
            "launch_module": "sglang.launch_server", "state_dir": "/run/sglang-server",
            "timeout": 1800.0, "connect_timeout": 30.0, "sleep": 0.5}
    base.update(extra)
    return base


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


# ----------------------------------------------------------------------------- flags and input


@pytest.mark.parametrize("arg, owner", [
    ("--tp", ("--tp-size", "tp_size")),
    ("--tp=2", ("--tp-size", "tp_size")),
    ("--tp-size", ("--tp-size", "tp_size")),
    ("--tensor-parallel-size=8", ("--tensor-parallel-size", "tp_size")),
    ("--model", ("--model-path", "model_path")),
    ("--model-path=/m", ("--model-path", "model_path")),
    ("--host", ("--host", "host")),
    ("--port=1", ("--port", "port")),
    ("--api-key", ("--api-key", "api_key")),
    ("--config", ("--config", "api_key")),
    ("--trust-remote-code", ("--trust-remote-code", "trust_remote_code")),
    ("--enable-metrics", ("--enable-metrics", "enable_metrics")),
    ("--tokenizer", ("--tokenizer-path", "tokenizer_path")),
])
def test_owned_flags_and_their_abbreviations_are_recognised(arg, owner):
    assert _server.owned_flag(arg) == owner


@pytest.mark.parametrize("arg", ["--enable-metrics-for-all-schedulers", "--tokenizer-mode", "--mem-fraction-static",
                                 "--model-impl", "0.8", "-v", "--dp-size", "--watchdog-timeout=600"])
def test_other_flags_pass(arg):
    assert _server.owned_flag(arg) is None


def test_validate_lists_every_problem_with_the_fix():
    problems = _server.validate(params(tp_size=0, port=70000, extra_args=["--tp", "2", "--mem-fraction-static", "0.8"],
                                       env={"bad-name": "1", "OK": [1]}))
    assert problems == [
        "tp_size must be a positive integer, got 0",
        "port must be a TCP port between 1 and 65535, got 70000",
        "extra_args item '--tp' repeats --tp-size, which the module sets from its tp_size option; "
        "remove it from extra_args and set tp_size instead",
        "env name 'bad-name' is not a valid environment variable name",
        "env OK must be a string, number or boolean, got [1]",
    ]


def test_tp_size_above_the_gpu_count_is_refused():
    assert _server.validate(params(tp_size=8), gpu_count=4) == [
        "tp_size 8 is larger than the 4 GPU(s) preflight found on this host: lower tp_size "
        "(sglang_tp_size) or fix the host (see the preflight report)"]
    assert _server.validate(params(tp_size=4), gpu_count=4) == []
    assert _server.validate(params(tp_size=8), gpu_count=None) == []


@pytest.mark.parametrize("port", [0, -1, 65536, True])
def test_bad_ports(port):
    assert _server.validate(params(port=port))[0].startswith("port must be a TCP port")


def test_non_positive_timings_are_refused():
    assert _server.validate(params(sleep=0, timeout=-1)) == ["timeout must be greater than 0, got -1",
                                                             "sleep must be greater than 0, got 0"]


# ----------------------------------------------------------------------------- launch spec


def test_argv_uses_long_flags_and_passes_metacharacters_literally():
    path = "/models/a b;rm -rf /$(x)`y`|z&"
    argv = _server.build_argv(params(model_path=path, extra_args=["--mem-fraction-static", "0.8"]))
    assert argv == ["python3", "-m", "sglang.launch_server", "--model-path", path, "--tokenizer-path", path,
                    "--tp-size", "4", "--host", "127.0.0.1", "--port", "30000", "--trust-remote-code",
                    "--enable-metrics", "--mem-fraction-static", "0.8"]


def test_api_key_goes_into_a_config_file_not_the_argv():
    argv = _server.build_argv(params(api_key="sk-secret", tokenizer_path="/tok", trust_remote_code=False,
                                     enable_metrics=False, state_dir="/run/s"))
    assert argv == ["python3", "-m", "sglang.launch_server", "--model-path", "/models/kimi", "--tokenizer-path", "/tok",
                    "--tp-size", "4", "--host", "127.0.0.1", "--port", "30000", "--config", "/run/s/config.yaml"]
    assert "sk-secret" not in " ".join(argv)


def test_the_staged_copy_keeps_answering_to_the_repo_id_unless_extra_args_name_the_model():
    argv = _server.build_argv(params(model_path="/models/org/m", served_model_name="org/m"))
    assert argv[-2:] == ["--served-model-name", "org/m"] and argv[3:7] == [
        "--model-path", "/models/org/m", "--tokenizer-path", "/models/org/m"]
    own = _server.build_argv(params(served_model_name="org/m", extra_args=["--served-model-name=mine"]))
    assert own.count("org/m") == 0 and own[-1] == "--served-model-name=mine"
    assert "--served-model-name" not in _server.build_argv(params(served_model_name=""))


def test_launch_env_is_strings_with_unbuffered_output():
    assert _server.launch_env({"A": 1, "B": True, "C": False, "D": "x"}) == {
        "PYTHONUNBUFFERED": "1", "A": "1", "B": "1", "C": "0", "D": "x"}
    assert _server.launch_env({"PYTHONUNBUFFERED": "0"}) == {"PYTHONUNBUFFERED": "0"}


def test_spec_hash_changes_with_every_part_of_the_launch():
    argv, env = ["python3", "-m", "x"], {"A": "1"}
    base = _server.spec_hash(argv, env, "/log")
    assert base == _server.spec_hash(list(argv), dict(env), "/log")
    assert len({base, _server.spec_hash(argv + ["--y"], env, "/log"),
                _server.spec_hash(argv, {"A": "2"}, "/log"), _server.spec_hash(argv, env, "/other")}) == 4


def test_the_wait_budget_is_not_part_of_the_spec_hash():
    # the server role passes SGLANG_WARMUP_TIMEOUT=sglang_server_timeout: raising the timeout after
    # a timeout must find the same server, still loading, not restart it
    argv = _server.build_argv(params())
    env = {"SGLANG_ROCM_FUSED_DECODE_MLA": "0"}
    before = _server.spec_hash(argv, _server.launch_env(dict(env, SGLANG_WARMUP_TIMEOUT=1800)), "/log")
    after = _server.spec_hash(argv, _server.launch_env(dict(env, SGLANG_WARMUP_TIMEOUT=3600)), "/log")
    assert before == after
    other = _server.launch_env(dict(env, SGLANG_ROCM_FUSED_DECODE_MLA="1", SGLANG_WARMUP_TIMEOUT=1800))
    assert before != _server.spec_hash(argv, other, "/log")


def test_command_line_is_shell_quoted_and_masked():
    assert _server.command_line(["python3", "--model-path", "a;b", "--x", "sk-1"], ["sk-1"]) == \
        "python3 --model-path 'a;b' --x ********"


# ----------------------------------------------------------------------------- scrubbing


def test_scrub_masks_sensitive_string_values_and_known_secrets_everywhere():
    info = {"api_key": "sk-1", "hf_token": "", "admin_api_key": None, "max_total_num_tokens": 5,
            "internal_states": [{"api_key": "sk-1", "note": "key is sk-1"}], "model_path": "/m"}
    assert _server.scrub(info, ["sk-1"]) == {
        "api_key": "********", "hf_token": "", "admin_api_key": None, "max_total_num_tokens": 5,
        "internal_states": [{"api_key": "********", "note": "key is ********"}], "model_path": "/m"}


# ----------------------------------------------------------------------------- log tail and exit status


def test_log_tail_collapses_progress_bars_strips_colours_and_masks():
    lines = ["start", "\x1b[32mINFO\x1b[0m loading", "10%\r50%\r100%", "key=sk-9", "x" * 30, "", ""]
    assert _server.format_log_tail(lines, 10, ["sk-9"], width=12) == [
        "start", "INFO loading", "100%", "key=********", "xxxxxxxxxxxx ...[18 more characters]"]
    assert _server.format_log_tail(lines, 2, ["sk-9"], width=12) == ["key=********", "xxxxxxxxxxxx ...[18 more characters]"]
    # masking happens before shortening, so a cut never leaves half a secret
    assert _server.format_log_tail(["abcdefgh-sk-9"], 1, ["sk-9"], width=10) == ["abcdefgh-* ...[7 more characters]"]
    assert _server.format_log_tail(lines, 0) == []


@pytest.mark.parametrize("record, text", [
    ({"rc": 1}, "exit status 1"),
    ({"rc": 0}, "exit status 0"),
    ({"rc": -9}, "killed by SIGKILL"),
    ({"rc": -15}, "killed by SIGTERM"),
    ({"rc": 127, "error": "cannot start python3: No such file"}, "cannot start python3: No such file"),
    (None, "exit status unknown (the process disappeared without its supervisor recording one)"),
])
def test_describe_exit(record, text):
    assert _server.describe_exit(record) == text


# ----------------------------------------------------------------------------- deadline and wait loop


def test_deadline_arithmetic_with_an_injected_clock():
    clock = FakeClock()
    deadline = _server.Deadline(10, clock)
    assert deadline.remaining() == 10 and not deadline.expired()
    clock.now += 7.5
    assert deadline.elapsed() == 7.5
    assert deadline.clamp(5) == 2.5 and deadline.clamp(1) == 1
    clock.now += 3
    assert deadline.remaining() == 0 and deadline.expired() and deadline.clamp(5) == 0


def run_wait(verdicts, deaths=None, timeout=10.0, interval=1.0, probe_cost=0.0, check_every=None, check_cap=None):
    clock = FakeClock()
    probes, checks = [], []
    verdicts, deaths = list(verdicts), list(deaths or [])

    def probe(remaining):
        probes.append(remaining)
        clock.now += probe_cost
        return verdicts.pop(0) if len(verdicts) > 1 else verdicts[0]

    def is_dead():
        checks.append(clock.now)
        return deaths.pop(0) if deaths else None

    deadline = _server.Deadline(timeout, clock)
    outcome = _server.wait_until_ready(probe, is_dead, deadline, clock.sleep, interval, wall=lambda: 1.7e9 + clock.now,
                                       check_every=check_every, check_cap=check_cap)
    return outcome, clock, probes, checks


REFUSED = _server.Verdict(detail="/health: connection refused (port closed)")
STARTING = _server.Verdict(alive=True, detail="/health: HTTP 503 (server still loading or warming up)")
READY = _server.Verdict(ready=True, alive=True, detail="/health: HTTP 200")


def test_wait_returns_when_ready_and_asks_the_container_only_when_the_port_is_closed():
    outcome, clock, probes, checks = run_wait([REFUSED, REFUSED, STARTING, STARTING, READY])
    assert (outcome.status, outcome.attempts, outcome.elapsed) == ("ready", 5, 4.0)
    assert outcome.ready_at == 1.7e9 + 104.0
    assert len(checks) == 2
    assert clock.sleeps == [1.0, 1.0, 1.0, 1.0]


def test_wait_keeps_when_the_first_probe_that_connected_began():
    outcome, clock, probes, checks = run_wait([REFUSED, REFUSED, STARTING, STARTING, READY], probe_cost=0.25)
    # probes begin at 0, 1.25, 2.5 (the first 503), 3.75, 5.0 and the last returns at 5.25
    assert outcome.port_open_at == 1.7e9 + 102.5
    assert outcome.ready_at == 1.7e9 + 105.25


def test_wait_counts_a_connection_without_an_answer_as_an_open_port():
    silent = _server.Verdict(detail="/health: no answer within 30s", connected=True)
    outcome, clock, probes, checks = run_wait([REFUSED, silent, READY])
    assert outcome.port_open_at == 1.7e9 + 101.0
    # no HTTP answer: whether the server still runs is asked of the container all the same
    assert len(checks) == 2


def test_wait_that_times_out_keeps_the_open_port():
    outcome, clock, probes, checks = run_wait([REFUSED, STARTING], timeout=3.0)
    assert outcome.status == "timeout" and outcome.port_open_at == 1.7e9 + 101.0
    outcome, clock, probes, checks = run_wait([REFUSED], timeout=3.0)
    assert outcome.status == "timeout" and outcome.port_open_at is None


def test_wait_probes_often_but_asks_the_container_at_most_once_per_check_every():
    outcome, clock, probes, checks = run_wait([REFUSED] * 21 + [READY], interval=0.1, check_every=0.5)
    assert outcome.status == "ready" and outcome.attempts == 22
    # 21 refused probes 0.1 s apart: the container is asked at 0, 0.5, 1.0, 1.5, 2.0 (not 21 times)
    assert [round(c - checks[0], 6) for c in checks] == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_death_check_gaps_double_up_to_the_cap():
    gaps = _server.check_gaps(0.5, 5.0)
    assert list(itertools.islice(gaps, 8)) == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
    assert list(itertools.islice(_server.check_gaps(0.5, 0.5), 3)) == [0.5, 0.5, 0.5]


def test_wait_backs_off_the_death_check_but_not_the_probe():
    # a 30-minute load with the port closed, probed every 0.1 s: ~18,000 probes, few docker execs
    outcome, clock, probes, checks = run_wait([REFUSED] * 18000 + [READY], timeout=3600, interval=0.1,
                                              check_every=0.5, check_cap=5.0)
    assert outcome.status == "ready" and outcome.attempts == 18001
    assert [round(b - a, 6) for a, b in zip(checks, checks[1:])][:6] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert len(checks) < 370  # not 3,600 (one per 0.5 s)
    assert set(clock.sleeps) == {0.1}


def test_wait_with_sparse_checks_still_fails_fast_when_the_server_died():
    death = {"alive": False, "rc": {"rc": 1}, "log_tail": ["boom"]}
    outcome, clock, probes, checks = run_wait([REFUSED], deaths=[None, death], timeout=1800, interval=0.1,
                                              check_every=0.5)
    assert (outcome.status, round(outcome.elapsed, 6), outcome.attempts, len(checks)) == ("died", 0.5, 6, 2)


def test_wait_fails_at_once_when_the_server_died():
    death = {"alive": False, "rc": {"rc": 1}, "log_tail": ["boom"]}
    outcome, clock, probes, checks = run_wait([REFUSED], deaths=[None, death], timeout=1800)
    assert (outcome.status, outcome.attempts, outcome.elapsed) == ("died", 2, 1.0)
    assert outcome.death is death
    assert outcome.last_error == "/health: connection refused (port closed)"


def test_wait_times_out_on_the_deadline_with_the_last_error_and_clamped_sleeps():
    outcome, clock, probes, checks = run_wait([STARTING], timeout=5.0, interval=2.0, probe_cost=0.25)
    assert outcome.status == "timeout"
    assert outcome.elapsed == 5.0
    assert outcome.last_error == "/health: HTTP 503 (server still loading or warming up)"
    # probes at 0, 2.25, 4.5; the last sleep is clamped to what is left of the deadline
    assert clock.sleeps == [2.0, 2.0, 0.25]
    assert probes == [5.0, 2.75, 0.5]
    assert outcome.attempts == 3 and checks == []


def test_wait_stops_on_a_fatal_answer():
    fatal = _server.Verdict(alive=True, fatal=True, detail="/generate: HTTP 401 (the server rejects the API key)")
    outcome, clock, probes, checks = run_wait([STARTING, fatal])
    assert (outcome.status, outcome.attempts, outcome.last_error) == ("fatal", 2, fatal.detail)


# ----------------------------------------------------------------------------- probes


@pytest.mark.parametrize("result, ready, alive, fatal, detail", [
    (HttpResult("u", error="connection refused (port closed)"), False, False, False,
     "/health: connection refused (port closed)"),
    (HttpResult("u", error="no answer within 30s"), False, False, False, "/health: no answer within 30s"),
    (HttpResult("u", status=503), False, True, False, "/health: HTTP 503 (server still loading or warming up)"),
    (HttpResult("u", status=200), True, True, False, "/health: HTTP 200"),
    (HttpResult("u", status=401), False, True, True, "/health: HTTP 401 (the server rejects the API key)"),
    (HttpResult("u", status=500, body=b"Internal error\n"), False, True, False, "/health: HTTP 500 Internal error"),
])
def test_probe_interpretation(result, ready, alive, fatal, detail):
    verdict = _server.interpret(result, "/health")
    assert (verdict.ready, verdict.alive, verdict.fatal, verdict.detail) == (ready, alive, fatal, detail)
    # an HTTP answer means the port accepted; these transport errors came before any was sent
    assert verdict.connected is (result.status is not None)


def test_a_reply_that_failed_after_the_request_was_sent_means_the_port_accepted():
    verdict = _server.interpret(HttpResult("u", error="no answer within 30s", sent=True), "/health")
    assert (verdict.ready, verdict.alive, verdict.connected) == (False, False, True)


def test_generate_needs_generated_text():
    assert _server.interpret_generate(HttpResult("u", status=200, body=b'{"text": " Paris"}')).ready
    assert _server.interpret_generate(HttpResult("u", status=200, body=b"{}")).detail == \
        "/generate: HTTP 200 without generated text"
    assert _server.interpret_generate(HttpResult("u", status=200, body=b"<html>")).detail == \
        "/generate: HTTP 200 but the body is not JSON"


@pytest.mark.parametrize("host, address", [("0.0.0.0", "127.0.0.1"), ("::", "[::1]"), ("10.0.0.5", "10.0.0.5"),
                                           ("fd00::5", "[fd00::5]")])
def test_probe_address(host, address):
    assert _server.probe_address(host) == address


# ----------------------------------------------------------------------------- port owners

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:7530 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0
   1: 0100007F:7531 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 100 0 0 10 0
   2: 0100007F:7530 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4444 1 0 100 0 0 10 0
"""
TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:7532 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5151 1 0 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:7533 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5252 1 0 100 0 0 10 0
"""


def test_parse_proc_net_tcp_keeps_listeners_only():
    assert _server.parse_proc_net_tcp(TCP) == [("0.0.0.0", 30000, "4242"), ("127.0.0.1", 30001, "4343")]
    assert _server.parse_proc_net_tcp(TCP6) == [("::", 30002, "5151"), ("127.0.0.1", 30003, "5252")]


@pytest.mark.parametrize("bind, listen, conflict", [
    ("0.0.0.0", "127.0.0.1", True), ("127.0.0.1", "0.0.0.0", True), ("10.0.0.1", "10.0.0.1", True),
    ("10.0.0.1", "127.0.0.1", False), ("10.0.0.1", "::", True)])
def test_addresses_conflict(bind, listen, conflict):
    assert _server.addresses_conflict(bind, listen) is conflict


def fake_proc(tmp_path, listeners):
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    (proc / "net" / "tcp").write_text(TCP)
    (proc / "net" / "tcp6").write_text(TCP6)
    for pid, (comm, cmdline, inode) in listeners.items():
        (proc / str(pid) / "fd").mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(comm + "\n")
        (proc / str(pid) / "cmdline").write_bytes(b"\0".join(part.encode() for part in cmdline) + b"\0")
        os.symlink("/dev/null", proc / str(pid) / "fd" / "0")
        os.symlink("socket:[%s]" % inode, proc / str(pid) / "fd" / "7")
    return str(proc)


def test_find_port_owners_names_the_process(tmp_path):
    proc = fake_proc(tmp_path, {321: ("nginx", ["nginx: master process", "-g", "daemon off;"], "4242"),
                                99: ("sshd", ["sshd"], "9999")})
    owners, problems = _server.find_port_owners(30000, "0.0.0.0", proc_root=proc)
    assert problems == []
    assert owners == [{"address": "0.0.0.0", "port": 30000, "pid": 321, "name": "nginx",
                       "cmdline": "nginx: master process -g daemon off;"}]
    assert _server.describe_owner(owners[0]) == \
        "nginx (pid 321: nginx: master process -g daemon off;) listens on 0.0.0.0:30000"


def test_find_port_owners_reports_invisible_owners_and_free_ports(tmp_path):
    proc = fake_proc(tmp_path, {})
    owners = _server.find_port_owners(30003, "0.0.0.0", proc_root=proc)[0]
    assert owners == [{"address": "127.0.0.1", "port": 30003, "pid": None, "name": None, "cmdline": None}]
    assert "unidentified process" in _server.describe_owner(owners[0])
    assert _server.find_port_owners(30001, "10.0.0.1", proc_root=proc) == ([], [])
    assert _server.find_port_owners(31999, "0.0.0.0", proc_root=proc) == ([], [])


def test_find_port_owners_says_what_it_could_not_read(tmp_path):
    assert _server.find_port_owners(30000, "0.0.0.0", proc_root=str(tmp_path)) == \
        ([], ["cannot read %s" % os.path.join(str(tmp_path), "net", "tcp")])


# ----------------------------------------------------------------------------- container agent stdin


def test_helper_stdin_carries_the_payload_only_in_the_script():
    text = _server.helper_stdin({"op": "launch", "api_key": "sk-1"})
    assert text.startswith("# Copyright")
    match = re.search(r"raise SystemExit\(main\('([A-Za-z0-9+/=]+)'\)\)\n$", text)
    assert json.loads(base64.b64decode(match.group(1))) == {"op": "launch", "api_key": "sk-1"}
    compile(text, "<stdin>", "exec")
