"""_docker_cli: the one docker CLI seam (argv, time limits, the agent protocol, the errors)."""

import json
import types

import pytest

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _agent_pip
from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _docker_cli as C

LIMIT = ["/usr/bin/timeout", "--kill-after=5", "600"]


def test_exec_argv_is_timed_names_the_daemon_and_keeps_secret_values_out():
    env_argv, hidden = C.env_args({"HF_HOME": "/cache", "HF_TOKEN": "hf_secret", "SKIP": None})
    argv = C.exec_argv("/usr/bin/docker", "ssh://gpu01", "Kimi-linear", ["cat", "/x"], 600,
                       interactive=True, env_argv=env_argv, timeout_bin="/usr/bin/timeout")
    assert argv == LIMIT + ["/usr/bin/docker", "--host", "ssh://gpu01", "exec", "-i",
                            "--env", "HF_HOME=/cache", "--env", "HF_TOKEN", "Kimi-linear", "cat", "/x"]
    assert hidden == {"HF_TOKEN": "hf_secret"}


def test_the_answer_is_the_last_json_object_line():
    out = 'Collecting x\n{"old": 1}\n{"answer": 2}\n3\n"text"\n'
    assert C.agent_answer(out) == {"answer": 2}
    assert C.agent_answer("Traceback ...\nValueError\n") is None
    assert C.agent_answer(None) is None


class Module:
    """run_command with scripted answers; the clock moves by ``cost`` per call."""

    def __init__(self, *answers, cost=0.0):
        self.answers = list(answers)
        self.argvs = []
        self.cost = cost
        self.now = 0.0

    def clock(self):
        return self.now

    def run_command(self, argv, data=None, environ_update=None):
        assert environ_update == C.C_LOCALE
        self.argvs.append(argv)
        self.now += self.cost
        return self.answers.pop(0)


def cli(module, timeout=600):
    return C.DockerCli(module, "unix:///run/d.sock", timeout, clock=module.clock,
                       docker_bin="/usr/bin/docker", timeout_bin="/usr/bin/timeout")


def call(module, **kwargs):
    return cli(module).call_agent("Kimi-linear", "python3", _agent_pip, {"action": "probe"},
                                  what="the pip helper", python_name="sglang_packages_python", **kwargs)


def test_only_a_call_that_reached_its_limit_timed_out():
    late = Module((124, "", ""), cost=600.0)
    assert cli(late).exec("c", ["true"]).timed_out is True
    # the command in the container exited 124 (or was OOM-killed, 137) well before the limit
    early = Module((124, "", ""), (137, "", ""), cost=3.0)
    assert cli(early).exec("c", ["true"]).timed_out is False
    assert cli(early).exec("c", ["true"]).timed_out is False


@pytest.mark.parametrize("stderr, error, text", [
    ("Error response from daemon: No such container: Kimi-linear", C.ContainerMissing,
     "container Kimi-linear on unix:///run/d.sock does not exist: run the container role first"),
    ("Error response from daemon: Container abc is paused, unpause the container before exec",
     C.ContainerNotRunning, "container Kimi-linear on unix:///run/d.sock is not running"),
    ("Cannot connect to the Docker daemon at unix:///run/d.sock. Is the docker daemon running?",
     C.DaemonUnreachable, "cannot reach the Docker daemon at unix:///run/d.sock (sglang_docker_host)"),
    ('OCI runtime exec failed: exec: "python3": executable file not found in $PATH', C.AgentFailed,
     "container Kimi-linear on unix:///run/d.sock has no python3; set sglang_packages_python"),
    ("Traceback (most recent call last):\nMemoryError", C.AgentFailed,
     "the pip helper in container Kimi-linear on unix:///run/d.sock failed (rc 1): Traceback"),
])
def test_each_failure_has_its_class_under_one_base(stderr, error, text):
    with pytest.raises(error) as exc:
        call(Module((1, "", stderr + "\n")))
    assert isinstance(exc.value, C.ModuleFailure)
    assert exc.value.msg.startswith(text)


def test_an_error_answer_keeps_its_fields_and_secrets_are_masked():
    answer = {"error": "proxy http://u:pw-77@p:3128 refused", "changed": False, "token": "pw-77"}
    with pytest.raises(C.AgentFailed) as exc:
        call(Module((1, json.dumps(answer) + "\n", "")), secrets=["pw-77"])
    assert "pw-77" not in exc.value.msg and "pw-77" not in json.dumps(exc.value.result)
    assert exc.value.result["changed"] is False


def test_the_agent_gets_its_source_and_payload_on_stdin_only():
    seen = {}

    def run_command(argv, data=None, environ_update=None):
        seen.update(argv=argv, data=data)
        return 0, '{"ok": true}\n', ""
    module = types.SimpleNamespace(run_command=run_command)
    answer = C.DockerCli(module, "unix:///run/d.sock", 30, clock=lambda: 0.0, docker_bin="/usr/bin/docker",
                         timeout_bin="/usr/bin/timeout").call_agent(
        "Kimi-linear", "python3", _agent_pip, {"secret": "s-1"}, args=["probe"])
    assert answer == {"ok": True}
    assert seen["argv"] == ["/usr/bin/timeout", "--kill-after=5", "30", "/usr/bin/docker", "--host",
                            "unix:///run/d.sock", "exec", "-i", "Kimi-linear", "python3", "-", "probe"]
    assert "s-1" not in " ".join(seen["argv"]) and seen["data"].endswith("\n")
    assert "def main(" in seen["data"]


def test_the_shared_options_are_the_ones_the_fragment_documents():
    from ansible_collections.sglang_rocm.fleet.plugins.doc_fragments.docker_exec import ModuleDocFragment
    import yaml
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    spec = C.exec_argument_spec()
    assert set(documented) == set(spec)
    for name, option in spec.items():
        assert documented[name]["type"] == option["type"]
        assert documented[name].get("default") == option.get("default")
        assert documented[name].get("required", False) == option.get("required", False)


def test_run_argv_is_a_transient_container_fed_on_stdin_from_an_image_already_there():
    env_argv, hidden = C.env_args({"HF_ENDPOINT": "https://hub", "HF_TOKEN_PATH": "/run/s/hf_token"})
    argv = C.run_argv("/usr/bin/docker", "unix:///d.sock", "img:1", ["-"], 300, name="stage",
                      mounts=[("/a", "/a", "rw"), ("/t", "/run/s", "ro")], env_argv=env_argv, network="host",
                      labels={"b": "2", "a": "1"}, entrypoint="python3", timeout_bin="/usr/bin/timeout")
    assert argv == ["/usr/bin/timeout", "--kill-after=5", "300", "/usr/bin/docker", "--host", "unix:///d.sock",
                    "run", "--rm", "-i", "--pull", "never", "--name", "stage", "--label", "a=1", "--label", "b=2",
                    "--network", "host", "--volume", "/a:/a:rw", "--volume", "/t:/run/s:ro",
                    "--env", "HF_ENDPOINT=https://hub", "--env", "HF_TOKEN_PATH=/run/s/hf_token",
                    "--entrypoint", "python3", "img:1", "-"]
    assert hidden == {}  # a path to a secret is not a secret


def run_agent(module):
    return cli(module).run_agent("img:1", "python3", _agent_pip, {"action": "probe"}, what="the agent",
                                 timeout=60, image_name="sglang_image")


def test_run_agent_answers_like_call_agent_and_names_a_missing_image():
    module = Module((0, 'noise\n{"ok": true}\n', ""))
    assert run_agent(module) == {"ok": True}
    assert module.argvs[0][:3] == ["/usr/bin/timeout", "--kill-after=5", "60"]
    missing = Module((125, "", "docker: Error response from daemon: No such image: img:1\n"))
    with pytest.raises(C.ImageMissing, match="image img:1 is not on unix:///run/d.sock: run the container stage "
                                             r"first, which pulls or loads it \(sglang_image names it\)"):
        run_agent(missing)
    failed = Module((1, '{"error": "boom", "kind": "hub_error"}\n', ""))
    with pytest.raises(C.AgentFailed) as exc:
        run_agent(failed)
    assert exc.value.result == {"kind": "hub_error"}
    assert exc.value.msg == "the agent in a transient container of img:1 on unix:///run/d.sock failed: boom"
