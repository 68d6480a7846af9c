"""The collection under strategy mitogen_linear (optional, docs/performance.md) on the bed.

site.yml's serving stages (preflight, container, packages, server) converge one healthy host
under Mitogen from no container, then re-run with changed=0; the host is left as it was found.
The recipe's model path (sglang_model_source: none): the model stage is molecule/benchmark's.
Runs in the integration gate (tests/scripts/integration.sh sets SIMFLEET_INVENTORY); skipped
without a bed or without mitogen in the venv.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STAGES = ["preflight", "container", "packages", "server"]

ansible_mitogen = pytest.importorskip("ansible_mitogen", reason="mitogen is not installed (requirements.txt)")


@pytest.fixture(name="bed")
def fixture_bed():
    path = os.environ.get("SIMFLEET_INVENTORY")
    if not path:
        pytest.skip("no simulated fleet: SIMFLEET_INVENTORY is not set (make integration sets it)")
    inventory = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    group = inventory["all"]["children"]["gpu_hosts"]
    healthy = [h for h, v in sorted(group["hosts"].items()) if v.get("simfleet_profile") == "mi300x-8gpu"]
    if not healthy:
        pytest.skip("the bed has no healthy mi300x-8gpu host")
    host = healthy[0]
    return {"inventory": path, "host": host, "docker": group["hosts"][host]["sglang_docker_host"],
            "image": group["vars"]["sglang_image"]}


def docker(bed, *args):
    return subprocess.run(["docker", "-H", bed["docker"], *args], capture_output=True, text=True, check=False)


def converge(bed, tmp_path, name):
    env = dict(os.environ, PATH="%s%s%s" % (BIN, os.pathsep, os.environ.get("PATH", "")),
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build"), ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_STRATEGY="mitogen_linear",
               ANSIBLE_STRATEGY_PLUGINS=str(Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"),
               # Mitogen reads host_key_checking, not the bed's -o StrictHostKeyChecking=no
               ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_NOCOLOR="1",
               ANSIBLE_CALLBACK_PLUGINS=str(REPO / "tests" / "perf" / "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="perf_stats", PERF_STATS_FILE=str(tmp_path / (name + ".json")))
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", bed["inventory"], "-i", str(REPO / "tests" / "perf" / "inventory.yml"),
         str(REPO / "playbooks" / "site.yml"), "--limit", bed["host"], "-e", json.dumps({"sglang_stages": STAGES, "sglang_model_source": "none"}),
         "-e", "perf_load_seconds=2", "-e", "sglang_results_dir=%s" % (tmp_path / "results")],
        cwd=REPO, env=env, capture_output=True, text=True, check=False)
    (tmp_path / (name + ".log")).write_text(proc.stdout + proc.stderr, encoding="utf-8")
    assert proc.returncode == 0, "%s under mitogen failed:\n%s" % (name, (proc.stdout + proc.stderr)[-4000:])
    stats = json.loads((tmp_path / (name + ".json")).read_text(encoding="utf-8"))["hosts"][bed["host"]]
    return stats


def test_site_serving_stages_converge_and_rerun_unchanged_under_mitogen(bed, tmp_path):
    container = "Kimi-linear"
    if docker(bed, "container", "inspect", container).returncode == 0:
        pytest.skip("%s already has a %s container; this test starts from none" % (bed["host"], container))
    image_was_there = docker(bed, "image", "inspect", bed["image"]).returncode == 0
    try:
        cold = converge(bed, tmp_path, "cold")
        assert cold["recap"]["failures"] == 0 and cold["recap"]["changed"] > 0
        assert cold["server"]["changed"] and cold["server"]["ready_at"]
        warm = converge(bed, tmp_path, "warm")
        assert warm["recap"]["failures"] == 0
        assert warm["recap"]["changed"] == 0, "a re-run under mitogen changed something; see %s" % (tmp_path / "warm.log")
    finally:
        docker(bed, "rm", "-f", container)
        if not image_was_there:
            docker(bed, "rmi", bed["image"])
