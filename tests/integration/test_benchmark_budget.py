"""The benchmark role when its async budget runs out (issue 15): the tiers that finished are kept.

The role's own tasks/tiers.yml, on the controller (connection local), with a docker CLI that
hangs past sglang_benchmark_async: Ansible gives up on the job, and the rescue reads back the
record the finished tier left on the host, reports the other tier as not run with the reason,
and fetches the finished tier's files. No bed needed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / ".build"))

from ansible_collections.sglang_rocm.fleet.plugins.module_utils import _bench  # noqa: E402


def test_an_async_budget_that_runs_out_keeps_the_finished_tiers(tmp_path):
    cache, results, fake = tmp_path / "cache", tmp_path / "results", tmp_path / "bin"
    host_dir = cache / "bench-results" / "budget"
    host_dir.mkdir(parents=True)
    fake.mkdir()
    # the low tier finished before the job was killed: its record and log are on the host
    spec = _bench.validate_tiers([{"name": "low", "num_prompts": 2, "max_concurrency": 1}])[0]
    stdout = (REPO / "tests/unit/fixtures/bench/stdout_0.5.7_low.txt").read_text()
    (host_dir / "low.log").write_text(stdout)
    record = _bench.build_record(spec, 0, 30.0, stdout=stdout, log_path=str(host_dir / "low.log"))
    (host_dir / "low.record.json").write_text(json.dumps(record))
    # a docker CLI that hangs (for less time than the test, so nothing is left behind)
    (fake / "docker").write_text("#!/bin/sh\nexec sleep 8\n")
    (fake / "docker").chmod(0o755)
    out = tmp_path / "kept.json"
    env = dict(os.environ, PATH="%s:%s" % (fake, os.environ["PATH"]), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build"))
    extra = {"sglang_cache_dir": str(cache), "sglang_results_dir": str(results), "out": str(out),
             "ansible_python_interpreter": sys.executable}
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
         str(REPO / "tests/integration/playbooks/benchmark_budget.yml"), "-e", json.dumps(extra)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "rescued=1" in run.stdout
    kept = json.loads(out.read_text())
    low, medium = kept["records"]
    assert (low["tier"], low["status"], low["metrics"]["output_throughput"]) == ("low", "ok", 176.86)
    assert (medium["tier"], medium["status"]) == ("medium", "not_run")
    # async_wrapper's words when it kills the job ("Timeout exceeded"), or the poller's
    assert medium["error"].startswith("tier 'medium' did not finish: the benchmark job on localhost "
                                      "ended before every tier finished (")
    assert "Timeout exceeded" in medium["error"] or "did not complete within" in medium["error"]
    assert kept["failed_tiers"] == ["medium"]
    assert (results / "budget" / "localhost" / "low.log").read_text() == stdout  # fetched
