"""The run id the common role sets: two runs started in the same second never share it."""
import re
from pathlib import Path

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

TASKS = Path(__file__).resolve().parents[3] / "roles" / "common" / "tasks" / "main.yml"


def test_runs_started_in_the_same_second_get_distinct_sortable_ids():
    task = yaml.safe_load(TASKS.read_text())[0]
    expression = task["ansible.builtin.set_fact"]["sglang_run_id"]
    templar = Templar(loader=DataLoader(), variables={})
    ids = [templar.template(trust_as_template(expression)) for attempt in range(50)]
    assert all(re.match(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$", run_id) for run_id in ids), ids[:3]
    seconds = [run_id.split("-")[0] for run_id in ids]
    assert len(set(seconds)) < len(seconds)  # some were made in the same second...
    assert len(set(ids)) == len(ids)  # ...yet no two runs share an id
    # the time comes first: sorting the ids sorts the runs by their start second
    assert [i.split("-")[0] for i in sorted(ids)] == sorted(seconds)
