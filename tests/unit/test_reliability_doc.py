"""docs/reliability.md: every row names at least one test, and every test it names exists.

A row's last column holds references in backticks:
  `tests/unit/.../test_x.py::test_name` (or ::Class::test_name, with or without [params]): a
      pytest node id (a scenario's testinfra file, molecule/<scenario>/tests/..., too); the file
      must exist and define that class and function;
  `molecule/<scenario>: <task name>`: a task (or play) of that scenario, named exactly so in
      one of its YAML files.
"""

import os
import re

import pytest
import yaml

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(TOP, "docs", "reliability.md")
REFERENCE = re.compile(r"`([^`]+)`")


def table_rows(text):
    """The body rows of every markdown table in ``text``, as lists of cells."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|") or re.match(r"^\|[\s:|-]+\|$", line):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells and cells[0].lower() in ("bad input or fault", "fault", "what"):
            continue  # header
        rows.append(cells)
    return rows


def task_names(node):
    """Every ``name`` of every task, block and play in a parsed YAML document."""
    if isinstance(node, dict):
        if isinstance(node.get("name"), str):
            yield node["name"]
        for value in node.values():
            yield from task_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from task_names(value)


def scenario_task_names(scenario):
    names = set()
    root = os.path.join(TOP, "molecule", scenario)
    for folder, _dirs, files in os.walk(root):
        for filename in files:
            if filename.endswith((".yml", ".yaml")):
                with open(os.path.join(folder, filename), encoding="utf-8") as handle:
                    for document in yaml.safe_load_all(handle):
                        names.update(task_names(document))
    return names


def missing_reference(reference):
    """Why ``reference`` names no existing test, or None when it does."""
    molecule = re.match(r"^molecule/([\w.-]+): (.+)$", reference)
    if molecule:
        scenario, name = molecule.groups()
        if not os.path.isfile(os.path.join(TOP, "molecule", scenario, "molecule.yml")):
            return "no molecule scenario %s" % scenario
        if name not in scenario_task_names(scenario):
            return "molecule/%s has no task named %r" % (scenario, name)
        return None
    node = re.match(r"^((?:tests|molecule)/[\w/.-]+\.py)((?:::[\w]+)+)(\[[^\]]*\])?$", reference)
    if not node:
        return "not a pytest node id or a molecule/<scenario>: <task> reference"
    path, parts = node.group(1), node.group(2).split("::")[1:]
    if not os.path.isfile(os.path.join(TOP, path)):
        return "no file %s" % path
    with open(os.path.join(TOP, path), encoding="utf-8") as handle:
        source = handle.read()
    for part in parts[:-1]:
        if not re.search(r"^\s*class %s\b" % re.escape(part), source, re.M):
            return "%s defines no class %s" % (path, part)
    if not re.search(r"^\s*def %s\(" % re.escape(parts[-1]), source, re.M):
        return "%s defines no test %s" % (path, parts[-1])
    return None


def test_every_row_names_a_test_that_exists():
    with open(DOC, encoding="utf-8") as handle:
        rows = table_rows(handle.read())
    assert len(rows) >= 20, "docs/reliability.md lists too few faults"
    problems = []
    for cells in rows:
        references = REFERENCE.findall(cells[-1])
        if not references:
            problems.append("%s: names no test" % cells[0])
        problems.extend("%s: `%s`: %s" % (cells[0], ref, why)
                        for ref in references for why in [missing_reference(ref)] if why)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("reference, problem", [
    ("tests/unit/test_reliability_doc.py::test_every_row_names_a_test_that_exists", None),
    ("tests/unit/test_reliability_doc.py::test_no_such_test", "defines no test"),
    ("tests/unit/no_such_file.py::test_x", "no file"),
    ("molecule/upgrade: Read the containers", None),
    ("molecule/upgrade: No such task", "has no task named"),
    ("molecule/nope: Read the containers", "no molecule scenario"),
    ("molecule/container/tests/test_container.py::test_no_sentinel_in_vvv_output_argv_docker_inspect_or_results", None),
    ("molecule/container/tests/test_container.py::test_nothing", "defines no test"),
    ("make test", "not a pytest node id"),
])
def test_references_are_checked(reference, problem):
    why = missing_reference(reference)
    assert (why is None) if problem is None else (problem in why)
