"""The in-container agent, run for real on this machine exactly as docker exec would run it
(``python3 -`` with the module's stdin), against a small fake server with worker processes.

These tests start real processes (each one lasts well under a second of real time); everything
they start is stopped by the agent itself or, on failure, by the fixture's cleanup.
"""

import functools
import importlib.machinery
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _agent_server
from ansible_collections.sglang_rocm.fleet.plugins.module_utils._server import helper_stdin

KEY = "sk-helper-test-1234"

FAKE_SERVER = r'''
import os, signal, subprocess, sys, time
config = sys.argv[sys.argv.index("--config") + 1] if "--config" in sys.argv else None
print("args", sys.argv[1:])
print("server_args=ServerArgs(api_key=%r)" % (open(config).read().split(": ", 1)[1].strip()[1:-1] if config else None))
print("marker", os.environ.get("SGLANG_FLEET_SERVER_DIR"), "knob", os.environ.get("KNOB"))
os.setpgrp()  # like the stand-in: workers in the server's own group, not the supervisor's
worker = "import signal, time\nif %r: signal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)"
for _ in range(2):
    subprocess.Popen([sys.executable, "-c", worker % bool(os.environ.get("STUBBORN"))])
print("loaded")
if os.environ.get("CRASH"):
    print("RuntimeError: Initialization failed.")
    sys.exit(3)
time.sleep(60)
'''


def agent(payload):
    proc = subprocess.run([sys.executable, "-", payload["op"]], input=helper_stdin(payload),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.stderr == ""
    return proc.returncode, json.loads(proc.stdout)


def wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met within %ss" % seconds)


@pytest.fixture
def box(tmp_path):
    script = tmp_path / "fake_server.py"
    script.write_text(FAKE_SERVER)
    base = {"state_dir": str(tmp_path / "state"), "log_path": str(tmp_path / "log" / "server.log")}
    argv = [sys.executable, str(script), "--model-path", "/m;x y", "--config", str(tmp_path / "state" / "config.yaml")]
    yield base, argv
    agent(dict(base, op="stop", stop_timeout=1))


def launch(base, argv, **extra):
    payload = dict(base, op="launch", argv=argv, env={"KNOB": "on"}, api_key=KEY,
                   spec={"hash": "h1", "command": "cmd"})
    payload.update(extra)
    return agent(payload)


def log_text(base):
    with open(base["log_path"]) as handle:
        return handle.read()


def test_launch_status_stop_round_trip(box):
    base, argv = box
    rc, launched = launch(base, argv)
    assert rc == 0 and set(launched) == {"pid", "supervisor_pid", "pgid", "launched_at"}
    assert launched["pgid"] == launched["supervisor_pid"] != launched["pid"]
    wait_for(lambda: "loaded" in log_text(base))

    rc, status = agent(dict(base, op="status", log_lines=5))
    assert rc == 0
    assert status["present"] and status["alive"] and status["pid"] == launched["pid"]
    assert status["spec"] == {"hash": "h1", "command": "cmd"} and status["rc"] is None
    assert status["log_tail"] == []  # alive: no tail unless asked
    members = [member[0] for member in status["members"]]
    assert launched["supervisor_pid"] in members and launched["pid"] in members
    assert len(members) == 4  # supervisor, server and two workers that left the group

    config = os.path.join(base["state_dir"], "config.yaml")
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.join(base["state_dir"], "key.json")).st_mode) == 0o600
    # the key is compared in the container: same key, other key, no key
    assert agent(dict(base, op="status", api_key=KEY))[1]["key_matches"] is True
    assert agent(dict(base, op="status", api_key=KEY + "x"))[1]["key_matches"] is False
    assert agent(dict(base, op="status", api_key=""))[1]["key_matches"] is False
    assert "key_matches" not in status
    assert stat.S_IMODE(os.stat(base["state_dir"]).st_mode) == 0o700
    with open(config) as handle:
        assert handle.read() == 'api-key: "%s"\n' % KEY
    log = log_text(base)
    assert "args ['--model-path', '/m;x y', '--config', " in log
    assert "server_args=ServerArgs(api_key='********')" in log and KEY not in log
    assert "marker %s knob on" % base["state_dir"] in log

    rc, stopped = agent(dict(base, op="stop", stop_timeout=5))
    assert rc == 0 and stopped["was_running"]
    assert sorted(member[0] for member in stopped["signalled"]) == sorted(members)
    assert stopped["killed"] == [] and stopped["remaining"] == []
    assert stopped["rc"]["rc"] == -signal.SIGTERM
    # key files gone with the server; the container's salt stays (it is not derived from the key)
    assert sorted(os.listdir(base["state_dir"])) == ["rc.json", "salt"]
    assert stat.S_IMODE(os.stat(os.path.join(base["state_dir"], "salt")).st_mode) == 0o600
    for pid in members:
        assert not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split(") ")[1][0] == "Z"

    rc, status = agent(dict(base, op="status", log_lines=2))
    assert (status["present"], status["alive"], status["members"]) == (False, False, [])
    assert status["log_tail"] == ["marker %s knob on" % base["state_dir"], "loaded"]


def test_secret_env_files_reach_the_server_masked_in_its_log(box, tmp_path):
    base, argv = box
    secrets = tmp_path / "run-sglang-secrets"
    secrets.mkdir()
    (secrets / "env.KNOB").write_text("SENTINEL-knob-51e0")
    (secrets / "hf_token").write_text("not env")
    assert _agent_server.secret_env(str(secrets)) == {"KNOB": "SENTINEL-knob-51e0"}
    assert _agent_server.secret_env(str(tmp_path / "absent")) == {}
    rc, _launched = launch(base, argv, env={}, secret_env_dir=str(secrets))
    assert rc == 0
    wait_for(lambda: "loaded" in log_text(base))
    log = log_text(base)
    assert "knob ********" in log and "SENTINEL" not in log


def test_exit_status_is_recorded_at_once_although_workers_keep_the_output_open(box):
    base, argv = box
    launch(base, argv, env={"CRASH": "1"})
    started = time.monotonic()

    def exited():
        status = agent(dict(base, op="status", log_lines=2))[1]
        return status if status["rc"] else None

    status = wait_for(exited)
    assert time.monotonic() - started < 5
    assert status["alive"] is False and status["rc"]["rc"] == 3
    assert status["log_tail"] == ["loaded", "RuntimeError: Initialization failed."]
    assert len(status["members"]) == 3  # supervisor and the two orphaned workers, still to be stopped
    rc, stopped = agent(dict(base, op="stop", stop_timeout=5))
    assert stopped["remaining"] == [] and len(stopped["signalled"]) == 3


def test_stop_escalates_to_sigkill_and_confirms_nothing_is_left(box):
    base, argv = box
    launched = launch(base, argv, env={"STUBBORN": "1"})[1]
    wait_for(lambda: "loaded" in log_text(base))
    rc, stopped = agent(dict(base, op="stop", stop_timeout=0.5))
    assert rc == 0
    # the two workers ignore SIGTERM, and the supervisor waits for their end of the log pipe
    killed = [member[0] for member in stopped["killed"]]
    assert len(killed) == 3 and launched["supervisor_pid"] in killed and launched["pid"] not in killed
    assert stopped["remaining"] == []


def test_launch_refuses_while_a_server_runs_and_rotates_the_log(box):
    base, argv = box
    launch(base, argv)
    wait_for(lambda: "loaded" in log_text(base))
    rc, answer = launch(base, argv)
    assert rc == 1 and answer["error"].startswith("a server started from %s is still running (pids " % base["state_dir"])
    agent(dict(base, op="stop", stop_timeout=5))
    launch(base, argv)
    wait_for(lambda: "loaded" in log_text(base))
    assert "loaded" in open(base["log_path"] + ".1").read()


def test_a_missing_interpreter_is_reported_and_recorded(box):
    base = box[0]
    rc, answer = launch(base, ["/nonexistent/python3", "-m", "sglang.launch_server"])
    assert rc == 1 and answer["error"].startswith("cannot start /nonexistent/python3: ")
    with open(os.path.join(base["state_dir"], "rc.json")) as handle:
        assert json.load(handle)["rc"] == 127


def test_tail_and_secret_variants(tmp_path):
    path = tmp_path / "log"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(5000)) + b"caf\xc3\xa9 \xff")
    assert _agent_server.tail(str(path), 3) == ["line 4998", "line 4999", "caf\u00e9 \ufffd"]
    assert _agent_server.tail(str(tmp_path / "missing"), 3) == []
    assert _agent_server.secret_variants("a'b\"c") == [b"a'b\\\"c", b"a\\'b\"c", b"a'b\"c"]
    line = b"raw=a'b\"c repr='a\\'b\"c' json=\"a'b\\\"c\""
    assert _agent_server.scrub(line, _agent_server.secret_variants("a'b\"c")) == \
        b"raw=******** repr='********' json=\"********\""


# ----------------------------------------------------------------------------- reused pids (a fake /proc)


def fake_proc(root, procs, boot_id="boot-1", pid_ns="pid:[4026532001]", init_start=100):
    """A /proc with PID 1 and ``procs`` {pid: (sid, start, comm)}; each process leads nothing
    but belongs to session and process group ``sid``."""
    (root / "sys" / "kernel" / "random").mkdir(parents=True, exist_ok=True)
    (root / "sys" / "kernel" / "random" / "boot_id").write_text(boot_id + "\n")
    (root / "self" / "ns").mkdir(parents=True, exist_ok=True)
    os.symlink(pid_ns, str(root / "self" / "ns" / "pid"))
    for pid, (sid, start, comm) in [(1, (1, init_start, "init"))] + sorted(procs.items()):
        entry = root / str(pid)
        entry.mkdir()
        fields = ["S", "0", str(sid), str(sid)] + ["0"] * 15 + [str(start)] + ["0"] * 10
        (entry / "stat").write_text("%d (%s) %s\n" % (pid, comm, " ".join(fields)))
        (entry / "comm").write_text(comm + "\n")
        (entry / "environ").write_bytes(b"PATH=/bin\0")
    return str(root)


RECORD = {"supervisor": 7, "supervisor_start": 500, "server": 8, "server_start": 510, "pgid": 7, "sid": 7,
          "launched_at": 1.7e9, "generation": {"boot_id": "boot-1", "pid_ns": "pid:[4026532001]", "init_start": 100}}


def recorded_state(tmp_path, record=None):
    record = RECORD if record is None else record
    state = tmp_path / "state"
    state.mkdir()
    (state / "pid.json").write_text(json.dumps(record))
    (state / "spec.json").write_text(json.dumps({"hash": "h1"}))
    return {"state_dir": str(state), "log_path": str(tmp_path / "server.log"), "stop_timeout": 0.2}


def test_after_a_container_restart_the_recorded_pids_are_not_signalled(tmp_path):
    # the container restarted: PID 1 started later, and pids 7 and 8 are now other processes
    # that happen to share session 7 (a shell and its child)
    proc = fake_proc(tmp_path / "proc", {7: (7, 300, "bash"), 8: (7, 310, "sleep")}, init_start=250)
    payload = recorded_state(tmp_path)
    status = _agent_server.status(dict(payload, op="status"), proc=proc)
    assert status["alive"] is False and status["members"] == []
    assert status["stale"].startswith("the recorded server (pid 8) is gone: the container restarted")
    kills = []
    stopped = _agent_server.stop(payload, proc=proc, kill=lambda pid, signum: kills.append((pid, signum)))
    assert kills == []
    assert stopped["was_running"] is False and stopped["signalled"] == [] and stopped["remaining"] == []
    assert stopped["stale"] == ("the recorded server (pid 8) is gone: the container restarted (or the host "
                                "rebooted) since the server was launched (init_start changed); its recorded "
                                "process ids were not signalled")


def test_a_reused_session_id_is_not_signalled(tmp_path):
    # same container generation, but pid 7 (the recorded supervisor, leader of session 7) exited
    # and the number now leads another session: none of the launch's processes can be left
    proc = fake_proc(tmp_path / "proc", {7: (7, 900, "sshd"), 12: (7, 905, "bash")})
    payload = recorded_state(tmp_path)
    kills = []
    stopped = _agent_server.stop(payload, proc=proc, kill=lambda pid, signum: kills.append((pid, signum)))
    assert kills == [] and stopped["signalled"] == []
    assert "pid 7 now belongs to another process (started at tick 900, the recorded supervisor at tick 500)" \
        in stopped["stale"]


def test_the_recorded_processes_are_signalled_while_they_are_the_same(tmp_path):
    proc = fake_proc(tmp_path / "proc", {7: (7, 500, "python3"), 8: (7, 510, "python3"), 9: (7, 520, "python3")})
    payload = recorded_state(tmp_path)
    kills = []

    def kill(pid, signum):
        kills.append((pid, signum))
        shutil.rmtree(os.path.join(proc, str(pid)))  # SIGTERM works

    status = _agent_server.status(dict(payload, op="status"), proc=proc)
    assert status["alive"] is True and "stale" not in status
    stopped = _agent_server.stop(payload, proc=proc, kill=kill)
    assert sorted(kills) == [(7, signal.SIGTERM), (8, signal.SIGTERM), (9, signal.SIGTERM)]
    assert "stale" not in stopped and stopped["remaining"] == []


def test_a_pid_reused_between_listing_and_signal_is_left_alone(tmp_path):
    proc = fake_proc(tmp_path / "proc", {8: (7, 777, "other")})
    kills = []
    _agent_server._signal_all([8], signal.SIGKILL, {8: 510}, proc=proc, kill=lambda *a: kills.append(a))
    _agent_server._signal_all([9], signal.SIGKILL, {9: 1}, proc=proc, kill=lambda *a: kills.append(a))
    assert kills == []
    _agent_server._signal_all([8], signal.SIGKILL, {8: 777}, proc=proc, kill=lambda *a: kills.append(a))
    assert kills == [(8, signal.SIGKILL)]


def test_a_launch_records_the_generation_it_ran_in(tmp_path):
    proc = fake_proc(tmp_path / "proc", {}, boot_id="b-9", pid_ns="pid:[42]", init_start=77)
    assert _agent_server.generation(proc) == {"boot_id": "b-9", "pid_ns": "pid:[42]", "init_start": 77}
    assert _agent_server.stale_reason(dict(RECORD, generation={"boot_id": "b-9", "pid_ns": "pid:[42]",
                                                               "init_start": 77}), proc) is None
    assert "boot_id changed" in _agent_server.stale_reason(dict(RECORD, generation={"boot_id": "b-1"}), proc)


def fake_aiter(root, modules):
    """An installed aiter package whose jit/ holds the modules the image prebuilt."""
    jit = root / "aiter" / "jit"
    jit.mkdir(parents=True)
    (root / "aiter" / "__init__.py").write_text("raise ImportError('never imported')\n")
    (jit / "core.py").write_text("")
    for name in modules:
        (jit / name).write_text("prebuilt " + name)
    return jit, lambda name: importlib.machinery.PathFinder.find_spec(name, [str(root)])


def test_the_images_prebuilt_aiter_modules_are_linked_into_the_jit_cache(tmp_path):
    jit, find = fake_aiter(tmp_path / "site", ["module_rmsnorm.so", "module_aiter_enum.so"])
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "module_moe.so").write_text("built here before")  # a module compiled at run time
    (cache / "module_aiter_enum.so").write_text("rebuilt here")  # AITER rebuilt it: keep
    env = {"AITER_JIT_DIR": str(cache)}
    assert _agent_server.link_prebuilt_aiter(env, find) == ["module_rmsnorm.so"]
    assert os.readlink(cache / "module_rmsnorm.so") == str(jit / "module_rmsnorm.so")
    assert (cache / "module_aiter_enum.so").read_text() == "rebuilt here"
    assert not (cache / "core.py").exists()
    assert _agent_server.link_prebuilt_aiter(env, find) == []  # once


@pytest.mark.parametrize("case", ["no variable", "no directory", "no aiter", "the package's own dir"])
def test_nothing_is_linked_without_a_separate_jit_cache_or_aiter(tmp_path, case):
    jit, find = fake_aiter(tmp_path / "site", ["module_rmsnorm.so"])
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {"AITER_JIT_DIR": str(cache)}
    if case == "no variable":
        env = {}
    elif case == "no directory":
        env = {"AITER_JIT_DIR": str(tmp_path / "missing")}
    elif case == "no aiter":
        find = {}.get  # no package of that name
    else:
        env = {"AITER_JIT_DIR": str(jit)}
    assert _agent_server.link_prebuilt_aiter(env, find) == []
    assert os.listdir(cache) == []


def test_a_launch_says_in_the_log_which_modules_it_linked(tmp_path, monkeypatch):
    jit, find = fake_aiter(tmp_path / "site", ["module_rmsnorm.so"])
    monkeypatch.setattr(_agent_server, "link_prebuilt_aiter",
                        functools.partial(_agent_server.link_prebuilt_aiter, find_spec=find))
    cache = tmp_path / "cache"
    cache.mkdir()
    log = tmp_path / "log" / "server.log"
    payload = {"state_dir": str(tmp_path / "state"), "log_path": str(log), "argv": [sys.executable, "-c", "pass"],
               "env": {"AITER_JIT_DIR": str(cache)}, "spec": {}}
    result = _agent_server.launch(payload)
    assert "pid" in result, result
    deadline = time.monotonic() + 10
    while _agent_server.read_json(os.path.join(payload["state_dir"], "rc.json")) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.read_text().splitlines()[0] == (
        "sglang_server: the image's prebuilt AITER modules linked into AITER_JIT_DIR: module_rmsnorm.so")
    assert os.path.islink(cache / "module_rmsnorm.so")
