"""preflight_registry.py must catch every place that drifts from REGISTRY, and --write must fix it."""
import importlib.util
import pathlib
import shutil

import yaml

from ansible_collections.sglang_rocm.fleet.plugins.module_utils._preflight_checks import REGISTRY, Check

ROOT = pathlib.Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "tests" / "scripts" / "preflight_registry.py"
spec = importlib.util.spec_from_file_location("preflight_registry", SCRIPT)
preflight_registry = importlib.util.module_from_spec(spec)
spec.loader.exec_module(preflight_registry)

PLACES = (preflight_registry.MODULE, preflight_registry.ARGSPEC, preflight_registry.DOC)
NEW = Check("ulimit_memlock", lambda ctx: None, "warns when `ulimit -l` is not unlimited", "-")


def copy_tree(tmp_path):
    for place in PLACES:
        (tmp_path / place).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / place, tmp_path / place)
    return tmp_path


def test_the_collection_agrees_with_its_registry():
    assert preflight_registry.problems() == []


def test_a_check_added_to_the_registry_alone_is_reported_in_every_place():
    found = preflight_registry.problems(registry=REGISTRY + (NEW,))
    assert [p.split(":")[0] for p in found] == list(PLACES)
    assert "missing: ulimit_memlock; unknown: none" in found[0] and "missing: ulimit_memlock" in found[1]
    assert all("tests/scripts/preflight_registry.py --write" in p for p in found)


def test_a_renamed_check_is_reported_as_missing_and_unknown():
    renamed = tuple(c._replace(name="numa") if c.name == "numa_balancing" else c for c in REGISTRY)
    found = preflight_registry.problems(registry=renamed)
    assert len(found) == 3 and "missing: numa; unknown: numa_balancing" in found[1]


def test_an_edited_doc_row_is_reported_for_the_docs_only():
    edited = tuple(c._replace(safe_fix="`sysctl -w`") if c.name == "numa_balancing" else c for c in REGISTRY)
    found = preflight_registry.problems(registry=edited)
    assert len(found) == 1 and found[0].startswith("docs/preflight.md: the table of checks differs")


def test_write_brings_every_place_in_step_and_touches_nothing_else(tmp_path):
    root = copy_tree(tmp_path)
    changed = tuple(c for c in REGISTRY if c.name != "dev_mem") + (NEW,)
    preflight_registry.write(root, changed)
    assert preflight_registry.problems(root, changed) == []
    assert len(preflight_registry.problems(root, REGISTRY)) == 3
    names = [c.name for c in changed]
    argspec = yaml.safe_load((root / preflight_registry.ARGSPEC).read_text())["argument_specs"]["main"]["options"]
    assert argspec["sglang_preflight_skip"]["choices"] == names
    assert argspec["sglang_preflight_skip"]["default"] == []
    assert preflight_registry.module_choices((root / preflight_registry.MODULE).read_text()) == names
    doc = (root / preflight_registry.DOC).read_text()
    assert "| ulimit_memlock | warns when `ulimit -l` is not unlimited | - |" in doc and "| dev_mem |" not in doc
    for place in PLACES:  # only the choices lines or the table rows differ
        before, after = (ROOT / place).read_text().splitlines(), (root / place).read_text().splitlines()
        assert len(before) - 2 <= len(after) <= len(before) + 2
        assert sum(1 for line in after if line not in before) <= 3


def test_write_keeps_the_choices_under_the_line_limit(tmp_path):
    root = copy_tree(tmp_path)
    longer = REGISTRY + tuple(c._replace(name=c.name + "_again") for c in REGISTRY)
    preflight_registry.write(root, longer)
    assert preflight_registry.problems(root, longer) == []
    for place in PLACES[:2]:
        before, after = (ROOT / place).read_text().splitlines(), (root / place).read_text().splitlines()
        written = [line for line in after if line not in before]
        assert len(written) >= 3 and max(len(line) for line in written) <= preflight_registry.WIDTH
