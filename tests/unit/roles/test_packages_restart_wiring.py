"""The roles' wiring of `restart sglang server`, run for real by ansible-playbook on localhost.

The collection's roles, handlers and variables are copied as they are; only the three modules
the play calls (sglang_packages, sglang_server, rocm_facts) are replaced by stubs that record
their calls. Each host's container name says what its stubs answer: whether packages changed
and whether a server runs.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

from ansible_collections.sglang_rocm.fleet.plugins.modules import sglang_packages, sglang_server

ROOT = pathlib.Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = pathlib.Path(sys.executable).with_name("ansible-playbook")

STUB = '''#!/usr/bin/python
import json, os
from ansible.module_utils.basic import AnsibleModule

NAME = %(name)r
OPTIONS = %(options)r


def main():
    spec = dict((option, dict(type="raw", no_log=option == "api_key")) for option in OPTIONS)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    container = p.get("container") or ""
    call = {"module": NAME, "container": container, "check": module.check_mode,
            "state": p.get("state"), "wait": p.get("wait")}
    with open(os.environ["STUB_LOG"], "a") as handle:
        handle.write(json.dumps(call) + "\\n")
    if NAME == "rocm_facts":
        module.exit_json(changed=False, ansible_facts={"rocm": {"gpu_count": 8}})
    if NAME == "sglang_packages":
        module.exit_json(changed="packages-changed" in container, missing=[])
    runs = container.startswith("running")
    if p["state"] == "restarted":
        module.exit_json(changed=True, action="restarted" if runs else "started")
    module.exit_json(changed=not runs, action="none" if runs else "started")


if __name__ == "__main__":
    main()
'''


def stub(path, name, options):
    path.write_text(STUB % {"name": name, "options": sorted(options)})


@pytest.fixture(scope="module")
def wiring(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wiring")
    collection = tmp / "collections" / "ansible_collections" / "sglang_rocm" / "fleet"
    collection.mkdir(parents=True)
    for name in ("galaxy.yml", "meta", "roles", "plugins"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, collection / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, collection / name)
    modules = collection / "plugins" / "modules"
    stub(modules / "sglang_packages.py", "sglang_packages", sglang_packages.argument_spec())
    stub(modules / "sglang_server.py", "sglang_server", sglang_server.argument_spec())
    stub(modules / "rocm_facts.py", "rocm_facts", ["sysfs_root", "dev_root", "proc_root", "rocm_path",
                                                   "amd_smi", "amd_smi_timeout"])
    hosts = {"changed-running": "running-packages-changed", "changed-idle": "idle-packages-changed",
             "same-running": "running-packages-same"}
    inventory = {"all": {"hosts": {host: {"ansible_connection": "local", "sglang_container_name": container,
                                          "ansible_python_interpreter": sys.executable}
                                   for host, container in hosts.items()}}}
    (tmp / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp / "site.yml").write_text(yaml.safe_dump([{
        "name": "packages, then server, as site.yml runs them", "hosts": "all", "gather_facts": False,
        "tasks": [{"name": "Packages", "ansible.builtin.include_role": {"name": "sglang_rocm.fleet.packages"}},
                  {"name": "Server", "ansible.builtin.include_role": {"name": "sglang_rocm.fleet.server"}}]}]))
    log = tmp / "calls.jsonl"
    env = dict(os.environ, STUB_LOG=str(log), ANSIBLE_COLLECTIONS_PATH=str(tmp / "collections"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_LOCAL_TEMP=str(tmp / "tmp"),
               ANSIBLE_CONFIG=str(tmp / "ansible.cfg"),
               # sglang_results_dir defaults under $PWD: keep the run's directory out of the checkout
               PWD=str(tmp))
    (tmp / "ansible.cfg").write_text("[defaults]\n")
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(tmp / "inventory.yml"), str(tmp / "site.yml")],
                          cwd=str(tmp), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
                          check=False)
    output = proc.stdout.decode()
    assert proc.returncode == 0, output
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    by_container = {}
    assert [call["module"] for call in calls].count("rocm_facts") == 3  # one per host, no container
    for call in calls:
        by_container.setdefault(call["container"], []).append(
            (call["module"], call["state"], call["wait"], call["check"]))
    return by_container, output


def test_changed_packages_restart_a_running_server_before_the_server_role_checks_it(wiring):
    calls, output = wiring
    assert calls["running-packages-changed"] == [
        ("sglang_packages", None, None, False),
        ("sglang_server", "started", False, True),     # the handler asks whether a server runs
        ("sglang_server", "restarted", True, False),   # and restarts it, waiting until ready
        ("sglang_server", "started", None, False),     # then the role's own task finds it ready
    ]
    assert "Packages changed in running-packages-changed" in output


def test_changed_packages_leave_a_container_without_a_server_to_the_server_role(wiring):
    calls, _output = wiring
    assert calls["idle-packages-changed"] == [
        ("sglang_packages", None, None, False),
        ("sglang_server", "started", False, True),
        ("sglang_server", "started", None, False),     # one start, by the role
    ]


def test_unchanged_packages_restart_nothing(wiring):
    calls, _output = wiring
    assert calls["running-packages-same"] == [
        ("sglang_packages", None, None, False),
        ("sglang_server", "started", None, False),
    ]


def test_every_packages_install_task_notifies_the_restart():
    for name in ("main.yml", "offline.yml"):
        tasks = yaml.safe_load((ROOT / "roles" / "packages" / "tasks" / name).read_text())
        installs = [task for task in tasks if "sglang_rocm.fleet.sglang_packages" in task]
        assert installs and all(task.get("notify") == "restart sglang server" for task in installs), name
