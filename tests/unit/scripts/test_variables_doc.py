"""variables_doc.py: a role README with the markers gets that role's variables, and drift is caught."""
import importlib.util
import pathlib

import yaml

SCRIPT = pathlib.Path(__file__).resolve().parents[3] / "tests" / "scripts" / "variables_doc.py"
spec = importlib.util.spec_from_file_location("variables_doc", SCRIPT)
variables_doc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(variables_doc)

MARKERS = "%s\n%s\n" % (variables_doc.BEGIN, variables_doc.END)


def write_spec(role, default):
    (role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump({"argument_specs": {"main": {"options": {
        "sglang_demo_port": {"type": "int", "default": default, "description": ["The port. More words."]}}}}}))


def make_tree(tmp_path, default):
    (tmp_path / "README.md").write_text("# collection\n\n" + MARKERS)
    role = tmp_path / "roles" / "demo"
    (role / "meta").mkdir(parents=True)
    (role / "README.md").write_text("# demo\n\n## Variables\n\n" + MARKERS + "\n## Example\n")
    write_spec(role, default)
    (tmp_path / "roles" / "other" / "meta").mkdir(parents=True)
    (tmp_path / "roles" / "other" / "README.md").write_text("# other, no markers\n")
    return tmp_path


def test_the_collection_readmes_match_their_argument_specs():
    assert variables_doc.stale() == []


def test_a_role_readme_block_is_written_and_then_caught_when_a_default_changes(tmp_path):
    root = make_tree(tmp_path, 8080)
    assert [target[0].relative_to(root).as_posix() for target in variables_doc.targets(root)] == [
        "README.md", "roles/demo/README.md"]
    assert len(variables_doc.stale(root)) == 2
    variables_doc.stale(root, write=True)
    assert variables_doc.stale(root) == []
    readme = (root / "roles/demo/README.md").read_text()
    assert "| `sglang_demo_port` | int | `8080` | The port. |" in readme and readme.endswith("\n## Example\n")
    assert "| `sglang_demo_port` | demo | int | `8080` | The port. |" in (root / "README.md").read_text()
    write_spec(root / "roles/demo", 9090)
    assert variables_doc.stale(root) == [
        "README.md variables block is stale: run `.venv/bin/python tests/scripts/variables_doc.py --write`",
        "roles/demo/README.md variables block is stale: run `.venv/bin/python tests/scripts/variables_doc.py --write`"]
