"""Partial rollouts on the simulated fleet: every playbook with --limit, --tags, and check mode.

Runs against the bed at $SIMFLEET_INVENTORY (tests/scripts/integration.sh brings one up), layered
with the demo overlay (tests/demo/inventory.yml) that site.yml needs on this machine. The
molecule scenarios prove that re-runs converge; here each playbook must (1) select exactly its
tagged stages, (2) run in check mode with --diff on one host of the fleet, with no fact of the
other hosts, and change nothing on it.
"""

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = ["site", "preflight", "deploy", "benchmark", "upgrade", "teardown"]


def inventory():
    path = os.environ.get("SIMFLEET_INVENTORY")
    if not path or not Path(path).is_file():
        pytest.fail("SIMFLEET_INVENTORY must name the simulated fleet's inventory; run "
                    "tests/scripts/integration.sh, or `python3 -m simfleet up` and export it")
    return path


def playbook(name, *args, timeout=900):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_NOCOLOR="1")
    argv = ["ansible-playbook", "-i", inventory(), "-i", str(REPO / "tests/demo/inventory.yml"),
            str(REPO / "playbooks" / (name + ".yml")), *args]
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def listed_tasks(name, tags):
    result = playbook(name, "--list-tasks", "--limit", "gpu01", "--tags", tags)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def recap(stdout):
    """{host: {ok, changed, unreachable, failed, ...}} from the PLAY RECAP."""
    hosts = {}
    for line in stdout.split("PLAY RECAP", 1)[-1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(ok=.*)$", line)
        if match:
            hosts[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return hosts


def container_ids(host, name):
    """IDs of containers called NAME on a simulated host, through its own dockerd."""
    result = subprocess.run(
        ["ansible", "-i", inventory(), host, "-m", "community.docker.docker_host_info",
         "-a", json.dumps({"docker_host": "{{ sglang_docker_host }}", "containers": True,
                           "containers_all": True, "containers_filters": {"name": name}}),
         "-o"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build")))
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout.split("=>", 1)[1])
    return [c["Id"] for c in data["containers"] if "/" + name in c.get("Names", [])]


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_tags_select_only_their_stage(name):
    """--tags server runs the server stage and what every stage needs, nothing else."""
    out = listed_tasks(name, "server")
    # a task of a role is listed as "<role> : <task name>"
    listed = r"\n\s+(?:[\w.]+ : )?%s\b"
    if name in ("site", "deploy", "upgrade"):
        assert re.search(listed % "(Server|Server with the target spec)", out), out
    for other in ("Preflight", "Packages", "Benchmark", "Container with the target image",
                  "Remove the collection's containers"):
        assert not re.search(listed % re.escape(other), out), (other, out)


def test_site_check_mode_on_one_host_changes_nothing(tmp_path):
    """site.yml --check --diff --limit gpu01: every stage predicts, the report has gpu01 only."""
    name = "partial-" + uuid.uuid4().hex[:8]
    result = playbook("site", "--check", "--diff", "--limit", "gpu01",
                      "-e", json.dumps({"sglang_container_name": name, "sglang_run_id": "check",
                                        "sglang_results_dir": str(tmp_path)}))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr
    assert set(recap(result.stdout)) == {"gpu01"}
    assert recap(result.stdout)["gpu01"]["failed"] == 0
    # the server stage ran in check mode against a container the container stage only predicted
    assert "check mode assumes it will exist" in result.stderr, result.stderr[-4000:]
    preflight = json.loads((tmp_path / "check" / "preflight.json").read_text())
    assert [h["host"] for h in preflight["hosts"]] == ["gpu01"]
    assert container_ids("gpu01", name) == []


def test_upgrade_and_teardown_check_mode_on_one_host(tmp_path):
    """upgrade.yml and teardown.yml --check --diff --limit gpu02: predicted, nothing changed."""
    name = "partial-" + uuid.uuid4().hex[:8]
    extra = {"sglang_container_name": name, "sglang_results_dir": str(tmp_path),
             "sglang_run_id": "check-upgrade"}
    result = playbook("upgrade", "--check", "--diff", "--limit", "gpu02", "-e", json.dumps(extra))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr
    assert set(recap(result.stdout)) == {"gpu02"}
    summary = json.loads((tmp_path / "check-upgrade" / "upgrade_summary.json").read_text())
    assert summary["check_mode"] is True
    assert summary["hosts_by_status"]["would_upgrade"] == ["gpu02"], summary
    assert container_ids("gpu02", name) == []

    result = playbook("teardown", "--check", "--diff", "--limit", "gpu02", "-e", json.dumps(extra))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr
    assert recap(result.stdout)["gpu02"]["failed"] == 0


@pytest.mark.parametrize("extra, expected", [
    ({"sglang_image": "lmsysorg/sglang:v0.5.8-rocm700-mi30x"},
     "sglang_image is set as extra vars (-e), which no rollback can override"),
    ({"sglang_upgrade_target": {"sglang_port": 30001}}, "unknown here: sglang_port"),
    ({"sglang_upgrade_batches": [1, "0%"]}, 'sglang_upgrade_batches=[1, "0%"]'),
])
def test_upgrade_refuses_bad_input_before_touching_a_host(extra, expected):
    """Bad upgrade settings end the run in pre-flight, with the variable and the fix named."""
    result = playbook("upgrade", "-e", json.dumps(extra))
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-4000:]
    assert "Nothing was changed." in out and expected in out, out[-4000:]
    assert "Roll the change out batch by batch" not in out, out[-4000:]
