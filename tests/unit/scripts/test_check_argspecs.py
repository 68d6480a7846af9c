"""The argument_specs/defaults gate must catch each kind of drift it promises to catch."""
import importlib.util
import pathlib

import pytest
import yaml

SCRIPT = pathlib.Path(__file__).resolve().parents[3] / "tests" / "scripts" / "check_argspecs.py"
spec = importlib.util.spec_from_file_location("check_argspecs", SCRIPT)
check_argspecs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_argspecs)


def make_role(tmp_path, defaults, options):
    role = tmp_path / "demo"
    (role / "tasks").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "meta").mkdir()
    (role / "defaults" / "main.yml").write_text(yaml.safe_dump(defaults))
    (role / "meta" / "argument_specs.yml").write_text(
        yaml.safe_dump({"argument_specs": {"main": {"options": options}}}))
    return role


def test_agreeing_role_passes(tmp_path):
    role = make_role(tmp_path, {"sglang_demo_port": 1, "_sglang_demo_internal": 2},
                     {"sglang_demo_port": {"type": "int", "default": 1}})
    assert check_argspecs.check_role(role) == []


@pytest.mark.parametrize("defaults, options, fragment", [
    ({"sglang_demo_a": 1}, {}, "demo_a is defaulted in defaults/main.yml but not documented"),
    ({}, {"sglang_demo_b": {"type": "int"}}, "demo_b is documented in meta/argument_specs.yml but has no default"),
    ({"sglang_demo_c": 1}, {"sglang_demo_c": {"type": "int", "default": 2}}, "sglang_demo_c defaults to 1 in defaults/main.yml but argument_specs says 2"),
])
def test_each_drift_is_reported(tmp_path, defaults, options, fragment):
    problems = check_argspecs.check_role(make_role(tmp_path, defaults, options))
    assert len(problems) == 1 and fragment in problems[0]


def test_required_option_needs_no_default(tmp_path):
    role = make_role(tmp_path, {}, {"sglang_demo_key": {"type": "str", "required": True}})
    assert check_argspecs.check_role(role) == []


def test_missing_spec_file_is_reported(tmp_path):
    role = make_role(tmp_path, {}, {})
    (role / "meta" / "argument_specs.yml").unlink()
    assert check_argspecs.check_role(role) == ["demo: meta/argument_specs.yml is missing"]


def test_unprefixed_names_are_reported_wherever_they_are_defined(tmp_path):
    role = make_role(tmp_path, {"port": 1}, {"port": {"type": "int", "default": 1}})
    (role / "tasks" / "main.yml").write_text(yaml.safe_dump([
        {"name": "probe", "ansible.builtin.command": "true", "register": "result"},
        {"name": "fine", "ansible.builtin.set_fact": {"_sglang_demo_ok": 1}, "register": "__sglang_demo_probe"},
        {"block": [{"ansible.builtin.set_fact": {"computed": 1}}]},
    ]))
    problems = check_argspecs.check_role(role)
    assert sorted(p.split(" (")[0] for p in problems) == [
        "demo: computed", "demo: port", "demo: port", "demo: result"]
    assert all("does not start with sglang_demo_" in p for p in problems)


def test_common_role_uses_the_shared_prefix(tmp_path):
    role = tmp_path / "common"
    (role / "tasks").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "meta").mkdir()
    (role / "defaults" / "main.yml").write_text(yaml.safe_dump({"sglang_port": 1}))
    (role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump(
        {"argument_specs": {"main": {"options": {"sglang_port": {"type": "int", "default": 1}}}}}))
    assert check_argspecs.check_role(role) == []
